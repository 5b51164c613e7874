"""train.py, eval.py and demo.py as a user runs them: real subprocesses on tiny synthetic data."""

import json
import os

import cv2
import numpy as np

from concern.result_log import detections_by_image, read_results
from tests.scripts.common import QUICKSTART, ROOT, TINY
from tests.scripts.common import run_python as run


def test_train_writes_checkpoints_logs_and_loss_falls(trained):
    assert (trained / 'model' / 'model_latest').exists()
    assert (trained / 'config.yaml').exists() and (trained / 'output.log').exists()
    records = [json.loads(line) for line in (trained / 'metrics.jsonl').read_text().splitlines()]
    losses = [record['loss'] for record in records if record['split'] == 'train']
    assert len(losses) == 12 and np.isfinite(losses).all()  # the shared `trained` fixture: 12 iterations
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    # throughput and the share of wall time spent waiting for data, logged with every training record
    train = [record for record in records if record['split'] == 'train']
    assert all(record['images_per_s'] > 0 and 0 <= record['data_wait_share'] <= 1 for record in train)
    log = (trained / 'output.log').read_text()
    assert 'images/s, data wait' in log and 'denormals flushed to zero' in log  # a CPU run flushes them


def test_eval_prints_precision_recall_f_and_writes_results(trained, tmp_path):
    # the default path (ONNX Runtime on a CPU) and --optimize (folded BatchNorm, channels_last): the detections
    # (box_thresh 0: every candidate kept) and the metrics of --plain (the model as built)
    found = {}
    for name, flags in (('plain', ['--plain']), ('onnxruntime', []), ('optimized', ['--optimize'])):
        folder = tmp_path / name
        result = run(
            os.path.join(ROOT, 'eval.py'),
            QUICKSTART,
            *TINY,
            '--resume',
            str(trained / 'model' / 'model_latest'),
            '--result_dir',
            str(folder),
            '--box_thresh',
            '0.0',
            '--device',
            'cpu',
            '--visualize',
            *flags,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert 'precision' in result.stdout and 'recall' in result.stdout and 'fmeasure' in result.stdout
        words = {'plain': 'plain PyTorch', 'optimized': 'optimised PyTorch', 'onnxruntime': 'onnxruntime'}
        assert f'path: {words[name]} fp32' in result.stdout
        assert len(list((folder / 'vis').glob('*.jpg'))) == 3
        report = json.loads((folder / 'metrics.json').read_text())
        lines = [line.split(',') for path in sorted(folder.glob('res_*.txt')) for line in path.read_text().splitlines()]
        found[name] = report, np.array(lines, dtype=float)
    plain_report, plain_lines = found['plain']
    assert len(plain_lines) > 0
    for name in ('onnxruntime', 'optimized'):
        report, lines = found[name]
        assert report['path'] == name and report['optimized'] == (name == 'optimized')
        assert lines.shape == plain_lines.shape and np.abs(lines[:, :-1] - plain_lines[:, :-1]).max() <= 1
        assert np.abs(lines[:, -1] - plain_lines[:, -1]).max() < 1e-4
        for key in ('precision', 'recall', 'fmeasure'):
            assert report['datasets']['synthetic'][key] == plain_report['datasets']['synthetic'][key], name
    result = run(
        os.path.join(ROOT, 'eval.py'),
        QUICKSTART,
        *TINY,
        '--resume',
        str(trained / 'model' / 'model_latest'),
        '--result_dir',
        str(tmp_path / 'fp16'),
        '--device',
        'cpu',
        '--precision',
        'fp16',
    )
    assert result.returncode == 2 and '--precision fp16 needs a CUDA device' in result.stderr


def test_eval_refuses_a_missing_checkpoint_in_one_sentence(tmp_path):
    result = run(os.path.join(ROOT, 'eval.py'), QUICKSTART, '--resume', str(tmp_path / 'nope'))
    assert result.returncode == 2
    assert 'does not exist' in result.stderr and 'Traceback' not in result.stderr


def test_demo_walks_nested_folders_and_names_the_unreadable_file(trained, tmp_path):
    images = tmp_path / 'images'
    (images / 'sub' / 'deeper').mkdir(parents=True)
    picture = np.full((80, 120, 3), 255, np.uint8)
    cv2.putText(picture, 'Text', (5, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    cv2.imwrite(str(images / 'a.png'), picture)
    cv2.imwrite(str(images / 'sub' / 'B.JPG'), picture)
    cv2.imwrite(str(images / 'sub' / 'deeper' / 'c.webp'), picture)
    (images / 'sub' / 'broken.jpg').write_text('not an image')
    (images / 'notes.txt').write_text('ignored')
    out = tmp_path / 'out'
    result = run(
        os.path.join(ROOT, 'demo.py'),
        QUICKSTART,
        *TINY,
        '--resume',
        str(trained / 'model' / 'model_latest'),
        '--image_path',
        str(images),
        '--result_dir',
        str(out),
        '--visualize',
        '--image_short_side',
        '64',
        '--box_thresh',
        '0.0',
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'broken.jpg' in result.stdout + result.stderr
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        'a.jpg',
        'res_a.txt',
        'res_sub_B.txt',
        'res_sub_deeper_c.txt',
        'results.jsonl',
        'run.json',
        'sub_B.jpg',
        'sub_deeper_c.jpg',
    ]
    records = read_results(str(out))
    assert len([record for record in records if 'detections' in record]) == 3
    assert [record['image'] for record in records if 'error' in record][0].endswith('broken.jpg')


def test_demo_optimize_gives_the_plain_detections_and_fp16_needs_a_gpu(trained, tmp_path):
    picture = np.full((80, 120, 3), 255, np.uint8)
    cv2.putText(picture, 'Text', (5, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    cv2.imwrite(str(tmp_path / 'a.png'), picture)
    common = [
        os.path.join(ROOT, 'demo.py'),
        QUICKSTART,
        *TINY,
        '--resume',
        str(trained / 'model' / 'model_latest'),
        '--image_path',
        str(tmp_path / 'a.png'),
        '--image_short_side',
        '64',
        '--box_thresh',
        '0.0',
        '--device',
        'cpu',
    ]
    found = {}
    for flags in (['--plain'], ['--optimize']):
        out = tmp_path / ('out' + '_'.join(flags))
        result = run(*common, '--result_dir', str(out), *flags)
        assert result.returncode == 0, result.stderr[-3000:]
        found[tuple(flags)] = next(iter(detections_by_image(str(out)).values()))
    plain, fast = found[('--plain',)], found[('--optimize',)]
    assert plain and len(plain) == len(fast)
    for a, b in zip(plain, fast):  # the same boxes (maps equal within 1e-5: a corner may move by a pixel)
        assert np.abs(np.array(a['points']) - np.array(b['points'])).max() <= 1 and abs(a['score'] - b['score']) < 1e-3
    result = run(*common, '--result_dir', str(tmp_path / 'fp16'), '--precision', 'fp16')
    assert result.returncode == 2 and '--precision fp16 needs a CUDA device' in result.stderr


def test_demo_reports_a_wrong_path(trained, tmp_path):
    result = run(
        os.path.join(ROOT, 'demo.py'),
        QUICKSTART,
        '--resume',
        str(trained / 'model' / 'model_latest'),
        '--image_path',
        str(tmp_path / 'missing'),
    )
    assert result.returncode == 2 and 'neither a file nor a folder' in result.stderr
    (tmp_path / 'empty').mkdir()
    result = run(
        os.path.join(ROOT, 'demo.py'),
        QUICKSTART,
        '--resume',
        str(trained / 'model' / 'model_latest'),
        '--image_path',
        str(tmp_path / 'empty'),
    )
    assert result.returncode == 2 and 'holds no image files' in result.stderr
