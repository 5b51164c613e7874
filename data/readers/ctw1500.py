"""SCUT-CTW1500's official ground truth: training XML (14-point ``<segs>``) and test txt (28 integers).

Training XML: ``<Annotations><image file="0001.jpg"><box height=".." left=".." top=".." width="..">
<label>text</label><segs>x1,y1,...,x14,y14</segs>...</box></image></Annotations>``; the ``<segs>`` points
are absolute. Test txt: ``x1,y1,...,x14,y14,####transcription`` per line (older releases: 32 integers, a box
``xmin,ymin,xmax,ymax`` then 14 offsets relative to it, which this reader also accepts). ``###`` is don't care.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from .common import AnnotationError, is_number, make_line, parse_text_lines


def read_ctw1500_xml(path: str) -> tuple[list, list]:
    """Read a CTW1500 training XML file: returns ``(lines, problems)``."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise AnnotationError(path, None, f'cannot parse the XML ({error})') from error
    lines, problems = [], []
    for number, box in enumerate(root.iter('box'), start=1):
        segs = box.findtext('segs')
        label = (box.findtext('label') or '').strip()
        where = f'box {number}'
        try:
            if segs is None or not all(is_number(v) for v in segs.split(',')):
                raise AnnotationError(path, None, f'{where}: missing or non-numeric <segs>')
            lines.append(make_line(segs.split(','), label, path, None))
        except AnnotationError as error:
            problems.append(AnnotationError(path, None, f'{where}: {error.message}'))
    return lines, problems


def parse_ctw1500_txt_line(line: str, path: str, line_no: int) -> dict:
    """Parse one CTW1500 test line: 28 absolute coordinates then ``####text`` (or the 32-number variant)."""
    body, _, text = line.strip().partition('####')
    values = [v for v in body.strip().rstrip(',').split(',')]
    if not all(is_number(v) for v in values):
        raise AnnotationError(path, line_no, 'expected comma-separated integers then ####transcription')
    numbers = [float(v) for v in values]
    if len(numbers) == 32:
        left, top = numbers[0], numbers[1]
        numbers = [value + (left if i % 2 == 0 else top) for i, value in enumerate(numbers[4:])]
    text = text.strip()
    return make_line(numbers, text, path, line_no)


def read_ctw1500_txt(path: str) -> tuple[list, list]:
    """Read a CTW1500 test txt file: returns ``(lines, problems)``."""
    return parse_text_lines(path, parse_ctw1500_txt_line)


def read_ctw1500(path: str) -> tuple[list, list]:
    """Read either CTW1500 file type, chosen by extension (``.xml`` training, otherwise test txt)."""
    return read_ctw1500_xml(path) if path.lower().endswith('.xml') else read_ctw1500_txt(path)
