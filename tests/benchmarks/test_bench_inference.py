"""benchmarks/bench_inference.py accuracy mode on a dataset in the ICDAR layout: int8 calibrated on the images the
user gives (--calibration_images), the validation set taken from --opt, and the refusal without calibration images."""

import os
import subprocess
import sys

import cv2
import numpy as np

from concern.checkpoint_io import save_checkpoint
from concern.runtime import load_experiment_for_inference
from tests import ROOT

RECIPE = os.path.join(ROOT, 'experiments', 'icdar2015', 'ic15_resnet18_cpu.yaml')
NARROW = 'Experiment.structure.builder.model_args.decoder_args.inner_channels=32'


def write_icdar_folder(folder, count):
    """``count`` 64x96 photos with one word each, in the ICDAR 2015 training layout, and their list."""
    (folder / 'train_images').mkdir(parents=True)
    (folder / 'train_gts').mkdir()
    rng = np.random.default_rng(0)
    names = []
    for index in range(count):
        image = rng.integers(90, 160, (64, 96, 3), dtype=np.uint8)
        image[20:40, 10:70] = 20
        name = f'img_{index + 1}.jpg'
        cv2.imwrite(str(folder / 'train_images' / name), image)
        (folder / 'train_gts' / f'{name}.txt').write_text('10,20,70,20,70,40,10,40,word\n')
        names.append(name)
    (folder / 'list.txt').write_text(''.join(name + '\n' for name in names))
    return folder


def run_accuracy(tmp_path, *extra):
    data = tmp_path / 'icdar2015'
    if not data.exists():
        write_icdar_folder(data, 2)
    overrides = [
        NARROW,
        f"validate_data.data_dir=['{data}/']",
        f"validate_data.data_list=['{data / 'list.txt'}']",
        "validate_data.processes.0.augmenter_args=[['Resize', {'width': 96, 'height': 64}]]",
    ]
    checkpoint = tmp_path / 'model.pth'
    if not checkpoint.exists():
        config = load_experiment_for_inference(RECIPE, [NARROW])
        save_checkpoint({'model': config.build('Experiment.structure').builder.build().state_dict()}, checkpoint)
    command = [sys.executable, '-m', 'benchmarks.bench_inference', '--checkpoint', str(checkpoint)]
    command += ['--experiment', RECIPE, '--threads', '1', '--repeats', '1', '--timing_images', '1']
    command += [f'--opt={override}' for override in overrides] + list(extra)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_int8_on_a_photo_dataset_is_calibrated_on_the_given_images(tmp_path):
    calibration = write_icdar_folder(tmp_path / 'calibration', 3) / 'train_images'
    result = run_accuracy(tmp_path, '--variants', 'plain,int8qop', '--calibration_images', str(calibration))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation set 'icdar2015_val', 2 images 96x64" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith(('plain', 'int8'))}
    assert set(rows) == {'plain', 'int8qop'} and rows['plain'][4] == '+0.00'


def test_int8_on_a_photo_dataset_without_calibration_images_is_one_sentence(tmp_path):
    result = run_accuracy(tmp_path, '--variants', 'plain,int8')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert '--calibration_images' in result.stderr.strip().splitlines()[-1]
