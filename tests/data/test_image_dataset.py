"""image_io, ImageDataset (layout, naming, on_error, path escape) and the DataLoader / collate functions."""

import logging
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from data.data_loader import DataLoader, ICDARCollectFN
from data.image_dataset import ImageDataset
from data.image_io import ImageReadError, read_image
from data.readers import AnnotationError


def test_exif_rotated_jpeg_is_upright(tmp_path):
    array = np.full((20, 40, 3), 255, np.uint8)
    array[:4, :, :] = (0, 0, 255)  # red strip on top (BGR)
    image = Image.fromarray(array[:, :, ::-1])
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display rotates 90 degrees clockwise
    path = str(tmp_path / 'rotated.jpg')
    image.save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (40, 20, 3) and out.dtype == np.float32
    assert out[:, -3:, 2].mean() > 200 and out[:, -3:, 0].mean() < 60  # the strip is now on the right
    assert out[:, :3, 0].mean() > 200


def test_16bit_grayscale_rgba_and_palette_become_8bit_bgr(tmp_path):
    gray16 = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'g16.png'), gray16)
    out = read_image(str(tmp_path / 'g16.png'))
    assert out.shape == (12, 10, 3) and out.dtype == np.float32 and np.array_equal(out, np.rint(out))
    assert np.abs(out[:, :, 0].astype(int) - (gray16 >> 8)).max() <= 1
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    out = read_image(str(tmp_path / 'a.png'))
    assert out.shape == (8, 9, 3) and out[0, 0].tolist() == [0, 0, 200]
    palette = Image.fromarray(np.full((5, 6, 3), (10, 20, 30), np.uint8)).quantize(colors=4)
    assert palette.mode == 'P'
    palette.save(tmp_path / 'p.png')
    out = read_image(str(tmp_path / 'p.png'))
    assert out.shape == (5, 6, 3) and np.abs(out[0, 0].astype(int) - [30, 20, 10]).max() <= 8


def test_errors_name_the_file_and_max_pixels_is_checked(tmp_path):
    with pytest.raises(ImageReadError, match='nothere.jpg'):
        read_image(str(tmp_path / 'nothere.jpg'))
    (tmp_path / 'junk.jpg').write_bytes(b'not an image at all')
    with pytest.raises(ImageReadError, match='junk.jpg'):
        read_image(str(tmp_path / 'junk.jpg'))
    cv2.imwrite(str(tmp_path / 'big.png'), np.zeros((50, 60, 3), np.uint8))
    with pytest.raises(ImageReadError, match='max_pixels'):
        read_image(str(tmp_path / 'big.png'), max_pixels=50 * 60 - 1)
    assert read_image(str(tmp_path / 'big.png'), max_pixels=50 * 60).shape == (50, 60, 3)


def make_db_dataset(root, split, names, gt_text, gt_name='{name}.txt'):
    os.makedirs(root / f'{split}_images', exist_ok=True)
    os.makedirs(root / f'{split}_gts', exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(root / f'{split}_images' / name), np.full((16 + i, 24, 3), i, np.uint8))
        stem = os.path.splitext(name)[0]
        (root / f'{split}_gts' / gt_name.format(name=name, stem=stem)).write_text(gt_text)
    (root / f'{split}_list.txt').write_text(''.join(n + '\n' for n in names))
    return [str(root)], [str(root / f'{split}_list.txt')]


def test_train_layout_sample_dict_and_processes(tmp_path):
    data_dir, data_list = make_db_dataset(
        tmp_path / 'total_text', 'train', ['a.jpg', 'b.png'], '1,1,10,1,10,8,1,8,word\n0,0,5,0,5,5,0,5,###\n'
    )
    seen = []
    dataset = ImageDataset(
        data_dir=data_dir,
        data_list=data_list,
        processes=[lambda d: dict(d, tag=1), lambda d: seen.append(d['tag']) or d],
    )
    assert dataset.is_training and len(dataset) == 2
    sample = dataset[1]
    assert set(sample) == {'image', 'lines', 'filename', 'data_id', 'is_training', 'tag'}
    assert sample['image'].shape == (17, 24, 3) and sample['image'].dtype == np.float32
    assert sample['filename'].endswith(os.path.join('train_images', 'b.png')) and sample['data_id'] == 1
    assert sample['lines'][0] == {'poly': [[1, 1], [10, 1], [10, 8], [1, 8]], 'text': 'word'}
    assert sample['lines'][1]['text'] == '###' and seen == [1]


