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
    assert counts == {'images': 2, 'lines': 3, 'problems': 1, 'missing': 1}
    dataset = ImageDataset(data_dir=[str(tmp_path / 'icdar2015')],
                           data_list=[str(tmp_path / 'icdar2015' / 'train_list.txt')])
    assert [line['text'] for line in dataset[0]['lines']] == ['a,b', '###']
    report = io.StringIO()
    result = check_dataset.check(str(tmp_path / 'icdar2015'), str(tmp_path / 'icdar2015' / 'train_list.txt'),
                                 out=report)
    assert result['images'] == 2 and result['polygons'] == 3 and result['dont_care'] == 1
    assert result['problems'] == 0
    (tmp_path / 'icdar2015' / 'train_images' / 'img_2.jpg').write_bytes(b'garbage')
    with open(tmp_path / 'icdar2015' / 'train_gts' / 'img_1.jpg.txt', 'a') as handle:
        handle.write('3,3,bad\n')
    result = check_dataset.check(str(tmp_path / 'icdar2015'), str(tmp_path / 'icdar2015' / 'train_list.txt'),
                                 out=report)
    assert result['unreadable_images'] == 1 and result['bad_lines'] == 1 and result['problems'] == 2
    assert 'img_2.jpg' in report.getvalue() and 'img_1.jpg.txt:3' in report.getvalue()


def gnhk_word(text, x0, y0, x1, y1, line=0):
    """One GNHK word record, its corners listed counter-clockwise from the bottom-left as some files do."""
    return {'text': text, 'line_idx': line, 'type': 'H',
            'polygon': {'x0': x0, 'y0': y1, 'x1': x1, 'y1': y1, 'x2': x1, 'y2': y0, 'x3': x0, 'y3': y0}}


def test_gnhk_both_splits_word_level_convert_read_and_check(tmp_path):
    """The GNHK release (an image and a JSON per page, train and test folders) -> one DB-layout folder with
    both splits, ground truth named by the original's rule, special texts as don't care. (The test's name keeps
    'train' out of tmp_path: ImageDataset, as the original, takes a list path containing 'train' for training.)"""
    pages = {'train': {'eng_AF_001.jpg': [gnhk_word('hello', 4, 5, 30, 15), gnhk_word('%math%', 34, 5, 50, 15)],
                       'eng_AF_002.jpg': [gnhk_word('pen', 6, 20, 26, 32, line=1)]},
             'test': {'eng_NA_003.jpg': [gnhk_word('note', 10, 10, 40, 22), gnhk_word('%SC%', 42, 10, 55, 22)]}}
    out = tmp_path / 'gnhk'
    for split, files in pages.items():
        folder = tmp_path / 'release' / split
        folder.mkdir(parents=True)
        for name, words in files.items():
            cv2.imwrite(str(folder / name), np.full((40, 60, 3), 255, np.uint8))
            (folder / name.replace('.jpg', '.json')).write_text(json.dumps(words))
        assert convert_dataset.main(['gnhk', '--images', str(folder), '--gts', str(folder), '--out', str(out),
                                     '--split', split, '--level', 'word']) == 0
    assert sorted(os.listdir(out / 'train_gts')) == ['eng_AF_001.jpg.txt', 'eng_AF_002.jpg.txt']
    assert sorted(os.listdir(out / 'test_gts')) == ['gt_eng_NA_003.txt']
    assert (out / 'train_list.txt').read_text().split() == ['eng_AF_001.jpg', 'eng_AF_002.jpg']
    assert (out / 'test_list.txt').read_text().split() == ['eng_NA_003.jpg']
    # the quadrilateral is written clockwise from the top-left, the special text as don't care
    written = [line.split(',') for line in (out / 'train_gts' / 'eng_AF_001.jpg.txt').read_text().splitlines()]
    assert [([float(v) for v in fields[:8]], fields[8]) for fields in written] == [
        ([4, 5, 30, 5, 30, 15, 4, 15], 'hello'), ([34, 5, 50, 5, 50, 15, 34, 15], '###')]
    train = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'train_list.txt')])
    test = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'test_list.txt')])
    assert [[line['text'] for line in train[i]['lines']] for i in range(2)] == [['hello', '###'], ['pen']]
    assert [line['text'] for line in test[0]['lines']] == ['note', '###']
    for split, images, polygons in (('train', 2, 3), ('test', 1, 2)):
        result = check_dataset.check(str(out), str(out / f'{split}_list.txt'), out=io.StringIO())
        assert (result['images'], result['polygons'], result['dont_care'], result['problems']) == (
            images, polygons, 1, 0)


def test_convert_gnhk_line_level_test_split(tmp_path):
    (tmp_path / 'g').mkdir()
    cv2.imwrite(str(tmp_path / 'g' / 'eng_1.jpg'), np.zeros((40, 60, 3), np.uint8))
    words = [{'text': t, 'line_idx': 0, 'type': 'H',
              'polygon': {'x0': x, 'y0': 5, 'x1': x + 10, 'y1': 5, 'x2': x + 10, 'y2': 15, 'x3': x, 'y3': 15}}
             for t, x in (('hi', 5), ('there', 20))]
    (tmp_path / 'g' / 'eng_1.json').write_text(json.dumps(words))
    out = tmp_path / 'gnhk'
    convert_dataset.main(['gnhk', '--images', str(tmp_path / 'g'), '--gts', str(tmp_path / 'g'), '--out', str(out),
                          '--split', 'test', '--level', 'line'])
    assert os.path.exists(out / 'test_gts' / 'gt_eng_1.txt')
    sample = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'test_list.txt')])[0]
    assert [line['text'] for line in sample['lines']] == ['hi there']
    assert np.allclose(np.array(sample['lines'][0]['poly']).min(0), [5, 5])
