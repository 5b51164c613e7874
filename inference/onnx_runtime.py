"""Text detection with ONNX Runtime, without PyTorch.

Needs numpy, OpenCV, onnxruntime, shapely and pyclipper only: the resize / normalisation / batching
(``inference.detector.Detector``) and the post-processing (``SegDetectorRepresenter``) are the same code
the PyTorch path runs, so identical probability maps give identical detections.

    detector = OnnxDetector('model.onnx', image_short_side=736, box_thresh=0.6)
    polygons, scores = detector.detect([cv2.imread('photo.jpg', cv2.IMREAD_COLOR).astype('float32')])[0]
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np

from concern.errors import UserError
from inference.detector import Detector
from structure.representers import SegDetectorRepresenter

__all__ = ['OnnxDetector', 'OnnxModelError', 'onnx_forward', 'REPRESENTER_METADATA_KEY']

# convert_to_onnx.py stores the experiment's representer arguments under this metadata key (JSON).
REPRESENTER_METADATA_KEY = 'dbnet.representer'


class OnnxModelError(UserError, RuntimeError):
    """An ONNX file that ONNX Runtime cannot load; the message names it."""


def onnx_forward(session) -> Callable[[np.ndarray], np.ndarray]:
    """A forward function for ``Detector`` over an ``onnxruntime.InferenceSession`` of an exported model."""
    input_name = session.get_inputs()[0].name

    def forward(images: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(images, dtype=np.float32)})[0]

    return forward


def representer_from_metadata(session, **overrides) -> SegDetectorRepresenter:
    """The representer saved in the model's metadata by convert_to_onnx.py (the class defaults when absent),
    with ``overrides`` (None values ignored) applied."""
    metadata = session.get_modelmeta().custom_metadata_map
    arguments = json.loads(metadata[REPRESENTER_METADATA_KEY]) if REPRESENTER_METADATA_KEY in metadata else {}
    arguments.update({key: value for key, value in overrides.items() if value is not None})
    return SegDetectorRepresenter(**arguments)


class OnnxDetector(Detector):
    """``Detector`` whose forward pass is an exported model run by ONNX Runtime.

    Args:
        model_path: an ONNX file written by convert_to_onnx.py (input ``image`` (N, 3, H, W) float32,
            output (N, 1, H, W) probability map).
        representer: a SegDetectorRepresenter; None builds it from the file's metadata (the experiment's
            representer arguments) with ``thresh`` / ``box_thresh`` / ``max_candidates`` applied when given.
        image_short_side, is_output_polygon, batch_size, pipeline, max_pending: as in ``Detector``
            (``pipeline``: post-processing in a second thread while ONNX Runtime runs the next batch).
        providers: ONNX Runtime execution providers (default: CPU).
        intra_op_num_threads: threads per operator (0: ONNX Runtime's choice).

    ``detect(images)`` (BGR H x W x 3 arrays, float32 as read by ``data.image_io.read_image``, or uint8) returns
    per image ``(polygons, scores)``: int (K, 2) arrays in the image's pixel coordinates and floats.
    """

    def __init__(
        self,
        model_path: str,
        representer: SegDetectorRepresenter | None = None,
        image_short_side: int = 736,
        is_output_polygon: bool = False,
        batch_size: int = 1,
        thresh: float | None = None,
        box_thresh: float | None = None,
        max_candidates: int | None = None,
        providers=None,
        intra_op_num_threads: int = 0,
        pipeline: bool = False,
        max_pending: int = 2,
    ):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = onnxruntime.InferenceSession(
                model_path, options, providers=providers or ['CPUExecutionProvider']
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise OnnxModelError(
                f"OnnxDetector: cannot load '{model_path}' ({error}); export it with convert_to_onnx.py."
            ) from error
        if representer is None:
            representer = representer_from_metadata(
                self.session, thresh=thresh, box_thresh=box_thresh, max_candidates=max_candidates
            )
        super().__init__(
            onnx_forward(self.session),
            representer,
            image_short_side,
            is_output_polygon=is_output_polygon,
            batch_size=batch_size,
            pipeline=pipeline,
            max_pending=max_pending,
        )
