"""Every entry point ends a user's mistake with one sentence on stderr and exit code 2 (concern.cli.run_main), and
every flag does what it says: the real scripts as subprocesses on tiny synthetic data written here."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from concern.cli import run_main, set_loader_workers, set_test_size, user_error_message
from concern.config import load_config
from concern.errors import UserError
from inference.thresholds import resolve_box_thresh
from tests.scripts.common import QUICKSTART, ROOT, TINY
from tests.scripts.common import RESIZE_96 as RESIZE

IC15_R18 = os.path.join(ROOT, 'experiments', 'seg_detector', 'ic15_resnet18_deform_thre.yaml')


def run(script, *args, env=None):
    environment = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **(env or {}))
    # tools/ and benchmarks/ are packages, run as users run them: python -m tools.NAME
    command = ['-m', script[:-3].replace('/', '.')] if script.startswith('tools/') else [os.path.join(ROOT, script)]
    return subprocess.run(
        [sys.executable, *command, *map(str, args)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line(result, *culprits):
    """Exit code 2, no traceback, and the error is one line, an 'error:' sentence naming every culprit, at the end
    of stderr (before it only progress bars and train.py's log lines)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr and lines[-1].startswith('error: '), result.stderr[-3000:]
    # (a progress bar's '\r' after a log line's '\n' makes an empty line)
    others = [line for line in lines[:-1] if line and not ('it/s]' in line or 'INFO:' in line or 'WARNING:' in line)]
    assert others == [], result.stderr[-3000:]
    for culprit in culprits:
        assert str(culprit) in lines[-1], (culprit, lines[-1])
    return lines[-1]


def write_image_set(root, split, names):
    """A tiny dataset in the DB layout: 96x96 images with one word, gts in the original's naming."""
    (root / f'{split}_images').mkdir(parents=True)
    (root / f'{split}_gts').mkdir()
    for name in names:
        image = np.full((96, 96, 3), 255, np.uint8)
        cv2.putText(image, 'Ab', (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 0), 3)
        cv2.imwrite(str(root / f'{split}_images' / name), image)
        gt = f'{name}.txt' if split == 'train' else f'gt_{name.split(".")[0]}.txt'
        (root / f'{split}_gts' / gt).write_text('8,30,70,30,70,66,8,66,Ab\n')
    (root / f'{split}_list.txt').write_text(''.join(f'{name}\n' for name in names))


def image_experiment(path, data, split='test'):
    """The quick start with its validation set (and evaluation: a YAML alias of it) read from ``data``."""
    path.write_text(f"""import: ['{QUICKSTART}']
package: []
define:
  - name: validate_data
    class: ImageDataset
    data_dir: ['{data}']
    data_list: ['{data}/{split}_list.txt']
    is_training: False
    processes:
        - {{class: AugmentDetectionData, augmenter_args: {RESIZE}, only_resize: True, keep_ratio: True}}
        - {{class: MakeICDARData}}
        - {{class: MakeSegDetectionData}}
        - {{class: NormalizeImage}}
""")
    return path


# ------------------------------------------------------------------------------------------------ the runner
def test_run_main_prints_a_user_error_in_one_line_and_keeps_tracebacks_of_bugs(capsys):
    import data.readers  # noqa: F401  (AnnotationError: the runner knows the UserError classes imported)

    def mistake(argv):
        raise UserError('--thing x does not exist; give another.')

    def worker_mistake(argv):  # a UserError re-raised by a DataLoader worker, as torch wraps it
        raise RuntimeError(
            'Caught AnnotationError in DataLoader worker process 0.\nOriginal Traceback (most recent '
            'call last):\n  File "x.py", line 1, in f\ndata.readers.common.AnnotationError: '
            'gts/a.txt:2: polygon has 1 point(s)'
        )

    def bug(argv):
        raise KeyError('internal')

    assert run_main(mistake, []) == 2
    assert capsys.readouterr().err == 'error: --thing x does not exist; give another.\n'
    assert run_main(worker_mistake, []) == 2
    assert capsys.readouterr().err == 'error: gts/a.txt:2: polygon has 1 point(s)\n'
    with pytest.raises(KeyError):
        run_main(bug, [])
    assert run_main(lambda argv: None, []) == 0 and run_main(lambda argv: 1, []) == 1
    assert user_error_message(RuntimeError('Caught KeyError in DataLoader worker process 0.\nKeyError: x')) is None


def test_user_input_exceptions_are_user_errors():
    from backbones.pretrained import PretrainedDownloadError
    from concern.checkpoint_io import CheckpointError, CheckpointNotFoundError
    from concern.config import ConfigError
    from data.image_dataset import DatasetError
    from data.image_io import ImageReadError
    from data.readers import AnnotationError

    for kind in (
        ConfigError,
        ImageReadError,
        AnnotationError,
        CheckpointError,
        CheckpointNotFoundError,
        DatasetError,
        PretrainedDownloadError,
    ):
        assert issubclass(kind, UserError), kind
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)  # callers catching the builtin types still work


