"""DecayLearningRate: the original's per-epoch poly decay and the per_iteration / warm-up options; the learning
rate each experiment file states is the one training uses, and a silent override is reported."""

import glob
import logging
import os

import pytest
import torch

from concern.config import load_config
from tests import ROOT
from training import DecayLearningRate, OptimizerScheduler

EXPERIMENTS = sorted(
    path
    for path in glob.glob(os.path.join(ROOT, 'experiments', '**', '*.yaml'), recursive=True)
    if not os.path.basename(path).startswith('base')
)


@pytest.mark.parametrize('path', EXPERIMENTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_experiment_states_its_schedule_lr_and_trains_at_it(path, monkeypatch, caplog):
    monkeypatch.chdir(ROOT)
    config = load_config(path)
    stated = config.get('Experiment.train.scheduler.learning_rate.lr')
    assert stated is not None, f'{path} does not state scheduler.learning_rate.lr'
    with caplog.at_level(logging.WARNING, logger='dbnet'):
        scheduler = config.build('Experiment.train.scheduler')
    assert not [record for record in caplog.records if 'has no lr of its own' in record.getMessage()]
    optimizer = scheduler.create_optimizer([torch.nn.Parameter(torch.zeros(1))])
    schedule = config.get('Experiment.train.scheduler.learning_rate').args
    if schedule.get('warmup_iters'):  # a warm-up starts at warmup_ratio times the stated rate
        stated = stated * schedule.get('warmup_ratio', DecayLearningRate().warmup_ratio)
    assert scheduler.update(optimizer, epoch=0, step=0, steps_per_epoch=10) == pytest.approx(stated, abs=0)
    assert optimizer.param_groups[0]['lr'] == stated


def test_the_gnhk_finetune_runs_at_0002_and_mobilenet_at_0007(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, expected in (
        ('gnhk/gnhk_resnet50_deform_thre.yaml', 0.002),
        ('seg_detector/totaltext_mobilenet_v3_large_thre.yaml', 0.007),
    ):
        scheduler = load_config(os.path.join('experiments', name)).build('Experiment.train.scheduler')
        assert scheduler.current_lr(0, 0) == expected


def test_schedule_without_lr_uses_its_default_and_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger='dbnet'):
        scheduler = OptimizerScheduler('SGD', {'lr': 0.002, 'momentum': 0.9}, DecayLearningRate(epochs=10))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert 'default 0.007 is the learning rate' in warnings[0] and 'scheduler.learning_rate.lr: 0.002' in warnings[0]
    assert scheduler.current_lr(0, 0) == 0.007  # the original's rule is kept
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='dbnet'):
        OptimizerScheduler('SGD', {'lr': 0.007}, DecayLearningRate(epochs=10))  # same value: nothing to say
        OptimizerScheduler('SGD', {'lr': 0.002}, DecayLearningRate(lr=0.002, epochs=10))  # stated: nothing to say
    assert not caplog.records


def poly_with_warmup(lr, epochs, factor, epoch, step, steps_per_epoch, per_iteration, warmup_iters, warmup_ratio):
    """The schedule as documented: lr * (1 - t / (epochs + 1)) ** factor with t the epoch (or the fractional
    epoch step / steps_per_epoch with per_iteration), times a linear ramp from warmup_ratio to 1 over the
    first warmup_iters steps."""
    t = step / steps_per_epoch if per_iteration else epoch
    rate = lr * max(0.0, 1 - t / (epochs + 1)) ** factor
    if step < warmup_iters:
        rate *= warmup_ratio + (1 - warmup_ratio) * step / warmup_iters
    return rate


