"""Hostile and broken files, proved with real files and real subprocesses: a checkpoint save killed with
SIGKILL leaves the previous checkpoint loadable; a checkpoint whose pickle would run code is refused by
eval.py, demo.py and train.py --resume without running it; demo.py handles a 12000x9000 image, a
decompression bomb, 0-byte files, text files named .jpg and 1x1 images within a memory bound; data list
entries cannot escape their dataset root."""

import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import torch

from concern.checkpoint_io import load_checkpoint, save_checkpoint
from tests import ROOT

QUICKSTART = os.path.join(ROOT, 'experiments', 'synthetic', 'quickstart.yaml')
NARROW = ['--opt', 'Experiment.structure.builder.model_args.decoder_args.inner_channels=32']


def environment():
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')


def script(name, *args):
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, name), *args],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


# ---------------------------------------------------------------------------------------- killed saves
KILLED_SAVE = """
import os, signal, sys, torch
from concern import checkpoint_io as checkpoint
path, moment = sys.argv[1:]
die = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
if moment == 'mid-write':  # SIGKILL once 1 MB of the 16 MB payload is on disk
    real_save = torch.save
    class DyingStream:
        def __init__(self, stream):
            self.stream, self.written = stream, 0
        def write(self, data):
            room = 2 ** 20 - self.written
            if len(data) > room:
                self.stream.write(bytes(data)[:room])
                self.stream.flush()
                die()
            self.written += len(data)
            return self.stream.write(data)
        def flush(self):
            self.stream.flush()
    checkpoint.torch.save = lambda state, stream: real_save(state, DyingStream(stream))
else:  # written and fsync'ed, killed just before the rename
    checkpoint.os.replace = die
checkpoint.save_checkpoint({'epoch': 2, 'model': {'w': torch.zeros(4 * 2 ** 20)}}, path)
"""


@pytest.mark.parametrize('moment', ['mid-write', 'before-rename'])
def test_a_save_killed_midway_leaves_the_previous_checkpoint_loadable(tmp_path, moment):
    path = tmp_path / 'model' / 'model_latest'
    save_checkpoint({'epoch': 1, 'model': {'w': torch.ones(3)}}, path)
    killed = subprocess.run(
        [sys.executable, '-c', KILLED_SAVE, str(path), moment],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    leftovers = [name for name in os.listdir(path.parent) if name != 'model_latest']
    assert len(leftovers) == 1 and leftovers[0].startswith('.model_latest.')  # the killed save's temporary
    assert os.path.getsize(path.parent / leftovers[0]) >= 2**20
    previous = load_checkpoint(path)
    assert previous['epoch'] == 1 and torch.equal(previous['model']['w'], torch.ones(3))
    save_checkpoint({'epoch': 3}, path)  # the next save succeeds and clears the dead temporary file
    assert load_checkpoint(path) == {'epoch': 3} and os.listdir(path.parent) == ['model_latest']


# ---------------------------------------------------------------------------------------- malicious pickle
class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


def test_a_checkpoint_that_would_run_code_is_refused_by_every_script(tmp_path):
    marker = tmp_path / 'code_ran'
    evil = tmp_path / 'evil.pth'
    torch.save({'model': {'w': torch.ones(1)}, 'config': RunsCode(marker)}, evil)
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), np.full((40, 40, 3), 255, np.uint8))
    tiny = [
        *NARROW,
        '--opt',
        'train_data.num_samples=2',
        '--opt',
        'validate_data.num_samples=2',
        '--opt',
        'Experiment.train.data_loader.num_workers=0',
    ]
    processes = {  # side by side: each mostly imports torch
        'eval.py': script('eval.py', QUICKSTART, *tiny, '--resume', str(evil), '--device', 'cpu'),
        'demo.py': script(
            'demo.py',
            QUICKSTART,
            *tiny,
            '--resume',
            str(evil),
            '--image_path',
            str(images),
            '--result_dir',
            str(tmp_path / 'out'),
            '--device',
            'cpu',
        ),
        'train.py': script(
            'train.py',
            QUICKSTART,
            *tiny,
            '--resume',
            str(evil),
            '--device',
            'cpu',
            '--workspace_root',
            str(tmp_path / 'ws'),
            '--no-validate',
            '--no-progress',
        ),
    }
    for name, process in processes.items():
        code, stdout, stderr = finish(process)
        assert code == 2, f'{name}: {stderr[-2000:]}'
        assert f'error: Checkpoint {evil} was refused: unpickling it would import or run code' in stderr, name
        assert 'Traceback' not in stderr, name
    assert not marker.exists()
    assert not (tmp_path / 'ws' / 'quickstart' / 'model').exists()  # train.py stopped before any step


def test_raw_pickles_are_refused_and_garbage_is_called_corrupt(tmp_path):
    marker = tmp_path / 'code_ran'
    for protocol in (2, 4):
        path = tmp_path / f'raw_{protocol}.pkl'
        path.write_bytes(pickle.dumps({'model': RunsCode(marker)}, protocol=protocol))
        with pytest.raises(RuntimeError, match=f'{path.name} was refused'):
            load_checkpoint(path)
    assert not marker.exists()
    (tmp_path / 'garbage.pth').write_bytes(b'not a checkpoint' * 10)
    with pytest.raises(RuntimeError, match='garbage.pth is corrupt'):
        load_checkpoint(tmp_path / 'garbage.pth')


