"""Degenerate regions (1- and 2-point lines, zero area) are don't-care regions, as in the original.

The original's Total-Text ground truth holds lines such as ``221,208,###``. They are read, kept as don't-care
regions under every ``on_error`` setting, counted, trained on (masked out) and evaluated as the original's
evaluator does: a region of zero area is don't care and changes no count.
"""

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from concern.checkpoint_io import save_checkpoint
from concern.runtime import load_experiment_for_inference
from data.image_dataset import ImageDataset
from structure.measurers import QuadMeasurer
from tests import ROOT

TOTALTEXT = 'experiments/seg_detector/totaltext_resnet18_deform_thre.yaml'
WORD = '10,10,50,10,50,30,10,30'
# (gt file name pattern for train / test, gt text) per format; each file has one word, a 1-point, a 2-point
# and a zero-area line.
FORMATS = {
    'totaltext': ('{name}.txt', '{name}.txt', f'{WORD},PAUL\n221,208,###\n5,5,40,5,word\n1,1,9,9,17,17,line\n'),
    'icdar2015': ('{name}.txt', 'gt_{stem}.txt', f'{WORD},Genaxis\n21,28,###\n5,5,40,5,word\n3,3,3,3,3,3,3,3,###\n'),
    'td500_db': ('{name}.txt', '{name}.txt', f'{WORD},0\n21,28,1\n5,5,40,5,0\n1,1,9,9,17,17,1\n'),
}


def make_layout(root, gt_text, train_gt, test_gt, count=2, size=(64, 48)):
    """The original's layout: {train,test}_images, {train,test}_gts, {train,test}_list.txt."""
    rng = np.random.default_rng(0)
    for split, pattern in (('train', train_gt), ('test', test_gt)):
        os.makedirs(root / f'{split}_images')
        os.makedirs(root / f'{split}_gts')
        names = [f'img{i}.jpg' for i in range(1, count + 1)]
        for name in names:
            image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            cv2.rectangle(image, (10, 10), (50, 30), (255, 255, 255), -1)
            cv2.imwrite(str(root / f'{split}_images' / name), image)
            gt = pattern.format(name=name, stem=os.path.splitext(name)[0])
            (root / f'{split}_gts' / gt).write_text(gt_text)
        (root / f'{split}_list.txt').write_text('\n'.join(names) + '\n')
    return root


@pytest.mark.parametrize('fmt', sorted(FORMATS))
@pytest.mark.parametrize('on_error', ['raise', 'skip'])
def test_degenerate_lines_are_dont_care_and_counted(tmp_path, fmt, on_error):
    train_gt, test_gt, text = FORMATS[fmt]
    root = make_layout(tmp_path / fmt, text, train_gt, test_gt)
    reader = 'icdar2015' if fmt == 'icdar2015' else 'db'
    dataset = ImageDataset(
        data_dir=[str(root)], data_list=[str(root / 'test_list.txt')], reader=reader, on_error=on_error
    )
    sample = dataset[0]
    lines = sample['lines']
    assert len(lines) == 4 and 'dropped' not in sample
    assert lines[0]['text'] != '###' and all(line['text'] == '###' for line in lines[1:])
    assert [len(line['poly']) for line in lines[1:3]] == [1, 2]
    assert dataset.num_degenerate_lines == 3 and dataset.num_bad_lines == 0 and dataset.num_skipped == 0


def test_td500_official_gt_with_zero_width_is_dont_care(tmp_path):
    from data.readers import read_td500

    path = tmp_path / 'IMG_0059.gt'
    path.write_text('0 0 10 10 40 20 0.1\n1 0 50 50 0 20 0.0\n2 0 60 60 30 0 0.0\n')
    lines, problems = read_td500(str(path))
    assert problems == [] and [line['text'] for line in lines] == ['', '###', '###']
    assert all('zero area' in line['degenerate'] for line in lines[1:])


def test_unreadable_lines_stay_errors(tmp_path):
    from data.readers import AnnotationError

    root = make_layout(tmp_path / 'bad', f'{WORD},ok\n1,x,3,4,word\n', '{name}.txt', '{name}.txt')
    dataset = ImageDataset(data_dir=[str(root)], data_list=[str(root / 'train_list.txt')], reader='db')
    with pytest.raises(AnnotationError, match=r'img1\.jpg\.txt:2'):
        dataset[0]
    nan = make_layout(tmp_path / 'nan', f'{WORD},ok\nnan,3,###\n', '{name}.txt', '{name}.txt')
    dataset = ImageDataset(data_dir=[str(nan)], data_list=[str(nan / 'train_list.txt')], reader='db')
    with pytest.raises(AnnotationError, match='NaN'):
        dataset[0]


