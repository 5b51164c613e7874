"""The DB layout's text ground truth: one region per line, ``x1,y1,...,xn,yn,transcription``.

Used by the original release for Total-Text, MSRA-TD500 and the synthetic set (any number of points), and
with ``icdar2015`` for ICDAR 2015's ``gt_img_N.txt`` (the first 8 numbers are the quadrilateral, the rest of
the line, commas included, is the transcription).
"""

from __future__ import annotations

from .common import DONT_CARE, AnnotationError, is_number, make_line, parse_text_lines


def parse_db_line(line: str, path: str, line_no: int, one_is_dont_care: bool = False) -> dict:
    """Parse one ``x1,y1,...,xn,yn,text`` line.

    The coordinates are the leading numeric fields; the last field is always text (so a numeric
    transcription such as ``2014`` stays text) and a text that starts with numeric fields (``1,000``) keeps
    them when the count of leading numbers is odd. A trailing empty field (a trailing comma) is dropped.
    ``one_is_dont_care``: the label ``1`` means don't care (MSRA-TD500's difficult flag; the original applies it
    only when the first data folder's path contains ``TD``, see ``ImageDataset``); elsewhere ``1`` is a word.
    """
    tokens = [token.strip() for token in line.strip().split(',')]
    if len(tokens) > 1 and tokens[-1] == '':
        tokens = tokens[:-1]
    count = 0
    while count < len(tokens) and is_number(tokens[count]):
        count += 1
    if count == len(tokens):
        count -= 1
    if count % 2:
        count -= 1
    text = ','.join(tokens[count:])
    if one_is_dont_care and text == '1':
        text = DONT_CARE
    return make_line(tokens[:count], text, path, line_no)


def format_db_line(line: dict) -> str:
    """Write a line record as ``x1,y1,...,xn,yn,text`` (coordinates with one decimal; inverse of parse_db_line)."""
    return ','.join(f'{value:.1f}' for point in line['poly'] for value in point) + ',' + line['text']


def parse_icdar2015_line(line: str, path: str, line_no: int) -> dict:
    """Parse one ICDAR 2015 line: 8 numbers then the transcription (which may contain commas).

    A line of 1 to 3 points (2, 4 or 6 numbers) then a transcription is a degenerate region (don't care)."""
    tokens = line.strip().split(',')
    count = 0
    while count < min(len(tokens), 8) and is_number(tokens[count]):
        count += 1
    short = count < 8 and (count < 2 or count % 2 or count == len(tokens) or any(map(is_number, tokens[count:])))
    if short:  # not a degenerate region of 1 to 3 points followed by a transcription: unreadable
        raise AnnotationError(path, line_no, 'expected 8 numbers x1,y1,...,x4,y4 then the transcription')
    return make_line(tokens[:count], ','.join(tokens[count:]), path, line_no)


def read_db_txt(path: str, one_is_dont_care: bool = False) -> tuple[list, list]:
    """Read a DB-layout text ground truth: returns ``(lines, problems)``."""
    return parse_text_lines(path, lambda line, p, n: parse_db_line(line, p, n, one_is_dont_care))


def read_icdar2015(path: str) -> tuple[list, list]:
    """Read an ICDAR 2015 ``gt_img_N.txt`` (UTF-8 with BOM): returns ``(lines, problems)``."""
    return parse_text_lines(path, parse_icdar2015_line)
