"""Images as model inputs: one resized input (the original's way), or overlapping tiles at full resolution.

``prepare_image`` turns a BGR image into a ``PreparedImage``: its size, its inputs ((3, h, w) float32, normalised,
h and w multiples of 32) and the ``TileLayout`` that puts their probability maps back together (None: one input,
the image resized so that its short side is ``short_side``, as ``inference.detector.Detector.preprocess`` does).

Tiles: the image is covered by ``tile`` x ``tile`` windows that overlap by at least ``overlap`` pixels (the last
window of a row or column ends at the image's edge; an image smaller than a tile is one window, padded to a
multiple of 32). Each window's probability map keeps only its *core*: the part nearer to it than to its
neighbours' (the borders between cores are the middles of the overlaps), and the cores tile the image exactly.
The stitched map is the image's one probability map, so a word cut by a window border is found once, whole,
provided the overlap is wider than the word is tall (half of it gives each core that much context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from data.image_io import ImageReadError, read_image
from data.normalization import normalize

__all__ = [
    'PreparedImage',
    'TileLayout',
    'prepare_image',
    'read_and_prepare',
    'tile_starts',
    'stitch',
    'resized_input',
    'inference_size',
]


def inference_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(new_height, new_width): the short side becomes ``short_side`` (rounded up to a multiple of 32),
    the other keeps the aspect ratio, rounded up to a multiple of 32."""
    short = int(math.ceil(short_side / 32) * 32)
    if height < width:
        return short, int(math.ceil(short / height * width / 32) * 32)
    return int(math.ceil(short / width * height / 32) * 32), short


def resized_input(image: np.ndarray, short_side: int) -> np.ndarray:
    """HxWx3 BGR (uint8 or float32) -> (3, H', W') float32, resized and normalised as in the original demo:
    the image is converted to float32 first and the float image is resized (bilinear), as the original."""
    image = np.asarray(image, dtype=np.float32)
    height, width = image.shape[:2]
    new_height, new_width = inference_size(height, width, short_side)
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(normalize(resized).transpose(2, 0, 1))


def _round_up(value: int) -> int:
    return int(math.ceil(value / 32) * 32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the windows of one axis start: every ``tile - overlap`` pixels, the last one ending at ``length``."""
    if length <= tile:
        return [0]
    step = tile - overlap
    return sorted(set(range(0, length - tile, step)) | {length - tile})


def _cores(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """(begin, end) of each window's core along one axis: the borders are the middles of the overlaps."""
    borders = [0] + [(nxt + start + tile) // 2 for start, nxt in zip(starts, starts[1:])] + [length]
    return list(zip(borders, borders[1:]))


@dataclass
class TileLayout:
    """Where each tile input of an image lies: ``windows[i] = (top, left)`` of input i, ``cores[i] = (y0, y1, x0,
    x1)`` the image region its map fills; ``height`` x ``width`` the image."""

    height: int
    width: int
    windows: list
    cores: list


@dataclass
class PreparedImage:
    """An image ready for the model: ``size`` (height, width) of the image, ``inputs`` (3, h, w) float32 arrays,
    ``layout`` a ``TileLayout`` or None (one resized input)."""

    size: tuple
    inputs: list
    layout: TileLayout | None = None


def tiled_inputs(image: np.ndarray, tile: int, overlap: int) -> tuple[list, TileLayout]:
    """The normalised (3, h, w) windows of ``image`` (h, w = ``tile``, or the image's side rounded up to a
    multiple of 32 where it is shorter; the padding is zero after normalisation, the mean colour) and their
    layout."""
    height, width = image.shape[:2]
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    window_h, window_w = min(tile, _round_up(height)), min(tile, _round_up(width))
    windows, cores, inputs = [], [], []
    for (y0, y1), top in zip(_cores(rows, tile, height), rows):
        for (x0, x1), left in zip(_cores(cols, tile, width), cols):
            crop = image[top : top + window_h, left : left + window_w]
            window = np.zeros((3, window_h, window_w), dtype=np.float32)
            window[:, : crop.shape[0], : crop.shape[1]] = normalize(crop).transpose(2, 0, 1)
            inputs.append(window)
            windows.append((top, left))
            cores.append((y0, y1, x0, x1))
    return inputs, TileLayout(height, width, windows, cores)


def prepare_image(image: np.ndarray, short_side: int, tile: int | None = None, overlap: int = 0) -> PreparedImage:
    """``image`` (HxWx3 BGR) as model inputs: resized (``tile`` None) or in tiles (``tile``: a multiple of 32;
    ``overlap`` < ``tile``)."""
    size = tuple(image.shape[:2])
    if tile is None:
        return PreparedImage(size, [resized_input(image, short_side)])
    inputs, layout = tiled_inputs(image, tile, overlap)
    return PreparedImage(size, inputs, layout)


def stitch(maps: list, layout: TileLayout) -> np.ndarray:
    """The image's (height, width) float32 probability map from its tiles' (h, w) maps (in ``layout``'s order)."""
    full = np.empty((layout.height, layout.width), dtype=np.float32)
    for probability, (top, left), (y0, y1, x0, x1) in zip(maps, layout.windows, layout.cores):
        full[y0:y1, x0:x1] = probability[y0 - top : y1 - top, x0 - left : x1 - left]
    return full


def read_and_prepare(
    path: str, short_side: int, tile: int | None = None, overlap: int = 0, max_pixels: int | None = None
) -> PreparedImage | ImageReadError:
    """``path`` read (``data.image_io.read_image``) and made into model inputs (``inference.tiling.prepare_image``);
    the ``ImageReadError`` is returned, not raised, so that it crosses from a worker process whole."""
    try:
        image = read_image(path, max_pixels=max_pixels)
    except ImageReadError as error:
        return error
    return prepare_image(image, short_side, tile, overlap)
