"""Format readers on tiny fixtures written here, with the real-world quirks of each format."""

import json
import math

import cv2
import numpy as np
import pytest
from scipy.io import savemat

from data.readers import (
    AnnotationError,
    SynthTextGroundTruth,
    read_ctw1500,
    read_db_txt,
    read_gnhk,
    read_icdar2015,
    read_td500,
    read_totaltext_legacy,
    read_totaltext_mat,
)


def write(path, text, bom=False):
    path.write_bytes((b'\xef\xbb\xbf' if bom else b'') + text.encode('utf-8'))
    return str(path)


def test_icdar2015_bom_commas_and_dont_care(tmp_path):
    path = write(
        tmp_path / 'gt_img_1.txt',
        '377,117,463,117,465,130,378,130,Genaxis Theatre\r\n'
        '493,115,519,115,519,131,493,131,[06]\r\n'
        '10,10,50,10,50,30,10,30,1,000,000\r\n'
        '1,2,3,4,5,6,7,8,###\r\n',
        bom=True,
    )
    lines, problems = read_icdar2015(path)
    assert problems == []
    assert lines[0] == {'poly': [[377, 117], [463, 117], [465, 130], [378, 130]], 'text': 'Genaxis Theatre'}
    assert lines[1]['text'] == '[06]'
    assert lines[2]['text'] == '1,000,000'
    assert lines[3]['text'] == '###'


def test_icdar2015_unreadable_line_is_a_problem_naming_file_and_line(tmp_path):
    path = write(tmp_path / 'gt_img_2.txt', '1,2,3,4,5,6,7,8,ok\n1,2,3,4,word\n1,2,x,4,5,6,7,8,word\n')
    lines, problems = read_icdar2015(path)
    assert len(lines) == 2 and len(problems) == 1
    assert f'{path}:3' in str(problems[0])
    # a 2-point line is a degenerate region, read as don't care (the original keeps it: zero area)
    assert lines[1]['text'] == '###' and f'{path}:2: 2 point(s)' in lines[1]['degenerate']


def test_db_txt_quirks(tmp_path):
    path = write(
        tmp_path / 'img.jpg.txt',
        '1,1,20,1,20,10,1,10,hello,\n'  # trailing comma
        '0,0,10,0,5,8,tri\n'  # 3-point polygon: kept
        '4,4,keep\n'  # 1-point polygon: degenerate, don't care
        '0,0,9,0,9,9,0,9,2014\n'  # numeric transcription stays text
        '0,0,9,0,9,9,0,9,1\n'  # the word '1' (MSRA-TD500's difficult flag only where asked)
        '0,0,9,0,9,9,0,9,12,0,12,9,a,b\n',
        bom=True,
    )  # 6 points, comma in text
    lines, problems = read_db_txt(path)
    assert [line['text'] for line in lines] == ['hello', 'tri', '###', '2014', '1', 'a,b']
    assert lines[0]['poly'] == [[1, 1], [20, 1], [20, 10], [1, 10]]
    assert len(lines[1]['poly']) == 3
    assert lines[2]['poly'] == [[4, 4]] and ':3: 1 point' in lines[2]['degenerate']
    assert len(lines[5]['poly']) == 6
    assert problems == []
    lines, _ = read_db_txt(path, one_is_dont_care=True)
    assert lines[4]['text'] == '###'


def test_totaltext_mat(tmp_path):
    rows = np.empty((2, 6), dtype=object)
    rows[0] = [
        'x:',
        np.array([[10, 50, 90, 90, 50, 10]]),
        'y:',
        np.array([[5, 0, 5, 25, 20, 25]]),
        np.array(['PAUL']),
        np.array(['c']),
    ]
    rows[1] = ['x:', np.array([[1, 9, 9, 1]]), 'y:', np.array([[1, 1, 9, 9]]), np.array(['#']), np.array(['#'])]
    path = str(tmp_path / 'poly_gt_img11.mat')
    savemat(path, {'polygt': rows})
    lines, problems = read_totaltext_mat(path)
    assert problems == []
    assert lines[0]['text'] == 'PAUL' and lines[1]['text'] == '###'
    assert lines[0]['poly'] == [[10, 5], [50, 0], [90, 5], [90, 25], [50, 20], [10, 25]]


def test_totaltext_legacy_wrapped_records(tmp_path):
    path = write(
        tmp_path / 'poly_gt_img1.txt',
        "x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'm'], transcriptions: [u'nauGHTY']\n"
        'x: [[ 734 1058 1061 1044 1020  975  935  904  868  840  817  778\n'
        '   756]], y: [[ 456  448  482  521  545  557  564  563  560  550  535  509\n'
        "   479]], ornt: [u'c'], transcriptions: [u'#']\n"
        "x: [[1 2]], y: [[1 2]], ornt: [u'h'], transcriptions: [u'bad']\n",
    )
    lines, problems = read_totaltext_legacy(path)
    assert lines[0] == {'poly': [[115, 322], [503, 346], [494, 426], [115, 404]], 'text': 'nauGHTY'}
    assert len(lines[1]['poly']) == 13 and lines[1]['poly'][-1] == [756, 479] and lines[1]['text'] == '###'
    assert problems == [] and lines[2]['text'] == '###' and ':5: 2 point(s)' in lines[2]['degenerate']


