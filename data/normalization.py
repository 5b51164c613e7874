"""The network's input normalisation, without torch: shared by ``NormalizeImage`` (training and
validation), ``structure.predictor.Detector`` and the ONNX Runtime path (``deploy.onnx_predictor``)."""
import numpy as np

__all__ = ['BGR_MEAN', 'normalize']

BGR_MEAN = (122.67891434, 116.66876762, 104.00698793)  # the original's RGB_MEAN; the order is B, G, R


def normalize(image: np.ndarray) -> np.ndarray:
    """H x W x 3 BGR image (any numeric dtype) -> float32 H x W x 3: (image - BGR_MEAN) / 255 (no std)."""
    image = image.astype(np.float32)
    image -= np.asarray(BGR_MEAN, dtype=np.float32)
    image /= 255.0
    return image
