"""The network's input normalisation, without torch: shared by ``NormalizeImage`` (training and
validation), ``inference.detector.Detector`` and the ONNX Runtime path (``inference.onnx_runtime``)."""

import numpy as np

__all__ = ['BGR_MEAN', 'normalize']

BGR_MEAN = (122.67891434, 116.66876762, 104.00698793)  # the original's RGB_MEAN; the order is B, G, R


def normalize(image: np.ndarray, channels_first: bool = False) -> np.ndarray:
    """H x W x 3 BGR image (any numeric dtype) -> float32 H x W x 3: (image - BGR_MEAN) / 255 (no std); with
    ``channels_first`` float32 3 x H x W (C-contiguous), the transposition done by the one copy.

    The arithmetic is the original's to the last bit: the float64 mean is subtracted in place from the float32
    image (numpy computes in float64 and rounds to float32), then the division by 255 is in float32."""
    mean = np.asarray(BGR_MEAN, dtype=np.float64)
    if channels_first:
        image = np.array(np.moveaxis(image, -1, 0), dtype=np.float32, order='C')  # always a copy
        mean = mean[:, None, None]
    else:
        image = image.astype(np.float32)  # a copy: the caller's image is left unchanged
    image -= mean
    image /= 255.0
    return image
