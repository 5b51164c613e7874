"""Every experiment file compiles, builds its structure and a model that runs on CPU."""

import glob
import os

import pytest
import torch

from concern.runtime import load_experiment_for_inference
from tests import ROOT

EXPERIMENTS = sorted(
    path
    for path in glob.glob(os.path.join(ROOT, 'experiments', '**', '*.yaml'), recursive=True)
    if not os.path.basename(path).startswith('base')
)


def test_every_original_experiment_is_present():
    names = {os.path.relpath(path, os.path.join(ROOT, 'experiments')) for path in EXPERIMENTS}
    for dataset in ('ic15', 'td500', 'totaltext'):
        for depth in ('resnet18', 'resnet50'):
            assert f'seg_detector/{dataset}_{depth}_deform_thre.yaml' in names
    assert 'seg_detector/totaltext_mobilenet_v3_large_thre.yaml' in names
    assert 'ASF/td500_resnet50_deform_thre_asf.yaml' in names


@pytest.mark.parametrize('path', EXPERIMENTS, ids=lambda p: os.path.relpath(p, ROOT))
def test_experiment_builds_a_model_that_runs(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_experiment_for_inference(path)
    structure = config.build('Experiment.structure')
    model = structure.builder.build().eval()
    with torch.inference_mode():
        prob = model({'image': torch.randn(1, 3, 64, 96)}, training=False)
    assert prob.shape == (1, 1, 64, 96)
    assert float(prob.min()) >= 0 and float(prob.max()) <= 1
    assert structure.representer is not None and structure.measurer is not None
    assert config.has('Experiment.train.data_loader')


def test_original_flags_reach_the_config(monkeypatch):
    import train

    monkeypatch.chdir(ROOT)
    args = train.parse_args(
        [
            'experiments/synthetic/quickstart.yaml',
            '--lr',
            '0.01',
            '--epochs',
            '3',
            '--batch_size',
            '4',
            '--resume',
            'x.pth',
            '--start_iter',
            '7',
        ]
    )
    config = load_experiment_for_inference(args.exp)
    for path, value in train.flag_overrides(args, config):
        config.set(path, value)
    train_settings = config.build('Experiment.train')
    assert train_settings.epochs == 3 and train_settings.scheduler.learning_rate.epochs == 3
    assert train_settings.scheduler.optimizer_args['lr'] == 0.01 and train_settings.scheduler.learning_rate.lr == 0.01
    assert train_settings.data_loader.batch_size == 4
    assert train_settings.checkpoint.resume == 'x.pth' and train_settings.checkpoint.start_iter == 7
