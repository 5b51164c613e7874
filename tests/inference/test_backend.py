"""inference/paths.py: the path rule, the cache key, and the ONNX export cache (reused when valid; a corrupt, foreign
or stale file rebuilt; two processes exporting at once leave one whole file)."""

import logging
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from concern.errors import UserError
from inference.onnx_cache import CACHE_KEY_METADATA, cache_key, cached_onnx_export, default_cache_dir, prune_cache
from inference.paths import OnnxRuntimeModel, build_inference_path, choose_path
from tests import ROOT
from tests.inference.test_onnx_export import db_model

SMALL = [16, 24, 48, 576]  # MobileNetV3-small's stages: a model that exports in a second


@pytest.fixture(scope='module')
def tiny():
    return db_model('mobilenet_v3_small', SMALL), db_model('mobilenet_v3_small', SMALL, seed=1)


def test_the_default_is_onnxruntime_on_a_cpu_and_the_optimised_model_elsewhere():
    assert choose_path('cpu', onnxruntime_available=True).name == 'onnxruntime'
    without = choose_path('cpu', onnxruntime_available=False)
    assert (without.name, without.precision) == ('optimized', 'fp32')
    assert 'requirements-onnx.txt' in without.reason
    on_gpu = choose_path('cuda', onnxruntime_available=True)
    assert on_gpu.name == 'optimized' and 'cuda' in on_gpu.reason
    assert choose_path('cpu', plain=True, onnxruntime_available=True).name == 'plain'
    assert choose_path('cpu', optimize=True, onnxruntime_available=True).name == 'optimized'
    bf16 = choose_path('cpu', precision='bf16', onnxruntime_available=True)
    assert (bf16.name, bf16.precision) == ('optimized', 'bf16') and '--precision bf16' in bf16.reason
    with pytest.raises(UserError, match='--plain'):
        choose_path('cpu', plain=True, optimize=True)
    compiled = choose_path('cpu', precision='bf16', compiled=True, onnxruntime_available=True)
    assert (compiled.name, compiled.precision, compiled.compiled) == ('optimized', 'bf16', True)
    assert '--precision bf16 --compile' in compiled.reason
    alone = choose_path('cpu', compiled=True, onnxruntime_available=True)  # --compile alone implies --optimize
    assert (alone.name, alone.precision, alone.compiled) == ('optimized', 'fp32', True)
    assert not choose_path('cpu', precision='bf16', onnxruntime_available=True).compiled
    with pytest.raises(UserError, match='--compile'):
        choose_path('cpu', plain=True, compiled=True)


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv('DBNET_CACHE_DIR', str(tmp_path / 'mine'))
    assert default_cache_dir() == str(tmp_path / 'mine')
    monkeypatch.delenv('DBNET_CACHE_DIR')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert default_cache_dir() == str(tmp_path / 'xdg' / 'dbnet' / 'onnx')


def test_the_key_is_the_checkpoint_content_and_the_model_definition(tiny, tmp_path):
    model = tiny[0]
    first, copy, other = tmp_path / 'a.pth', tmp_path / 'b.pth', tmp_path / 'c.pth'
    torch.save(model.state_dict(), first)
    copy.write_bytes(first.read_bytes())
    state = model.state_dict()
    state['model.module.decoder.in5.weight'] = state['model.module.decoder.in5.weight'] + 1e-3
    torch.save(state, other)
    builder = SimpleNamespace(model='SegDetectorModel', model_args={'backbone': 'resnet18', 'decoder_args': {'k': 50}})
    wider = SimpleNamespace(model='SegDetectorModel', model_args={'backbone': 'resnet18', 'decoder_args': {'k': 51}})
    key = cache_key(str(first), builder)
    assert key == cache_key(str(copy), builder)  # the file's content, not its name
    assert key != cache_key(str(other), builder)
    assert key != cache_key(str(first), wider)
    assert key != cache_key(str(first), builder, strict=False)


def probability(model, image):
    with torch.inference_mode():
        return model(torch.from_numpy(image), training=False).numpy()


