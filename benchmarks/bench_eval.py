"""Evaluation speed: the IoU protocol (bounding-box prefilter + convex clipping in numpy) vs testing every pair.

One image with 100 ground-truth and 100 detected quads (words on a page, detections jittered, some
missing, some spurious). The every-pair reference is the original's loop: a shapely intersection and
union for each of the 100 x 100 pairs, then greedy matching. Also timed: the protocol with exact=True
(every prefiltered pair intersected by shapely). Runs are interleaved (the machine may be shared) and
the medians are printed, with the ratio of medians; checks that all give the same matches.

    python -m benchmarks.bench_eval [--repeat 15]
"""

import argparse
import os
import sys
import time

import numpy as np
from shapely.geometry import Polygon

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.protocols import DetectionIoUEvaluator


def page(rng, count=100, width=1280, height=720):
    quads = []
    for row in range(10):
        for column in range(count // 10):
            cx, cy = 64 + column * 120 + rng.uniform(-10, 10), 36 + row * 70 + rng.uniform(-5, 5)
            w, h, angle = rng.uniform(60, 100), rng.uniform(20, 35), rng.uniform(-0.2, 0.2)
            c, s = np.cos(angle), np.sin(angle)
            corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
            quads.append(corners @ np.array([[c, s], [-s, c]]) + [cx, cy])
    return quads


def every_pair(gt, pred, threshold=0.5):
    gp = [Polygon(g['points']) for g in gt]
    dp = [Polygon(d['points']) for d in pred]
    iou = np.zeros((len(gp), len(dp)))
    for g in range(len(gp)):
        for d in range(len(dp)):
            iou[g, d] = gp[g].intersection(dp[d]).area / gp[g].union(dp[d]).area
    used, pairs = np.zeros(len(dp), bool), []
    for g in range(len(gp)):
        for d in range(len(dp)):
            if not used[d] and iou[g, d] > threshold:
                used[d] = True
                pairs.append((g, d))
                break
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    gt_quads = page(rng)
    det_quads = [q + rng.normal(0, 3, q.shape) for q in gt_quads[:90]] + page(rng)[:10]
    det_quads = [det_quads[i] for i in rng.permutation(len(det_quads))]
    gt = [{'points': q, 'ignore': False} for q in gt_quads]
    pred = [{'points': q} for q in det_quads]
    evaluator = DetectionIoUEvaluator()

    def fast():
        return evaluator.evaluate_image(gt, pred)

    def exact():
        s = evaluator.prepare(gt, pred, exact=True)
        return evaluator.match(s['iou'], s['gt_dc'], s['det_dc'])

    functions = {'every pair': lambda: every_pair(gt, pred), 'exact=True': exact, 'ours': fast}
    times = {name: [] for name in functions}
    results = {name: function() for name, function in functions.items()}  # warm-up
    for _ in range(args.repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1000.0)
    median = {name: float(np.median(values)) for name, values in times.items()}
    reference = results['every pair']
    identical = [(p['gt'][0], p['det'][0]) for p in results['ours']['pairs']] == reference and results[
        'exact=True'
    ] == reference
    print(
        f'100 gt x 100 det quads, median of {args.repeat}: every pair {median["every pair"]:8.2f} ms  '
        f'exact=True {median["exact=True"]:6.2f} ms  ours {median["ours"]:6.2f} ms  '
        f'speed-up {median["every pair"] / median["ours"]:5.1f}x  matches {len(reference)}  identical {identical}'
    )


if __name__ == '__main__':
    main()
