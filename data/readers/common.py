"""Shared pieces of the annotation readers: the error type, number parsing and the line dict.

Every reader returns ``(lines, problems)``: ``lines`` is the list of ``{'poly': [[x, y], ...], 'text': str}``
records that parsed (``'###'`` text = don't care; a degenerate region, fewer than 3 points or no area, is a
don't-care record with a ``'degenerate'`` note, see :func:`make_line`), ``problems`` is a list of
:class:`AnnotationError`, one per
record that could not be used (the caller decides whether to raise or skip them). A file that cannot be read
at all raises :class:`AnnotationError` directly.
"""

from __future__ import annotations

import numpy as np

from concern.errors import UserError
from data.processes.geometry import signed_area

DONT_CARE = '###'


class AnnotationError(UserError, ValueError):
    """A ground-truth file or one of its records could not be parsed; ``str()`` names the file and line."""

    def __init__(self, path: str, line_no: int | None, message: str):
        self.path = path
        self.line_no = line_no
        self.message = message
        where = f'{path}:{line_no}' if line_no is not None else f'{path}'
        super().__init__(f'{where}: {message}')


def read_text_lines(path: str) -> list[str]:
    """Read a UTF-8 text file (BOM removed, any newline style), raising AnnotationError if it cannot be read."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except OSError as error:
        raise AnnotationError(
            path, None, f'cannot read the ground-truth file ({error.strerror}); check the path and the gt naming option'
        ) from error
    try:
        text = raw.decode('utf-8-sig')
    except UnicodeDecodeError:
        text = raw.decode('latin-1')
    return [line.replace('\ufeff', '') for line in text.splitlines()]


def is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def make_line(points, text: str, path: str, line_no: int | None) -> dict:
    """Build a line record from a flat or paired sequence of coordinates.

    A region with 1 or 2 points, or with no area (repeated or collinear points), is degenerate. As in the
    original, it is kept as a don't-care region (it has zero area): its text becomes ``'###'`` and the record
    gets ``'degenerate'``: a ``'path:line: why'`` note that ImageDataset counts and tools/check_dataset.py lists.
    Raises AnnotationError for what cannot be read: no coordinates at all or an odd number of them.
    """
    flat = [float(value) for pair in points for value in (pair if isinstance(pair, (list, tuple)) else [pair])]
    if len(flat) % 2:
        raise AnnotationError(path, line_no, f'odd number of coordinates ({len(flat)}); expected x,y pairs')
    if not flat:
        raise AnnotationError(path, line_no, 'no coordinates; expected x1,y1,x2,y2,... before the transcription')
    poly = [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)]
    if len(poly) < 3:
        why = f'{len(poly)} point(s)'
    elif signed_area(np.asarray(poly)) == 0:
        why = 'zero area'
    else:
        return {'poly': poly, 'text': text}
    where = f'{path}:{line_no}' if line_no is not None else f'{path}'
    return {'poly': poly, 'text': DONT_CARE, 'degenerate': f"{where}: {why}, read as don't care"}


def parse_text_lines(path: str, parse) -> tuple[list, list]:
    """Apply ``parse(line, path, line_no) -> line dict`` to every non-empty line; returns ``(lines, problems)``."""
    lines, problems = [], []
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            lines.append(parse(line, path, line_no))
        except AnnotationError as error:
            problems.append(error)
    return lines, problems
