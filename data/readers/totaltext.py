"""Total-Text's official ground truth: the ``.mat`` files (``polygt`` / ``gt``) and the legacy txt.

The DB-converted Total-Text txt (``img11.jpg.txt``) is the DB layout's format: see ``db_txt.read_db_txt``.
In the official files a transcription ``#`` marks don't care; it becomes ``'###'``.
"""

from __future__ import annotations

import re

import numpy as np

from .common import DONT_CARE, AnnotationError, make_line, read_text_lines


def _dont_care(text: str) -> str:
    return DONT_CARE if text in ('#', '') else text


def _mat_string(value) -> str:
    array = np.asarray(value).ravel()
    if array.size == 0:
        return ''
    return str(array[0]).strip()


def read_totaltext_mat(path: str) -> tuple[list, list]:
    """Read ``poly_gt_imgN.mat``: variable ``polygt`` (or ``gt``), rows ``['x:', X, 'y:', Y, text, orientation]``.

    Returns ``(lines, problems)``; X and Y are 1xK arrays of the polygon's K points.
    """
    from scipy.io import loadmat

    try:
        content = loadmat(path)
    except (OSError, ValueError, TypeError) as error:
        raise AnnotationError(path, None, f'cannot read the .mat file ({error})') from error
    key = 'polygt' if 'polygt' in content else 'gt' if 'gt' in content else None
    if key is None:
        raise AnnotationError(path, None, "no 'polygt' or 'gt' variable; is this a Total-Text ground truth?")
    lines, problems = [], []
    for row_no, row in enumerate(np.asarray(content[key], dtype=object).reshape(-1, content[key].shape[-1]), 1):
        try:
            if len(row) < 5:
                raise AnnotationError(path, row_no, f'row has {len(row)} fields, expected x:, X, y:, Y, text')
            xs = np.asarray(row[1], dtype=np.float64).ravel()
            ys = np.asarray(row[3], dtype=np.float64).ravel()
            if xs.size != ys.size:
                raise AnnotationError(path, row_no, f'{xs.size} x values but {ys.size} y values')
            lines.append(make_line(np.stack([xs, ys], 1).tolist(), _dont_care(_mat_string(row[4])), path, row_no))
        except AnnotationError as error:
            problems.append(error)
        except (TypeError, ValueError) as error:
            problems.append(AnnotationError(path, row_no, f'unreadable row ({error})'))
    return lines, problems


_LEGACY_RECORD = re.compile(
    r"x:\s*\[\[(?P<x>[^\]]*)\]\],\s*y:\s*\[\[(?P<y>[^\]]*)\]\],\s*ornt:\s*\[u?(?P<oq>['\"])(?P<ornt>.*?)(?P=oq)\],"
    r"\s*transcriptions:\s*\[u?(?P<tq>['\"])(?P<text>.*)(?P=tq)\]\s*$",
    re.S,
)


def read_totaltext_legacy(path: str) -> tuple[list, list]:
    """Read the legacy txt ``x: [[...]], y: [[...]], ornt: [u'c'], transcriptions: [u'PAUL']``.

    A record may wrap over several lines (numpy's array printing); continuation lines are joined to the
    record started by the last ``x:``. Returns ``(lines, problems)``.
    """
    records = []  # (first line number, text)
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith('x:') or not records:
            records.append([line_no, line.strip()])
        else:
            records[-1][1] += ' ' + line.strip()
    lines, problems = [], []
    for line_no, record in records:
        match = _LEGACY_RECORD.match(record)
        if match is None:
            problems.append(
                AnnotationError(
                    path, line_no, "expected x: [[...]], y: [[...]], ornt: [u'.'], transcriptions: [u'...']"
                )
            )
            continue
        try:
            xs = [float(v) for v in match.group('x').replace(',', ' ').split()]
            ys = [float(v) for v in match.group('y').replace(',', ' ').split()]
            if len(xs) != len(ys):
                raise AnnotationError(path, line_no, f'{len(xs)} x values but {len(ys)} y values')
            lines.append(make_line(list(zip(xs, ys)), _dont_care(match.group('text')), path, line_no))
        except AnnotationError as error:
            problems.append(error)
        except ValueError as error:
            problems.append(AnnotationError(path, line_no, f'non-numeric coordinate ({error})'))
    return lines, problems
