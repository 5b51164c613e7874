"""Speed and memory of the training-target processes (MakeSegDetectionData + MakeBorderMap).

Compares the project's processes with the straightforward algorithm written out below (the one of
the original release: per polygon, per edge, the distance of every pixel of the dilated polygon's
whole bounding box to that edge, stacked into an (edges, H, W) array, then the minimum), once with
the original's arithmetic and once with lean arithmetic; checks that all give the same targets
(identical gt and mask, thresh_map within 1e-4) and prints ms per image and the peak memory traced
during the call (tracemalloc; numpy reports its buffers to it).

    python -m benchmarks.bench_targets [--repeat N]
Targets (issue 3): >= 5x faster on every case; peak extra memory <= 100 MB on the huge polygon.
"""

import argparse
import os
import sys
import time
import tracemalloc

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.processes import MakeBorderMap, MakeSegDetectionData


# ---------------------------------------------------------------- the straightforward reference
def original_edge_distance(xs, ys, a, b):
    """The original release's arithmetic for the distance of every pixel to one edge: law of cosines
    for the angle at the pixel, perpendicular distance through the sine, end-point distance where
    the angle is acute (selected with boolean-mask assignment)."""
    d1 = np.square(xs - a[0]) + np.square(ys - a[1])
    d2 = np.square(xs - b[0]) + np.square(ys - b[1])
    d = np.square(a[0] - b[0]) + np.square(a[1] - b[1])
    cosin = (d - d1 - d2) / (2 * np.sqrt(d1 * d2))
    square_sin = np.nan_to_num(1 - np.square(cosin))
    result = np.sqrt(d1 * d2 * square_sin / d)
    result[cosin < 0] = np.sqrt(np.fmin(d1, d2))[cosin < 0]
    return result


def lean_edge_distance(xs, ys, a, b):
    """The same distance with lean arithmetic: cross product for the perpendicular distance, the
    sign of (a - p).(b - p) for the choice, np.where."""
    d1 = (xs - a[0]) ** 2 + (ys - a[1]) ** 2
    d2 = (xs - b[0]) ** 2 + (ys - b[1]) ** 2
    length_sq = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    perpendicular = np.abs((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])) / np.sqrt(length_sq)
    dot = (a[0] - xs) * (b[0] - xs) + (a[1] - ys) * (b[1] - ys)
    return np.where(dot > 0, np.sqrt(np.minimum(d1, d2)), perpendicular)


