"""tools/convert_dataset.py and tools/check_dataset.py on tiny official-format fixtures."""

import io
import json
import os

import cv2
import numpy as np

from data.image_dataset import ImageDataset
from tools import check_dataset, convert_dataset


def test_convert_icdar2015_and_gnhk_then_check(tmp_path):
    images, gts = tmp_path / 'imgs', tmp_path / 'gts'
    images.mkdir()
    gts.mkdir()
    for i in (1, 2, 3):
        cv2.imwrite(str(images / f'img_{i}.jpg'), np.zeros((20, 30, 3), np.uint8))
    (gts / 'gt_img_1.txt').write_bytes('\ufeff1,1,9,1,9,9,1,9,a,b\n2,2,8,2,8,8,2,8,###\n'.encode())
    (gts / 'gt_img_2.txt').write_text('1,1,9,1,9,9,1,9,ok\n1,1,short\n')
    counts = convert_dataset.convert('icdar2015', str(images), str(gts), str(tmp_path / 'icdar2015'), 'train')
    assert counts == {'images': 2, 'lines': 4, 'problems': 0, 'missing': 1}  # '1,1,short': degenerate, kept
    dataset = ImageDataset(
        data_dir=[str(tmp_path / 'icdar2015')], data_list=[str(tmp_path / 'icdar2015' / 'train_list.txt')]
    )
    assert [line['text'] for line in dataset[0]['lines']] == ['a,b', '###']
    report = io.StringIO()
    result = check_dataset.check(
        str(tmp_path / 'icdar2015'), str(tmp_path / 'icdar2015' / 'train_list.txt'), out=report
    )
    assert result['images'] == 2 and result['polygons'] == 4 and result['dont_care'] == 2 and result['degenerate'] == 1
    assert result['problems'] == 0
    (tmp_path / 'icdar2015' / 'train_images' / 'img_2.jpg').write_bytes(b'garbage')
    with open(tmp_path / 'icdar2015' / 'train_gts' / 'img_1.jpg.txt', 'a') as handle:
        handle.write('3,3,degenerate\n3,x,bad\n')
    report = io.StringIO()
    result = check_dataset.check(
        str(tmp_path / 'icdar2015'), str(tmp_path / 'icdar2015' / 'train_list.txt'), out=report
    )
    assert result['unreadable_images'] == 1 and result['bad_lines'] == 1 and result['problems'] == 2
    assert result['degenerate'] == 2  # img_1's 1-point line and img_2's converted 1-point line: not problems
    assert 'img_2.jpg' in report.getvalue() and 'bad line: ' in report.getvalue()
    assert 'img_1.jpg.txt:4' in report.getvalue()
    assert 'degenerate: ' in report.getvalue()
    assert "img_1.jpg.txt:3: 1 point(s), read as don't care" in report.getvalue()


def test_convert_gnhk_line_level_test_split(tmp_path):
    (tmp_path / 'g').mkdir()
    cv2.imwrite(str(tmp_path / 'g' / 'eng_1.jpg'), np.zeros((40, 60, 3), np.uint8))
    words = [
        {
            'text': t,
            'line_idx': 0,
            'type': 'H',
            'polygon': {'x0': x, 'y0': 5, 'x1': x + 10, 'y1': 5, 'x2': x + 10, 'y2': 15, 'x3': x, 'y3': 15},
        }
        for t, x in (('hi', 5), ('there', 20))
    ]
    (tmp_path / 'g' / 'eng_1.json').write_text(json.dumps(words))
    out = tmp_path / 'gnhk'
    convert_dataset.main(
        [
            'gnhk',
            '--images',
            str(tmp_path / 'g'),
            '--gts',
            str(tmp_path / 'g'),
            '--out',
            str(out),
            '--split',
            'test',
            '--level',
            'line',
        ]
    )
    assert os.path.exists(out / 'test_gts' / 'gt_eng_1.txt')
    sample = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'test_list.txt')])[0]
    assert [line['text'] for line in sample['lines']] == ['hi there']
    assert np.allclose(np.array(sample['lines'][0]['poly']).min(0), [5, 5])
