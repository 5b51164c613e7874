"""Image normalisation to the network's input tensor, and its inverse."""

import cv2
import numpy as np
import torch

from data.normalization import BGR_MEAN, normalize

from .data_process import DataProcess


class NormalizeImage(DataProcess):
    """Subtracts the original's BGR mean, divides by 255 and returns a float32 CHW tensor.

    Reads ``image`` H x W x 3 (BGR, any numeric dtype); writes ``image`` torch.float32 (3, H, W).
    No division by a standard deviation, as in the original. ``restore`` is the inverse (for
    visualisation).

    ``on_device=True`` (not in the original; for training on a GPU) writes ``image`` as torch.uint8 (3, H, W),
    the values rounded to integers and clipped to 0..255, and leaves the normalisation to the model
    (``SegDetectorModel.forward`` applies ``normalize_tensor`` to a uint8 image, on its device): a quarter of the
    bytes through collation, pinning and the copy to the GPU, and no float work in the loader. The rounding moves
    a pixel by at most 0.5 / 255 from the original's float input.
    """

    RGB_MEAN = BGR_MEAN  # the original's name; the order is B, G, R

    def __init__(self, on_device=False):
        self.on_device = bool(on_device)

    def process(self, data):
        if 'image' not in data:
            raise KeyError(
                "NormalizeImage needs the key 'image' in the sample; put it after the dataset / augmentation processes."
            )
        if self.on_device:
            image = cv2.convertScaleAbs(np.clip(data['image'], 0, 255))  # rounded half to even, as np.rint
            data['image'] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        else:
            data['image'] = torch.from_numpy(normalize(data['image'], channels_first=True))
        return data

    @staticmethod
    def normalize_tensor(images: torch.Tensor) -> torch.Tensor:
        """uint8 (..., 3, H, W) -> float32 (image - BGR_MEAN) / 255, on the tensor's device, with the bits of
        ``data.normalization.normalize`` (the mean subtracted in float64, rounded to float32, then / 255)."""
        mean = torch.tensor(BGR_MEAN, dtype=torch.float64, device=images.device).view(3, 1, 1)
        return (images.to(torch.float64) - mean).to(torch.float32) / 255.0

    @classmethod
    def restore(cls, image: torch.Tensor) -> np.ndarray:
        """(3, H, W) normalised tensor (or a uint8 one from ``on_device``) -> H x W x 3 uint8 BGR image (rounded,
        clipped to 0..255)."""
        if image.dtype == torch.uint8:
            return image.detach().permute(1, 2, 0).cpu().numpy().copy()
        array = image.detach().permute(1, 2, 0).to('cpu', torch.float32).numpy()
        array = array * 255.0 + np.asarray(cls.RGB_MEAN, dtype=np.float32)
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
