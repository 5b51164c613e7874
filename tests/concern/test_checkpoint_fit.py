"""Inference and export refuse a checkpoint that does not fit the experiment, naming the experiment it fits."""

import logging
import os
import subprocess
import sys

import pytest
import torch

from concern.checkpoint_io import (
    CheckpointMismatchError,
    describe_model_keys,
    load_model_weights,
    save_checkpoint,
)
from concern.errors import UserError
from concern.runtime import build_model_with_weights, load_experiment_for_inference
from tests import ROOT

SMALL = ['Experiment.structure.builder.model_args.decoder_args.inner_channels=16']


def build(experiment, overrides=SMALL):
    config = load_experiment_for_inference(os.path.join(ROOT, 'experiments', experiment), overrides)
    return config.build('Experiment.structure')


def release_state(model):
    """The original's release format: a bare state dict, keys 'model.module.*'."""
    return {key: value.clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize(
    'experiment, expected',
    [
        (
            'seg_detector/totaltext_resnet18_deform_thre.yaml',
            'deformable ResNet-18 DBNet (experiments/seg_detector/*_resnet18_deform_thre.yaml)',
        ),
        (
            'seg_detector/ic15_resnet50_deform_thre.yaml',
            'deformable ResNet-50 DBNet (experiments/seg_detector/*_resnet50_deform_thre.yaml)',
        ),
        ('ASF/td500_resnet50_deform_thre_asf.yaml', 'deformable ResNet-50 DBNet++ (ASF) (experiments/ASF/'),
        ('seg_detector/totaltext_mobilenet_v3_large_thre.yaml', 'MobileNetV3-large'),
        ('synthetic/quickstart.yaml', 'a ResNet-18 DBNet (experiments/synthetic/quickstart.yaml)'),
    ],
)
def test_the_model_is_read_from_the_keys(experiment, expected):
    assert expected in describe_model_keys(build(experiment).builder.build().state_dict())


def test_a_resnet18_file_on_a_resnet50_experiment_is_refused_in_one_sentence(tmp_path):
    path = tmp_path / 'totaltext_resnet18'
    torch.save(release_state(build('seg_detector/totaltext_resnet18_deform_thre.yaml').builder.build()), path)
    structure = build('seg_detector/totaltext_resnet50_deform_thre.yaml')
    with pytest.raises(CheckpointMismatchError) as caught:
        build_model_with_weights(structure, str(path), 'cpu')
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and '\n' not in message and message.count('; ') <= 3
    assert message.startswith(f'Checkpoint {path} does not fit')
    assert "lacks 212 of the model's keys (model.module.backbone.layer1.0.bn3.bias" in message  # first keys named
    assert 'deformable ResNet-18 DBNet (experiments/seg_detector/*_resnet18_deform_thre.yaml)' in message
    assert '--non_strict' in message
    # --non_strict: the original's lenient load (the matching keys only)
    model = build_model_with_weights(structure, str(path), 'cpu', strict=False)
    assert torch.equal(
        model.state_dict()['model.module.backbone.conv1.weight'], torch.load(path)['model.module.backbone.conv1.weight']
    )


def test_other_shapes_are_refused_and_extra_keys_are_a_warning(tmp_path, caplog):
    structure = build('seg_detector/td500_resnet18_deform_thre.yaml')
    wider = build(
        'seg_detector/td500_resnet18_deform_thre.yaml',
        ['Experiment.structure.builder.model_args.decoder_args.inner_channels=32'],
    ).builder.build()
    with pytest.raises(CheckpointMismatchError, match=r'other shapes \(model\.module\.decoder\.'):
        load_model_weights(structure.builder.build(), release_state(wider), fitting=True)
    state = release_state(structure.builder.build())
    state['model.module.decoder.extra.weight'] = torch.zeros(1)
    path = tmp_path / 'extra.pth'
    save_checkpoint({'model': state}, path)
    with caplog.at_level(logging.WARNING):
        model = build_model_with_weights(structure, str(path), 'cpu')
    assert 'unexpected keys' in caplog.text and 'decoder.extra.weight' in caplog.text
    assert torch.equal(model.state_dict()['model.module.decoder.in5.weight'], state['model.module.decoder.in5.weight'])


def test_eval_and_convert_refuse_and_non_strict_loads(tmp_path):
    """The real scripts: exit 2 with the sentence; eval.py --non_strict runs to the end."""
    experiment = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
    tiny = [
        'validate_data.num_samples=1',
        'validate_data.image_size=[64,64]',
        "validate_data.processes.0.augmenter_args=[['Resize', {'width': 64, 'height': 64}]]",
        'Experiment.structure.builder.model_args.decoder_args.inner_channels=16',
    ]
    other = load_experiment_for_inference(experiment, tiny[:3]).build('Experiment.structure').builder.build()
    checkpoint = tmp_path / 'other.pth'
    save_checkpoint({'model': other.state_dict()}, checkpoint)  # inner_channels 128: other decoder shapes
    opts = [item for override in tiny for item in ('--opt', override)]
    eval_command = [
        sys.executable,
        'eval.py',
        experiment,
        '--resume',
        str(checkpoint),
        '--device',
        'cpu',
        '--result_dir',
        str(tmp_path / 'results'),
        *opts,
    ]
    for command in (
        eval_command,
        [
            sys.executable,
            'convert_to_onnx.py',
            experiment,
            '--resume',
            str(checkpoint),
            '--output',
            str(tmp_path / 'model.onnx'),
            *opts,
        ],
    ):
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 2, done.stderr[-2000:]
        assert 'does not fit this experiment' in done.stderr and 'Traceback' not in done.stderr
    done = subprocess.run(
        eval_command + ['--non_strict'], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'precision' in done.stdout
