"""Reliability of training, proved with real files and real train.py subprocesses: SIGTERM then resume
reaches the weights of an uninterrupted run; a set with 10% corrupt samples trains to the end under
``on_error: skip`` and logs the skipped count (counted across DataLoader workers); ``on_error: raise``
stops with one sentence naming the file and line; NaN / inf coordinates never become NaN targets."""

import logging
import math
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from concern.checkpoint_io import load_checkpoint
from tests import ROOT

QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
SIZE = 64
# The quick-start experiment shrunk as tests/scripts/test_train_eval_demo.py does (4 samples of 64x64, a narrow
# decoder).
TINY = [
    '--opt',
    'train_data.num_samples=4',
    '--opt',
    f'train_data.image_size=[{SIZE},{SIZE}]',
    '--opt',
    f'train_data.processes.1.size=[{SIZE},{SIZE}]',
    '--opt',
    'Experiment.train.data_loader.num_workers=0',
    '--opt',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    '--opt',
    'Experiment.logger.log_interval=1',
]
COMMON = ['--no-progress', '--no-validate', '--device', 'cpu']


def command(*args):
    return [sys.executable, os.path.join(ROOT, 'train.py'), *args]


def environment():
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def run(*args):
    return subprocess.run(command(*args), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)


def assert_same_state(actual: dict, expected: dict, atol=1e-6):
    """Model weights, optimizer state (Adam moments, step counts) and learning rate agree."""
    for key, value in expected['model'].items():
        torch.testing.assert_close(actual['model'][key], value, rtol=0, atol=atol, msg=key)
    assert actual['optimizer']['param_groups'][0]['lr'] == expected['optimizer']['param_groups'][0]['lr']
    assert actual['optimizer']['state'].keys() == expected['optimizer']['state'].keys()
    for index, state in expected['optimizer']['state'].items():
        for name, value in state.items():
            torch.testing.assert_close(actual['optimizer']['state'][index][name], value, rtol=0, atol=atol)


