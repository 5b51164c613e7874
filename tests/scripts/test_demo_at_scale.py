"""demo.py at scale, through the real script and the shipped model on tiny images: two CPU processes under torchrun
give the results of one; a run killed with SIGKILL and started again gives every image exactly once, equal to an
uninterrupted run; a result folder of other settings is refused and left as it was; a word across a tile border
is found once, whole."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from concern.result_log import read_results
from tests import ROOT

PHOTOS = [
    os.path.join(ROOT, 'assets', 'images', name)
    for name in sorted(os.listdir(os.path.join(ROOT, 'assets', 'images')))
    if name.endswith(('.jpg', '.png'))
]
SMALL = ['--image_short_side', '128', '--no-txt']


def demo(*args, env=None, timeout=300, launcher=()):
    environment = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    command = [sys.executable, *launcher, os.path.join(ROOT, 'demo.py'), *map(str, args)]
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    """One ONNX export cache for the module's runs (the first run exports, the others verify and reuse it)."""
    return {'DBNET_CACHE_DIR': str(tmp_path_factory.mktemp('onnx_cache'))}


def write_folder(folder, count: int) -> list[str]:
    """``count`` small photos (the repository's sample images, cut and mirrored to 96-160 px) and one unreadable
    file, in two sub-folders."""
    folder.mkdir()
    for index in range(count):
        image = cv2.imread(PHOTOS[index % len(PHOTOS)])
        height = 96 + 16 * (index % 3)
        image = cv2.resize(image, (int(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)
        image = image[:, ::-1] if index % 2 else image
        (folder / f'part{index % 2}').mkdir(exist_ok=True)
        cv2.imwrite(str(folder / f'part{index % 2}' / f'{index:03d}.png'), np.ascontiguousarray(image[:, :160]))
    (folder / 'part0' / 'broken.jpg').write_bytes(b'not an image')
    return sorted(str(path) for path in folder.rglob('*.*'))


def by_image(folder) -> dict:
    records = read_results(str(folder))
    images = [record['image'] for record in records]
    assert len(images) == len(set(images)), 'an image has more than one line'
    return {record['image']: record.get('detections', record.get('error')) for record in records}


@pytest.mark.slow
def test_two_processes_under_torchrun_equal_one(tmp_path, cache):
    images = write_folder(tmp_path / 'photos', 7)
    one = demo('--image_path', tmp_path / 'photos', '--result_dir', tmp_path / 'one', *SMALL, env=cache)
    assert one.returncode == 0, one.stderr
    two = demo(
        '--image_path',
        tmp_path / 'photos',
        '--result_dir',
        tmp_path / 'two',
        *SMALL,
        '--workers',
        '1',
        env=cache,
        launcher=('-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '0'),
    )
    assert two.returncode == 0, two.stderr + two.stdout
    assert sorted(os.listdir(tmp_path / 'two')) == ['results.rank0.jsonl', 'results.rank1.jsonl', 'run.json']
    shares = [
        {json.loads(line)['image'] for line in open(tmp_path / 'two' / f'results.rank{rank}.jsonl')} for rank in (0, 1)
    ]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    expected = by_image(tmp_path / 'one')
    assert set(expected) == set(images)
    assert by_image(tmp_path / 'two') == expected
    assert any(expected[path] for path in images if not path.endswith('broken.jpg')), 'no detections to compare'
    assert isinstance(expected[str(tmp_path / 'photos' / 'part0' / 'broken.jpg')], str)  # its error, recorded


def test_a_killed_run_started_again_gives_every_image_once(tmp_path, cache):
    write_folder(tmp_path / 'photos', 36)
    options = ['--image_path', tmp_path / 'photos', *SMALL, '--image_short_side', '256', '--no-pipeline']
    reference = demo(*options, '--result_dir', tmp_path / 'reference', env=cache)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / 'killed'
    environment = dict(os.environ, PYTHONPATH=ROOT, **cache)
    command = [sys.executable, os.path.join(ROOT, 'demo.py'), *map(str, options), '--result_dir', str(out)]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / 'results.jsonl'
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if results.exists() and results.read_bytes().count(b'\n') >= 5:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = results.read_bytes().count(b'\n')
    assert 5 <= done_before < 37, f'the kill did not land midway ({done_before} lines)'
    with open(results, 'ab') as handle:  # what a kill during a write would leave: a cut last line
        handle.write(b'{"image": "' + str(tmp_path).encode() + b'/photos/part1/001.png", "height": 1')
    again = demo(*options, '--result_dir', out, env=cache)
    assert again.returncode == 0, again.stderr
    assert f'{done_before} of 37 images already done' in again.stdout
    assert by_image(out) == by_image(tmp_path / 'reference')


def test_a_folder_of_other_settings_is_refused_and_left_as_it_was(tmp_path, cache):
    write_folder(tmp_path / 'photos', 2)
    first = demo('--image_path', tmp_path / 'photos', '--result_dir', tmp_path / 'out', *SMALL, env=cache)
    assert first.returncode == 0, first.stderr
    before = {name: (tmp_path / 'out' / name).read_bytes() for name in os.listdir(tmp_path / 'out')}
    other = demo(
        '--image_path', tmp_path / 'photos', '--result_dir', tmp_path / 'out', *SMALL, '--box_thresh', '0.3', env=cache
    )
    assert other.returncode != 0
    errors = [line for line in other.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'box_thresh 0.5 there, 0.3 here' in errors[0] and 'Traceback' not in other.stderr
    assert {name: (tmp_path / 'out' / name).read_bytes() for name in os.listdir(tmp_path / 'out')} == before


def test_a_word_across_a_tile_border_is_found_once_whole(tmp_path, cache):
    image = np.full((256, 640, 3), 255, np.uint8)
    cv2.putText(image, 'BORDER', (130, 150), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.imwrite(str(tmp_path / 'word.png'), image)
    # tiles of 256 overlapping by 64 start at x = 0, 192, 384: the word (x 130-320) crosses two tile edges
    tiled = demo(
        '--image_path',
        tmp_path / 'word.png',
        '--result_dir',
        tmp_path / 'tiled',
        '--no-txt',
        '--tile',
        '256',
        '--tile_overlap',
        '64',
        env=cache,
    )
    assert tiled.returncode == 0, tiled.stderr
    (detections,) = by_image(tmp_path / 'tiled').values()
    assert len(detections) == 1, detections
    xs = [x for x, _ in detections[0]['points']]
    ys = [y for _, y in detections[0]['points']]
    assert min(xs) <= 135 and max(xs) >= 315 and min(ys) >= 100 and max(ys) <= 165
