"""Multi-process training through the real train.py: 2 gloo processes on the CPU (torchrun, and train.py's own
``--num_gpus 2 --device cpu``) train every model family, save and resume exactly, match a one-process oracle of
DDP's averaged gradients, and stop with one line naming the rank when one process fails."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from concern.checkpoint_io import load_checkpoint
from concern.config import load_config
from concern.distributed import DistributedContext
from data.data_loader import make_train_loader
from data.processes import NormalizeImage
from tests import ROOT

QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
MODEL = 'Experiment.structure.builder.model_args'
# The quick-start experiment shrunk: 4 samples of 64x64, a narrow decoder, no workers.
TINY = [
    'train_data.num_samples=4',
    'train_data.image_size=[64,64]',
    'train_data.processes.1.size=[64,64]',
    'Experiment.train.data_loader.num_workers=0',
    f'{MODEL}.decoder_args.inner_channels=32',
    'Experiment.logger.log_interval=1',
]
COMMON = ['--no-progress', '--no-validate', '--batch_size', '2']
FAMILIES = {  # the model families of experiments/ (ResNet-18 plain runs in the equality test below)
    'resnet50': [f'{MODEL}.backbone=resnet50', f'{MODEL}.decoder_args.in_channels=[256,512,1024,2048]'],
    'deformable_resnet18': [f'{MODEL}.backbone=deformable_resnet18'],
    'deformable_resnet50': [
        f'{MODEL}.backbone=deformable_resnet50',  # the original's stride-2 offset read
        f'{MODEL}.decoder_args.in_channels=[256,512,1024,2048]',
    ],
    'mobilenet_v3_large': [f'{MODEL}.backbone=mobilenet_v3_large', f'{MODEL}.decoder_args.in_channels=[24,40,112,960]'],
    'asf': [f'{MODEL}.decoder=SegSpatialScaleDetector', f'{MODEL}.decoder_args.attention_type=scale_channel_spatial'],
}


def opts(overrides):
    return [f'--opt={override}' for override in overrides]


def train(tmp_path, name, *args, launcher='num_gpus', overrides=(), timeout=240):
    """Runs train.py in 2 CPU processes; returns the CompletedProcess."""
    if launcher == 'torchrun':
        command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', 'train.py']
    else:
        command = [sys.executable, 'train.py']
    command += [
        QUICKSTART,
        *opts(TINY + list(overrides)),
        *COMMON,
        '--device',
        'cpu',
        '--name',
        name,
        '--workspace_root',
        str(tmp_path),
        *args,
    ]
    if launcher == 'num_gpus':
        command += ['--num_gpus', '2']
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def build_model(overrides=()):
    config = load_config(QUICKSTART, TINY + list(overrides))
    return config, config.build('Experiment.structure').builder.build()


def parameters(state):
    """The trainable parameters' entries of a checkpoint's model state (BatchNorm buffers left out)."""
    _, model = build_model()
    return {name: state[name] for name, value in model.named_parameters() if value.requires_grad}


@pytest.mark.slow
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_every_model_family_trains_in_two_processes(tmp_path, family):
    """Without the frozen unused layers (ResNet's fc / smooth, MobileNetV3's classifier) DDP stops at the second
    iteration waiting for their gradients."""
    result = train(tmp_path, family, '--max_iterations', '3', overrides=FAMILIES[family])
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'world size 2' in (tmp_path / family / 'output.log').read_text()
    state = load_checkpoint(str(tmp_path / family / 'model' / 'model_latest'))
    assert state['iteration'] == 3
    _, model = build_model(FAMILIES[family])
    assert list(state['model']) == list(model.state_dict())  # the original's keys, frozen layers included


@pytest.mark.slow
def test_every_trainable_parameter_of_every_family_receives_a_gradient():
    """What lets DDP run without find_unused_parameters: one forward / backward leaves no trainable parameter
    without a gradient, and the layers that get none are exactly the frozen ones."""
    for family, overrides in {'resnet18': [], **FAMILIES}.items():
        config, model = build_model(overrides)
        loader = config.build('Experiment.train.data_loader')
        batch = torch.utils.data.default_collate([loader.dataset[index] for index in range(2)])
        loss, _, _ = model(batch, training=True)
        loss.backward()
        without = {name for name, value in model.named_parameters() if value.grad is None}
        frozen = {name for name, value in model.named_parameters() if not value.requires_grad}
        assert without == frozen, family
        assert all(name.split('.')[3] in ('fc', 'smooth', 'features', 'classifier') for name in frozen), family


# Adam's first steps move each weight by about lr * sign(gradient), which turns the rounding differences of
# near-zero gradients (summed in another order by the all-reduce) into differences of lr; SGD keeps them small.
SGD = [
    'Experiment.train.scheduler.optimizer=SGD',
    'Experiment.train.scheduler.optimizer_args={lr: 0.01, momentum: 0.9}',
    'Experiment.train.scheduler.learning_rate.lr=0.01',
]


def oracle_weights(init_state, iterations):
    """One process doing what DDP promises: each step, the gradients of the two processes' halves of the batch
    (make_train_loader for rank 0 and rank 1 of 2), averaged, then the optimizer's step. One thread, as each
    training process has (OMP_NUM_THREADS=1), so that the convolutions sum in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _oracle_weights(init_state, iterations)
    finally:
        torch.set_num_threads(threads)


