"""Reading and writing detection results and ground truth in the ICDAR text formats, and JSON summaries.

Used by eval.py, demo.py, the ONNX path and tools/score_results.py.

Line formats (one text instance per line, comma separated, UTF-8, an optional BOM is ignored):
  result:       x1,y1,...,xK,yK[,score]      (K >= 3 points; an odd count of numbers means a score last)
  ground truth: x1,y1,...,xK,yK[,transcription]   (ICDAR 2015: K = 4 and the transcription may contain
                commas; Total-Text / CTW1500 text files: any K). The numeric fields are read from the
                left; once an even count of numbers is followed by a non-number, or an odd count of numbers
                ends the line, the rest is the transcription.
"""

import json
import os

import numpy as np


def result_filename(image_path):
    """'path/img_12.jpg' -> 'res_img_12.txt' (the ICDAR submission name)."""
    stem = os.path.splitext(os.path.basename(str(image_path)))[0]
    return f'res_{stem}.txt'


def clockwise(points):
    """Return the (K, 2) points ordered clockwise on screen (y down): positive shoelace sum."""
    points = np.asarray(points)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    signed = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    return points[::-1] if signed < 0 else points


def format_result_line(points, score=None):
    """One result line: integer clockwise coordinates, then the score if given."""
    points = clockwise(np.rint(np.asarray(points, dtype=np.float64)).astype(np.int64).reshape(-1, 2))
    fields = [str(int(v)) for v in points.reshape(-1)]
    if score is not None:
        fields.append(f'{float(score):.6f}')
    return ','.join(fields)


def write_result_file(path, polygons, scores=None):
    """Write polygons (each (K, 2)) and optional scores to `path` in the ICDAR result format."""
    if scores is not None and len(scores) != len(polygons):
        raise ValueError(f'write_result_file({path}): {len(polygons)} polygons but {len(scores)} scores.')
    lines = [format_result_line(p, None if scores is None else scores[i]) for i, p in enumerate(polygons)]
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(''.join(line + '\n' for line in lines))


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_line(line, where='', with_text=False):
    """Split one line into (points (K, 2) float64, last) where last is the score (result files,
    `with_text=False`; None when absent) or the transcription (ground truth; '' when absent)."""
    fields = [f.strip() for f in line.strip().lstrip('\ufeff').split(',')]
    numbers = []
    for field in fields:
        if not _is_number(field):
            break
        numbers.append(float(field))
    rest = fields[len(numbers) :]
    if with_text:
        if len(numbers) % 2 == 1:  # an odd count: the last number is the transcription (e.g. '2015')
            rest = [fields[len(numbers) - 1]] + rest
            numbers = numbers[:-1]
        last = ','.join(rest)
    else:
        if rest:
            raise ValueError(
                f'{where}: non-numeric field {rest[0]!r} in a result line; expected x1,y1,...,xK,yK[,score].'
            )
        last = numbers.pop() if len(numbers) % 2 == 1 else None
    if len(numbers) < 6:
        raise ValueError(f'{where}: a polygon needs at least 3 points (6 numbers), got {len(numbers)}.')
    return np.asarray(numbers, dtype=np.float64).reshape(-1, 2), last


def parse_result_text(text, where=''):
    """Contents of a result file -> (list of (K, 2) arrays, list of scores or None per line)."""
    polygons, scores = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip().lstrip('\ufeff'):
            continue
        points, score = parse_line(line, f'{where} line {number}')
        polygons.append(points)
        scores.append(score)
    return polygons, scores


def parse_gt_text(text, where='', ignore_texts=('###',)):
    """Contents of a ground-truth file -> [{'points': (K, 2), 'text': str, 'ignore': bool}]."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip().lstrip('\ufeff'):
            continue
        points, transcription = parse_line(line, f'{where} line {number}', with_text=True)
        entries.append({'points': points, 'text': transcription, 'ignore': transcription.strip() in ignore_texts})
    return entries


def read_result_file(path):
    """Read a result file written by write_result_file (or any ICDAR result file)."""
    with open(path, encoding='utf-8-sig') as handle:
        return parse_result_text(handle.read(), path)


def _plain(value):
    """numpy scalars / arrays -> JSON-serialisable Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json_results(path, results):
    """Write `results` (metrics, per-image detections, anything with numpy values) as indented JSON."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(_plain(results), handle, indent=2, ensure_ascii=False)
        handle.write('\n')
