"""The convex fast path of the IoU protocol against shapely (the oracle), and its identical decisions."""

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from concern.protocols import DetectionIoUEvaluator, DetectionTIoUEvaluator, convex
from concern.protocols import polygons as P


def random_convex(rng, grid):
    """A convex polygon: the hull of a few random points (on an integer grid when `grid`), random orientation."""
    while True:
        points = rng.integers(0, 12, (rng.integers(3, 7), 2)).astype(float) if grid else rng.uniform(0, 12, (6, 2))
        hull = shapely.convex_hull(shapely.multipoints(points))
        if hull.geom_type == 'Polygon' and hull.area > 0:
            ring = np.asarray(shapely.remove_repeated_points(hull).exterior.coords)[:-1]
            return ring if rng.random() < 0.5 else ring[::-1]


def clip_pairs(rings_a, rings_b):
    vertices_a, counts_a = convex.padded_rings(rings_a)
    vertices_b, counts_b = convex.padded_rings(rings_b)
    signs_a = convex.convex_orientation(vertices_a, counts_a)
    signs_b = convex.convex_orientation(vertices_b, counts_b)
    return signs_a, signs_b, convex.convex_intersection_areas(vertices_a, signs_a, vertices_b, signs_b)


@pytest.mark.parametrize('grid', [True, False])
def test_clipped_areas_equal_shapely_within_the_reported_uncertainty(grid):
    rng = np.random.default_rng(5 if grid else 6)
    rings_a = [random_convex(rng, grid) for _ in range(400)]
    rings_b = [random_convex(rng, grid) for _ in range(400)]
    # integer grids give shared and collinear edges, touching corners and identical polygons
    rings_b[:20] = [a.copy() for a in rings_a[:20]]
    rings_b[20:40] = [a[::-1].copy() for a in rings_a[20:40]]
    keep = [i for i in range(400) if len(rings_a[i]) <= 16 and len(rings_b[i]) <= 16]
    rings_a, rings_b = [rings_a[i] for i in keep], [rings_b[i] for i in keep]
    signs_a, signs_b, (area, uncertainty) = clip_pairs(rings_a, rings_b)
    hull_is_strict = signs_a != 0
    assert hull_is_strict.mean() > 0.9 and (signs_b != 0).mean() > 0.9
    both = (signs_a != 0) & (signs_b != 0)
    truth = shapely.area(
        shapely.intersection(np.array([Polygon(r) for r in rings_a]), np.array([Polygon(r) for r in rings_b]))
    )
    assert np.all(np.abs(area[both] - truth[both]) <= uncertainty[both])
    assert np.all(uncertainty[both] < 1e-6)
    if grid:  # exact inputs: shared edges are counted once, touching pairs give exactly 0
        assert np.allclose(area[both], truth[both], rtol=0, atol=1e-9)
        touching = both & (truth == 0)
        assert touching.sum() > 5 and np.all(area[touching] == 0)
        assert np.array_equal(area[:20][both[:20]], truth[:20][both[:20]])


def test_orientation_rejects_what_is_not_clearly_convex():
    square = [[0, 0], [10, 0], [10, 10], [0, 10]]
    cases = {
        'ccw': (square, 1),
        'cw': (square[::-1], -1),
        'collinear vertex': ([[0, 0], [5, 0], [10, 0], [10, 10], [0, 10]], 0),
        'repeated vertex': ([[0, 0], [10, 0], [10, 0], [10, 10], [0, 10]], 0),
        'closing point given': (square + [[0, 0]], 0),
        'reflex (L shape)': ([[0, 0], [10, 0], [10, 5], [5, 5], [5, 10], [0, 10]], 0),
        'bow tie': ([[0, 0], [10, 10], [10, 0], [0, 10]], 0),
        'pentagram': ([[np.cos(a), np.sin(a)] for a in np.arange(5) * 4 * np.pi / 5], 0),
        'degenerate line': ([[0, 0], [5, 5], [10, 10]], 0),
    }
    vertices, counts = convex.padded_rings([np.asarray(points, dtype=float) for points, _ in cases.values()])
    assert convex.convex_orientation(vertices, counts).tolist() == [sign for _, sign in cases.values()]


