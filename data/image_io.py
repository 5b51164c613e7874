"""Reading images as 3-channel float32 BGR arrays, safely.

``read_image`` applies the EXIF orientation, converts grayscale, RGBA, palette and 16-bit images to
``HxWx3`` BGR (OpenCV's ``IMREAD_COLOR`` conversion), returns them as float32 (the original's
``cv2.imread(path, cv2.IMREAD_COLOR).astype('float32')``: every later resize works on the float image, so
the network sees the original's input to the last bit) and refuses, from the header and before decoding,
images with more than ``max_pixels`` pixels (a decompression-bomb guard).
"""

from __future__ import annotations

import os
import re
import warnings

import cv2
import numpy as np
from PIL import Image

from concern.errors import UserError

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'find_images', 'image_size', 'read_image']


class ImageReadError(UserError, OSError):
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
    """Read ``path`` as an ``HxWx3 float32`` BGR array of values 0..255 (EXIF orientation applied).

    Raises ImageReadError naming the file if it is missing, undecodable or larger than ``max_pixels``
    (checked from the header before decoding for the formats Pillow identifies, else after decoding).
    """
    if max_pixels is not None:
        pixels = _header_pixels(path)
        if pixels is not None and pixels > max_pixels:
            raise ImageReadError(
                f'{path}: image has {pixels} pixels per its header, over the max_pixels limit '
                f'({max_pixels}); raise max_pixels if the file is trusted.'
            )
    try:
        buffer = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise ImageReadError(f'{path}: cannot read the image file ({error.strerror}).') from error
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ImageReadError(
            f'{path}: not a decodable image (corrupt or unsupported format); '
            f'replace the file or remove it from the data list.'
        )
    if max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        raise ImageReadError(
            f'{path}: image is {image.shape[1]}x{image.shape[0]} pixels, over the max_pixels '
            f'limit ({max_pixels}); raise max_pixels if the file is trusted.'
        )
    return image.astype(np.float32)


def _header_pixels(path: str) -> int | None:
    """Width x height from the header, or None when Pillow cannot identify the file. Above Pillow's own
    decompression-bomb limit the count comes from Pillow's refusal (at least that limit), so ``max_pixels``
    alone decides, whatever Pillow's global ``MAX_IMAGE_PIXELS``."""
    try:
        size = image_size(path)
    except ImageReadError:
        return None  # missing: reported by the read below
    if size is not None:
        return size[0] * size[1]
    try:
        with Image.open(path):
            return None
    except Image.DecompressionBombError as error:
        found = re.search(r'\((\d+) pixels\)', str(error))
        return int(found.group(1)) if found else 2 * (Image.MAX_IMAGE_PIXELS or 0) + 1
    except (OSError, ValueError, SyntaxError):
        return None


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def find_images(path: str) -> list[str]:
    """Image files under ``path`` (a file or a folder, recursively), sorted; errors name the path."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise UserError(f"--image_path '{path}' is neither a file nor a folder.")
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, name) for name in sorted(files) if name.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise UserError(f"--image_path '{path}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return found
