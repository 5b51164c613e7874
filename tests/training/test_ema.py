"""The weight average (``ema_decay`` / ``--ema``): the formula against a slow float64 reference, the checkpoint
layout, exact resumption, and train.py / eval.py on the real models with it."""

import copy

import pytest
import torch

from concern.checkpoint_io import load_checkpoint
from concern.config import ConfigError
from experiment import TrainSettings
from tests.scripts.common import run_python
from tests.scripts.test_train_reliability import COMMON, QUICKSTART, TINY, run
from tests.training.test_trainer import make_trainer
from training.ema import ModelEMA


class BatchNormModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        return self.norm(self.conv(x))


def test_average_follows_the_formula_with_its_warm_up():
    model = BatchNormModel()
    ema = ModelEMA(model, decay=0.9)
    expected = {key: value.double().clone() for key, value in model.state_dict().items()}
    for step in range(30):
        with torch.no_grad():  # a "training step": new weights, and a forward pass that moves the running stats
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        model.train()(torch.randn(2, 3, 8, 8) + step)
        ema.update(model)
        decay = min(0.9, (1 + step) / (10 + step))  # the n-th update uses (1 + n) / (10 + n) until it reaches 0.9
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                expected[key] = decay * expected[key] + (1 - decay) * value.double()
            else:
                expected[key] = value.double().clone()
    averaged = ema.module.state_dict()
    assert ema.updates == 30
    for key, value in expected.items():
        torch.testing.assert_close(averaged[key].double(), value, rtol=1e-5, atol=1e-5, msg=key)
    assert averaged['norm.num_batches_tracked'] == model.state_dict()['norm.num_batches_tracked'] == 30
    assert not (averaged['conv.weight'] - model.conv.weight).abs().max() < 1e-3  # an average, not a copy
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.parametrize('bad', [1.0, -0.1, 'high'])
def test_a_decay_outside_zero_to_one_is_one_sentence(bad):
    with pytest.raises(ConfigError, match=r'Experiment.train.ema_decay: .* give a number in \[0, 1\)'):
        TrainSettings(ema_decay=bad)


def trainer_with_average(workspace, max_iterations):
    return make_trainer(workspace, max_iterations=max_iterations, ema_decay=0.8)


def test_checkpoints_hold_the_average_as_the_model_and_resume_exactly(tmp_path):
    full = trainer_with_average(tmp_path / 'full', max_iterations=8)
    start = copy.deepcopy(full.model.state_dict())
    full.train()
    state = load_checkpoint(str(tmp_path / 'full' / 'model' / 'final'))
    assert state['ema'] == {'decay': 0.8, 'updates': 8}
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(state['training_model'][key], value, rtol=0, atol=0)
        torch.testing.assert_close(state['model'][key], full.ema.module.state_dict()[key], rtol=0, atol=0)
        assert not torch.equal(state['model'][key], value) and not torch.equal(state['model'][key], start[key])

    first = trainer_with_average(tmp_path / 'split', max_iterations=3)
    first.train()
    second = trainer_with_average(tmp_path / 'split', max_iterations=8)
    second.resume(str(tmp_path / 'split' / 'model' / 'model_latest'))
    assert second.ema.updates == 3
    second.train()
    resumed = load_checkpoint(str(tmp_path / 'split' / 'model' / 'final'))
    for part in ('model', 'training_model'):
        for key, value in state[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=0, atol=1e-7, msg=f'{part} {key}')

    # a run without the average resumes the trained weights; --init_weights starts from the averaged ones
    plain = make_trainer(tmp_path / 'plain', max_iterations=9)
    plain.resume(str(tmp_path / 'full' / 'model' / 'final'))
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(value, state['training_model'][key], rtol=0, atol=0)
    tuned = trainer_with_average(tmp_path / 'tuned', max_iterations=1)
    tuned.init_weights(str(tmp_path / 'full' / 'model' / 'final'))
    for key, value in tuned.model.state_dict().items():
        torch.testing.assert_close(value, state['model'][key], rtol=0, atol=0)
        torch.testing.assert_close(tuned.ema.module.state_dict()[key], value, rtol=0, atol=0)
    assert tuned.ema.updates == 0


def test_a_run_without_the_average_saves_what_it_did_before(tmp_path):
    trainer = make_trainer(tmp_path, max_iterations=2)
    assert trainer.ema is None
    trainer.train()
    state = load_checkpoint(str(tmp_path / 'model' / 'final'))
    assert 'training_model' not in state and 'ema' not in state


@pytest.mark.slow
def test_train_with_ema_validates_and_saves_the_average_that_eval_reads(tmp_path):
    """train.py --ema on the quick-start model (ResNet-18 with BatchNorm): validation runs on the average, the
    checkpoint's 'model' is the average (eval.py reads it), and a bad decay is one sentence."""
    base = [QUICKSTART, *TINY, '--no-progress', '--device', 'cpu', '--batch_size', '2']
    base += ['--workspace_root', str(tmp_path), '--opt', 'Experiment.validation.interval=3']
    base += ['--opt', 'validate_data.num_samples=2', '--opt', 'validate_data.image_size=[64,64]']
    base += ['--opt', "validate_data.processes.0.augmenter_args=[['Resize', {'width': 64, 'height': 64}]]"]
    result = run(*base, '--ema', '0.5', '--max_iterations', '3', '--name', 'ema')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'validation synthetic (weight average):' in result.stderr
    state = load_checkpoint(tmp_path / 'ema' / 'model' / 'final')
    assert state['ema'] == {'decay': 0.5, 'updates': 3}
    key = next(name for name in state['model'] if name.endswith('backbone.conv1.weight'))
    assert not torch.equal(state['model'][key], state['training_model'][key])
    evaluated = run_python(
        'eval.py',
        QUICKSTART,
        '--resume',
        tmp_path / 'ema' / 'model' / 'final',
        '--no-results',
        '--plain',
        '--device',
        'cpu',
        '--opt',
        'validate_data.num_samples=2',
        '--opt',
        'validate_data.image_size=[64,64]',
        '--opt',
        "validate_data.processes.0.augmenter_args=[['Resize', {'width': 64, 'height': 64}]]",
        '--opt',
        'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert 'fmeasure' in evaluated.stdout
    refused = run(*base, *COMMON, '--ema', '1.5', '--name', 'bad')
    assert refused.returncode == 2 and 'Traceback' not in refused.stderr
    assert 'Experiment.train.ema_decay: 1.5 is not a decay' in refused.stderr.strip().splitlines()[-1]