@pytest.mark.parametrize(
    'experiment, fmt',
    [
        (TOTALTEXT, 'totaltext'),
        ('experiments/seg_detector/ic15_resnet18_deform_thre.yaml', 'icdar2015'),
        ('experiments/seg_detector/td500_resnet18_deform_thre.yaml', 'td500_db'),
    ],
)
def test_training_pipeline_and_step_with_degenerate_lines(tmp_path, experiment, fmt, monkeypatch):
    """The experiment's own training processes (crop shrunk to 64) and one optimisation step of its model."""
    monkeypatch.chdir(ROOT)
    train_gt, test_gt, text = FORMATS[fmt]
    root = make_layout(tmp_path / fmt, text, train_gt, test_gt)
    config = load_experiment_for_inference(
        experiment,
        [
            f"train_data.data_dir=['{root}']",
            f"train_data.data_list=['{root / 'train_list.txt'}']",
            'train_data.processes.1.size=[64,64]',
            'Experiment.structure.builder.model_args.decoder_args.inner_channels=16',
        ],
    )
    dataset = config.build('train_data')
    np.random.seed(0)
    samples = [dataset[i] for i in range(len(dataset))]
    assert dataset.num_degenerate_lines == 3 * len(dataset)
    batch = {key: torch.stack([torch.as_tensor(sample[key]) for sample in samples]) for key in samples[0]}
    assert all(torch.isfinite(value).all() for value in batch.values())
    model = config.build('Experiment.structure').builder.build()
    model.train()
    loss, _, _ = model(batch, training=True)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize('protocol', ['iou', 'deteval', 'tiou'])
def test_evaluator_counts_degenerate_gt_as_the_original(protocol):
    """A degenerate don't-care region changes no count (zero area: it covers no detection), as the original's
    evaluator: the same metrics as without it, a detection on its point included."""
    word = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], np.float64)
    other = word + [0, 100]
    degenerate = [
        np.array([[221, 208]], np.float64),
        np.array([[5, 5], [40, 5]], np.float64),
        np.array([[1, 1], [9, 9], [17, 17]], np.float64),
    ]
    detections = [word + 1, np.array([[215, 200], [230, 200], [230, 215], [215, 215]], np.float64)]
    measurer = QuadMeasurer(protocol=protocol)

    def metrics(polygons, ignore):
        batch = {'polygons': [polygons], 'ignore_tags': [np.array(ignore)]}
        output = ([detections], [[1.0] * len(detections)])
        raw = measurer.validate_measure(batch, output, is_output_polygon=True, box_thresh=0.5)
        return measurer.gather_measure([raw])

    plain = metrics([word, other], [False, False])
    with_degenerate = metrics([word, other] + degenerate, [False, False, True, True, True])
    assert with_degenerate == plain
    assert plain['recall'] > 0 and plain['precision'] > 0  # the word is found, the other detection is not


def test_eval_script_on_original_totaltext_layout_prints_prf(tmp_path):
    """eval.py on a Total-Text folder laid out as the original's, with 1- and 2-point lines, runs to the end."""
    root = make_layout(tmp_path / 'total_text', FORMATS['totaltext'][2], '{name}.txt', '{name}.txt')
    overrides = [
        f"validate_data.data_dir=['{root}']",
        f"validate_data.data_list=['{root / 'test_list.txt'}']",
        "validate_data.processes.0.augmenter_args=[['Resize', {'width': 64, 'height': 64}]]",
        'Experiment.structure.builder.model_args.decoder_args.inner_channels=16',
        'Experiment.evaluation.data_loaders.icdar2015.num_workers=0',
    ]
    config = load_experiment_for_inference(os.path.join(ROOT, TOTALTEXT), overrides)
    torch.manual_seed(0)
    checkpoint = tmp_path / 'random.pth'
    save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)
    command = [
        sys.executable,
        os.path.join(ROOT, 'eval.py'),
        TOTALTEXT,
        '--resume',
        str(checkpoint),
        '--polygon',
        '--box_thresh',
        '0.6',
        '--device',
        'cpu',
        '--result_dir',
        str(tmp_path / 'results'),
    ]
    for override in overrides:
        command += ['--opt', override]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r'icdar2015: precision \d\.\d{4}  recall \d\.\d{4}  fmeasure \d\.\d{4}', done.stdout), done.stdout
    assert (tmp_path / 'results' / 'metrics.json').exists()
