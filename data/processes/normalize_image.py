"""Image normalisation to the network's input tensor, and its inverse."""

import numpy as np
import torch

from data.normalization import BGR_MEAN, normalize

from .data_process import DataProcess


class NormalizeImage(DataProcess):
    """Subtracts the original's BGR mean, divides by 255 and returns a float32 CHW tensor.

    Reads ``image`` H x W x 3 (BGR, any numeric dtype); writes ``image`` torch.float32 (3, H, W).
    No division by a standard deviation, as in the original. ``restore`` is the inverse (for
    visualisation).
    """

    RGB_MEAN = BGR_MEAN  # the original's name; the order is B, G, R

    def process(self, data):
        if 'image' not in data:
            raise KeyError(
                "NormalizeImage needs the key 'image' in the sample; put it after the dataset / augmentation processes."
            )
        data['image'] = torch.from_numpy(normalize(data['image'], channels_first=True))
        return data

    @classmethod
    def restore(cls, image: torch.Tensor) -> np.ndarray:
        """(3, H, W) normalised tensor -> H x W x 3 uint8 BGR image (rounded, clipped to 0..255)."""
        array = image.detach().permute(1, 2, 0).to('cpu', torch.float32).numpy()
        array = array * 255.0 + np.asarray(cls.RGB_MEAN, dtype=np.float32)
        return np.clip(np.rint(array), 0, 255).astype(np.uint8)
