"""GNHK (GoodNotes Handwriting Kollection) JSON: one file per image, a list of word records.

Each record: ``{"text": str, "polygon": {"x0", "y0", ..., "x3", "y3"}, "line_idx": int, "type": "H"|"P"}``.
The special transcriptions ``%math%``, ``%SC%`` (scribbled out) and ``%NA%`` (illegible) are don't care
by default (``keep_special=True`` keeps them as ordinary text). ``level='line'`` merges the words sharing a
``line_idx`` into one line (the minimum-area rectangle of their points, texts joined left to right; the
line is don't care only when all its words are). Quadrilaterals are returned clockwise (image axes, y
down) starting from the corner nearest the top-left.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from .common import DONT_CARE, AnnotationError, make_line

SPECIAL_TEXTS = ('%math%', '%SC%', '%NA%')


def normalize_quad(points) -> list:
    """Order points clockwise around their centroid (y down), starting at the one with the smallest x + y."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    centre = points.mean(0)
    angles = np.arctan2(points[:, 1] - centre[1], points[:, 0] - centre[0])
    points = points[np.argsort(angles, kind='stable')]
    start = int(np.argmin(points.sum(1)))
    return np.roll(points, -start, axis=0).tolist()


def read_gnhk(path: str, keep_special: bool = False, level: str = 'word') -> tuple[list, list]:
    """Read one GNHK JSON file: returns ``(lines, problems)`` at ``level`` 'word' or 'line'."""
    if level not in ('word', 'line'):
        raise ValueError(f"GNHK level must be 'word' or 'line', got {level!r}.")
    try:
        with open(path, encoding='utf-8-sig') as handle:
            records = json.load(handle)
    except (OSError, ValueError) as error:
        raise AnnotationError(path, None, f'cannot read the JSON ({error})') from error
    if not isinstance(records, list):
        raise AnnotationError(path, None, 'expected a JSON list of word records')
    words, problems = [], []
    for number, record in enumerate(records, start=1):
        try:
            polygon = record['polygon']
            points = [[float(polygon[f'x{i}']), float(polygon[f'y{i}'])] for i in range(4)]
            text = str(record.get('text', ''))
            care = keep_special or text not in SPECIAL_TEXTS
            word = make_line(normalize_quad(points), text if care else DONT_CARE, path, None)
            word['line_idx'] = record.get('line_idx')
            words.append(word)
        except (KeyError, TypeError, ValueError) as error:
            problems.append(AnnotationError(path, None, f'record {number}: missing or invalid polygon ({error!r})'))
        except AnnotationError as error:
            problems.append(AnnotationError(path, None, f'record {number}: {error.message}'))
    if level == 'word':
        return [{'poly': w['poly'], 'text': w['text']} for w in words], problems
    groups = {}
    for word in words:
        groups.setdefault(word['line_idx'], []).append(word)
    lines = []
    for _, members in sorted(groups.items(), key=lambda item: str(item[0])):
        members.sort(key=lambda w: min(p[0] for p in w['poly']))
        points = np.array([p for w in members for p in w['poly']], dtype=np.float32)
        quad = cv2.boxPoints(cv2.minAreaRect(points))
        texts = [w['text'] for w in members]
        text = DONT_CARE if all(t == DONT_CARE for t in texts) else ' '.join(texts)
        lines.append({'poly': normalize_quad(quad), 'text': text})
    return lines, problems