def test_opt_class_sets_the_class_and_validation_overrides_reach_the_evaluation_alias():
    config = load_config(
        IC15_R18, ['train_data.class=SyntheticTextDataset', 'Experiment.validation.data_loaders.icdar2015.batch_size=3']
    )
    assert config.get('train_data').cls.__name__ == 'SyntheticTextDataset'
    assert 'class' not in config.get('train_data').args
    assert config.get('Experiment.evaluation.data_loaders.icdar2015.batch_size') == 3
    set_loader_workers(config, 'Experiment.train', 0)
    set_loader_workers(config, 'Experiment.evaluation', 1)
    assert config.get('Experiment.train.data_loader.num_workers') == 0
    assert config.get('Experiment.validation.data_loaders.icdar2015.num_workers') == 1


def test_test_size_resizes_every_test_set_and_refuses_what_it_cannot_change():
    for keep_ratio, expected in ((False, (3, 96, 160)), (True, (3, 96, 96))):  # keep_ratio: H, and w/h of 256x256
        overrides = ['validate_data.num_samples=1', f'validate_data.processes.0.keep_ratio={keep_ratio}']
        config = load_config(QUICKSTART, overrides)
        set_test_size(config, 'Experiment.validation', (160, 96))
        for loader in config.build('Experiment.validation').data_loaders.values():
            assert tuple(loader.dataset[0]['image'].shape) == expected  # C x H x W, from 256 x 256
    ic15 = load_config(IC15_R18)  # its evaluation is a YAML alias of the validation: both change
    set_test_size(ic15, 'Experiment.evaluation', (1600, 896))
    assert ic15.get('validate_data.processes.0.augmenter_args') == [['Resize', {'width': 1600, 'height': 896}]]
    with pytest.raises(UserError, match='multiples of 32'):
        set_test_size(load_config(QUICKSTART), 'Experiment.validation', (100, 96))
    bare = load_config(QUICKSTART, ["validate_data.processes.0.augmenter_args=[['Fliplr', 0.5]]"])
    with pytest.raises(UserError, match="has no \\['Resize'"):
        set_test_size(bare, 'Experiment.validation', (96, 96))


def test_box_thresh_comes_from_the_flag_else_the_experiment_else_the_original_default():
    assert resolve_box_thresh(0.3, load_config(QUICKSTART)) == (0.3, '--box_thresh')
    value, source = resolve_box_thresh(None, load_config(QUICKSTART))
    assert value == 0.5 and 'quickstart.yaml' in source and 'representer' in source
    value, source = resolve_box_thresh(None, load_config(IC15_R18))  # the original's files set none: its 0.6
    assert value == 0.6 and 'original' in source


# ------------------------------------------------------------------------------------------------ train.py
def test_max_iterations_writes_final(trained):
    names = sorted(path.name for path in (trained / 'model').iterdir())
    assert names == ['final', 'model_epoch_5_minibatch_12', 'model_latest']  # 12 of 14 scheduled iterations