def test_test_split_gt_naming_follows_the_original(tmp_path):
    data_dir, data_list = make_db_dataset(
        tmp_path / 'icdar2015', 'test', ['img_1.jpg'], '1,1,9,1,9,9,1,9,a,b,c\n', gt_name='gt_{stem}.txt'
    )
    dataset = ImageDataset(data_dir=data_dir, data_list=data_list)
    assert not dataset.is_training
    assert dataset[0]['lines'][0]['text'] == 'a,b,c'  # 'icdar' dataset: 8 numbers then the text
    data_dir, data_list = make_db_dataset(tmp_path / 'TD500', 'test', ['IMG_1.JPG'], '1,1,9,1,9,9,1,9,1\n')
    lines = ImageDataset(data_dir=data_dir, data_list=data_list)[0]['lines']  # TD500 test gts: <name>.txt
    assert lines[0]['text'] == '###'


def test_mixed_datasets_and_reader_choice(tmp_path):
    first = make_db_dataset(tmp_path / 'one', 'train', ['a.jpg'], '0,0,9,0,9,9,0,9,x\n')
    second = make_db_dataset(tmp_path / 'two', 'train', ['b.jpg', 'c.jpg'], '0 0 1 1 8 4 0\n', gt_name='{stem}.gt')
    with pytest.raises(AnnotationError):
        ImageDataset(data_dir=first[0] + second[0], data_list=first[1] + second[1])[1]
    dataset = ImageDataset(data_dir=second[0], data_list=second[1], reader='td500')
    assert len(dataset) == 2 and dataset[0]['lines'][0]['poly'] == [[1, 1], [9, 1], [9, 5], [1, 5]]
    with pytest.raises(ValueError, match='unknown reader'):
        ImageDataset(data_dir=second[0], data_list=second[1], reader='nope')


def test_path_escape_is_refused(tmp_path):
    data_dir, data_list = make_db_dataset(tmp_path / 'd', 'train', ['a.jpg'], '')
    with open(data_list[0], 'a') as handle:
        handle.write('../../secret.jpg\n')
    with pytest.raises(ValueError, match='outside'):
        ImageDataset(data_dir=data_dir, data_list=data_list)


def test_on_error_raise_and_skip(tmp_path, caplog):
    data_dir, data_list = make_db_dataset(
        tmp_path / 'd', 'train', ['a.jpg', 'b.jpg', 'c.jpg'], '0,0,9,0,9,9,0,9,x\n7,x,bad\n'
    )
    os.remove(tmp_path / 'd' / 'train_images' / 'c.jpg')

    def fail_on_a(data):
        if data['filename'].endswith('a.jpg'):
            raise ValueError('process failed')
        return data

    strict = ImageDataset(data_dir=data_dir, data_list=data_list)
    with pytest.raises(AnnotationError, match=r'b\.jpg\.txt:2'):
        strict[1]
    lenient = ImageDataset(data_dir=data_dir, data_list=data_list, processes=[fail_on_a], on_error='skip')
    with caplog.at_level(logging.WARNING):
        sample = lenient[0]  # a.jpg fails in the process: b.jpg comes instead
        assert sample['filename'].endswith('b.jpg') and len(sample['lines']) == 1
        assert lenient[2]['filename'].endswith('b.jpg')  # c.jpg is missing: wraps to a (skipped), then b
        lenient[0]
    assert lenient.num_skipped == 2 and lenient.num_bad_lines >= 1
    messages = ' '.join(record.getMessage() for record in caplog.records)
    assert 'a.jpg' in messages and 'c.jpg' in messages and 'b.jpg.txt:2' in messages
    assert messages.count(os.path.join('train_images', 'a.jpg')) == 1  # one warning per file