def test_the_cache_is_reused_and_rebuilt_when_corrupt_foreign_or_stale(tiny, tmp_path, caplog):
    pytest.importorskip('onnxruntime')
    model, other = tiny
    key, other_key = 'a' * 64, 'b' * 64
    image = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(4)).numpy()
    session, path, how = cached_onnx_export(model, key, str(tmp_path), 'small')
    assert how == 'new export' and path == str(tmp_path / f'small-{key[:16]}.onnx')
    assert session.get_modelmeta().custom_metadata_map[CACHE_KEY_METADATA] == key
    got = OnnxRuntimeModel(session)({'image': torch.from_numpy(image)}).numpy()
    assert np.abs(got - probability(model, image)).max() < 1e-4
    written = os.stat(path)
    os.utime(path, (written.st_atime - 100, written.st_mtime - 100))
    assert cached_onnx_export(model, key, str(tmp_path), 'small')[2] == 'cached export'
    used = os.stat(path)
    assert used.st_ino == written.st_ino and used.st_size == written.st_size  # the same file, not a new export
    assert used.st_mtime > written.st_mtime - 100  # touched: its age is the time since its last use

    # corrupt: half of the file
    with open(path, 'rb+') as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with caplog.at_level(logging.WARNING, logger='dbnet'):
        session, _, how = cached_onnx_export(model, key, str(tmp_path), 'small')
    assert how.startswith('rebuilt export') and 'exporting it again' in caplog.text
    assert np.abs(session.run(None, {'image': image})[0] - probability(model, image)).max() < 1e-4

    # foreign: another model's export under this name (another key in its metadata)
    other_path = cached_onnx_export(other, other_key, str(tmp_path), 'small')[1]
    os.replace(other_path, path)
    session, _, how = cached_onnx_export(model, key, str(tmp_path), 'small')
    assert how.startswith('rebuilt export') and 'key' in how
    assert np.abs(session.run(None, {'image': image})[0] - probability(model, image)).max() < 1e-4

    # stale: the right key but other weights (the check runs the file against the PyTorch model)
    cached_onnx_export(other, key, str(tmp_path / 'stale'), 'small')
    os.replace(str(tmp_path / 'stale' / f'small-{key[:16]}.onnx'), path)
    session, _, how = cached_onnx_export(model, key, str(tmp_path), 'small')
    assert how.startswith('rebuilt export') and 'differs from the PyTorch model' in how
    assert np.abs(session.run(None, {'image': image})[0] - probability(model, image)).max() < 1e-4
    assert sorted(os.listdir(tmp_path)) == ['small-aaaaaaaaaaaaaaaa.onnx', 'stale']  # no temporary file left


def test_an_unwritable_cache_folder_is_a_user_error(tiny, tmp_path):
    pytest.importorskip('onnxruntime')
    blocker = tmp_path / 'file'
    blocker.write_text('a file where the folder should be')
    with pytest.raises(UserError, match='--cache_dir'):
        cached_onnx_export(tiny[0], 'c' * 64, str(blocker / 'onnx'), 'small')


EXPORT = """
import sys
from inference.onnx_cache import cached_onnx_export
from tests.inference.test_onnx_export import db_model
model = db_model('mobilenet_v3_small', [16, 24, 48, 576])
session, path, how = cached_onnx_export(model, 'd' * 64, sys.argv[1], 'small')
print(how)
"""


def test_two_processes_exporting_at_once_leave_one_whole_file(tiny, tmp_path):
    pytest.importorskip('onnxruntime')
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    command = [sys.executable, '-c', EXPORT, str(tmp_path)]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    assert all(output.strip() in ('new export', 'cached export') for output in outputs), outputs
    assert os.listdir(tmp_path) == ['small-dddddddddddddddd.onnx']
    session, _, how = cached_onnx_export(tiny[0], 'd' * 64, str(tmp_path), 'small')
    assert how == 'cached export'


def saved(model, tmp_path):
    """``(model, its checkpoint file, a builder naming it)``: what build_inference_path needs for the ONNX path."""
    checkpoint = tmp_path / 'model.pth'
    torch.save(model.state_dict(), checkpoint)
    return model, checkpoint, SimpleNamespace(model='SegDetectorModel', model_args={'backbone': 'resnet18'})


def test_each_built_path_gives_the_plain_probability_map(tiny, tmp_path):
    pytest.importorskip('onnxruntime')
    model, checkpoint, builder = saved(tiny[0], tmp_path)
    image = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(2)).numpy()
    expected = probability(model, image)
    cpu = torch.device('cpu')
    for name in ('plain', 'optimized', 'onnxruntime'):
        choice = choose_path('cpu', plain=name == 'plain', optimize=name == 'optimized', onnxruntime_available=True)
        path = build_inference_path(model, cpu, choice, str(checkpoint), builder, cache_dir=str(tmp_path / 'cache'))
        words = {'plain': 'plain PyTorch', 'optimized': 'optimised PyTorch', 'onnxruntime': 'onnxruntime'}
        assert path.name == name and path.description.startswith(f'path: {words[name]} fp32')
        assert np.abs(path.forward(image) - expected).max() < 1e-4, name
        with torch.inference_mode():
            got = path.model({'image': torch.from_numpy(image)}, training=False).numpy()
        assert np.abs(got - expected).max() < 1e-4, name