@pytest.mark.parametrize('case', ['unknown_backbone', 'offline_download'])
def test_train_refuses_in_one_sentence(case, tmp_path):
    args, env = [QUICKSTART, *TINY, '--workspace_root', tmp_path, '--max_iterations', 1], None
    if case == 'unknown_backbone':
        args += ['--opt', 'Experiment.structure.builder.model_args.backbone=resnet19']
        culprits = ['resnet19', 'resnet18']
    elif case == 'offline_download':  # no network: the download fails at once (no proxy listens on port 9)
        args += ['--opt', 'Experiment.structure.builder.model_args.backbone_args.pretrained=true']
        env = {
            'TORCH_HOME': str(tmp_path / 'hub'),
            'https_proxy': 'http://127.0.0.1:9',
            'HTTPS_PROXY': 'http://127.0.0.1:9',
            'http_proxy': 'http://127.0.0.1:9',
        }
        culprits = ['resnet18', 'pretrained: false', 'ImageNet']
    assert_one_line(run('train.py', *args, env=env), *culprits)


def test_train_resuming_a_resnet50_from_a_resnet18_checkpoint_says_so(trained, tmp_path):
    r50 = [
        '--opt',
        'Experiment.structure.builder.model_args.backbone=resnet50',
        '--opt',
        'Experiment.structure.builder.model_args.decoder_args.in_channels=[256,512,1024,2048]',
    ]
    result = run(
        'train.py',
        QUICKSTART,
        *TINY,
        *r50,
        '--resume',
        trained / 'model' / 'final',
        '--workspace_root',
        tmp_path,
        '--max_iterations',
        1,
    )
    assert_one_line(result, trained / 'model' / 'final', 'different model', 'this experiment')


def test_train_names_a_missing_training_image_folder(tmp_path):
    data = tmp_path / 'data'
    write_image_set(data, 'test', ['a.jpg'])  # test_images only: no train_images
    exp = tmp_path / 'exp.yaml'
    exp.write_text(
        image_experiment(tmp_path / 'base.yaml', data)
        .read_text()
        .replace('validate_data', 'train_data')
        .replace('is_training: False', 'is_training: True')
        .replace('test_list', 'train_list')
    )
    result = run('train.py', exp, '--workspace_root', tmp_path, '--max_iterations', 1, '--no-validate')
    assert_one_line(result, os.path.join(str(data), 'train_images'), 'does not exist')


def test_num_workers_reaches_the_training_and_validation_loaders(tmp_path):
    result = run('train.py', QUICKSTART, '--num_workers', 3, '--print-config-only')
    assert result.returncode == 0, result.stderr[-3000:]
    import yaml

    experiment = next(item for item in yaml.safe_load(result.stdout)['define'] if item['name'] == 'Experiment')
    assert experiment['train']['data_loader']['num_workers'] == 3
    assert experiment['validation']['data_loaders']['synthetic']['num_workers'] == 3
    assert experiment['evaluation']['data_loaders']['synthetic']['num_workers'] == 3


# ------------------------------------------------------------------------------------------------ eval.py
@pytest.mark.parametrize('missing', ['image', 'gt'])
def test_eval_names_a_missing_image_or_gt_of_the_test_list(missing, trained, tmp_path):
    data = tmp_path / 'data'
    write_image_set(data, 'test', ['a.jpg', 'b.jpg'])
    culprit = data / 'test_images' / 'b.jpg' if missing == 'image' else data / 'test_gts' / 'gt_b.txt'
    culprit.unlink()
    exp = image_experiment(tmp_path / 'exp.yaml', data)
    # --num_workers 1: the error comes from a DataLoader worker and is still one line
    result = run(
        'eval.py',
        exp,
        '--resume',
        trained / 'model' / 'final',
        '--device',
        'cpu',
        '--num_workers',
        1 if missing == 'gt' else 0,
        '--opt',
        'Experiment.structure.builder.model_args.decoder_args.inner_channels=32',
        '--result_dir',
        tmp_path / 'out',
    )
    assert_one_line(result, culprit)


