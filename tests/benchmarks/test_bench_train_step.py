"""benchmarks/bench_train_step.py: the batch it trains on, the timing on the CPU, the user errors."""

import subprocess
import sys

import torch

from benchmarks.bench_train_step import label_batch, time_steps
from tests import ROOT


def test_label_batch_is_shaped_as_the_pipeline_output():
    batch = label_batch(3, 64, torch.device('cpu'))
    assert batch['image'].shape == (3, 3, 64, 64) and batch['gt'].shape == (3, 1, 64, 64)
    for key in ('mask', 'thresh_map', 'thresh_mask'):
        assert batch[key].shape == (3, 64, 64) and batch[key].dtype == torch.float32
    assert set(batch['gt'].unique().tolist()) == {0.0, 1.0} and 0.02 < batch['gt'].mean() < 0.3
    assert 0.3 <= batch['thresh_map'].min() and batch['thresh_map'].max() <= 0.7
    assert set(batch['thresh_mask'].unique().tolist()) == {0.0, 1.0}


def test_times_real_training_steps_on_the_cpu():
    times = time_steps(
        'experiments/seg_detector/ic15_resnet18_deform_thre.yaml', 'cpu', 2, 64, amp=False, steps=1, repeats=1
    )
    assert len(times) == 1 and all(t > 0 for t in times)


def test_times_bfloat16_channels_last_steps_of_the_deformable_model_on_the_cpu():
    command = [sys.executable, '-m', 'benchmarks.bench_train_step', '--device', 'cpu', '--amp', '--channels_last']
    command += ['--batch', '2', '--size', '64', '--steps', '1', '--repeats', '1']
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'amp, channels_last:' in result.stdout and 'images/s' in result.stdout


def test_cuda_without_a_gpu_is_a_user_error():
    if torch.cuda.is_available():
        return
    command = [sys.executable, '-m', 'benchmarks.bench_train_step', '--device', 'cuda']
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and '--device cuda' in result.stderr and 'Traceback' not in result.stderr