def test_the_onnx_model_normalises_a_uint8_batch_as_the_pytorch_model(tiny, tmp_path):
    """eval.py feeds uint8 images when a test loader ends with NormalizeImage(on_device=True)."""
    pytest.importorskip('onnxruntime')
    from data.normalization import normalize

    session = cached_onnx_export(tiny[0], 'e' * 64, str(tmp_path), 'small')[0]
    raw = torch.randint(0, 256, (1, 3, 64, 96), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    normalised = normalize(raw.numpy().transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    with torch.inference_mode():
        got = OnnxRuntimeModel(session)({'image': raw}).numpy()
    assert np.abs(got - probability(tiny[0], np.ascontiguousarray(normalised))).max() < 1e-4


def test_the_cache_keeps_the_most_recently_used_exports_and_removes_dead_temporaries(tiny, tmp_path, monkeypatch):
    now = time.time()

    def make(name, age):
        path = tmp_path / name
        path.write_bytes(b'x')
        os.utime(path, (now - age, now - age))
        return path

    exports = [make(f'm-{index}.onnx', age=100 * (index + 1)) for index in range(5)]  # m-0 newest
    dead, fresh = make('.m-x.onnx.tmp', age=2 * 3600), make('.m-y.onnx.tmp', age=60)
    other = make('notes.txt', age=10**6)
    removed = prune_cache(str(tmp_path), keep=2, keep_path=str(exports[4]))  # the oldest is the one just made
    assert sorted(removed) == sorted(str(p) for p in (exports[1], exports[2], exports[3], dead))
    assert sorted(os.listdir(tmp_path)) == ['.m-y.onnx.tmp', 'm-0.onnx', 'm-4.onnx', 'notes.txt']
    assert fresh.exists() and other.exists()
    assert prune_cache(str(tmp_path / 'missing'), keep=1) == []

    # through cached_onnx_export: $DBNET_CACHE_MAX_ENTRIES exports stay, the new one among them
    pytest.importorskip('onnxruntime')
    monkeypatch.setenv('DBNET_CACHE_MAX_ENTRIES', '2')
    path = cached_onnx_export(tiny[0], 'c' * 64, str(tmp_path), 'small')[1]
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith('.onnx')) == [
        'm-0.onnx',
        os.path.basename(path),
    ]
    monkeypatch.setenv('DBNET_CACHE_MAX_ENTRIES', 'all')
    with pytest.raises(UserError, match='DBNET_CACHE_MAX_ENTRIES'):
        cached_onnx_export(tiny[0], 'd' * 64, str(tmp_path), 'small')


def export_a_changed_copy(monkeypatch, change):
    """inference.onnx_export.export_onnx exporting a copy of the model with ``change(state_dict)`` applied: the
    export then differs from the PyTorch model it is checked against by exactly that change."""
    import copy

    import inference.onnx_cache

    export = inference.onnx_cache.export_onnx

    def changed_export(model, path, *args, **kwargs):
        other = copy.deepcopy(model)
        state = other.state_dict()
        change(state)
        other.load_state_dict(state)
        return export(other, path, *args, **kwargs)

    monkeypatch.setattr(inference.onnx_cache, 'export_onnx', changed_export)


def test_reordering_noise_passes_the_check_and_a_wrong_weight_falls_back_in_one_line(
    tiny, tmp_path, monkeypatch, caplog
):
    """The check is on a real photograph with a tolerance above floating-point reordering: weights moved by one
    part in a million (what other kernels and other CPUs do to the sums) keep the ONNX Runtime path; one wrong
    weight is caught, and the run goes on with the optimised PyTorch model after one warning line."""
    pytest.importorskip('onnxruntime')
    model, checkpoint, builder = saved(tiny[0], tmp_path)
    image = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(2)).numpy()
    cpu = torch.device('cpu')
    choice = choose_path('cpu', onnxruntime_available=True)

    def reordering_noise(state):
        generator = torch.Generator().manual_seed(0)
        for value in state.values():
            if value.is_floating_point():
                value.mul_(1 + 1e-6 * torch.randn(value.shape, generator=generator))

    export_a_changed_copy(monkeypatch, reordering_noise)
    path = build_inference_path(model, cpu, choice, str(checkpoint), builder, cache_dir=str(tmp_path / 'noise'))
    assert path.name == 'onnxruntime'
    assert np.abs(path.forward(image) - probability(model, image)).max() < 1e-3

    def wrong_weight(state):
        state['model.module.decoder.in5.weight'][0, 0] += 0.5

    monkeypatch.undo()
    export_a_changed_copy(monkeypatch, wrong_weight)
    with caplog.at_level(logging.WARNING, logger='dbnet'):
        path = build_inference_path(model, cpu, choice, str(checkpoint), builder, cache_dir=str(tmp_path / 'wrong'))
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and 'not exact' in warnings[0].getMessage()
    assert path.name == 'optimized' and 'not exact' in path.description
    assert np.abs(path.forward(image) - probability(model, image)).max() < 1e-4
    assert not (tmp_path / 'wrong').exists() or not any(
        name.endswith('.onnx') for name in os.listdir(tmp_path / 'wrong')
    )  # the wrong export is not kept in the cache


def test_the_verification_image_is_a_normalised_photograph():
    from inference.onnx_cache import verification_image

    image = verification_image()
    assert image.shape == (1, 3, 256, 384) and image.dtype == torch.float32
    # (pixel - mean) / 255: a photograph spans most of [-0.5, 0.6]; noise from randn would not stay inside
    assert -0.5 < float(image.min()) < -0.3 and 0.4 < float(image.max()) < 0.6
