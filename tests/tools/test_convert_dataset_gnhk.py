"""tools/convert_dataset.py gnhk: both splits of the GNHK release into one DB-layout folder."""

import io
import json
import os

import cv2
import numpy as np

from data.image_dataset import ImageDataset
from tools import check_dataset, convert_dataset


def gnhk_word(text, x0, y0, x1, y1, line=0):
    """One GNHK word record, its corners listed counter-clockwise from the bottom-left as some files do."""
    return {
        'text': text,
        'line_idx': line,
        'type': 'H',
        'polygon': {'x0': x0, 'y0': y1, 'x1': x1, 'y1': y1, 'x2': x1, 'y2': y0, 'x3': x0, 'y3': y0},
    }


def test_gnhk_both_splits_word_level_convert_read_and_check(tmp_path):
    """The GNHK release (an image and a JSON per page, train and test folders) -> one DB-layout folder with
    both splits, ground truth named by the original's rule, special texts as don't care. (The test's name keeps
    'train' out of tmp_path: ImageDataset, as the original, takes a list path containing 'train' for training.)"""
    pages = {
        'train': {
            'eng_AF_001.jpg': [gnhk_word('hello', 4, 5, 30, 15), gnhk_word('%math%', 34, 5, 50, 15)],
            'eng_AF_002.jpg': [gnhk_word('pen', 6, 20, 26, 32, line=1)],
        },
        'test': {'eng_NA_003.jpg': [gnhk_word('note', 10, 10, 40, 22), gnhk_word('%SC%', 42, 10, 55, 22)]},
    }
    out = tmp_path / 'gnhk'
    for split, files in pages.items():
        folder = tmp_path / 'release' / split
        folder.mkdir(parents=True)
        for name, words in files.items():
            cv2.imwrite(str(folder / name), np.full((40, 60, 3), 255, np.uint8))
            (folder / name.replace('.jpg', '.json')).write_text(json.dumps(words))
        assert (
            convert_dataset.main(
                [
                    'gnhk',
                    '--images',
                    str(folder),
                    '--gts',
                    str(folder),
                    '--out',
                    str(out),
                    '--split',
                    split,
                    '--level',
                    'word',
                ]
            )
            == 0
        )
    assert sorted(os.listdir(out / 'train_gts')) == ['eng_AF_001.jpg.txt', 'eng_AF_002.jpg.txt']
    assert sorted(os.listdir(out / 'test_gts')) == ['gt_eng_NA_003.txt']
    assert (out / 'train_list.txt').read_text().split() == ['eng_AF_001.jpg', 'eng_AF_002.jpg']
    assert (out / 'test_list.txt').read_text().split() == ['eng_NA_003.jpg']
    # the quadrilateral is written clockwise from the top-left, the special text as don't care
    written = [line.split(',') for line in (out / 'train_gts' / 'eng_AF_001.jpg.txt').read_text().splitlines()]
    assert [([float(v) for v in fields[:8]], fields[8]) for fields in written] == [
        ([4, 5, 30, 5, 30, 15, 4, 15], 'hello'),
        ([34, 5, 50, 5, 50, 15, 34, 15], '###'),
    ]
    train = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'train_list.txt')])
    test = ImageDataset(data_dir=[str(out)], data_list=[str(out / 'test_list.txt')])
    assert [[line['text'] for line in train[i]['lines']] for i in range(2)] == [['hello', '###'], ['pen']]
    assert [line['text'] for line in test[0]['lines']] == ['note', '###']
    for split, images, polygons in (('train', 2, 3), ('test', 1, 2)):
        result = check_dataset.check(str(out), str(out / f'{split}_list.txt'), out=io.StringIO())
        assert (result['images'], result['polygons'], result['dont_care'], result['problems']) == (
            images,
            polygons,
            1,
            0,
        )
