"""Images in, text polygons out: the inference path shared by demo.py and the notebook.

``Detector`` resizes each image (short side to ``image_short_side``, both sides multiples of 32, as
the original demo does), normalises it, runs a forward function on batches of images that share a
size, and turns each probability map into polygons and scores in the original image's coordinates
with the experiment's representer.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np

from data.normalization import normalize

__all__ = ['Detector', 'inference_size', 'torch_forward']


def inference_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(new_height, new_width): the short side becomes ``short_side`` (rounded up to a multiple of 32),
    the other keeps the aspect ratio, rounded up to a multiple of 32."""
    short = int(math.ceil(short_side / 32) * 32)
    if height < width:
        return short, int(math.ceil(short / height * width / 32) * 32)
    return int(math.ceil(short / width * height / 32) * 32), short


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
    """Detects text in BGR images.

    Args:
        forward: (N, 3, H, W) float32 normalised images -> (N, 1, H, W) probability maps.
        representer: a SegDetectorRepresenter (its thresh / box_thresh / max_candidates apply).
        image_short_side: the short side the images are resized to (multiple of 32; default 736).
        is_output_polygon: polygons (curved text) instead of rotated boxes.
        batch_size: images per forward call; only images of the same resized size share a batch.

    ``detect(images)`` returns, per image, ``(polygons, scores)``: a list of int (K, 2) arrays in the
    image's pixel coordinates and a list of floats.
    """

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], representer, image_short_side: int = 736,
                 is_output_polygon: bool = False, batch_size: int = 1):
        self.forward = forward
        self.representer = representer
        self.image_short_side = image_short_side
        self.is_output_polygon = is_output_polygon
        self.batch_size = max(1, int(batch_size))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """HxWx3 BGR uint8 -> (3, H', W') float32, resized and normalised as in training."""
        height, width = image.shape[:2]
        new_height, new_width = inference_size(height, width, self.image_short_side)
        resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(normalize(resized).transpose(2, 0, 1))

    def detect(self, images: Sequence[np.ndarray]) -> list[tuple[list, list]]:
        inputs = [self.preprocess(image) for image in images]
        results: list = [None] * len(images)
        groups: dict = {}
        for index, tensor in enumerate(inputs):
            groups.setdefault(tensor.shape, []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                maps = self.forward(np.stack([inputs[i] for i in chunk]))
                for row, index in enumerate(chunk):
                    height, width = images[index].shape[:2]
                    results[index] = self.representer.represent_map(maps[row, 0], (height, width),
                                                                    self.is_output_polygon)
        return results
