"""MakeICDARData, MakeSegDetectionData and MakeBorderMap: hand-computed values, an oracle, edge cases."""

import tracemalloc

import numpy as np
import pytest

from data.processes import MakeBorderMap, MakeICDARData, MakeSegDetectionData

# A 100 x 40 rectangle: A = 4000, L = 280, D = A (1 - 0.4^2) / L = 12.
RECT = np.array([[20, 20], [120, 20], [120, 60], [20, 60]], dtype=np.float32)


def sample(polygons, ignore=None, shape=(80, 140), training=True):
    polygons = [np.asarray(p, dtype=np.float32) for p in polygons]
    return dict(
        image=np.zeros(shape + (3,), np.uint8),
        polygons=polygons,
        ignore_tags=np.array(ignore if ignore is not None else [False] * len(polygons)),
        is_training=training,
        filename='x.jpg',
    )


def targets(polygons, ignore=None, shape=(80, 140), training=True, **border_kwargs):
    data = MakeSegDetectionData()(sample(polygons, ignore, shape, training))
    return MakeBorderMap(**border_kwargs)(data)


def original_distance(xs, ys, a, b):
    """The original release's point-to-edge formula (law of cosines), written out literally."""
    d1 = (xs - a[0]) ** 2 + (ys - a[1]) ** 2
    d2 = (xs - b[0]) ** 2 + (ys - b[1]) ** 2
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    with np.errstate(all='ignore'):
        cosin = (d - d1 - d2) / (2 * np.sqrt(d1 * d2))
        sin_sq = np.nan_to_num(1 - cosin**2)
        result = np.sqrt(d1 * d2 * sin_sq / d)
    result[cosin < 0] = np.sqrt(np.fmin(d1, d2))[cosin < 0]
    return result


def segment_distance(xs, ys, a, b):
    """True point-to-segment distance."""
    e = b - a
    t = np.clip(((xs - a[0]) * e[0] + (ys - a[1]) * e[1]) / (e @ e), 0, 1)
    return np.hypot(xs - a[0] - t * e[0], ys - a[1] - t * e[1])


def oracle_thresh_map(polygons, shape, shrink_ratio=0.4, distance=original_distance):
    """Slow reference: every pixel of the dilated box, every edge, the original's formula."""
    import pyclipper
    from shapely.geometry import Polygon

    canvas = np.zeros(shape, np.float32)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    for p in polygons:
        p = np.asarray(p, np.float64)
        poly = Polygon(p)
        d = poly.area * (1 - shrink_ratio**2) / poly.length
        offset = pyclipper.PyclipperOffset()
        offset.AddPath([tuple(q) for q in p], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        padded = np.array(offset.Execute(d)[0])
        x0, y0 = padded.min(0)
        x1, y1 = padded.max(0)
        inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        nearest = np.min(
            [np.clip(distance(xs, ys, p[i], p[(i + 1) % len(p)]) / d, 0, 1) for i in range(len(p))], axis=0
        )
        canvas = np.where(inside, np.fmax(1 - nearest, canvas), canvas)
    return canvas * 0.4 + 0.3


def test_rectangle_shrinks_by_hand_computed_distance():
    data = targets([RECT])
    ys, xs = np.nonzero(data['gt'][0])
    # shrunk by D = 12: x 32..108, y 32..48 (fillPoly includes the boundary pixels)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (32, 108, 32, 48)
    assert data['gt'].sum() == 77 * 17
    assert data['gt'].shape == (1, 80, 140) and data['mask'].shape == (80, 140)
    assert data['mask'].min() == 1.0 and not data['ignore_tags'][0]


def test_border_map_values_at_known_pixels():
    data = targets([RECT])
    t = data['thresh_map']
    assert t[20, 70] == pytest.approx(0.7)  # on the top edge
    assert t[26, 70] == pytest.approx(0.5)  # 6 px inside: 1 - 6/12 = 0.5
    assert t[14, 70] == pytest.approx(0.5)  # 6 px outside
    assert t[40, 70] == pytest.approx(0.3)  # 20 px from every edge
    assert t[14, 14] == pytest.approx(0.3 + 0.4 * (1 - np.sqrt(72) / 12))  # beyond the corner
    # beside the end of the left edge the original uses the end point distance, sqrt(104), not 10
    assert t[22, 10] == pytest.approx(0.3 + 0.4 * (1 - np.sqrt(104) / 12), abs=1e-6)
    exact = targets([RECT], exact_distance=True)['thresh_map']
    assert exact[22, 10] == pytest.approx(0.3 + 0.4 * (1 - 10 / 12), abs=1e-6)
    m = data['thresh_mask']
    assert m[22, 10] == 1 and m[70, 70] == 1 and m[40, 70] == 1
    assert m[11, 11] == 0  # the dilation has round corners: 12.7 px from the corner
    assert m[8, 70] == 1 and m[6, 70] == 0


def test_border_map_matches_slow_oracle_on_random_polygons():
    rng = np.random.RandomState(3)
    polygons = []
    for _ in range(6):
        centre = rng.uniform(10, 110, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.randint(4, 12)))
        radii = rng.uniform(8, 30, len(angles))
        polygons.append(np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1))
    polygons = [p.astype(np.float32) for p in polygons]
    data = targets(polygons, shape=(100, 120), training=False)
    cared = [p for p, ignore in zip(data['polygons'], data['ignore_tags']) if not ignore]
    assert len(cared) >= 4
    expected = oracle_thresh_map(cared, (100, 120))
    assert np.abs(data['thresh_map'] - expected).max() <= 1e-4
    exact = MakeBorderMap(exact_distance=True)(dict(data))['thresh_map']
    expected = oracle_thresh_map(cared, (100, 120), distance=segment_distance)
    assert np.abs(exact - expected).max() <= 1e-4