def test_ctw1500_xml_and_txt(tmp_path):
    segs = (
        ','.join(str(v) for i in range(7) for v in (10 + 10 * i, 5))
        + ','
        + ','.join(str(v) for i in reversed(range(7)) for v in (10 + 10 * i, 25))
    )
    xml = (
        f'<Annotations><image file="0001.jpg"><box height="20" left="10" top="5" width="60">'
        f'<label>hello</label><segs>{segs}</segs><pts x="1" y="1" /></box>'
        f'<box height="1" left="0" top="0" width="1"><label>###</label><segs>0,0,4,0,4,4</segs></box>'
        f'</image></Annotations>'
    )
    lines, problems = read_ctw1500(write(tmp_path / '0001.xml', xml))
    assert problems == [] and len(lines[0]['poly']) == 14 and lines[0]['poly'][0] == [10, 5]
    assert lines[0]['text'] == 'hello' and lines[1]['text'] == '###'
    txt = write(tmp_path / '1001.txt', f'{segs},####a, b\n{segs},####\n{segs},#######\n')
    lines, problems = read_ctw1500(txt)
    assert problems == [] and [line['text'] for line in lines] == ['a, b', '', '###']
    assert lines[0]['poly'][7] == [70, 25]


def test_td500_rotated_rectangle_matches_opencv(tmp_path):
    path = write(tmp_path / 'IMG_0059.gt', '0 0 100 50 80 20 0.3\n1 1 10 10 20 10 -1.2\nbroken line\n')
    lines, problems = read_td500(path)
    assert len(problems) == 1 and ':3' in str(problems[0])
    assert lines[0]['text'] == '' and lines[1]['text'] == '###'
    for line, (x, y, w, h, theta) in zip(lines, [(100, 50, 80, 20, 0.3), (10, 10, 20, 10, -1.2)]):
        expected = cv2.boxPoints(((x + w / 2, y + h / 2), (w, h), math.degrees(theta)))
        got = np.array(line['poly'])
        assert all(np.min(np.abs(got - p).sum(1)) < 1e-3 for p in expected)
        assert np.allclose(np.linalg.norm(got[1] - got[0]), w)


def test_gnhk_dont_care_point_order_and_lines(tmp_path):
    def word(text, box, line_idx):
        x0, y0, x1, y1 = box
        points = [(x1, y1), (x0, y0), (x1, y0), (x0, y1)]  # scrambled order
        return {
            'text': text,
            'polygon': {f'{a}{i}': v for i, p in enumerate(points) for a, v in zip('xy', p)},
            'line_idx': line_idx,
            'type': 'H',
        }

    records = [
        word('world', (60, 10, 100, 30), 0),
        word('Hello', (10, 12, 50, 30), 0),
        word('%math%', (10, 50, 40, 70), 1),
        word('%NA%', (50, 50, 70, 70), 2),
        word('x', (80, 50, 95, 70), 2),
    ]
    path = write(tmp_path / 'eng_AF_001.json', json.dumps(records))
    lines, problems = read_gnhk(path)
    assert problems == []
    assert lines[0]['poly'] == [[60, 10], [100, 10], [100, 30], [60, 30]]  # clockwise from top-left
    assert [line['text'] for line in lines] == ['world', 'Hello', '###', '###', 'x']
    assert read_gnhk(path, keep_special=True)[0][2]['text'] == '%math%'
    lines, _ = read_gnhk(path, level='line')
    assert [line['text'] for line in lines] == ['Hello world', '###', '### x']
    poly = np.array(lines[0]['poly'])
    assert np.allclose(poly.min(0), [10, 10]) and np.allclose(poly.max(0), [100, 30])


def test_synthtext_single_and_multi_word(tmp_path):
    one = np.array([[1, 9, 9, 1], [2, 2, 8, 8]], dtype=np.float64)  # 2x4: a single word
    two = np.stack([one, one + 20], axis=2)  # 2x4x2
    names = np.empty((1, 2), dtype=object)
    names[0, 0], names[0, 1] = np.array(['8/ballet_106_0.jpg']), np.array(['8/ballet_106_1.jpg'])
    boxes = np.empty((1, 2), dtype=object)
    boxes[0, 0], boxes[0, 1] = one, two
    texts = np.empty((1, 2), dtype=object)
    texts[0, 0], texts[0, 1] = np.array(['Lines']), np.array(['the  ', 'and\nof'])
    path = str(tmp_path / 'gt.mat')
    savemat(path, {'imnames': names, 'wordBB': boxes, 'txt': texts})
    truth = SynthTextGroundTruth(path)
    assert truth.names == ['8/ballet_106_0.jpg', '8/ballet_106_1.jpg']
    lines, problems = truth.read(0)
    assert problems == [] and lines == [{'poly': [[1, 2], [9, 2], [9, 8], [1, 8]], 'text': 'Lines'}]
    lines, problems = truth.read(1)
    assert len(lines) == 2 and lines[1]['poly'][0] == [21, 22]
    assert len(problems) == 1 and '3 words' in str(problems[0])


def test_unreadable_files_raise_naming_the_file(tmp_path):
    with pytest.raises(AnnotationError, match='missing.txt'):
        read_db_txt(str(tmp_path / 'missing.txt'))
    with pytest.raises(AnnotationError, match='bad.json'):
        read_gnhk(write(tmp_path / 'bad.json', '{not json'))