def test_hand_computed_values():
    plain = DecayLearningRate(lr=0.01, epochs=9, factor=1.0)
    assert plain.get_learning_rate(epoch=5, step=23, steps_per_epoch=4) == pytest.approx(0.005)  # 0.01 * (1 - 5/10)
    assert plain.get_learning_rate(epoch=12, step=50, steps_per_epoch=4) == 0.0  # past the end: never negative
    smooth = DecayLearningRate(lr=0.01, epochs=9, factor=1.0, per_iteration=True)
    assert smooth.get_learning_rate(epoch=2, step=10, steps_per_epoch=4) == pytest.approx(0.0075)  # t = 2.5
    warm = DecayLearningRate(lr=0.01, epochs=9, factor=1.0, per_iteration=True, warmup_iters=8, warmup_ratio=0.1)
    # t = 0.5, ramp 0.1 + 0.9 * 2/8 = 0.325
    assert warm.get_learning_rate(epoch=0, step=2, steps_per_epoch=4) == pytest.approx(0.01 * 0.95 * 0.325)
    assert warm.get_learning_rate(epoch=0, step=0, steps_per_epoch=4) == pytest.approx(0.001)  # lr * ratio
    assert warm.get_learning_rate(epoch=2, step=8, steps_per_epoch=4) == pytest.approx(0.008)  # warm-up over


def test_to_zero_divides_by_epochs_and_ends_at_zero():
    # one epoch of 10 steps, factor 1: the original's divisor (epochs + 1 = 2) ends at half the rate, to_zero at 0
    original = DecayLearningRate(lr=0.01, epochs=1, factor=1.0, per_iteration=True)
    annealed = DecayLearningRate(lr=0.01, epochs=1, factor=1.0, per_iteration=True, to_zero=True)
    assert original.get_learning_rate(epoch=0, step=5, steps_per_epoch=10) == pytest.approx(0.0075)
    assert annealed.get_learning_rate(epoch=0, step=5, steps_per_epoch=10) == pytest.approx(0.005)
    assert original.get_learning_rate(epoch=0, step=10, steps_per_epoch=10) == pytest.approx(0.005)
    assert annealed.get_learning_rate(epoch=0, step=10, steps_per_epoch=10) == 0.0
    assert annealed.get_learning_rate(epoch=0, step=9, steps_per_epoch=10) == pytest.approx(0.001)  # last step
    per_epoch = DecayLearningRate(lr=0.01, epochs=4, factor=1.0, to_zero=True)
    assert [per_epoch.get_learning_rate(e, 0) for e in range(5)] == pytest.approx([0.01, 0.0075, 0.005, 0.0025, 0])


@pytest.mark.parametrize('per_iteration', [False, True])
@pytest.mark.parametrize('warmup_iters', [0, 7])
def test_every_step_follows_the_formula(per_iteration, warmup_iters):
    lr, epochs, factor, steps_per_epoch, ratio = 0.007, 5, 0.9, 3, 0.25
    schedule = DecayLearningRate(
        lr=lr, epochs=epochs, factor=factor, per_iteration=per_iteration, warmup_iters=warmup_iters, warmup_ratio=ratio
    )
    rates = []
    for step in range(epochs * steps_per_epoch):
        epoch = step // steps_per_epoch
        rate = schedule.get_learning_rate(epoch, step, steps_per_epoch)
        expected = poly_with_warmup(
            lr, epochs, factor, epoch, step, steps_per_epoch, per_iteration, warmup_iters, ratio
        )
        assert rate == pytest.approx(expected, rel=1e-12), (step, rate, expected)
        rates.append(rate)
    if warmup_iters:
        assert rates[0] == pytest.approx(lr * ratio) and rates[1] > rates[0]
    else:
        assert rates[0] == pytest.approx(lr)
    after = rates[warmup_iters:]
    assert all(a >= b for a, b in zip(after, after[1:]))  # decays after the warm-up
    if per_iteration:  # smooth: each step lower than the one before
        assert all(a > b for a, b in zip(after, after[1:]))
    else:  # constant within an epoch
        assert len(set(rates[warmup_iters + (-warmup_iters) % steps_per_epoch :][:steps_per_epoch])) == 1
