"""MSRA-TD500's official ``.gt`` files: ``index difficult x y w h theta`` per line.

``(x, y)`` is the top-left corner of the unrotated rectangle, ``w, h`` its size and ``theta`` the rotation in
radians about the rectangle's centre; ``difficult = 1`` marks a don't-care line (text ``'###'``).
"""

from __future__ import annotations

import math

from .common import DONT_CARE, AnnotationError, is_number, make_line, read_text_lines


def td500_rectangle(x: float, y: float, w: float, h: float, theta: float) -> list:
    """Corners (top-left, top-right, bottom-right, bottom-left) of the rectangle rotated by theta about its centre."""
    cx, cy = x + w / 2.0, y + h / 2.0
    cos, sin = math.cos(theta), math.sin(theta)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [[cx + dx * cos - dy * sin, cy + dx * sin + dy * cos] for dx, dy in corners]


def read_td500(path: str) -> tuple[list, list]:
    """Read an MSRA-TD500 ``.gt`` file: returns ``(lines, problems)``; texts are ``''`` or ``'###'``."""
    lines, problems = [], []
    for line_no, line in enumerate(read_text_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 7 or not all(is_number(v) for v in fields[:7]):
            problems.append(AnnotationError(path, line_no, 'expected 7 numbers: index difficult x y w h theta'))
            continue
        _, difficult, x, y, w, h, theta = (float(v) for v in fields[:7])
        try:
            lines.append(
                make_line(td500_rectangle(x, y, w, h, theta), DONT_CARE if difficult == 1 else '', path, line_no)
            )
        except AnnotationError as error:
            problems.append(error)
    return lines, problems