def test_curved_polygon_and_partly_outside_polygon():
    angles = np.linspace(np.pi, 2 * np.pi, 8)
    curve = np.concatenate(
        [
            np.stack([70 + 50 * np.cos(angles), 75 + 50 * np.sin(angles)], 1),
            np.stack([70 + 30 * np.cos(angles), 75 + 30 * np.sin(angles)], 1)[::-1],
        ]
    )
    partly = np.array([[-30, 5], [40, 5], [40, 30], [-30, 30]], dtype=np.float32)
    data = targets([curve, partly], shape=(80, 140))
    assert not data['ignore_tags'].any()
    assert data['gt'][0, 62, 32] == 1 and data['gt'][0, 62, 22] == 0  # the left arm of the arc, shrunk
    assert data['gt'][0, 10:25, 0:30].mean() > 0.5  # the clipped rectangle
    assert data['polygons'][1][:, 0].min() == 0  # clipped to the image in training
    expected = oracle_thresh_map(data['polygons'], (80, 140))
    assert np.abs(data['thresh_map'] - expected).max() <= 1e-4


def test_degenerate_polygons_do_not_crash_and_are_ignored():
    one_point = [[50, 50]]
    two_points = [[10, 10], [40, 40]]
    triangle = [[60, 10], [100, 10], [80, 50]]
    bowtie = [[10, 50], [50, 75], [50, 50], [10, 75]]  # self-intersecting
    outside = [[200, 200], [260, 200], [260, 240], [200, 240]]
    for training in (True, False):
        data = targets([one_point, two_points, triangle, bowtie, outside], training=training)
        ignore = data['ignore_tags']
        assert ignore[0] and ignore[1] and not ignore[2]
        assert ignore[4] or data['gt'][0].sum() > 0
        assert np.isfinite(data['thresh_map']).all()
        assert data['gt'][0, 25, 80] == 1  # inside the triangle
        assert 0.3 <= data['thresh_map'].min() and data['thresh_map'].max() <= 0.7 + 1e-6
    data = targets([outside])
    assert data['ignore_tags'][0] and data['gt'].sum() == 0


def test_small_text_is_dont_care_and_masked_out():
    small = np.array([[10, 10], [60, 10], [60, 15], [10, 15]], np.float32)  # 5 px tall < 8
    data = targets([small, RECT])
    assert data['ignore_tags'].tolist() == [True, False]
    assert data['mask'][12, 30] == 0 and data['gt'][0, 12, 30] == 0
    assert data['thresh_mask'][2, 40] == 0
    # the don't-care text draws no border: the threshold targets are exactly those of RECT alone
    alone = targets([RECT])
    assert np.array_equal(data['thresh_mask'], alone['thresh_mask'])
    assert np.array_equal(data['thresh_map'], alone['thresh_map'])


def test_no_text_and_all_dont_care():
    data = targets([])
    assert data['gt'].sum() == 0 and data['mask'].min() == 1
    assert np.all(data['thresh_map'] == np.float32(0.3)) and data['thresh_mask'].sum() == 0
    data = targets([RECT], ignore=[True])
    assert data['gt'].sum() == 0 and data['thresh_mask'].sum() == 0
    assert data['mask'][40, 70] == 0 and data['mask'][5, 5] == 1


def test_huge_polygon_keeps_memory_flat():
    polygon = np.array([[60, 40], [1950, 150], [1900, 1960], [30, 1850]], np.float32)
    data = sample([polygon], shape=(2000, 2000))
    data = MakeSegDetectionData()(data)
    tracemalloc.start()
    data = MakeBorderMap()(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    outputs = data['thresh_map'].nbytes + data['thresh_mask'].nbytes
    assert peak - outputs < 40 * 2**20
    assert data['thresh_map'][40, 60] == pytest.approx(0.7)


def test_make_icdar_data_reads_augmented_polys_and_drops_other_keys():
    data = dict(
        image=np.zeros((10, 10, 3), np.uint8),
        is_training=True,
        filename='a.jpg',
        shape=(20, 30),
        data_id=3,
        scale_w=1.0,
        lines=[{'poly': [[0, 0], [1, 0], [1, 1]], 'text': 'a'}],
        polys=[
            {'points': [[1, 1], [5, 1], [5, 5], [1, 5]], 'ignore': False, 'text': 'a'},
            {'points': [[2, 2], [3, 2], [3, 3]], 'ignore': True, 'text': '###'},
        ],
    )
    out = MakeICDARData()(data)
    assert set(out) == {'image', 'polygons', 'ignore_tags', 'shape', 'filename', 'is_training'}
    assert out['ignore_tags'].dtype == bool and out['ignore_tags'].tolist() == [False, True]
    assert out['polygons'][0].dtype == np.float32 and out['polygons'][1].shape == (3, 2)
    assert tuple(out['shape']) == (20, 30)
    no_aug = MakeICDARData()(
        dict(
            image=np.zeros((10, 10, 3)),
            is_training=False,
            filename='b',
            lines=[{'poly': [[0, 0], [4, 0], [4, 4]], 'text': '###'}],
        )
    )
    assert no_aug['ignore_tags'].tolist() == [True] and tuple(no_aug['shape']) == (10, 10)
