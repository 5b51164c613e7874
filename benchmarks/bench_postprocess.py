"""Post-processing speed: SegDetectorRepresenter vs a straightforward per-contour implementation.

A 736x1280 probability map with 100 words (rotated rectangles and curved bands, smoothed) is post-processed
in box and polygon mode; the straightforward reference below follows the original release one contour at
a time (shapely Polygon per candidate for the unclip distance, Python sort of the box corners). The two
are run interleaved (the machine may be shared); prints the median milliseconds per map of each, their
ratio, and checks that both give identical boxes and scores. --profile prints where the time goes.

    python -m benchmarks.bench_postprocess [--repeat 30] [--profile]
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from structure.representers import SegDetectorRepresenter


def make_map(height=736, width=1280, words=100, seed=0):
    """Probability map with `words` text regions: rotated rectangles and a few curved bands."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width), dtype=np.float32)
    for index in range(words):
        cx, cy = rng.uniform(40, width - 40), rng.uniform(20, height - 20)
        w, h = rng.uniform(20, 90), rng.uniform(8, 20)
        if index % 5 == 0:  # curved word: a thick arc
            radius = rng.uniform(30, 60)
            cv2.ellipse(canvas, (int(cx), int(cy)), (int(radius), int(radius)), 0, 200, 340, 0.9, thickness=int(h))
        else:
            box = cv2.boxPoints(((cx, cy), (w, h), rng.uniform(-30, 30)))
            cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], float(rng.uniform(0.6, 0.95)))
    canvas = cv2.GaussianBlur(canvas, (5, 5), 1.0)
    return np.clip(canvas + rng.uniform(0, 0.05, canvas.shape).astype(np.float32), 0, 1)


class Straightforward:
    """The original algorithm, one contour at a time (the reference for speed and for identical boxes)."""

    def __init__(self, thresh=0.3, box_thresh=0.7, max_candidates=1000, min_size=3):
        self.thresh, self.box_thresh, self.max_candidates, self.min_size = thresh, box_thresh, max_candidates, min_size

    def mini_box(self, contour):
        rect = cv2.minAreaRect(contour)
        pts = sorted(list(cv2.boxPoints(rect)), key=lambda p: p[0])
        i1, i4 = (0, 1) if pts[1][1] > pts[0][1] else (1, 0)
        i2, i3 = (2, 3) if pts[3][1] > pts[2][1] else (3, 2)
        return [pts[i1], pts[i2], pts[i3], pts[i4]], min(rect[1])

    def score(self, pred, box):
        h, w = pred.shape
        box = box.copy()
        xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
        xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
        ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
        ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
        mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
        box[:, 0] = box[:, 0] - xmin
        box[:, 1] = box[:, 1] - ymin
        cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
        return cv2.mean(pred[ymin : ymax + 1, xmin : xmax + 1], mask)[0]

    def unclip(self, box, ratio):
        poly = Polygon(box)
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        return np.array(offset.Execute(poly.area * ratio / poly.length))

    def run(self, pred, dest_w, dest_h, polygon):
        bitmap = pred > self.thresh
        height, width = bitmap.shape
        contours, _ = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes, scores = [], []
        for contour in contours[: self.max_candidates]:
            if polygon:
                points = cv2.approxPolyDP(contour, 0.002 * cv2.arcLength(contour, True), True).reshape(-1, 2)
                if points.shape[0] < 4:
                    continue
                score = self.score(pred, points)
                if self.box_thresh > score:
                    continue
                box = self.unclip(points, 2.0)
                if len(box) != 1:
                    continue
                box = box.reshape(-1, 2)
                _, sside = self.mini_box(box.reshape(-1, 1, 2))
            else:
                points, sside = self.mini_box(contour)
                if sside < self.min_size:
                    continue
                points = np.array(points)
                score = self.score(pred, points)
                if self.box_thresh > score:
                    continue
                expanded = self.unclip(points, 1.5)
                box, sside = self.mini_box(expanded.reshape(-1, 1, 2))
                box = np.array(box)
            if sside < self.min_size + 2:
                continue
            box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
            box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
            boxes.append(box.astype(np.int32))
            scores.append(score)
        return boxes, scores


def interleaved(functions, repeat):
    """Median milliseconds of each function, run alternately `repeat` times after a warm-up; and results."""
    results = [function() for function in functions]
    times = [[] for _ in functions]
    for _ in range(repeat):
        for function, spent in zip(functions, times):
            start = time.perf_counter()
            function()
            spent.append((time.perf_counter() - start) * 1000.0)
    return [float(np.median(spent)) for spent in times], results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=30)
    parser.add_argument('--profile', action='store_true', help='print cProfile tables of both implementations')
    args = parser.parse_args()
    cv2.setNumThreads(1)
    pred = make_map()
    dest_h, dest_w = 720, 1280
    ours = SegDetectorRepresenter(box_thresh=0.5, max_candidates=1000)
    reference = Straightforward(box_thresh=0.5, max_candidates=1000)
    contours = cv2.findContours((pred > 0.3).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[0]
    print(f'map 736x1280, {len(contours)} contours, median of {args.repeat} interleaved runs, 1 OpenCV thread')
    for polygon in (False, True):
        mode = 'polygon' if polygon else 'box'
        functions = [
            lambda: reference.run(pred, dest_w, dest_h, polygon),
            lambda: ours.represent_map(pred, (dest_h, dest_w), polygon),
        ]
        (t_ref, t_new), ((ref_boxes, ref_scores), (new_boxes, new_scores)) = interleaved(functions, args.repeat)
        identical = (
            len(ref_boxes) == len(new_boxes)
            and all(np.array_equal(a, b) for a, b in zip(ref_boxes, new_boxes))
            and ref_scores == new_scores
        )
        print(
            f'{mode:8s} mode: straightforward {t_ref:7.2f} ms  ours {t_new:7.2f} ms  '
            f'speed-up {t_ref / t_new:5.2f}x  detections {len(new_boxes)}  identical {identical}'
        )
        if args.profile:
            for name, function in zip(('straightforward', 'ours'), functions):
                profile = cProfile.Profile()
                profile.runcall(lambda: [function() for _ in range(args.repeat)])
                print(f'--- {mode} mode, {name}: {args.repeat} runs')
                pstats.Stats(profile).sort_stats('tottime').print_stats(8)


if __name__ == '__main__':
    main()
