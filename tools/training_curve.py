#!/usr/bin/env python
"""Print (and optionally plot) validation F-measure against training minutes from a workspace.

    python -m tools.training_curve workspace/quickstart [--png curve.png]

Reads ``<workspace>/metrics.jsonl`` (written by train.py): the first record's time is minute 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import cv2
import numpy as np

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.cli import run_main
from concern.errors import UserError


def read_curve(workspace: str) -> list[tuple[float, int, dict]]:
    """[(minutes since the first record, iteration, validation metrics)] in file order."""
    path = os.path.join(workspace, 'metrics.jsonl')
    if not os.path.isfile(path):
        raise UserError(f'{path} does not exist; is {workspace} a train.py workspace?')
    with open(path, encoding='utf-8') as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    if not records:
        return []
    start = records[0]['time']
    return [
        ((record['time'] - start) / 60.0, record['step'], record)
        for record in records
        if str(record.get('split', '')).startswith('val') and 'fmeasure' in record
    ]


def plot(curve, path: str, size=(480, 320)) -> None:
    """A small F-against-minutes line chart drawn with OpenCV."""
    width, height = size
    margin = 40
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.rectangle(image, (margin, margin // 2), (width - margin // 2, height - margin), (0, 0, 0), 1)
    last_minute = max(minute for minute, _, _ in curve) or 1.0
    points = [
        (
            int(margin + (width - 1.5 * margin) * minute / last_minute),
            int(height - margin - (height - 1.5 * margin) * record['fmeasure']),
        )
        for minute, _, record in curve
    ]
    for level in (0.2, 0.4, 0.6, 0.8, 1.0):
        y = int(height - margin - (height - 1.5 * margin) * level)
        cv2.line(image, (margin, y), (width - margin // 2, y), (220, 220, 220), 1)
        cv2.putText(image, f'{level:.1f}', (4, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.polylines(image, [np.array(points, np.int32)], False, (200, 80, 0), 2)
    for point in points:
        cv2.circle(image, point, 3, (200, 80, 0), -1)
    cv2.putText(
        image,
        f'F-measure vs minutes (0 - {last_minute:.0f})',
        (margin, height - 12),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.45,
        (0, 0, 0),
        1,
    )
    cv2.imwrite(path, image)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('workspace')
    parser.add_argument('--png', help='also draw the curve into this PNG file')
    args = parser.parse_args(argv)
    curve = read_curve(args.workspace)
    if not curve:
        print('no validation records yet')
        return 1
    print(' minutes  iteration  precision  recall  fmeasure')
    for minute, step, record in curve:
        print(
            f'{minute:8.1f}  {step:9d}  {record["precision"]:9.4f}  {record["recall"]:6.4f}  {record["fmeasure"]:8.4f}'
        )
    if args.png:
        plot(curve, args.png)
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