# ---------------------------------------------------------------------------------------- SIGTERM, resume
def test_sigterm_saves_a_resumable_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    total = 8  # 2 iterations per epoch (4 samples, batch 2): the stop falls mid-epoch or at an epoch's end
    args = [
        QUICKSTART,
        *TINY,
        *COMMON,
        '--batch_size',
        '2',
        '--epochs',
        '4',
        '--max_iterations',
        str(total),
        '--workspace_root',
        str(tmp_path),
    ]
    # the uninterrupted run and the one to interrupt run side by side (one thread each)
    straight = subprocess.Popen(
        command(*args, '--name', 'straight'),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # the interrupted run loads with 2 worker processes (the data do not depend on it); SIGTERM goes to the
    # whole process group, workers included, as a scheduler or Ctrl-C (SIGINT) would send it
    workers = ['--opt', 'Experiment.train.data_loader.num_workers=2']
    metrics = tmp_path / 'cut' / 'metrics.jsonl'
    process = subprocess.Popen(
        command(*args, *workers, '--name', 'cut'),
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text().count('"split": "train"') >= 2:
            os.killpg(process.pid, signal.SIGTERM)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    assert 'stopped (SIGTERM)' in stderr and 'Traceback' not in stderr
    latest = tmp_path / 'cut' / 'model' / 'model_latest'
    stopped = load_checkpoint(latest)
    assert 2 <= stopped['iteration'] < total, 'SIGTERM came too late to interrupt the run'
    assert not (tmp_path / 'cut' / 'model' / 'final').exists()
    _, straight_log = straight.communicate(timeout=240)
    assert straight.returncode == 0, straight_log[-3000:]
    expected = load_checkpoint(tmp_path / 'straight' / 'model' / 'model_latest')
    assert expected['iteration'] == total

    resumed = run(*args, *workers, '--name', 'cut', '--resume', str(latest))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resumed {latest}: epoch {stopped["epoch"]}, iteration {stopped["iteration"]}' in resumed.stderr
    # the resumed run logged exactly the iterations the interrupted one had not done
    logged = [line for line in resumed.stderr.splitlines() if ': loss ' in line]
    assert len(logged) == total - stopped['iteration']
    assert_same_state(load_checkpoint(latest), expected)


# ---------------------------------------------------------------------------------------- fault injection
def write_image(path, seed, text=True):
    rng = np.random.RandomState(seed)
    image = np.full((SIZE, SIZE, 3), 200 + rng.randint(0, 50), np.uint8)
    if text:
        cv2.rectangle(image, (8, 20), (50, 36), (20, 20, 20), -1)
    cv2.imwrite(str(path), image)


GOOD_GT = '8,20,50,20,50,36,8,36,word\n'


def make_faulty_set(root, count=40):
    """A DB-layout training set of ``count`` images: those of img_5, img_15, img_25, img_35 (10% of 40) are
    unusable and spaced apart (so each bad sample drawn is replaced by exactly one good one); img_2, img_3,
    img_4 have a bad line among good ones, img_6 has no text. Returns the unusable names."""
    images, gts = root / 'train_images', root / 'train_gts'
    images.mkdir(parents=True)
    gts.mkdir()
    names = [f'img_{index}.jpg' for index in range(count)]
    for index, name in enumerate(names):
        write_image(images / name, index, text=index != 6)
        (gts / f'{name}.txt').write_text(GOOD_GT if index != 6 else '')
    full = (images / names[0]).read_bytes()
    unusable = {
        'img_5.jpg': lambda: (images / 'img_5.jpg').write_bytes(full[: len(full) // 3]),  # truncated
        'img_15.jpg': lambda: (images / 'img_15.jpg').write_bytes(b''),  # 0 bytes
        'img_25.jpg': lambda: (images / 'img_25.jpg').write_text('a text file, not a JPEG'),
        'img_35.jpg': lambda: os.remove(gts / 'img_35.jpg.txt'),
    }  # no gt file
    bad_lines = {
        'img_2.jpg': '7,x,malformed\n',
        'img_3.jpg': 'nan,1,9,1,9,9,1,9,nan\n',
        'img_4.jpg': '1,1,inf,1,9,9,1,-inf,inf\n',
    }
    for name, spoil in unusable.items():
        if name in names:
            spoil()
    for name, line in bad_lines.items():
        if name in names:
            (gts / f'{name}.txt').write_text(GOOD_GT + line)
    (root / 'train_list.txt').write_text(''.join(name + '\n' for name in names))
    return [name for name in unusable if name in names]


def experiment_yaml(path, data_root, on_error):
    """The quick-start experiment training on an ImageDataset in the DB layout."""
    path.write_text(f"""
import: ['experiments/synthetic/quickstart.yaml']
define:
  - name: train_data
    class: ImageDataset
    data_dir: ['{data_root}']
    data_list: ['{data_root}/train_list.txt']
    on_error: {on_error}
    processes:
        - class: AugmentDetectionData
          augmenter_args: [['Fliplr', 0.5]]
          only_resize: False
          keep_ratio: False
        - class: RandomCropData
          size: [{SIZE}, {SIZE}]
          max_tries: 10
        - class: MakeICDARData
        - class: MakeSegDetectionData
        - class: MakeBorderMap
        - class: NormalizeImage
        - class: FilterKeys
          superfluous: ['polygons', 'filename', 'shape', 'ignore_tags', 'is_training']
""")
    return str(path)


FAULT_ARGS = [
    '--opt',
    'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    '--opt',
    'Experiment.logger.log_interval=1',
    '--opt',
    'Experiment.train.data_loader.num_workers=2',
    *COMMON,
]


def test_ten_percent_corrupt_samples_are_skipped_and_counted_across_workers(tmp_path):
    bad = make_faulty_set(tmp_path / 'data')
    exp = experiment_yaml(tmp_path / 'faulty.yaml', tmp_path / 'data', 'skip')
    result = run(
        exp,
        *FAULT_ARGS,
        '--batch_size',
        '4',
        '--epochs',
        '1',
        '--name',
        'faulty',
        '--workspace_root',
        str(tmp_path / 'ws'),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / 'ws' / 'faulty' / 'output.log').read_text()
    steps = [line for line in log.splitlines() if ': loss ' in line]
    assert len(steps) == 10 and all(math.isfinite(float(line.split('loss ')[1].split(',')[0])) for line in steps)
    # one epoch draws each of the 4 bad samples once; the two workers' counts are summed by the trainer
    assert '4 samples were skipped by the dataset' in log
    assert 'skipped samples 4' in steps[-1]
    assert load_checkpoint(tmp_path / 'ws' / 'faulty' / 'model' / 'final')['skipped_samples'] == 4
    for name in bad:  # each unusable file is named in a warning
        assert name in result.stderr
    for name, reason in (
        ('img_2.jpg.txt:2', 'no coordinates'),
        ('img_3.jpg.txt', 'NaN or infinite'),
        ('img_4.jpg.txt', 'NaN or infinite'),
    ):
        assert any(name in line and reason in line for line in result.stderr.splitlines()), name


def test_on_error_raise_stops_with_one_sentence_naming_the_file_and_line(tmp_path):
    from data.sampler import ResumableSampler

    data = tmp_path / 'data'
    make_faulty_set(data, count=9)  # made clean, then one line spoilt in the 8th sample drawn (3rd batch)
    (data / 'train_images' / 'img_5.jpg').write_bytes((data / 'train_images' / 'img_0.jpg').read_bytes())
    for index in (2, 3, 4):
        (data / 'train_gts' / f'img_{index}.jpg.txt').write_text(GOOD_GT)
    eighth = [index for index, _ in ResumableSampler(9, seed=0)][7]  # train.py's order (--seed 0)
    (data / 'train_gts' / f'img_{eighth}.jpg.txt').write_text(GOOD_GT + '7,x,malformed\n')
    exp = experiment_yaml(tmp_path / 'strict.yaml', data, 'raise')
    result = run(
        exp,
        *FAULT_ARGS,
        '--batch_size',
        '3',
        '--epochs',
        '1',
        '--name',
        'strict',
        '--workspace_root',
        str(tmp_path / 'ws'),
    )
    assert result.returncode == 2  # a user's file: concern.cli.run_main's exit code
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert os.path.join('train_gts', f'img_{eighth}.jpg.txt') + ':2: no coordinates' in errors[0]
    # the two steps done before the bad batch are not lost
    assert 'saving model_latest so that no training is lost' in result.stderr
    assert load_checkpoint(tmp_path / 'ws' / 'strict' / 'model' / 'model_latest')['iteration'] == 2


# ---------------------------------------------------------------------------------------- NaN / inf targets
def test_nan_and_inf_coordinates_are_dropped_with_a_warning_never_nan_targets(tmp_path, caplog):
    from data import ImageDataset
    from data.processes import AugmentDetectionData, MakeBorderMap, MakeICDARData, MakeSegDetectionData, NormalizeImage
    from data.readers import AnnotationError

    make_faulty_set(tmp_path, count=8)
    processes = [
        AugmentDetectionData(
            augmenter_args=[['Resize', {'width': SIZE, 'height': SIZE}]], only_resize=True, keep_ratio=False
        ),
        MakeICDARData(),
        MakeSegDetectionData(),
        MakeBorderMap(),
        NormalizeImage(),
    ]
    lists = dict(data_dir=[str(tmp_path)], data_list=[str(tmp_path / 'train_list.txt')], processes=processes)
    lenient = ImageDataset(**lists, on_error='skip')
    with caplog.at_level(logging.WARNING):
        for index in (3, 4):
            sample = lenient[index]
            assert sample['filename'].endswith(f'img_{index}.jpg') and sample['skipped'] == 0
            assert len(sample['polygons']) == 1  # the finite region stays, the NaN / inf one is dropped
            for key in ('image', 'gt', 'mask', 'thresh_map', 'thresh_mask'):
                assert np.isfinite(np.asarray(sample[key])).all(), key
            assert sample['gt'].max() == 1
    assert 'img_3.jpg.txt' in caplog.text and 'img_4.jpg.txt' in caplog.text
    assert lenient.num_bad_lines == 2 and lenient.num_skipped == 0
    strict = ImageDataset(**lists)
    with pytest.raises(AnnotationError, match=r'img_3\.jpg\.txt: region 2 .*NaN or infinite'):
        strict[3]


# ---------------------------------------------------------------------------------------- non-finite streak
def test_a_nonfinite_streak_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    from tests.training.test_trainer import ToyModel, make_trainer

    trainer = make_trainer(tmp_path, model=ToyModel(poison_steps=set(range(5, 100))), max_nonfinite=3, save_interval=2)
    assert trainer.train() == 'nonfinite'
    assert trainer.step == 7 and trainer.skipped_steps == 3  # steps 5, 6, 7 were skipped, then it stopped
    latest = load_checkpoint(tmp_path / 'model' / 'model_latest')
    assert latest['iteration'] == 4  # the last good save: the save due at 6, inside the streak, waits
    assert sorted(os.listdir(tmp_path / 'model')) == [
        'model_epoch_0_minibatch_2',
        'model_epoch_0_minibatch_4',
        'model_latest',
    ]
    for key, value in trainer.model.state_dict().items():  # skipped steps changed nothing
        assert torch.isfinite(value).all() and torch.equal(latest['model'][key], value)
    log = (tmp_path / 'output.log').read_text()
    assert 'stopping: 3 non-finite steps in a row; the last good checkpoint is kept' in log

    brief = make_trainer(tmp_path / 'brief', model=ToyModel(poison_steps={5, 6}), save_interval=2, max_iterations=8)
    assert brief.train() == 'max_iterations' and brief.skipped_steps == 2
    assert 'model_epoch_1_minibatch_7' in os.listdir(tmp_path / 'brief' / 'model')  # the save due at 6, done at 7
