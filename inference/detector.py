"""Images in, text polygons out: resizing, batching, the forward function and the representer, for every path.

``Detector`` resizes each image (short side to ``image_short_side``, both sides multiples of 32, as
the original demo does), normalises it, runs a forward function on batches of images that share a
size, and turns each probability map into polygons and scores in the original image's coordinates
with the experiment's representer.

With ``pipeline=True`` the post-processing runs in a second thread (producer / consumer): the calling
thread runs the forward passes batch after batch while the consumer turns finished probability maps into
polygons (OpenCV, numpy, ONNX Runtime and PyTorch release the GIL while they compute), so the polygons of
one batch are found while the next batch goes through the model. ``detect_stream`` also reads its images
(decoding, for demo.py's generator) and resizes / normalises them in a third thread, one chunk ahead of the
forward passes. The batches, the maps and the results are those of the sequential path, in input order; an
exception in any thread propagates to the caller.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Callable

import numpy as np

from inference.tiling import inference_size, resized_input

if TYPE_CHECKING:
    import torch

__all__ = ['Detector', 'inference_size', 'torch_forward']


def torch_forward(model: torch.nn.Module, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """A forward function for ``Detector`` over a PyTorch SegDetectorModel (eval mode, no grad)."""
    import torch  # here, so that the rest of this module (used by the ONNX Runtime path) needs no torch

    model.eval()

    def forward(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            tensor = torch.from_numpy(images).to(device)
            pred = model({'image': tensor}, training=False)
            if isinstance(pred, dict):
                pred = pred['binary']
            return pred.float().cpu().numpy()

    return forward


class Detector:
    """Detects text in BGR images (H x W x 3, float32 as ``data.image_io.read_image`` returns them, or uint8).

    Args:
        forward: (N, 3, H, W) float32 normalised images -> (N, 1, H, W) probability maps.
        representer: a SegDetectorRepresenter (its thresh / box_thresh / max_candidates apply).
        image_short_side: the short side the images are resized to (multiple of 32; default 736).
        is_output_polygon: polygons (curved text) instead of rotated boxes.
        batch_size: images per forward call; only images of the same resized size share a batch.
        pipeline: post-process in a second thread, overlapped with the next forward pass (same results).
        max_pending: with ``pipeline``, in ``detect_stream``, how many chunks of ``batch_size`` images may
            wait for post-processing before the forward passes pause (bounds the memory held).

    Built over an experiment and a checkpoint by ``inference.build.detector_from_experiment``, over an ONNX file
    by ``inference.onnx_runtime.OnnxDetector``.

    ``detect(images)`` returns, per image, ``(polygons, scores)``: a list of int (K, 2) arrays in the
    image's pixel coordinates and a list of floats. ``detect_stream(iterable)`` yields the same per image,
    in order, reading the iterable ``batch_size`` images at a time (for folders of photos).
    """

    def __init__(
        self,
        forward: Callable[[np.ndarray], np.ndarray],
        representer,
        image_short_side: int = 736,
        is_output_polygon: bool = False,
        batch_size: int = 1,
        pipeline: bool = False,
        max_pending: int = 2,
    ):
        self.forward = forward
        self.representer = representer
        self.image_short_side = image_short_side
        self.is_output_polygon = is_output_polygon
        self.batch_size = max(1, int(batch_size))
        self.pipeline = pipeline
        self.max_pending = max(1, int(max_pending))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 BGR (uint8 or float32) -> (3, H', W') float32: ``inference.tiling.resized_input``."""
        return resized_input(image, self.image_short_side)

    def probability_maps(self, images: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, (H', W') probability map)`` per image, batch after batch: images of the same resized size
        share a batch of at most ``batch_size``, in order of first appearance."""
        return self._maps([self.preprocess(image) for image in images])

    def _maps(self, inputs: Sequence[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """``probability_maps`` of inputs already preprocessed."""
        groups: dict = {}
        for index, tensor in enumerate(inputs):
            groups.setdefault(tensor.shape, []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                maps = self.forward(np.stack([inputs[i] for i in chunk]))
                for row, index in enumerate(chunk):
                    yield index, maps[row, 0]

    def represent(self, probability: np.ndarray, image: np.ndarray) -> tuple[list, list]:
        """One probability map -> ``(polygons, scores)`` in ``image``'s pixel coordinates."""
        return self._represent_size(probability, image.shape[:2])

    def _represent_size(self, probability: np.ndarray, size: tuple[int, int]) -> tuple[list, list]:
        return self.representer.represent_map(probability, size, self.is_output_polygon)

    def detect(self, images: Sequence[np.ndarray]) -> list[tuple[list, list]]:
        if not self.pipeline:
            results: list = [None] * len(images)
            for index, probability in self.probability_maps(images):
                results[index] = self.represent(probability, images[index])
            return results
        inputs = [self.preprocess(image) for image in images]
        with _Consumer() as consumer:
            return [future.result() for future in self._submit(consumer, [i.shape[:2] for i in images], inputs)]

    def detect_stream(self, images: Iterable[np.ndarray]) -> Iterator[tuple[list, list]]:
        """``(polygons, scores)`` per image of ``images`` (any iterable, read ``batch_size`` images at a time,
        each chunk batched as ``detect`` batches it), in order. With ``pipeline`` the forward passes run
        up to ``max_pending`` chunks ahead of the post-processing, and a reading thread decodes and preprocesses
        one chunk ahead of the forward passes (at most ``max_pending`` + 3 chunks read and not yet returned); only
        the preprocessed inputs and each image's size are kept, so a chunk read ahead holds no full-size image."""
        iterator = iter(images)
        if not self.pipeline:
            while True:
                chunk = list(islice(iterator, self.batch_size))
                if not chunk:
                    return
                results = self.detect(chunk)
                del chunk  # the images are released before the next chunk is read
                yield from results
        with _Consumer() as consumer, _Reader(iterator, self.batch_size, self.preprocess) as reader:
            pending: deque = deque()
            try:
                for sizes, inputs in reader:
                    pending.append(self._submit(consumer, sizes, inputs))
                    del inputs
                    while len(pending) > self.max_pending:
                        yield from (future.result() for future in pending.popleft())
            except Exception:  # a failed read: the images before it get their results first, as sequentially
                while pending:
                    yield from (future.result() for future in pending.popleft())
                raise
            while pending:
                yield from (future.result() for future in pending.popleft())

    def _submit(
        self, consumer: ThreadPoolExecutor, sizes: Sequence[tuple[int, int]], inputs: Sequence[np.ndarray]
    ) -> list[Future]:
        """Runs the forward passes of the preprocessed ``inputs`` here and hands each map, with its image's
        (height, width) from ``sizes``, to ``consumer``; futures in input order."""
        futures: list = [None] * len(inputs)
        for index, probability in self._maps(inputs):
            futures[index] = consumer.submit(self._represent_size, probability, sizes[index])
        return futures