def reference_targets(
    image_shape,
    polygons,
    ignore_tags,
    shrink_ratio=0.4,
    min_text_size=8,
    thresh_min=0.3,
    thresh_max=0.7,
    edge_distance=original_edge_distance,
):
    """gt, mask, thresh_map, thresh_mask of one training sample, the plain way (shapely areas,
    full-box per-edge distance arrays, no clipping of the box before computing)."""
    h, w = image_shape
    polygons = [p.astype(np.float32).copy() for p in polygons]
    ignore = np.array(ignore_tags, dtype=bool)
    for i, p in enumerate(polygons):
        p[:, 0] = np.clip(p[:, 0], 0, w - 1)
        p[:, 1] = np.clip(p[:, 1], 0, h - 1)
        x, y = p[:, 0].astype(np.float64), p[:, 1].astype(np.float64)
        area = ((np.roll(x, -1) - x) * (np.roll(y, -1) + y)).sum() / 2
        if abs(area) < 1:
            ignore[i] = True
        if area > 0:
            polygons[i] = p[::-1].copy()

    gt = np.zeros((1, h, w), np.float32)
    mask = np.ones((h, w), np.float32)
    for i, p in enumerate(polygons):
        extent = p.max(0) - p.min(0)
        if ignore[i] or min(extent) < min_text_size:
            cv2.fillPoly(mask, [p.astype(np.int32)], 0)
            ignore[i] = True
            continue
        shape = Polygon(p)
        d = shape.area * (1 - shrink_ratio**2) / shape.length
        offset = pyclipper.PyclipperOffset()
        offset.AddPath([tuple(q) for q in p], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        shrunk = offset.Execute(-d)
        if not shrunk:
            cv2.fillPoly(mask, [p.astype(np.int32)], 0)
            ignore[i] = True
            continue
        cv2.fillPoly(gt[0], [np.array(shrunk[0]).reshape(-1, 2).astype(np.int32)], 1)

    canvas = np.zeros((h, w), np.float32)
    thresh_mask = np.zeros((h, w), np.float32)
    for i, p in enumerate(polygons):
        if ignore[i]:
            continue
        p = p.astype(np.float64)
        shape = Polygon(p)
        d = shape.area * (1 - shrink_ratio**2) / shape.length
        offset = pyclipper.PyclipperOffset()
        offset.AddPath([tuple(q) for q in p], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        padded = np.array(offset.Execute(d)[0])
        cv2.fillPoly(thresh_mask, [padded.astype(np.int32)], 1.0)
        xmin, xmax = padded[:, 0].min(), padded[:, 0].max()
        ymin, ymax = padded[:, 1].min(), padded[:, 1].max()
        bw, bh = xmax - xmin + 1, ymax - ymin + 1
        q = p - (xmin, ymin)
        xs = np.broadcast_to(np.linspace(0, bw - 1, num=bw).reshape(1, bw), (bh, bw))
        ys = np.broadcast_to(np.linspace(0, bh - 1, num=bh).reshape(bh, 1), (bh, bw))
        distance_map = np.zeros((len(q), bh, bw), np.float32)
        for k in range(len(q)):
            distance_map[k] = np.clip(edge_distance(xs, ys, q[k], q[(k + 1) % len(q)]) / d, 0, 1)
        distance_map = distance_map.min(axis=0)
        x0, x1 = min(max(0, xmin), w - 1), min(max(0, xmax), w - 1)
        y0, y1 = min(max(0, ymin), h - 1), min(max(0, ymax), h - 1)
        canvas[y0 : y1 + 1, x0 : x1 + 1] = np.fmax(
            1 - distance_map[y0 - ymin : y1 - ymax + bh, x0 - xmin : x1 - xmax + bw], canvas[y0 : y1 + 1, x0 : x1 + 1]
        )
    thresh_map = canvas * (thresh_max - thresh_min) + thresh_min
    return gt, mask, thresh_map, thresh_mask


SEG, BORDER = MakeSegDetectionData(), MakeBorderMap()


def project_targets(image, polygons, ignore_tags, seg=SEG, border=BORDER):
    data = dict(
        image=image,
        polygons=[p.copy() for p in polygons],
        ignore_tags=np.array(ignore_tags),
        is_training=True,
        filename='bench',
    )
    data = border(seg(data))
    return data['gt'], data['mask'], data['thresh_map'], data['thresh_mask']


# ---------------------------------------------------------------- the cases
def rotated_quad(cx, cy, width, height, angle):
    c, s = np.cos(angle), np.sin(angle)
    corners = np.array(
        [[-width / 2, -height / 2], [width / 2, -height / 2], [width / 2, height / 2], [-width / 2, height / 2]]
    )
    return (corners @ np.array([[c, s], [-s, c]]) + (cx, cy)).astype(np.float32)


def curved_polygon(cx, cy, radius, thickness, start, sweep, points=14):
    half = points // 2
    angles = np.linspace(start, start + sweep, half)
    outer = np.stack([cx + (radius + thickness) * np.cos(angles), cy + (radius + thickness) * np.sin(angles)], 1)
    inner = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)[::-1]
    return np.concatenate([outer, inner]).astype(np.float32)


def make_cases(seed=0):
    rng = np.random.RandomState(seed)
    words = [
        rotated_quad(
            rng.uniform(40, 600),
            rng.uniform(30, 610),
            rng.uniform(40, 140),
            rng.uniform(12, 36),
            rng.uniform(-0.6, 0.6),
        )
        for _ in range(50)
    ]
    curves = [
        curved_polygon(
            rng.uniform(100, 540),
            rng.uniform(100, 540),
            rng.uniform(40, 90),
            rng.uniform(14, 30),
            rng.uniform(0, 6.28),
            rng.uniform(1.0, 2.5),
        )
        for _ in range(20)
    ]
    big = [rotated_quad(320, 320, 560, 500, 0.15)]
    huge = [rotated_quad(1000, 1000, 1800, 1500, 0.3)]
    return [
        ('50 rotated word quads, 640x640', (640, 640), words),
        ('20 curved 14-point polygons, 640x640', (640, 640), curves),
        ('one polygon over most of 640x640', (640, 640), big),
        ('one huge polygon, 2000x2000', (2000, 2000), huge),
    ]


def measure(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    function()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return result, min(times) * 1000, peak / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    print(
        f'{"case":38s} {"original":>9s} {"lean":>7s} {"project":>8s} {"speed-up":>9s} {"vs lean":>8s} '
        f'{"orig MB":>8s} {"peak MB":>8s} {"extra MB":>9s} {"max|dthresh|":>13s} gt/mask'
    )
    ok = True
    for name, (h, w), polygons in make_cases():
        image = np.zeros((h, w, 3), np.uint8)
        tags = [False] * len(polygons)
        ref, ref_ms, ref_mb = measure(lambda: reference_targets((h, w), polygons, tags), args.repeat)
        lean, lean_ms, _ = measure(
            lambda: reference_targets((h, w), polygons, tags, edge_distance=lean_edge_distance), args.repeat
        )
        out, ms, mb = measure(lambda: project_targets(image, polygons, tags), args.repeat)
        outputs_mb = sum(a.nbytes for a in out) / 2**20
        diff = max(float(np.nanmax(np.abs(r[2] - out[2]))) for r in (ref, lean))
        same = all(np.array_equal(r[k], out[k]) for r in (ref, lean) for k in (0, 1, 3))
        speed = ref_ms / ms
        ok &= same and diff <= 1e-4 and speed >= 5 and (h < 2000 or mb - outputs_mb <= 100)
        print(
            f'{name:38s} {ref_ms:9.1f} {lean_ms:7.1f} {ms:8.2f} {speed:8.1f}x {lean_ms / ms:7.1f}x '
            f'{ref_mb:8.1f} {mb:8.1f} {mb - outputs_mb:9.1f} {diff:13.2e} {"identical" if same else "DIFFERENT"}'
        )
    print(
        'ms: best of --repeat runs per image. original: the straightforward algorithm with the original '
        "release's arithmetic; lean: the same dense algorithm with lean arithmetic (for information)."
    )
    print(
        'peak MB: traced by tracemalloc during the call, outputs included; extra MB: peak minus the four output maps.'
    )
    print(
        'all targets met (>= 5x vs original, thresh within 1e-4, gt/mask identical, <= 100 MB extra)'
        if ok
        else 'SOME TARGETS NOT MET'
    )


if __name__ == '__main__':
    main()
