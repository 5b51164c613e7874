"""train.py: Ctrl-C (SIGINT) saves a resumable model_latest and exits cleanly; --print-config-only prints the
compiled experiment, overrides included, and trains nothing; --amp (bfloat16) and --channels_last on a CPU."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
import yaml

from concern.checkpoint_io import load_checkpoint
from concern.config import load_config
from tests.scripts.test_train_reliability import COMMON, QUICKSTART, ROOT, TINY, command, environment, run


def test_sigint_saves_model_latest_and_exits_cleanly(tmp_path):
    total = 400  # far more than the run gets to do before Ctrl-C
    args = [
        QUICKSTART,
        *TINY,
        *COMMON,
        '--batch_size',
        '2',
        '--epochs',
        '200',
        '--max_iterations',
        str(total),
        '--workspace_root',
        str(tmp_path),
        '--name',
        'run',
    ]
    metrics = tmp_path / 'run' / 'metrics.jsonl'
    process = subprocess.Popen(
        command(*args),
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
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    assert 'stopped (SIGINT)' in stderr and 'Traceback' not in stderr and 'KeyboardInterrupt' not in stderr
    state = load_checkpoint(tmp_path / 'run' / 'model' / 'model_latest')
    assert 2 <= state['iteration'] < total
    assert not (tmp_path / 'run' / 'model' / 'final').exists()
    logged = [line for line in metrics.read_text().splitlines() if '"split": "train"' in line]
    assert len(logged) == state['iteration']  # every finished iteration is in the checkpoint


def test_print_config_only_prints_the_compiled_experiment_and_trains_nothing(tmp_path):
    result = run(
        QUICKSTART,
        *TINY,
        '--batch_size',
        '3',
        '--epochs',
        '7',
        '--workspace_root',
        str(tmp_path),
        '--print-config-only',
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []  # no workspace, no checkpoint, no log
    printed = yaml.safe_load(result.stdout)
    assert printed['import'] == [] and 'data.processes' in printed['package']
    dumped = tmp_path.parent / f'{tmp_path.name}_printed.yaml'
    dumped.write_text(result.stdout)
    config = load_config(str(dumped))  # the printed file is a self-contained experiment
    assert config.get('Experiment.train.data_loader.batch_size') == 3  # the flags
    assert config.get('Experiment.train.epochs') == 7
    assert config.get('Experiment.train.scheduler.learning_rate').args['epochs'] == 7
    assert config.get('train_data.num_samples') == 4  # and the --opt overrides
    assert config.get('Experiment.structure.builder.model_args')['decoder_args']['inner_channels'] == 32


def test_a_missing_data_list_is_one_sentence_not_a_traceback(tmp_path):
    (tmp_path / 'test_images').mkdir()  # the folders exist: only the list is missing
    (tmp_path / 'test_gts').mkdir()
    (tmp_path / 'exp.yaml').write_text(
        f"import: ['{QUICKSTART}']\npackage: []\ndefine:\n"
        '  - name: train_data\n    class: ImageDataset\n'
        f"    data_dir: ['{tmp_path}']\n    data_list: ['{tmp_path / 'no_list.txt'}']\n"
    )
    result = run(str(tmp_path / 'exp.yaml'), *COMMON, '--workspace_root', str(tmp_path / 'work'))
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert f'cannot read data list {tmp_path / "no_list.txt"}' in result.stderr.strip().splitlines()[-1]


def test_cpu_training_flushes_denormal_floats_unless_told_to_keep_them():
    import torch

    import train

    denormal = torch.tensor([1e-39])  # below float32's smallest normal number, 1.18e-38
    try:
        assert train.flush_denormals(torch.device('cpu'), keep=True) is False
        assert (denormal * 1.0).item() != 0.0
        assert train.flush_denormals(torch.device('cuda')) is False  # CUDA keeps its own setting
        assert (denormal * 1.0).item() != 0.0
        assert train.flush_denormals(torch.device('cpu')) is True
        assert (denormal * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)


def test_init_weights_fine_tunes_from_a_full_checkpoint_with_fresh_counters(tmp_path):
    def train(name, *extra):
        result = run(
            QUICKSTART,
            *TINY,
            *COMMON,
            '--batch_size',
            '2',
            '--epochs',
            '4',
            '--workspace_root',
            str(tmp_path),
            '--name',
            name,
            *extra,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return load_checkpoint(tmp_path / name / 'model' / 'final')

    pretrained = train('pre', '--max_iterations', '3', '--seed', '1')
    assert pretrained['iteration'] == 3
    source = str(tmp_path / 'pre' / 'model' / 'final')
    tuned = train('tune', '--init_weights', source, '--max_iterations', '1')
    scratch = train('scratch', '--max_iterations', '1')
    assert tuned['iteration'] == 1 and tuned['epoch'] == 0  # the counters start at zero, not at 3
    steps = {int(state['step']) for state in tuned['optimizer']['state'].values()}
    assert steps == {1}  # a fresh Adam: one step, not the pre-training's four
    lr = load_config(QUICKSTART).get('Experiment.train.scheduler.optimizer_args')['lr']
    key = next(name for name in tuned['model'] if name.endswith('backbone.conv1.weight'))
    # one Adam step moves a weight by at most about lr: the run started from the pre-trained weights ...
    assert (tuned['model'][key] - pretrained['model'][key]).abs().max() <= 1.5 * lr
    # ... and not from a fresh initialisation (seed 0 here, seed 1 for the pre-training)
    assert (scratch['model'][key] - pretrained['model'][key]).abs().max() > 10 * lr


def test_resume_of_a_full_state_with_start_iter_is_refused_in_one_sentence(tmp_path):
    base = [QUICKSTART, *TINY, *COMMON, '--batch_size', '2', '--workspace_root', str(tmp_path)]
    first = run(*base, '--max_iterations', '1', '--name', 'a')
    assert first.returncode == 0, first.stderr[-3000:]
    source = str(tmp_path / 'a' / 'model' / 'final')
    refused = run(*base, '--resume', source, '--start_iter', '0')
    assert refused.returncode == 2 and 'Traceback' not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert f'Checkpoint {source} is a full training state' in last and '--init_weights' in last
    both = run(*base, '--resume', source, '--init_weights', source)
    assert both.returncode == 2 and 'give --resume to continue a run' in both.stderr.strip().splitlines()[-1]


def test_a_training_set_smaller_than_one_batch_is_one_sentence(tmp_path):
    result = run(QUICKSTART, *TINY, *COMMON, '--batch_size', '8', '--workspace_root', str(tmp_path))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert 'The training set has 4 samples per process, fewer than one batch of 8' in last


def first_losses(tmp_path, name, *extra):
    """The logged training losses of a 2-iteration run (seed 0) and its final checkpoint."""
    result = run(
        QUICKSTART,
        *TINY,
        *COMMON,
        '--batch_size',
        '2',
        '--max_iterations',
        '2',
        '--workspace_root',
        str(tmp_path),
        '--name',
        name,
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / name / 'metrics.jsonl').read_text().splitlines()]
    return [r['loss'] for r in records if r['split'] == 'train'], load_checkpoint(tmp_path / name / 'model' / 'final')


@pytest.mark.parametrize('backbone', ['resnet18', 'deformable_resnet18'])
def test_cpu_amp_and_channels_last_train_the_real_models(tmp_path, backbone):
    """--amp on a CPU is bfloat16 autocast: the same first losses as float32 up to bfloat16's rounding (but not
    identical: autocast is on), float32 weights saved; --channels_last alone changes only the memory order."""
    family = ['--opt', f'Experiment.structure.builder.model_args.backbone={backbone}']
    reference, _ = first_losses(tmp_path, 'fp32', *family)
    mixed, state = first_losses(tmp_path, 'amp', *family, '--amp', '--channels_last')
    assert len(mixed) == 2 and all(abs(m - r) <= 0.05 * r for m, r in zip(mixed, reference)), (mixed, reference)
    assert mixed[0] != reference[0]
    weights = [value for value in state['model'].values() if value.is_floating_point()]
    assert all(value.dtype == torch.float32 and torch.isfinite(value).all() for value in weights)
    if backbone == 'resnet18':
        layout, _ = first_losses(tmp_path, 'nhwc', *family, '--channels_last')
        assert all(abs(n - r) <= 1e-4 * r for n, r in zip(layout, reference)), (layout, reference)
