"""SegDetectorRepresenter on drawn probability maps."""

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from benchmarks.bench_postprocess import Straightforward, make_map
from structure.representers import SegDetectorRepresenter


def shrunk_size_for(width, height, ratio=1.5):
    """Size (a, b) of the rectangle that the box-mode unclip grows back to width x height."""
    low, high = 0.0, min(width, height) / 2.0
    for _ in range(60):  # bisection on d = ratio * a * b / (2 (a + b)) with a = width - 2d, b = height - 2d
        d = (low + high) / 2.0
        a, b = width - 2 * d, height - 2 * d
        low, high = (d, high) if d < ratio * a * b / (2 * (a + b)) else (low, d)
    return width - 2 * d, height - 2 * d


def corner_errors(found, truth):
    """Distance from each truth corner to the nearest found corner."""
    found = np.asarray(found, dtype=np.float64)
    return [float(np.min(np.linalg.norm(found - corner, axis=1))) for corner in np.asarray(truth)]


@pytest.mark.parametrize(
    'truth_rect',
    [((160.0, 100.0), (120.0, 30.0), 20.0), ((150.0, 90.0), (80.0, 24.0), -35.0), ((150.0, 90.0), (160.0, 40.0), 10.0)],
)
def test_rotated_rectangle_comes_back_within_a_pixel(truth_rect):
    # draw the region whose unclip (ratio 1.5) is the truth; fillPoly also fills the boundary pixels, which
    # makes the region about one pixel larger, hence the - 1
    a, b = shrunk_size_for(*truth_rect[1])
    pred = np.zeros((200, 320), dtype=np.float32)
    shrunk = cv2.boxPoints((truth_rect[0], (a - 1, b - 1), truth_rect[2]))
    cv2.fillPoly(pred, [np.round(shrunk).astype(np.int32)], 0.9)
    boxes, scores = SegDetectorRepresenter().represent_map(pred, (200, 320))
    assert len(boxes) == 1 and 0.75 < scores[0] <= 0.9 + 1e-6
    errors = corner_errors(boxes[0], cv2.boxPoints(truth_rect))
    # about a pixel: the drawn region's staircase edge moves single corners by up to 2 pixels
    assert np.mean(errors) <= 1.25 and max(errors) <= 2.0


def curved_word_map():
    pred = np.zeros((200, 300), dtype=np.float32)
    cv2.ellipse(pred, (150, 170), (110, 110), 0, 200, 340, 0.95, thickness=14)
    return pred


