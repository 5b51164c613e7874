"""Reading images as 3-channel 8-bit BGR arrays, safely.

``read_image`` applies the EXIF orientation, converts grayscale, RGBA, palette and 16-bit images to
``HxWx3 uint8`` BGR (OpenCV's ``IMREAD_COLOR`` conversion) and refuses, from the header and before
decoding, images with more than ``max_pixels`` pixels (a decompression-bomb guard).
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
from PIL import Image

__all__ = ['ImageReadError', 'image_size', 'read_image']


class ImageReadError(OSError):
    """An image could not be read or was refused; the message names the file and what to do."""


def image_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` from the file header (Pillow, no decoding), or None for formats Pillow cannot identify."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        return None
    except FileNotFoundError as error:
        raise ImageReadError(f'{path}: image file not found; check data_dir and the data list.') from error
    except (OSError, ValueError, SyntaxError):
        return None


def read_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Read ``path`` as an ``HxWx3 uint8`` BGR array (EXIF orientation applied).

    Raises ImageReadError naming the file if it is missing, undecodable or larger than ``max_pixels``.
    """
    size = image_size(path)
    if max_pixels is not None:
        if size is None:
            header_refused = _pillow_refuses_size(path)
            if header_refused:
                raise ImageReadError(f'{path}: image exceeds the max_pixels limit ({max_pixels}) per its header; '
                                     f'raise max_pixels if the file is trusted.')
        elif size[0] * size[1] > max_pixels:
            raise ImageReadError(f'{path}: image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, over the '
                                 f'max_pixels limit ({max_pixels}); raise max_pixels if the file is trusted.')
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f'{path}: cannot read the image file ({error.strerror}).') from error
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ImageReadError(f'{path}: not a decodable image (corrupt or unsupported format); '
                             f'replace the file or remove it from the data list.')
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageReadError(f'{path}: image is {image.shape[1]}x{image.shape[0]} pixels, over the max_pixels '
                             f'limit ({max_pixels}); raise max_pixels if the file is trusted.')
    return image


def _pillow_refuses_size(path: str) -> bool:
    try:
        with Image.open(path):
            return False
    except Image.DecompressionBombError:
        return True
    except (OSError, ValueError, SyntaxError):
        return False
