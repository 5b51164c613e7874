"""The model shipped in assets/models/: its checksum is checked (a damaged copy is refused in one sentence), it
loads strictly, demo.py runs it with no experiment file and finds the words of a real photograph, and eval.py /
train.py take it by its short name."""

import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from concern.errors import UserError
from concern.model_zoo import DEFAULT_MODEL, MODELS, ShippedModel, verified_weights, weights_path
from tests.scripts.common import ROOT, run_python

SHIPPED = MODELS[DEFAULT_MODEL]

# Words of scikit-image's page() photograph (384x191, a book page photographed under uneven light), boxed by hand
# as (x0, y0, x1, y1): the title and the first line of the paragraph.
PAGE_WORDS = {
    'Region': (4, 12, 72, 32),
    'based': (84, 12, 142, 31),
    'segmentation': (150, 12, 293, 33),
    'Let': (5, 48, 25, 62),
    'us': (32, 50, 47, 62),
    'first': (55, 48, 81, 62),
    'determine': (90, 48, 159, 62),
    'markers': (166, 49, 222, 62),
    'of': (228, 48, 246, 62),
    'the': (252, 48, 276, 62),
    'coins': (283, 49, 317, 62),
    'and': (324, 48, 348, 62),
    'the ': (356, 48, 378, 62),
}


def iou(a, b):
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def found_words(result_file):
    """The PAGE_WORDS that a detection of ``result_file`` (demo.py's res_*.txt) covers with IoU >= 0.5."""
    boxes = []
    with open(result_file) as handle:
        for line in handle:
            values = [float(v) for v in line.strip().split(',')[:-1]]
            xs, ys = values[0::2], values[1::2]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    return [word for word, box in PAGE_WORDS.items() if any(iou(box, other) >= 0.5 for other in boxes)]


def write_photos(folder):
    from skimage import data

    os.makedirs(folder)
    cv2.imwrite(os.path.join(folder, 'page.png'), data.page())
    return folder


def test_the_shipped_file_is_small_checked_and_loads_strictly():
    from concern.runtime import build_model_with_weights, load_experiment_for_inference

    assert os.path.getsize(SHIPPED.weights) <= 25_000_000
    path = verified_weights(SHIPPED)
    structure = load_experiment_for_inference(SHIPPED.experiment).build('Experiment.structure')
    model = build_model_with_weights(structure, path, torch.device('cpu'), strict=True)
    assert sum(p.numel() for p in model.parameters()) > 10_000_000
    assert weights_path(DEFAULT_MODEL) == SHIPPED.weights and weights_path('other.pth') == 'other.pth'


def test_a_damaged_copy_is_refused_in_one_sentence(tmp_path, monkeypatch, capsys):
    import demo
    from concern.cli import run_main

    damaged = tmp_path / 'ic15_resnet18.pth'
    shutil.copy(SHIPPED.weights, damaged)
    with open(damaged, 'r+b') as handle:
        handle.seek(os.path.getsize(damaged) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))
    copy = ShippedModel(SHIPPED.name, SHIPPED.experiment, str(damaged), SHIPPED.sha256, SHIPPED.summary)
    with pytest.raises(UserError, match='do not match their SHA-256'):
        verified_weights(copy)
    monkeypatch.setitem(MODELS, DEFAULT_MODEL, copy)
    assert run_main(demo.main, ['--image_path', os.path.join(ROOT, 'assets', 'images'), '--plain']) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'git checkout' in lines[0]


def test_demo_without_an_experiment_finds_the_words_of_a_real_photograph(tmp_path):
    photos = write_photos(str(tmp_path / 'photos'))
    out = tmp_path / 'out'
    for image in os.listdir(os.path.join(ROOT, 'assets', 'images')):
        if not image.endswith('.md'):
            shutil.copy(os.path.join(ROOT, 'assets', 'images', image), photos)
    result = run_python(
        'demo.py', '--image_path', photos, '--result_dir', out, '--cache_dir', tmp_path / 'cache', '--visualize'
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"box_thresh 0.5 (from the representer's box_thresh in {SHIPPED.experiment})" in result.stdout
    images = [name for name in os.listdir(photos)]
    assert all((out / f'res_{os.path.splitext(name)[0]}.txt').exists() for name in images)
    found = found_words(out / 'res_page.txt')
    assert len(found) >= 10, found


def test_a_random_model_does_not_pass_the_photograph_test(tmp_path):
    """The oracle above discriminates: the same architecture with random weights finds (almost) none of the words."""
    from concern.runtime import load_experiment_for_inference

    structure = load_experiment_for_inference(SHIPPED.experiment).build('Experiment.structure')
    torch.manual_seed(0)
    random_weights = tmp_path / 'random.pth'
    torch.save(structure.builder.build(torch.device('cpu')).state_dict(), random_weights)
    photos = write_photos(str(tmp_path / 'photos'))
    result = run_python(
        'demo.py', SHIPPED.experiment, '--resume', random_weights, '--plain', '--image_path', photos,
        '--result_dir', tmp_path / 'out',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(found_words(tmp_path / 'out' / 'res_page.txt')) <= 2


def test_eval_and_fine_tuning_take_the_shipped_model_by_name(tmp_path):
    data = tmp_path / 'data'
    made = run_python('-m', 'data.synth', '--out', data, '--num', '2', '--size', '128', '160', '--split', 'test')
    assert made.returncode == 0, made.stderr[-2000:]
    made = run_python('-m', 'data.synth', '--out', data, '--num', '2', '--size', '128', '160', '--split', 'train')
    assert made.returncode == 0, made.stderr[-2000:]
    where = [
        '--opt', f"validate_data.data_dir=['{data}/']", '--opt', f"validate_data.data_list=['{data}/test_list.txt']",
    ]  # fmt: skip
    result = run_python(
        'eval.py', '--model', DEFAULT_MODEL, *where, '--test_size', '160', '128', '--plain', '--result_dir',
        tmp_path / 'results', '--num_workers', '0',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'fmeasure' in result.stdout + result.stderr and (tmp_path / 'results' / 'metrics.json').exists()
    refused = run_python('eval.py', SHIPPED.experiment, '--model', DEFAULT_MODEL, *where)
    assert refused.returncode == 2 and '--model gives the experiment' in refused.stderr

    train = [
        '--opt', f"train_data.data_dir=['{data}/']", '--opt', f"train_data.data_list=['{data}/train_list.txt']",
        '--opt', 'train_data.processes.0.size=[96, 96]', '--batch_size', '2', '--num_workers', '0',
    ]  # fmt: skip
    result = run_python(
        'train.py', SHIPPED.experiment, '--init_weights', DEFAULT_MODEL, *train, '--max_iterations', '1',
        '--no-validate', '--no-progress', '--device', 'cpu', '--workspace_root', tmp_path / 'ws', '--name', 'tune',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = torch.load(tmp_path / 'ws' / 'tune' / 'model' / 'final', weights_only=True)['training_model']
    shipped = torch.load(SHIPPED.weights, weights_only=True)
    key = 'model.module.backbone.layer1.0.conv1.weight'
    # started from the shipped weights: one small step away from them, not from a random initialisation
    assert torch.allclose(tuned[key].float(), shipped[key].float(), atol=5e-3)
    assert not np.array_equal(tuned[key].float().numpy(), shipped[key].float().numpy())
