"""tools/split_dataset.py: deterministic, order-independent split; refuses to overwrite; read by ImageDataset."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data.image_dataset import ImageDataset
from tests import ROOT
from tools import split_dataset
from tools.split_dataset import SplitError, split_entries


def make_dataset(folder, count=12):
    (folder / 'train_images').mkdir(parents=True)
    (folder / 'train_gts').mkdir()
    names = [f'img_{i}.jpg' for i in range(1, count + 1)]
    for name in names:
        cv2.imwrite(str(folder / 'train_images' / name), np.full((16, 24, 3), 200, np.uint8))
        (folder / 'train_gts' / f'{name}.txt').write_text('2,2,10,2,10,8,2,8,word\n')
    (folder / 'train_list.txt').write_text(''.join(n + '\n' for n in names))
    return names


def test_split_is_a_function_of_entries_and_seed_only():
    entries = [f'img_{i}.jpg' for i in range(1, 201)]
    train, val = split_entries(entries, 20, seed=0)
    assert len(val) == 20 and len(train) == 180 and not set(train) & set(val)
    assert sorted(train + val) == sorted(entries)
    shuffled = list(reversed(entries)) + entries[:5]  # another order, with duplicates
    assert split_entries(shuffled, 20, seed=0) == (train, val)
    assert split_entries(entries, 20, seed=1)[1] != val
    # pinned: the same split on every machine and NumPy / Python version (no RNG, no filesystem order)
    assert split_entries([f'img_{i}.jpg' for i in range(10, 0, -1)], 3, seed=0)[1] == [
        'img_3.jpg',
        'img_4.jpg',
        'img_7.jpg',
    ]
    with pytest.raises(SplitError, match='--val 10'):
        split_entries(entries[:10], 10, seed=0)


def test_command_writes_lists_that_image_dataset_reads(tmp_path):
    names = make_dataset(tmp_path / 'ds')
    out = tmp_path / 'splits'
    command = [
        sys.executable,
        '-m',
        'tools.split_dataset',
        str(tmp_path / 'ds'),
        '--val',
        '3',
        '--seed',
        '0',
        '--out',
        str(out),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    train = (out / split_dataset.TRAIN_NAME).read_text().split()
    val = (out / split_dataset.VAL_NAME).read_text().split()
    assert (len(train), len(val)) == (9, 3) and sorted(train + val) == sorted(names)
    assert not (tmp_path / 'ds' / split_dataset.TRAIN_NAME).exists()  # nothing written into the dataset folder
    # the experiment's way: data_dir stays the dataset folder; the validation set reads the train_ folders
    dataset = ImageDataset(
        data_dir=[str(tmp_path / 'ds')], data_list=[str(out / split_dataset.VAL_NAME)], is_training=True
    )
    assert len(dataset) == 3 and os.path.basename(dataset[0]['filename']) == val[0]
    assert dataset[0]['lines'][0]['text'] == 'word'
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and 'unchanged' in again.stdout
    assert (out / split_dataset.VAL_NAME).read_text().split() == val


def test_refuses_to_replace_a_different_split_unless_forced(tmp_path):
    make_dataset(tmp_path / 'ds')
    folder = str(tmp_path / 'ds')
    assert split_dataset.main([folder, '--val', '3', '--seed', '0']) == 0
    first = (tmp_path / 'ds' / split_dataset.VAL_NAME).read_text()
    with pytest.raises(SplitError, match='--force'):
        split_dataset.main([folder, '--val', '4', '--seed', '0'])
    assert (tmp_path / 'ds' / split_dataset.VAL_NAME).read_text() == first
    assert split_dataset.main([folder, '--val', '4', '--seed', '0', '--force']) == 0
    assert len((tmp_path / 'ds' / split_dataset.VAL_NAME).read_text().split()) == 4


def test_user_errors_name_the_problem(tmp_path):
    with pytest.raises(SplitError, match='does not exist'):
        split_dataset.main([str(tmp_path / 'missing')])
    make_dataset(tmp_path / 'ds', count=4)
    with pytest.raises(SplitError, match='train_list'):
        split_dataset.main([str(tmp_path / 'ds'), '--list', str(tmp_path / 'ds' / 'nolist.txt')])
    (tmp_path / 'ds' / 'train_images' / 'img_2.jpg').unlink()
    with pytest.raises(SplitError, match="'img_2.jpg' has no image"):
        split_dataset.main([str(tmp_path / 'ds'), '--val', '1'])
    make_dataset(tmp_path / 'ro', count=4)
    os.chmod(tmp_path / 'ro', 0o555)
    try:
        with pytest.raises(SplitError, match='--out'):
            split_dataset.main([str(tmp_path / 'ro'), '--val', '1'])
        assert sorted(os.listdir(tmp_path / 'ro')) == ['train_gts', 'train_images', 'train_list.txt']
    finally:
        os.chmod(tmp_path / 'ro', 0o755)
