"""The learning rate each experiment file states is the one training uses, and a silent override is reported."""
import glob
import logging
import os

import pytest
import torch

from concern.config import load_config
from training import DecayLearningRate, OptimizerScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = sorted(path for path in glob.glob(os.path.join(ROOT, 'experiments', '**', '*.yaml'), recursive=True)
                     if not os.path.basename(path).startswith('base'))


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
    assert scheduler.update(optimizer, epoch=0, step=0, steps_per_epoch=10) == pytest.approx(stated, abs=0)
    assert optimizer.param_groups[0]['lr'] == stated


def test_the_gnhk_finetune_runs_at_0002_and_mobilenet_at_0007(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, expected in (('gnhk/gnhk_resnet50_deform_thre.yaml', 0.002),
                           ('seg_detector/totaltext_mobilenet_v3_large_thre.yaml', 0.007)):
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