def test_dataloader_yaml_keys_and_collate():
    loader = DataLoader(list(range(10)), batch_size=4, num_workers=0)
    batches = [b.tolist() for b in loader]
    assert [len(b) for b in batches] == [4, 4] and len(set(sum(batches, []))) == 8  # drop_last for training
    plain = DataLoader(list(range(10)), batch_size=4, num_workers=0, is_train=False)
    assert [b.tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # no shuffle, nothing dropped
    samples = [
        {
            'image': torch.zeros(3, 4, 4),
            'gt': np.ones((1, 4, 4), np.float32),
            'filename': f'{i}.jpg',
            'polygons': [np.zeros((4, 2))] * (i + 1),
        }
        for i in range(2)
    ]
    batch = ICDARCollectFN()(samples)
    assert batch['image'].shape == (2, 3, 4, 4)
    assert isinstance(batch['gt'], list) and torch.is_tensor(batch['gt'][0])
    assert batch['filename'] == ['0.jpg', '1.jpg'] and len(batch['polygons'][1]) == 2
    samples[1]['image'] = torch.zeros(3, 8, 4)
    with pytest.raises(ValueError, match='batch_size 1'):
        ICDARCollectFN()(samples)
    train_batch = next(iter(DataLoader([{'gt': np.ones((2, 2), np.float32)}] * 4, batch_size=2, num_workers=0)))
    assert train_batch['gt'].shape == (2, 2, 2)


def test_skip_on_a_test_set_leaves_the_bad_image_out_instead_of_counting_another_twice(tmp_path):
    from concern.evaluation import evaluate, iterate_predictions

    data_dir, data_list = make_db_dataset(
        tmp_path / 'd', 'test', ['a.jpg', 'b.jpg', 'c.jpg'], '0,0,9,0,9,9,0,9,x\n', gt_name='gt_{stem}.txt'
    )
    bad = tmp_path / 'd' / 'test_images' / 'b.jpg'
    bad.write_text('not an image')
    resize = lambda d: dict(d, image=cv2.resize(d['image'], (32, 32)).transpose(2, 0, 1).astype(np.float32))  # noqa: E731
    dataset = ImageDataset(data_dir=data_dir, data_list=data_list, processes=[resize], on_error='skip')
    assert not dataset.is_training
    assert dataset[1] == {'dropped': str(bad), 'data_id': 1} and dataset.num_skipped == 1
    assert dataset[2]['filename'].endswith('c.jpg') and 'skipped' not in dataset[2]

    class Model(torch.nn.Module):
        def forward(self, batch, training=False):
            return batch['image'][:, :1] * 0 + 0.5

    for batch_size, expected_batches in ((2, [['a.jpg'], ['c.jpg']]), (1, [['a.jpg'], ['c.jpg']])):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=ICDARCollectFN())
        dropped = []
        seen = [
            [os.path.basename(f) for f in batch['filename']]
            for batch, pred in iterate_predictions(Model(), loader, torch.device('cpu'), False, dropped=dropped)
        ]
        assert seen == expected_batches and dropped == [str(bad)]  # with batch 1, b's batch is empty: skipped

    class Counting:  # a representer / measurer pair that records which images were measured
        measured = []

        def represent(self, batch, pred, is_output_polygon=False):
            return [[] for _ in batch['filename']], [[] for _ in batch['filename']]

        def validate_measure(self, batch, output, is_output_polygon=False, box_thresh=0.6):
            self.measured.extend(os.path.basename(f) for f in batch['filename'])
            return []

        def gather_measure(self, raw):
            return {'precision': 1.0, 'recall': 1.0, 'fmeasure': 1.0}

    counting = Counting()
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=ICDARCollectFN())
    metrics = evaluate(Model(), loader, counting, counting, torch.device('cpu'), show_progress=False)
    assert counting.measured == ['a.jpg', 'c.jpg'] and metrics['skipped_images'] == 1


def test_the_word_1_is_a_word_except_in_msra_td500(tmp_path):
    """The original reads the label '1' as don't care only when the first data folder's path contains 'TD'
    (MSRA-TD500's difficult flag); in Total-Text (10 training words and 1 test word '1'), GNHK and the rest it is a
    word: a care region in the training targets and in evaluation (both read MakeICDARData's ignore_tags)."""
    from data.processes import MakeICDARData

    gt = '1,1,20,1,20,12,1,12,1\n30,1,40,1,40,12,30,12,###\n'
    for folder, split in (('total_text', 'train'), ('total_text_test', 'test'), ('TD_TR/TD500', 'train')):
        data_dir, data_list = make_db_dataset(tmp_path / folder, split, ['img1.jpg'], gt)
        for reader in ('auto', 'db'):
            dataset = ImageDataset(data_dir=data_dir, data_list=data_list, reader=reader, processes=[MakeICDARData()])
            sample = dataset[0]
            td500 = folder.startswith('TD')
            assert list(sample['ignore_tags']) == [td500, True], (folder, reader)
            texts = [
                line['text'] for line in ImageDataset(data_dir=data_dir, data_list=data_list, reader=reader)[0]['lines']
            ]
            assert texts == (['###', '###'] if td500 else ['1', '###'])
    totaltext = make_db_dataset(tmp_path / 'tt', 'train', ['img1.jpg'], gt)
    dataset = ImageDataset(data_dir=totaltext[0], data_list=totaltext[1], reader='totaltext')
    assert dataset[0]['lines'][0]['text'] == '1'
