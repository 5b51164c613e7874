"""inference/tiling.py: the tile windows cover the image, their cores partition it exactly, and stitching the
tiles' maps gives back the image's own map; a small image is one padded tile."""

import numpy as np
import pytest

from inference.tiling import prepare_image, stitch, tile_starts


@pytest.mark.parametrize('length,tile,overlap', [(640, 256, 64), (1000, 256, 100), (256, 256, 64), (100, 256, 64)])
def test_windows_cover_the_axis_with_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and (starts[-1] + tile == length or length <= tile)
    for start, following in zip(starts, starts[1:]):
        assert start + tile - following >= overlap  # neighbours overlap by at least ``overlap``


@pytest.mark.parametrize('height,width', [(300, 700), (96, 90), (513, 1025)])
def test_stitched_tile_maps_are_the_image_map(height, width):
    """Each tile's 'map' is the image's own coordinate map cut at the tile: stitching must give it back exactly,
    every pixel written once (the cores partition the image)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3)).astype(np.float32)
    prepared = prepare_image(image, 736, tile=256, overlap=64)
    truth = np.arange(height * width, dtype=np.float32).reshape(height, width)
    layout = prepared.layout
    maps = []
    for tensor, (top, left) in zip(prepared.inputs, layout.windows):
        assert tensor.shape[1] % 32 == 0 and tensor.shape[2] % 32 == 0
        window = np.full(tensor.shape[1:], -1.0, np.float32)
        part = truth[top : top + tensor.shape[1], left : left + tensor.shape[2]]
        window[: part.shape[0], : part.shape[1]] = part
        maps.append(window)
    coverage = np.zeros((height, width), int)
    for y0, y1, x0, x1 in layout.cores:
        coverage[y0:y1, x0:x1] += 1
    assert (coverage == 1).all()
    np.testing.assert_array_equal(stitch(maps, layout), truth)


def test_a_tile_input_is_the_normalised_image_at_full_resolution():
    image = np.random.default_rng(1).integers(0, 255, (100, 300, 3)).astype(np.float32)
    prepared = prepare_image(image, 736, tile=128, overlap=32)
    resized = prepare_image(image, 736)
    assert prepared.size == resized.size == (100, 300) and resized.layout is None
    assert resized.inputs[0].shape == (3, 736, 2208)  # the short side to 736, as the original demo
    first = prepared.inputs[0]
    assert first.shape == (3, 128, 128)  # the height 100 padded to 128 (zeros: the mean colour)
    mean = np.array([122.67891434, 116.66876762, 104.00698793], np.float32)
    np.testing.assert_allclose(first[:, :100, :128], ((image[:100, :128] - mean) / 255).transpose(2, 0, 1), atol=1e-6)
    assert not first[:, 100:].any()