def test_curved_word_polygon_mode_and_box_mode():
    pred = curved_word_map()
    representer = SegDetectorRepresenter()
    polygons, _ = representer.represent_map(pred, (200, 300), is_output_polygon=True)
    # the box's mean probability is low (mostly background), so box mode needs a lower box_thresh
    boxes, _ = SegDetectorRepresenter(box_thresh=0.2).represent_map(pred, (200, 300), is_output_polygon=False)
    assert len(polygons) == 1 and len(boxes) == 1
    polygon, box = Polygon(polygons[0]), Polygon(boxes[0])
    word = Polygon(
        cv2.findContours((pred > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[0][0].reshape(-1, 2)
    )
    assert len(polygons[0]) > 8 and polygon.is_valid
    assert polygon.intersection(word).area / word.area > 0.97  # the polygon covers the word ...
    # box mode: the minimal rectangle around the unclipped word, far larger than the curved word
    assert len(boxes[0]) == 4
    edges = np.diff(np.vstack([boxes[0], boxes[0][:1]]), axis=0).astype(np.float64)
    cosines = [
        abs(np.dot(edges[i], edges[i + 1])) / np.linalg.norm(edges[i]) / np.linalg.norm(edges[i + 1]) for i in range(3)
    ]
    assert max(cosines) < 0.05  # a rectangle (up to rounding)
    assert box.intersection(word).area / word.area > 0.99
    assert polygon.area < 0.7 * box.area  # the polygon follows the curve, the box cannot
    # ... and it is the minimal rectangle of the word's contour, grown: same orientation and centre
    word_rect = cv2.minAreaRect(np.asarray(word.exterior.coords, dtype=np.float32))
    box_rect = cv2.minAreaRect(np.asarray(boxes[0], dtype=np.float32))
    assert np.allclose(word_rect[0], box_rect[0], atol=1.5)
    assert box_rect[1][0] * box_rect[1][1] > word_rect[1][0] * word_rect[1][1]


def blobs_map(values):
    pred = np.zeros((60, 40 * len(values)), dtype=np.float32)
    for i, value in enumerate(values):
        pred[20:40, 40 * i + 5 : 40 * i + 35] = value
    return pred


def test_box_thresh_and_max_candidates_are_honoured():
    pred = blobs_map([0.9, 0.5, 0.9, 0.9, 0.9])
    boxes, scores = SegDetectorRepresenter(box_thresh=0.7).represent_map(pred, (60, 200))
    assert len(boxes) == 4 and min(scores) >= 0.7
    boxes, scores = SegDetectorRepresenter(box_thresh=0.3).represent_map(pred, (60, 200))
    assert len(boxes) == 5
    boxes, _ = SegDetectorRepresenter(box_thresh=0.3, max_candidates=2).represent_map(pred, (60, 200))
    assert len(boxes) == 2
    polygons, _ = SegDetectorRepresenter(box_thresh=0.3, max_candidates=3).represent_map(pred, (60, 200), True)
    assert len(polygons) == 3


def test_represent_scales_to_the_original_size_and_reads_dest():
    pred = blobs_map([0.9])
    representer = SegDetectorRepresenter()
    small, _ = representer.represent_map(pred, (60, 40))
    batch = {'shape': [torch.tensor([120, 80])]}
    for prediction in (torch.from_numpy(pred)[None, None], {'binary': torch.from_numpy(pred)[None, None]}):
        boxes_batch, scores_batch = representer.represent(batch, prediction)
        assert len(boxes_batch) == 1 and boxes_batch[0][0].dtype == np.int32
        assert np.abs(boxes_batch[0][0] - 2 * small[0]).max() <= 1
    with pytest.raises(KeyError, match='thresh_binary'):
        SegDetectorRepresenter(dest='thresh_binary').represent(batch, {'binary': torch.zeros(1, 1, 60, 40)})


def test_cmd_overrides_like_the_original():
    representer = SegDetectorRepresenter(cmd={'box_thresh': 0.5, 'thresh': 0.2})
    assert representer.box_thresh == 0.5 and representer.thresh == 0.2


@pytest.mark.parametrize('polygon', [False, True])
def test_identical_to_the_straightforward_per_contour_implementation(polygon):
    pred = make_map(height=368, width=640, words=40, seed=1)
    reference_boxes, reference_scores = Straightforward(box_thresh=0.5).run(pred, 500, 300, polygon)
    boxes, scores = SegDetectorRepresenter(box_thresh=0.5, max_candidates=1000).represent_map(pred, (300, 500), polygon)
    assert len(boxes) == len(reference_boxes) > 10
    assert all(np.array_equal(a, b) for a, b in zip(boxes, reference_boxes))
    assert scores == reference_scores


def test_extensions_change_only_what_they_should():
    pred = curved_word_map()
    fast = SegDetectorRepresenter(box_thresh=0.0)
    slow = SegDetectorRepresenter(box_thresh=0.0, score_mode='slow')
    _, fast_scores = fast.represent_map(pred, (200, 300))
    _, slow_scores = slow.represent_map(pred, (200, 300))
    assert slow_scores[0] > fast_scores[0]  # the contour itself holds only text pixels
    wide = SegDetectorRepresenter(box_thresh=0.0, unclip_ratio=3.0).represent_map(pred, (200, 300))[0][0]
    normal = fast.represent_map(pred, (200, 300))[0][0]
    assert Polygon(wide).area > Polygon(normal).area
    with pytest.raises(ValueError, match='score_mode'):
        SegDetectorRepresenter(score_mode='median')