@pytest.mark.parametrize(
    'flags, culprits',
    [
        (['--thresh', '0.3', '--thresh_sweep', '0.2:0.4:0.1'], ['--thresh and --thresh_sweep exclude each other']),
        (['--thresh_sweep', '0.2-0.4'], ["--thresh_sweep '0.2-0.4'", 'START:STOP:STEP']),
        (['--thresh_sweep', '0.4:0.2:0.1'], ["--thresh_sweep '0.4:0.2:0.1'", 'STOP >= START']),
        (['--bootstrap', '-5'], ['--bootstrap -5', 'number of resamples']),
    ],
)
def test_eval_thresh_sweep_mistakes_are_one_sentence(flags, culprits, tmp_path):
    result = run('eval.py', QUICKSTART, '--resume', tmp_path / 'none', '--device', 'cpu', *flags)
    assert_one_line(result, *culprits)


def test_eval_resume_pointing_at_a_folder_lists_its_checkpoints(trained):
    result = run('eval.py', QUICKSTART, '--resume', trained / 'model', '--device', 'cpu')
    assert_one_line(result, trained / 'model', 'is a folder', 'final', 'model_latest')


def test_eval_sweep_writes_prints_and_saves_one_threshold_and_fp32_implies_optimize(trained, tmp_path):
    out = tmp_path / 'out'
    result = run(
        'eval.py',
        QUICKSTART,
        *TINY,
        '--resume',
        trained / 'model' / 'final',
        '--device',
        'cpu',
        '--result_dir',
        out,
        '--box_thresh_sweep',
        '0.0:0.9:0.3',
        '--thresh_sweep',
        '0.2:0.4:0.2',
        '--test_size',
        64,
        64,
        '--precision',
        'fp32',
        '--num_workers',
        0,
        '--bootstrap',
        30,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == 'box_thresh: the best of 0.0:0.9:0.3 (--box_thresh_sweep)'
    assert 'thresh: the best of 0.2:0.4:0.2 (--thresh_sweep)' in lines[1:4]
    report = json.loads((out / 'metrics.json').read_text())
    assert report['optimized'] is True and report['precision'] == 'fp32'  # as its help says
    assert report['test_size'] == [64, 64]
    metrics = report['datasets']['synthetic']
    assert [(row['thresh'], row['box_thresh']) for row in metrics['sweep']] == [
        (thresh, box) for thresh in (0.2, 0.4) for box in (0.0, 0.3, 0.6, 0.9)
    ]
    best = max(metrics['sweep'], key=lambda row: row['fmeasure'])
    assert (metrics['thresh'], metrics['box_thresh']) == (best['thresh'], best['box_thresh'])
    interval = metrics['interval']
    assert interval['resamples'] == 30 and interval['images'] == 3
    assert interval['fmeasure'][0] <= best['fmeasure'] <= interval['fmeasure'][1]
    assert 'synthetic: 95% interval over the 3 images (30 resamples, at the best pair: optimistic)' in result.stdout
    assert f'(box_thresh {best["box_thresh"]}, thresh {best["thresh"]})' in result.stdout
    scores = [float(line.split(',')[-1]) for path in out.glob('res_*.txt') for line in path.read_text().splitlines()]
    assert len(list(out.glob('res_*.txt'))) == 3 and scores  # a 2-iteration model scores its boxes near 0.5
    assert min(scores) >= metrics['box_thresh']
    # the files hold every detection at that threshold: the same as a plain run at --box_thresh best
    plain = tmp_path / 'plain'
    result = run(
        'eval.py',
        QUICKSTART,
        *TINY,
        '--resume',
        trained / 'model' / 'final',
        '--device',
        'cpu',
        '--result_dir',
        plain,
        '--box_thresh',
        metrics['box_thresh'],
        '--thresh',
        metrics['thresh'],
        '--test_size',
        64,
        64,
        '--num_workers',
        0,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f'box_thresh {metrics["box_thresh"]} (from --box_thresh)'
    assert f'thresh {metrics["thresh"]} (from --thresh)' in lines[1:4]
    for path in plain.glob('res_*.txt'):  # exact paths: the same boxes, scores within 1e-4
        swept, default = (np.loadtxt(p, delimiter=',', ndmin=2) for p in (out / path.name, path))
        assert swept.shape == default.shape
        np.testing.assert_array_equal(swept[:, :-1], default[:, :-1])
        np.testing.assert_allclose(swept[:, -1], default[:, -1], rtol=0, atol=1e-4)
    assert json.loads((plain / 'metrics.json').read_text())['datasets']['synthetic']['fmeasure'] == best['fmeasure']


# ------------------------------------------------------------------------------------------------ demo.py
def test_demo_uses_the_experiments_box_thresh_and_says_so_first(trained, tmp_path):
    image = np.full((64, 64, 3), 255, np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), image)
    result = run(
        'demo.py',
        QUICKSTART,
        *TINY,
        '--resume',
        trained / 'model' / 'final',
        '--image_path',
        tmp_path / 'a.png',
        '--result_dir',
        tmp_path / 'out',
        '--image_short_side',
        64,
        '--device',
        'cpu',
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[0] == f"box_thresh 0.5 (from the representer's box_thresh in {QUICKSTART})"
    assert json.loads((tmp_path / 'out' / 'run.json').read_text())['settings']['box_thresh'] == 0.5


# ------------------------------------------------------------------------------------------------ the others
def test_convert_to_onnx_without_onnx_names_the_extra(tmp_path):
    fake = tmp_path / 'no_onnx'
    fake.mkdir()
    (fake / 'onnx.py').write_text("raise ModuleNotFoundError(\"No module named 'onnx'\", name='onnx')\n")
    environment = {'PYTHONPATH': f'{fake}{os.pathsep}{ROOT}'}
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, 'convert_to_onnx.py'),
            QUICKSTART,
            '--resume',
            'x',
            '--output',
            str(tmp_path / 'm.onnx'),
        ],
        cwd=ROOT,
        env=dict(os.environ, **environment),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line(result, "'onnx'", 'pip install -r requirements-onnx.txt', 'pip install .[onnx]')


