"""demo.py's default path (ONNX Runtime on a cached export, on a CPU) gives the detections of --plain (the model as
built) on the real model families: ResNet-18, deformable ResNet-18 from an original-format checkpoint (a bare
state dict of 'model.module.*' keys), and DBNet++ (ASF); a corrupt cache file is rebuilt. --compile (torch.compile
of the optimised model) gives them too."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from concern.checkpoint_io import save_checkpoint
from concern.result_log import detections_by_image
from concern.runtime import load_experiment_for_inference
from inference.detector import Detector
from tests import ROOT
from tests.inference.test_onnx_predictor import readable_map_model, separating_threshold

IMAGE = os.path.join(ROOT, 'assets', 'images', 'synthetic_1.jpg')
SHORT_SIDE = 128
NARROW = 'Experiment.structure.builder.model_args.decoder_args.inner_channels=32'
R18_STAGES = 'Experiment.structure.builder.model_args.decoder_args.in_channels=[64,128,256,512]'
FAMILIES = {
    'resnet18': ('experiments/synthetic/quickstart.yaml', [NARROW], 'project'),
    'deformable_resnet18': ('experiments/seg_detector/ic15_resnet18_deform_thre.yaml', [NARROW], 'original'),
    'asf': (
        'experiments/ASF/td500_resnet50_deform_thre_asf.yaml',
        [NARROW, 'Experiment.structure.builder.model_args.backbone=deformable_resnet18', R18_STAGES],
        'original',
    ),
}


def write_images(folder):
    """Two photos-like inputs of the same size (the image and its mirror): two images, so the pipeline is on."""
    import cv2

    image = cv2.imread(IMAGE)
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), image)
    cv2.imwrite(str(folder / 'b.png'), np.ascontiguousarray(image[:, ::-1]))
    return [cv2.imread(str(folder / name)) for name in ('a.png', 'b.png')]


def family_checkpoint(family, tmp_path, images):
    """A random model of ``family`` whose maps on ``images`` have contours, saved in the checkpoint format of the
    family, and a binarisation threshold far from every map value (float rounding cannot flip a pixel)."""
    experiment, overrides, kind = FAMILIES[family]
    torch.manual_seed(0)
    config = load_experiment_for_inference(os.path.join(ROOT, experiment), overrides)
    model = config.build('Experiment.structure').builder.build().eval()
    detector = Detector(None, None, SHORT_SIDE)
    tensor = torch.from_numpy(np.stack([detector.preprocess(image) for image in images]))
    readable_map_model(model, tensor[:1])
    with torch.no_grad():
        probability = model(tensor, training=False).numpy()
    checkpoint = tmp_path / f'{family}.pth'
    if kind == 'original':
        torch.save(model.state_dict(), checkpoint)  # the original's release format: a bare state dict
    else:
        save_checkpoint({'model': model.state_dict()}, checkpoint)
    return experiment, overrides, str(checkpoint), separating_threshold(probability)


def run_demo(experiment, overrides, checkpoint, images, out, thresh, cache, *flags, polygon=True):
    command = [
        sys.executable,
        os.path.join(ROOT, 'demo.py'),
        os.path.join(ROOT, experiment),
        '--resume',
        checkpoint,
        '--image_path',
        str(images),
        '--result_dir',
        str(out),
        '--image_short_side',
        str(SHORT_SIDE),
        '--box_thresh',
        '0',
        '--thresh',
        str(thresh),
        '--device',
        'cpu',
        '--cache_dir',
        str(cache),
        *(['--polygon'] if polygon else []),
        *[item for override in overrides for item in ('--opt', override)],
        *flags,
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, detections_by_image(str(out))


def assert_same_detections(got, expected):
    assert list(got) == list(expected)
    total = 0
    for name in expected:
        assert len(got[name]) == len(expected[name]), name
        for a, b in zip(got[name], expected[name]):
            assert np.abs(np.array(a['points']) - np.array(b['points'])).max() <= 1, name
            assert abs(a['score'] - b['score']) < 1e-4, name
        total += len(expected[name])
    assert total >= 4  # enough detections for a difference to show


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_the_default_path_gives_the_plain_detections(family, tmp_path):
    pytest.importorskip('onnxruntime')
    images = write_images(tmp_path / 'images')
    experiment, overrides, checkpoint, thresh = family_checkpoint(family, tmp_path, images)
    cache = tmp_path / 'cache'
    polygon = family != 'resnet18'  # box mode on one family, polygons on the others
    common = (experiment, overrides, checkpoint, tmp_path / 'images')
    plain_run, plain = run_demo(*common, tmp_path / 'plain', thresh, cache, '--plain', polygon=polygon)
    default_run, default = run_demo(*common, tmp_path / 'default', thresh, cache, polygon=polygon)
    assert 'path: plain PyTorch fp32 (--plain' in plain_run.stdout
    assert 'path: onnxruntime fp32 (new export ' in default_run.stdout and str(cache) in default_run.stdout
    assert 'pipeline on' in default_run.stdout and 'images/s' in default_run.stdout
    assert_same_detections(default, plain)
    for name in ('a', 'b'):  # the result files too
        lines = (tmp_path / 'default' / f'res_{name}.txt').read_text().splitlines()
        assert len(lines) == len(plain[str(tmp_path / 'images' / f'{name}.png')])
    if family != 'deformable_resnet18':
        return
    # a corrupt cache file is rebuilt (one warning line) and gives the same detections (reuse: tests/inference)
    (exported,) = list(cache.iterdir())
    exported.write_bytes(b'\0' * 1000)
    rebuilt_run, rebuilt = run_demo(*common, tmp_path / 'rebuilt', thresh, cache, '--no-pipeline')
    assert 'path: onnxruntime fp32 (rebuilt export ' in rebuilt_run.stdout and 'pipeline off' in rebuilt_run.stdout
    assert 'exporting it again' in rebuilt_run.stderr
    assert_same_detections(rebuilt, plain)
    assert list(cache.iterdir()) == [exported] and exported.stat().st_size > 100_000


def test_compile_gives_the_plain_detections_and_times_the_first_image_apart(tmp_path):
    images = write_images(tmp_path / 'images')
    experiment, overrides, checkpoint, thresh = family_checkpoint('resnet18', tmp_path, images)
    common = (experiment, overrides, checkpoint, tmp_path / 'images')
    _, plain = run_demo(*common, tmp_path / 'plain', thresh, tmp_path / 'cache', '--plain')
    run, compiled = run_demo(*common, tmp_path / 'compiled', thresh, tmp_path / 'cache', '--compile')
    assert 'path: optimised PyTorch fp32 on cpu, torch.compile: compiles at the first image (--optimize --compile' in (
        run.stdout
    )
    assert re.search(r'^after the first image \([\d.]+ s\): [\d.]+ images/s', run.stdout, re.M), run.stdout
    assert_same_detections(compiled, plain)