def rect(x, y, w=10.0, h=10.0):
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def evaluate_both(gt_points, det_points, ignore=()):
    gt = [{'points': p, 'ignore': i in ignore} for i, p in enumerate(gt_points)]
    pred = [{'points': p} for p in det_points]
    protocol = DetectionIoUEvaluator()
    fast = protocol.evaluate_image(gt, pred)
    s = protocol.prepare(gt, pred, exact=True)
    exact_pairs = protocol.match(s['iou'], s['gt_dc'], s['det_dc'])
    return fast, exact_pairs, protocol.prepare(gt, pred)


def test_decisions_at_the_threshold_are_shapelys():
    # IoU exactly 0.5 (not a match: '>'), a don't-care ratio exactly 0.5, and IoU within 1e-13 of 0.5
    third = 10.0 / 3.0
    gt = [rect(0, 0), rect(100, 0), rect(200, 0, 10, 10), rect(300, 0, 1e3, 1.0)]
    det = [rect(0, 0, 20, 10), rect(105, 0), rect(200 + third, 0, 10, 10), rect(300, 0, 2e3 + 1e-10, 1.0)]
    fast, exact_pairs, s = evaluate_both(gt, det, ignore=(1,))
    assert [(p['gt'][0], p['det'][0]) for p in fast['pairs']] == exact_pairs
    assert fast['matched'] == 0 and fast['det_dont_care'] == [] and fast['misses'] == [0, 2, 3]
    # those pairs were recomputed by shapely (no rounding bound left)
    assert s['uncertainty'][0, 0] == 0 and s['uncertainty'][1, 1] == 0 and s['uncertainty'][3, 3] == 0


def test_iou_protocol_fast_path_matches_shapely_on_mixed_polygons():
    rng = np.random.default_rng(11)
    gt_points, det_points = [], []
    for index in range(60):
        ring = random_convex(rng, grid=index % 2 == 0) * 8 + rng.uniform(0, 300, 2)
        gt_points.append(ring)
        det_points.append(ring + rng.integers(-6, 7, 2) if index % 3 else ring[::-1] + rng.normal(0, 3, 2))
    # non-convex and many-vertex polygons go through shapely in the same matrix
    gt_points.append([[0, 0], [40, 0], [40, 20], [20, 20], [20, 40], [0, 40]])
    det_points.append([[0, 0], [40, 0], [40, 20], [20, 20], [20, 38], [0, 38]])
    circle = [[50 + 20 * np.cos(a), 50 + 20 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 40, endpoint=False)]
    gt_points.append(circle)
    det_points.append(rect(32, 32, 36, 36))
    fast, exact_pairs, s = evaluate_both(gt_points, det_points, ignore=(5, 17))
    assert [(p['gt'][0], p['det'][0]) for p in fast['pairs']] == exact_pairs
    exact = P.intersection_matrix(s['gt_polygons'], s['det_polygons'])
    assert np.all(np.abs(s['inter'] - exact) <= s['uncertainty'])
    # the rings read back from the shapely polygons give the same clipping
    again, uncertainty = P.fast_intersection_matrix(s['gt_polygons'], s['det_polygons'])
    assert np.all(np.abs(again - exact) <= uncertainty) and (uncertainty > 0).sum() > 50
    assert len(exact_pairs) > 30


def test_tiou_keeps_shapelys_intersections():
    gt = [{'points': rect(0, 0), 'ignore': False}]
    pred = [{'points': rect(1.1, 0.3)}]
    s = DetectionTIoUEvaluator().prepare(gt, pred, exact=True)
    assert 'uncertainty' not in s
    result = DetectionTIoUEvaluator().evaluate_image(gt, pred)
    inter = Polygon(rect(0, 0)).intersection(Polygon(rect(1.1, 0.3))).area
    assert result['pairs'][0]['iou'] == inter / (200.0 - inter)