def test_check_dataset_with_an_empty_list(tmp_path):
    write_image_set(tmp_path, 'test', [])
    assert_one_line(run('tools/check_dataset.py', tmp_path), 'test_list.txt', 'name no images')


def test_convert_dataset_missing_images_folder_and_already_converted_gts(tmp_path):
    result = run(
        'tools/convert_dataset.py',
        'icdar2015',
        '--images',
        tmp_path / 'nope',
        '--gts',
        tmp_path,
        '--out',
        tmp_path / 'out',
    )
    assert_one_line(result, '--images', tmp_path / 'nope')
    data = tmp_path / 'db'
    write_image_set(data, 'train', ['img_1.jpg'])  # gts named img_1.jpg.txt: the DB layout already
    result = run(
        'tools/convert_dataset.py',
        'icdar2015',
        '--images',
        data / 'train_images',
        '--gts',
        data / 'train_gts',
        '--out',
        tmp_path / 'out',
        '--split',
        'train',
    )
    assert_one_line(result, data / 'train_gts', 'img_1.jpg.txt', 'gt_img_1.txt', 'already')


def test_score_results_missing_gt_folder(tmp_path):
    assert_one_line(
        run('tools/score_results.py', '--gt', tmp_path / 'nope', '--det', tmp_path), tmp_path / 'nope', '--gt'
    )


def test_logger_asked_for_tensorboard_without_the_package_names_the_install(tmp_path):
    import importlib.util

    from concern.log import Logger

    if importlib.util.find_spec('tensorboard') is not None:
        pytest.skip('tensorboard is installed here')
    with pytest.raises(UserError, match=r'pip install tensorboard'):
        Logger(tensorboard=True).setup(str(tmp_path / 'ws'))
    logger = Logger().setup(str(tmp_path / 'default'))  # the default: without the package, text and JSON only
    assert logger._writer is None
    logger.close()