class _Consumer(ThreadPoolExecutor):
    """One post-processing thread; on leaving the ``with`` block (normally, by an exception or by a closed
    generator) the work not started is cancelled and the running one is waited for."""

    def __init__(self):
        super().__init__(max_workers=1, thread_name_prefix='dbnet-postprocess')

    def __exit__(self, *exc_info):
        self.shutdown(wait=True, cancel_futures=True)
        return False


class _Reader:
    """Reads ``iterator`` ``batch_size`` images at a time in a thread ('dbnet-read') and preprocesses them, one
    chunk ahead of the caller: ``for sizes, inputs in reader`` gives (each image's (height, width), ``preprocess``
    of each) in order; the images themselves are not kept.
    An exception in the thread is raised to the caller at its place in the stream; leaving the ``with`` block
    (normally, by an exception or by a closed generator) stops the thread and waits for it."""

    _END = object()

    def __init__(self, iterator: Iterator, batch_size: int, preprocess: Callable[[np.ndarray], np.ndarray]):
        self.iterator, self.batch_size, self.preprocess = iterator, batch_size, preprocess
        self.chunks: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name='dbnet-read', daemon=True)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.chunks.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            while not self.stop.is_set():
                sizes, inputs = [], []
                for image in islice(self.iterator, self.batch_size):
                    sizes.append(image.shape[:2])
                    inputs.append(self.preprocess(image))
                    del image  # only its preprocessed input is kept
                if not inputs or not self._put((sizes, inputs)):
                    break
            self._put(self._END)
        except BaseException as error:  # handed to the caller, which raises it
            self._put(error)

    def __enter__(self):
        self.thread.start()
        return self

    def __iter__(self):
        while True:
            item = self.chunks.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join()
        return False