# ---------------------------------------------------------------------------------------- demo.py
def write_flat_png(path, width, height, bit_depth=8):
    """A grayscale PNG of identical rows, streamed row by row (the image is never held in memory);
    a flat image compresses about 1000:1, so a huge image is a small file."""

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    compressor = zlib.compressobj(6)
    row = b'\x00' + b'\xe0' * (width * bit_depth // 8)  # filter byte, then light gray
    body = b''.join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack('>IIBBBBB', width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', body) + chunk(b'IEND', b''))


MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'CODE', code)
"""


@pytest.mark.parametrize('pipeline', ['--pipeline', '--no-pipeline'])
def test_demo_on_huge_bomb_empty_text_and_tiny_images_reports_and_stays_in_memory(tmp_path, pipeline):
    from concern.runtime import load_experiment_for_inference

    config = load_experiment_for_inference(QUICKSTART, [NARROW[1]])
    checkpoint = tmp_path / 'model.pth'
    save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)

    images = tmp_path / 'images'
    images.mkdir()
    write_flat_png(images / 'huge_0.png', 12000, 9000)  # 108 Mpixel (324 MB decoded), a 0.1 MB file
    for index in (1, 2, 3):
        shutil.copy(images / 'huge_0.png', images / f'huge_{index}.png')
    write_flat_png(images / 'bomb.png', 30000, 30000, bit_depth=1)  # 900 Mpixel: 2.7 GB if it were decoded
    (images / 'empty.jpg').write_bytes(b'')
    (images / 'text.jpg').write_text('a text file named .jpg')
    cv2.imwrite(str(images / 'one_pixel.png'), np.zeros((1, 1, 3), np.uint8))
    assert sum(os.path.getsize(path) for path in images.iterdir()) < 2**20

    out = tmp_path / 'out'
    measured = subprocess.run(
        [
            sys.executable,
            '-c',
            MEASURE,
            sys.executable,
            os.path.join(ROOT, 'demo.py'),
            QUICKSTART,
            *NARROW,
            '--resume',
            str(checkpoint),
            '--image_path',
            str(images),
            '--result_dir',
            str(out),
            '--image_short_side',
            '64',
            '--box_thresh',
            '0',
            '--device',
            'cpu',
            # reading ahead keeps only the resized inputs, not the decoded photos (it kept up to three: 4.95 GB)
            pipeline,
        ],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert measured.returncode == 0, measured.stderr[-3000:]
    peak_mb = float(measured.stdout.split('PEAK_RSS_MB')[1].split()[0])
    assert 'CODE 0' in measured.stdout, measured.stderr[-3000:]
    # the wrapper measured its child, demo.py: importing torch and building the model alone take over 150 MB
    assert peak_mb > 150, f'{peak_mb:.0f} MB is the wrapper, not demo.py'
    # torch and the model take ~0.8 GB; one decoded 12000x9000 image 0.3 GB as uint8, 1.3 GB as the float32 image
    # the network's input is made from (as the original reads it). Decoding the bomb (2.7 GB as uint8) or holding
    # the four huge images at once (5.2 GB) would break this bound.
    assert peak_mb < 3072, f'demo.py peaked at {peak_mb:.0f} MB'
    print(f'demo.py peak RSS {peak_mb:.0f} MB')

    report = measured.stdout + measured.stderr
    assert '5 images processed, 3 skipped' in report
    for name, reason in (
        ('bomb.png', 'over the max_pixels limit'),
        ('empty.jpg', 'not a decodable image'),
        ('text.jpg', 'not a decodable image'),
    ):
        assert any(name in line and reason in line for line in report.splitlines()), name
    for name in ('huge_0', 'huge_3', 'one_pixel'):
        assert (out / f'res_{name}.txt').exists()
    for line in (out / 'res_huge_0.txt').read_text().splitlines():  # coordinates map back to the full image
        numbers = [float(value) for value in line.split(',')[:-1]]
        assert max(numbers[0::2]) <= 12000 and max(numbers[1::2]) <= 9000


# ---------------------------------------------------------------------------------------- path escapes
def test_data_list_entries_cannot_escape_the_dataset_root(tmp_path, capsys):
    from data import ImageDataset

    root = tmp_path / 'set'
    (root / 'train_images').mkdir(parents=True)
    (root / 'train_gts').mkdir()
    outside = tmp_path / 'outside'
    outside.mkdir()
    cv2.imwrite(str(outside / 'secret.jpg'), np.zeros((8, 8, 3), np.uint8))
    (outside / 'secret.jpg.txt').write_text('0,0,4,0,4,4,0,4,x\n')
    os.symlink(outside, root / 'train_images' / 'link')
    listing = root / 'train_list.txt'
    for entry in ('../../outside/secret.jpg', str(outside / 'secret.jpg'), 'link/secret.jpg'):
        listing.write_text(f'{entry}\n')
        with pytest.raises(ValueError, match=r'train_list\.txt:1: entry .* points outside'):
            ImageDataset(data_dir=[str(root)], data_list=[str(listing)])

    import train  # through train.py: one sentence naming the list, the line and the entry, before training

    experiment = tmp_path / 'escape.yaml'
    experiment.write_text(f"""
import: ['experiments/synthetic/quickstart.yaml']
define:
  - name: train_data
    class: ImageDataset
    data_dir: ['{root}']
    data_list: ['{listing}']
""")
    from concern.cli import run_main

    assert (
        run_main(train.main, [str(experiment), *NARROW, '--device', 'cpu', '--workspace_root', str(tmp_path / 'ws')])
        == 2
    )
    error = capsys.readouterr().err
    assert error.startswith('error: ') and "train_list.txt:1: entry 'link/secret.jpg' points outside" in error
    assert not (tmp_path / 'ws').exists()
