"""benchmarks/bench_demo.py: the CPU peak from the flags, the detection comparison, and a tiny run of every CPU path
that needs no calibration."""

import os
import re
import subprocess
import sys

import pytest

from benchmarks.bench_demo import cpu_peak_gflops, same_detections
from tests import ROOT


def test_peak_follows_the_flags_and_the_clock():
    amx = 'processor\t: 0\ncpu MHz\t\t: 2600.000\nflags\t\t: fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8\n'
    peaks, formula = cpu_peak_gflops(2, amx)
    assert peaks['fp32'] == pytest.approx(2 * 2.6 * 64)
    assert peaks['bf16'] == pytest.approx(2 * 2.6 * 1024) and peaks['int8'] == pytest.approx(2 * 2.6 * 2048)
    assert '2 cores x 2.60 GHz' in formula and 'fp32 333' in formula
    avx2 = 'cpu MHz\t\t: 3000.000\nflags\t\t: fma avx2\n'
    peaks, _ = cpu_peak_gflops(1, avx2)
    assert peaks['fp32'] == pytest.approx(3.0 * 32) and peaks['bf16'] == peaks['fp32']


def test_same_detections_allows_a_pixel_and_1e4():
    plain = {'a.jpg': [{'points': [[0, 0], [10, 0], [10, 5]], 'score': 0.8}]}
    assert same_detections({'a.jpg': [{'points': [[1, 0], [10, 1], [9, 5]], 'score': 0.80005}]}, plain) == 'yes'
    assert same_detections({'a.jpg': [{'points': [[2, 0], [10, 0], [10, 5]], 'score': 0.8}]}, plain).startswith('no')
    assert same_detections({'a.jpg': [{'points': [[0, 0], [10, 0], [10, 5]], 'score': 0.8002}]}, plain).startswith('no')
    assert same_detections({'a.jpg': []}, plain) == 'no (a.jpg: 0 vs 1 detections)'
    longer = {'a.jpg': [{'points': [[0, 0], [10, 0], [10, 5], [0, 5]], 'score': 0.8}]}  # a polygon of 4 points
    assert same_detections(longer, plain) == 'no (a.jpg: 4 vs 3 polygon points)'


def test_a_tiny_run_prints_every_path(tmp_path):
    pytest.importorskip('onnxruntime')
    command = [sys.executable, '-m', 'benchmarks.bench_demo', '--images', '2', '--rounds', '2', '--short_side', '64']
    # every kind of path but torch.compile (its flags reach demo.py like the others'; tests/scripts/test_demo_paths.py
    # runs demo.py --compile, and its compile takes longer than the rest of this run)
    command += ['--paths', 'plain,optimize,optimize-bf16,onnx-fp32,default']
    command += ['--experiment', 'experiments/synthetic/quickstart.yaml']
    result = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'^peak = \d+ cores x [\d.]+ GHz', result.stdout, re.M)
    assert 'in-process demo.detect_images (start-up excluded)' in result.stdout
    for path in ('plain', 'optimize', 'onnx-fp32', 'default'):
        columns = r'\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d.]+)\s+([\d.]+)%\s+(\d+)\s+(\S+)'
        row = re.search(rf'^{path}{columns}', result.stdout, re.M)
        assert row, (path, result.stdout)
        seconds, images_per_s = float(row.group(1)), float(row.group(2))
        assert seconds > 0 and images_per_s == pytest.approx(1 / seconds, rel=0.05)
        assert row.group(7) == 'yes'  # exact paths: the detections of --plain
    # bfloat16: not the plain detections, so only timed; each path is timed after its start-up (a warm-up run of each
    # input size, where torch.compile would compile)
    assert re.search(r'^optimize-bf16\s+[\d.]+\s+[\d.]+\s+[\d.]+x', result.stdout, re.M), result.stdout
    assert re.search(r'^optimize-bf16: start-up [\d.]+ s', result.stdout, re.M)
    assert re.search(r'^plain\s+[\d.]+\s+[\d.]+\s+1\.00x', result.stdout, re.M)


def test_int8all_is_calibrated_on_the_given_images(tmp_path):
    pytest.importorskip('onnxruntime')
    import cv2
    import numpy as np

    calibration = tmp_path / 'calibration'
    calibration.mkdir()
    for index in range(2):
        image = np.full((48, 64, 3), 180, np.uint8)
        image[16:30, 8 + index : 50] = 30
        cv2.imwrite(str(calibration / f'{index}.png'), image)
    command = [sys.executable, '-m', 'benchmarks.bench_demo', '--images', '2', '--rounds', '1', '--short_side', '64']
    command += ['--paths', 'plain,onnx-int8all', '--experiment', 'experiments/synthetic/quickstart.yaml']
    command += ['--calibration_images', str(calibration), '--keep', str(tmp_path / 'work')]
    result = subprocess.run(
        command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'^onnx-int8all\s+[\d.]+\s+[\d.]+\s+[\d.]+x', result.stdout, re.M), result.stdout
    assert (tmp_path / 'work' / 'model_all.int8.onnx').exists() and not (tmp_path / 'work' / 'calibration').exists()
