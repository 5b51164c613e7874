"""SegDetectorRepresenter's batched steps give exactly what the per-contour original computes."""

import cv2
import numpy as np
import pytest

from benchmarks.bench_postprocess import Straightforward, make_map
from structure.representers import SegDetectorRepresenter


def original_order(points):
    """The original's get_mini_boxes corner order, one box at a time with Python's sort."""
    pts = sorted(list(points), key=lambda p: p[0])
    i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
    i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
    return np.array([pts[i1], pts[i2], pts[i3], pts[i4]])


def test_order_corners_equals_the_original_sort_including_ties():
    rng = np.random.default_rng(0)
    rects = [
        (
            (rng.uniform(0, 50), rng.uniform(0, 50)),
            (rng.uniform(1, 30), rng.uniform(1, 30)),
            rng.choice([0.0, 90.0, -90.0, 45.0, rng.uniform(-90, 90)]),
        )
        for _ in range(300)
    ]
    corners = np.stack([cv2.boxPoints(rect) for rect in rects])
    # axis-aligned and 45-degree boxes tie in x or y: the stable sort and '>' decide
    corners[:50] = np.round(corners[:50])
    ordered = SegDetectorRepresenter.order_corners(corners)
    assert ordered.dtype == np.float32
    for index in range(len(rects)):
        assert np.array_equal(ordered[index], original_order(corners[index]))


@pytest.mark.parametrize('seed', [2, 4])
@pytest.mark.parametrize('polygon', [False, True])
def test_identical_to_per_contour_on_other_maps(seed, polygon):
    pred = make_map(height=256, width=448, words=30, seed=seed)
    # thin and tiny regions exercise the min_size filters before and after unclipping
    cv2.line(pred, (10, 10), (200, 12), 0.9, 1)
    cv2.circle(pred, (400, 200), 2, 0.9, -1)
    reference_boxes, reference_scores = Straightforward(box_thresh=0.45).run(pred, 600, 340, polygon)
    boxes, scores = SegDetectorRepresenter(box_thresh=0.45, max_candidates=1000).represent_map(
        pred, (340, 600), polygon
    )
    assert len(boxes) == len(reference_boxes) > 5
    assert all(a.dtype == np.int32 and np.array_equal(a, b) for a, b in zip(boxes, reference_boxes))
    assert scores == reference_scores and all(type(score) is float for score in scores)


def test_slow_score_is_the_mean_inside_the_contour():
    pred = make_map(height=128, width=256, words=8, seed=4)
    representer = SegDetectorRepresenter(box_thresh=0.0, score_mode='slow', max_candidates=1000)
    contours = representer.find_contours(representer.binarize(pred))
    expected = []
    for contour in contours:
        if min(cv2.minAreaRect(contour)[1]) < representer.min_size:
            continue
        mask = np.zeros(pred.shape, dtype=np.uint8)
        cv2.fillPoly(mask, [contour.reshape(-1, 2)], 1)
        expected.append(float(pred[mask > 0].mean()))
    scores = representer.region_scores(
        pred, [representer.contour_points(c) for c in contours if min(cv2.minAreaRect(c)[1]) >= representer.min_size]
    )
    assert len(scores) == len(expected) > 3
    assert np.allclose(scores, expected, rtol=1e-5)