def _oracle_weights(init_state, iterations):
    config, model = build_model(SGD + ['Experiment.train.data_loader.batch_size=2'])
    model.load_state_dict(init_state)
    model.train()
    settings = config.build('Experiment.train')
    scheduler = settings.scheduler
    optimizer = scheduler.create_optimizer(model.parameters())
    loaders = [make_train_loader(settings.data_loader, DistributedContext(rank, 2, rank), seed=0) for rank in range(2)]
    steps_per_epoch = len(loaders[0][0])
    batches = []
    for epoch in range(-(-iterations // steps_per_epoch)):
        for _, sampler in loaders:
            sampler.set_epoch(epoch)
        batches += [(epoch, halves) for halves in zip(*(loader for loader, _ in loaders))]
    for step, (epoch, halves) in enumerate(batches[:iterations]):
        scheduler.update(optimizer, epoch, step, steps_per_epoch)
        grads = []
        for half in halves:
            model.zero_grad(set_to_none=True)
            loss, _, _ = model(half, training=True)
            loss.backward()
            grads.append(
                {name: value.grad.clone() for name, value in model.named_parameters() if value.grad is not None}
            )
        for name, value in model.named_parameters():
            if name in grads[0]:
                value.grad = (grads[0][name] + grads[1][name]) / 2
        optimizer.step()
    return {name: value.detach() for name, value in model.named_parameters() if value.requires_grad}


@pytest.mark.slow
def test_two_processes_match_one_process_and_resume_exactly(tmp_path):
    """torchrun, 3 iterations from given weights, equals the one-process oracle of averaged gradients (the DB loss
    is not a mean over samples: its balanced BCE and dice sum over the whole batch, so "one process on the combined
    batch" is not what DDP computes; BatchNorm uses each process's own batch, as without --sync_bn). A run of 2
    iterations (train.py --num_gpus 2) resumed for 1 more reaches the uninterrupted run's weights."""
    _, model = build_model()
    init = tmp_path / 'init.pth'
    torch.save(model.state_dict(), init)
    result = train(
        tmp_path, 'whole', '--max_iterations', '3', '--resume', str(init), launcher='torchrun', overrides=SGD
    )
    assert result.returncode == 0, result.stderr[-3000:]
    whole = load_checkpoint(str(tmp_path / 'whole' / 'model' / 'model_latest'))
    assert whole['iteration'] == 3

    expected = oracle_weights(model.state_dict(), 3)
    differences = {
        name: float((torch.as_tensor(whole['model'][name]) - value).abs().max()) for name, value in expected.items()
    }
    largest = max(differences.values())
    print(f'largest weight difference, 2 processes vs the one-process oracle: {largest:.3g}')
    assert largest < 1e-6, sorted(differences.items(), key=lambda item: -item[1])[:3]
    moved = max(
        float((torch.as_tensor(whole['model'][name]) - model.state_dict()[name]).abs().max()) for name in expected
    )
    assert moved > 1e-4  # the comparison is not between untrained weights

    result = train(tmp_path, 'split', '--max_iterations', '2', '--resume', str(init), overrides=SGD)
    assert result.returncode == 0, result.stderr[-3000:]
    latest = tmp_path / 'split' / 'model' / 'model_latest'
    assert load_checkpoint(str(latest))['iteration'] == 2
    result = train(
        tmp_path, 'split', '--max_iterations', '3', '--resume', str(latest), launcher='torchrun', overrides=SGD
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = load_checkpoint(str(latest))
    assert resumed['iteration'] == 3
    for name, value in parameters(whole['model']).items():
        np.testing.assert_allclose(resumed['model'][name].numpy(), value.numpy(), rtol=0, atol=1e-6, err_msg=name)


class NormalizeImageThenFail(NormalizeImage):
    """NormalizeImage that raises on the process of rank ``rank`` from its ``after + 1``-th sample on."""

    def __init__(self, rank=1, after=2):
        super().__init__()
        self.rank, self.after, self.calls = rank, after, 0

    def process(self, data):
        self.calls += 1
        if os.environ.get('RANK') == str(self.rank) and self.calls > self.after:
            raise RuntimeError(f'injected failure on sample {self.calls}\nsecond line')
        return super().process(data)


@pytest.mark.slow
def test_a_failing_process_names_its_rank_and_the_last_checkpoint_and_the_others_stop(tmp_path):
    failing = f'train_data.processes.5={{class: {__name__}.NormalizeImageThenFail, rank: 1, after: 2}}'
    started = time.time()
    result = train(
        tmp_path,
        'fail',
        '--max_iterations',
        '6',
        overrides=[failing, 'Experiment.train.model_saver.save_interval=2'],
        timeout=180,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert time.time() - started < 120
    checkpoint = os.path.join(str(tmp_path), 'fail', 'model', 'model_latest')
    assert (
        f'error: rank 1 of 2 failed after iteration 2: RuntimeError: injected failure on sample 3; '
        f'the last checkpoint is {checkpoint}.'
    ) in result.stderr, result.stderr[-3000:]
    assert 'second line;' not in result.stderr
    # the launcher's line comes last (a multiprocessing resource_tracker warning about the stopped processes'
    # semaphores may follow it)
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert errors[-1].startswith('error: training process'), result.stderr[-3000:]
    assert load_checkpoint(checkpoint)['iteration'] == 2


def test_num_gpus_and_sync_bn_are_refused_where_they_cannot_run(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES='')
    env.pop('WORLD_SIZE', None)
    for flags, message in (
        (['--num_gpus', '2'], '--num_gpus 2 needs 2 CUDA devices but 0 are visible'),
        (['--num_gpus', '0'], '--num_gpus 0 is not a number of processes'),
        (['--sync_bn', '--device', 'cpu'], '--sync_bn needs a multi-process CUDA run'),
        (['--sync_bn', '--num_gpus', '2', '--device', 'cpu'], 'SyncBatchNorm does not run on'),
    ):
        result = subprocess.run(
            [sys.executable, 'train.py', QUICKSTART, '--workspace_root', str(tmp_path), *flags],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2 and message in result.stderr, (flags, result.stderr[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)  # refused before anything was written
