"""Which forward path runs a checkpoint, and building it: the one place demo.py, eval.py and
``Detector.from_experiment`` choose between the plain PyTorch model, the optimised PyTorch model and ONNX Runtime.

The default is the fastest path whose detections equal the plain model's (probability maps within
``VERIFY_TOLERANCE`` on a real photograph):

- on a CPU with onnxruntime installed: ONNX Runtime fp32 on an export of the checkpoint made once and cached
  (``cached_onnx_export``; 2.5-3.5x faster than the plain model on a 2-core AVX-512 CPU);
- on a CPU without onnxruntime, and on CUDA: the optimised PyTorch model (``deploy.optimize``: BatchNorm folded,
  channels_last, inference mode; ONNX Runtime's CPU build does not use the GPU).

``--plain`` runs the model as built (the original's path); ``--optimize`` / ``--precision`` / ``--compile`` ask for
the optimised PyTorch model (``--compile``: wrapped in ``torch.compile``). ``choose_path`` is the rule (pure: it
builds nothing), ``build_inference_path`` builds what it chose; a new path is one more case in each.

The cache: ``<cache_dir>/<backbone>-<key[:16]>.onnx`` where the key is the SHA-256 of the checkpoint file's
SHA-256, the model-defining part of the compiled experiment (the builder's model class and ``model_args``: not the
representer's run-time options such as box_thresh), the strictness of the load and the exporter's versions. The
folder is ``--cache_dir``, else ``$DBNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/dbnet/onnx`` (``~/.cache/dbnet/onnx``).
A file is written to a temporary name in the folder and renamed (``os.replace``), so a reader, or a second
process exporting at the same time, never sees half a file. Every load is verified before the file is used: the
key stored in its metadata must be the run's key, ONNX Runtime must load it, and it must give the PyTorch model's
probability map (within ``VERIFY_TOLERANCE``) on a real photograph (``verification_image``); otherwise it is
rebuilt, with one log line saying why. A new export that still differs is not used: ``build_inference_path``
runs the optimised PyTorch model instead and says so in one warning line (``ExportMismatch``).
A use touches the file; after each new export the folder keeps the ``$DBNET_CACHE_MAX_ENTRIES`` (default 10)
most recently used exports and removes the rest (``prune_cache``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from concern.checkpoint_io import file_sha256
from concern.errors import UserError

__all__ = [
    'PathChoice',
    'InferencePath',
    'OnnxRuntimeModel',
    'choose_path',
    'build_inference_path',
    'cached_onnx_export',
    'default_cache_dir',
    'cache_key',
    'file_sha256',
    'CACHE_ENV',
    'CACHE_ENTRIES_ENV',
    'prune_cache',
    'CACHE_KEY_METADATA',
    'VERIFY_TOLERANCE',
    'ExportMismatch',
    'verification_image',
]

logger = logging.getLogger('dbnet')

CACHE_ENV = 'DBNET_CACHE_DIR'
CACHE_ENTRIES_ENV = 'DBNET_CACHE_MAX_ENTRIES'
DEFAULT_CACHE_ENTRIES = 10
# a temporary file older than this was left by a process that died while exporting (an export takes seconds)
STALE_TEMPORARY_S = 3600
CACHE_KEY_METADATA = 'dbnet.cache_key'
# Raise when the export changes in a way that changes the file for the same model (then every old entry misses).
CACHE_FORMAT = 1
# How far an export's probability map (values in [0, 1]) may be from the PyTorch model's on a real photograph.
# Floating-point reordering (other kernels, other CPUs: AVX2, AVX-512, AMX) moves it by 1e-6 to 1e-5; a wrong
# weight moves it by 1e-2 or more. Random noise is no test input: it drives the network far outside the range of
# real images, where the same reordering grows to 1e-4.
VERIFY_TOLERANCE = 1e-3
# The verification input: a photograph that scikit-image ships, (height, width) multiples of 32, not square.
_VERIFY_SIZE = (256, 384)


class ExportMismatch(ValueError):
    """An ONNX export whose probability map differs from the PyTorch model's by more than VERIFY_TOLERANCE."""


@dataclass
class PathChoice:
    """The forward path a run takes. ``name``: 'plain' (the model as built), 'optimized' (deploy.optimize) or
    'onnxruntime' (a cached ONNX export); ``precision``: 'fp32', 'bf16' or 'fp16'; ``reason``: why, for people;
    ``compiled``: the optimised model runs under ``torch.compile`` (``deploy.optimize.CompiledInferenceModel``)."""

    name: str
    precision: str
    reason: str
    compiled: bool = False


def onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec('onnxruntime') is not None and importlib.util.find_spec('onnx') is not None


def resolve_precision(precision: str | None, device_type: str) -> str | None:
    """``--precision`` with ``auto`` replaced by what ``deploy.precision.auto_torch_precision`` picks for a device
    of ``device_type`` (fp16 on a GPU, bf16 on a CPU with AMX, else fp32; the choice and its reason are printed);
    other values (None included) unchanged."""
    if precision != 'auto':
        return precision
    from deploy.precision import auto_torch_precision

    chosen, reason = auto_torch_precision(device_type)
    print(reason, flush=True)
    return chosen


def choose_path(
    device_type: str,
    plain: bool = False,
    optimize: bool = False,
    precision: str | None = None,
    onnxruntime_available: bool | None = None,
    compiled: bool = False,
) -> PathChoice:
    """The path for a run on a device of ``device_type`` ('cpu', 'cuda') given the flags: ``plain`` (--plain),
    ``optimize`` (--optimize), ``precision`` (--precision; any value asks for the optimised model), ``compiled``
    (--compile: the optimised model under torch.compile). ``onnxruntime_available``: None looks it up."""
    if plain and (optimize or compiled or precision is not None):
        raise UserError('--plain runs the model as built; drop --optimize / --precision / --compile, or drop --plain.')
    if plain:
        return PathChoice('plain', 'fp32', '--plain: the model as built')
    if optimize or compiled or precision is not None:
        flags = [f'--precision {precision}' if precision is not None else '--optimize'] + ['--compile'] * compiled
        return PathChoice('optimized', precision or 'fp32', f'{" ".join(flags)} asked for it', compiled)
    if device_type != 'cpu':
        reason = f'the default on {device_type}: the fastest exact path there (--plain: the model as built)'
        return PathChoice('optimized', 'fp32', reason)
    if onnxruntime_available is None:
        onnxruntime_available = onnxruntime_installed()
    if not onnxruntime_available:
        return PathChoice(
            'optimized',
            'fp32',
            'the default on a CPU without onnxruntime; pip install -r requirements-onnx.txt for the faster '
            'ONNX Runtime path',
        )
    return PathChoice('onnxruntime', 'fp32', 'the default on a CPU: the fastest exact path')


@dataclass
class InferencePath:
    """A built path. ``model``: called as ``model(batch dict or (N, 3, H, W) tensor, training=False)`` ->
    (N, 1, H, W) float32 probability maps (what ``concern.evaluation.evaluate`` and eval.py call);
    ``forward``: (N, 3, H, W) float32 numpy -> (N, 1, H, W) float32 numpy (what ``Detector`` calls);
    ``description``: the one line a run prints, e.g. ``path: onnxruntime fp32 (cached export ...)``."""

    name: str
    precision: str
    model: Callable
    forward: Callable[[np.ndarray], np.ndarray]
    description: str
    onnx_path: str | None = None


class OnnxRuntimeModel(nn.Module):
    """An ONNX Runtime session behind the SegDetectorModel inference interface: forward(batch dict with 'image',
    or an (N, 3, H, W) tensor, training=False) -> (N, 1, H, W) float32 CPU tensor. The image is float32 normalised,
    or uint8 (a loader's NormalizeImage(on_device=True)), normalised here as SegDetectorModel does. ``session``: an
    ``onnxruntime.InferenceSession`` of an exported model (``deploy.onnx_export.export_onnx``)."""

    def __init__(self, session):
        super().__init__()
        from deploy.onnx_predictor import onnx_forward

        self.session = session
        self.run = onnx_forward(session)

    def forward(self, data, training=False):
        if training:
            raise ValueError('OnnxRuntimeModel: inference only (training=False); train the PyTorch model.')
        image = (data['image'] if isinstance(data, dict) else data).detach().cpu().numpy()
        if image.dtype == np.uint8:  # the bits of data.normalization.normalize, as the PyTorch model computes them
            from data.normalization import normalize

            image = normalize(image.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        return torch.from_numpy(self.run(image))


def cache_key(checkpoint: str, builder, strict: bool = True) -> str:
    """The cache key of a model: SHA-256 over the checkpoint file's SHA-256, ``builder``'s model class and
    ``model_args`` (the model-defining part of the experiment), ``strict`` and the exporter's versions."""
    from deploy.onnx_export import DEFAULT_OPSET

    parts = {
        'format': CACHE_FORMAT,
        'checkpoint_sha256': file_sha256(checkpoint),
        'model': builder.model,
        'model_args': builder.model_args,
        'strict': bool(strict),
        'opset': DEFAULT_OPSET,
        'torch': torch.__version__.split('+')[0],
    }
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def default_cache_dir() -> str:
    """``$DBNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/dbnet/onnx``, else ``~/.cache/dbnet/onnx``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'dbnet', 'onnx')


def _session(path: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # OMP_NUM_THREADS / torch.set_num_threads apply here too
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def verification_image() -> torch.Tensor:
    """(1, 3, 256, 384) float32: scikit-image's ``astronaut()`` photograph (bundled with the package, no
    download) resized and normalised as the network expects (``data.normalization.normalize``)."""
    import cv2
    from skimage import data as skimage_data

    from data.normalization import normalize

    bgr = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    height, width = _VERIFY_SIZE
    resized = cv2.resize(bgr.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(normalize(resized, channels_first=True))[None]


def _verify(session, model: nn.Module, key: str) -> None:
    """Raises ValueError (the reason) unless ``session`` holds ``key``, and ExportMismatch unless it gives
    ``model``'s probability map on ``verification_image()`` within VERIFY_TOLERANCE."""
    stored = session.get_modelmeta().custom_metadata_map.get(CACHE_KEY_METADATA)
    if stored != key:
        raise ValueError(f"its key {str(stored)[:16]} is not the model's {key[:16]}")
    image = verification_image()
    parameter = next(model.parameters())
    with torch.inference_mode():
        expected = model(image.to(parameter.device), training=False)
        expected = (expected['binary'] if isinstance(expected, dict) else expected).float().cpu().numpy()
    got = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    difference = float(np.abs(got - expected).max()) if got.shape == expected.shape else float('inf')
    if not difference <= VERIFY_TOLERANCE:
        raise ExportMismatch(
            f'its probability map differs from the PyTorch model by {difference:.1e} on a real photograph '
            f'(at most {VERIFY_TOLERANCE:.0e} allowed)'
        )


def cached_onnx_export(model: nn.Module, key: str, cache_dir: str, name: str = 'model') -> tuple[object, str, str]:
    """``(session, path, how)``: an ONNX Runtime session on the cached export of ``model`` under ``key`` in
    ``cache_dir`` (``<name>-<key[:16]>.onnx``); ``how`` is 'cached export', 'new export' or 'rebuilt export
    (<reason>)'. A cached file is verified (``_verify``) before use and rebuilt on any failure; a new file is
    verified before it is renamed into place, and a new export that fails the check raises ExportMismatch."""
    from deploy.onnx_export import export_onnx

    path = os.path.join(cache_dir, f'{name}-{key[:16]}.onnx')
    entries = cache_entries()  # a bad $DBNET_CACHE_MAX_ENTRIES is reported before any work
    how = 'new export'
    if os.path.exists(path):
        try:
            session = _session(path)
            _verify(session, model, key)
            _touch(path)  # its age is the time since its last use (prune_cache removes the least recently used)
            return session, path, 'cached export'
        except Exception as error:  # any unreadable, foreign or stale file is rebuilt, never trusted
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            logger.warning('ONNX cache: %s is unusable (%s); exporting it again.', path, reason)
            how = f'rebuilt export ({reason})'
    try:
        os.makedirs(cache_dir, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=f'.{name}-', suffix='.onnx.tmp')
        os.close(handle)
    except OSError as error:
        raise UserError(
            f"The ONNX cache folder '{cache_dir}' cannot be written ({error.strerror}); give a writable folder "
            f'with --cache_dir or ${CACHE_ENV}, or run the PyTorch model with --plain / --optimize.'
        ) from None
    try:
        logger.info('ONNX cache: exporting the model to %s (once per checkpoint and model).', path)
        export_onnx(model, temporary, metadata={CACHE_KEY_METADATA: key})
        session = _session(temporary)
        _verify(session, model, key)  # ExportMismatch: build_inference_path falls back to the PyTorch model
        os.replace(temporary, path)  # atomic: a concurrent reader sees the old file or the whole new one
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    prune_cache(cache_dir, entries, keep_path=path)
    return session, path, how


def _touch(path: str) -> None:
    try:
        os.utime(path)
    except OSError:  # a read-only cache still serves its files
        pass


def cache_entries() -> int:
    """How many exports the cache keeps: ``$DBNET_CACHE_MAX_ENTRIES``, else 10."""
    value = os.environ.get(CACHE_ENTRIES_ENV)
    if value is None:
        return DEFAULT_CACHE_ENTRIES
    try:
        entries = int(value)
    except ValueError:
        entries = 0
    if entries < 1:
        raise UserError(f'${CACHE_ENTRIES_ENV}={value!r} is not a number of cache entries; give 1 or more.')
    return entries


def prune_cache(cache_dir: str, keep: int, keep_path: str | None = None) -> list[str]:
    """Removes from ``cache_dir`` the exports (``*.onnx``) beyond the ``keep`` most recently used (modification
    time: a use touches the file) and temporary files of exports that died (``.*.onnx.tmp`` older than an hour);
    ``keep_path`` (the export just made) is always kept, other files are never touched. Returns the removed
    paths; a file that cannot be removed (or vanished: another process pruned it) is skipped."""
    import time

    try:
        names = os.listdir(cache_dir)
    except OSError:
        return []
    exports, removed, now = [], [], time.time()
    for name in names:
        path = os.path.join(cache_dir, name)
        try:
            modified = os.stat(path).st_mtime
        except OSError:
            continue
        if name.startswith('.') and name.endswith('.onnx.tmp'):
            if now - modified > STALE_TEMPORARY_S:
                removed.append(path)
        elif name.endswith('.onnx') and not name.startswith('.'):
            exports.append((modified, path))
    exports.sort(reverse=True)
    kept = [path for _, path in exports if keep_path is not None and os.path.samefile(path, keep_path)]
    for _, path in exports:
        if path in kept:
            continue
        if len(kept) < keep:
            kept.append(path)
        else:
            removed.append(path)
    done = []
    for path in removed:
        try:
            os.remove(path)
        except OSError:
            continue
        done.append(path)
    if done:
        logger.info('ONNX cache: removed %d old file(s) from %s (keeps %d exports).', len(done), cache_dir, keep)
    return done


def build_inference_path(
    model: nn.Module,
    device: torch.device,
    choice: PathChoice,
    checkpoint: str | None = None,
    builder=None,
    strict: bool = True,
    cache_dir: str | None = None,
) -> InferencePath:
    """Builds ``choice`` over ``model`` (the plain model with its weights, on ``device``, eval mode). The
    'onnxruntime' path needs ``checkpoint`` and ``builder`` (``structure.builder``: the cache key) and uses
    ``cache_dir`` (default: ``default_cache_dir()``)."""
    from structure.predictor import torch_forward

    model.eval()
    if choice.name == 'plain':
        description = f'path: plain PyTorch fp32 ({choice.reason})'
        return InferencePath('plain', 'fp32', model, torch_forward(model, device), description)
    if choice.name == 'optimized':
        from deploy.optimize import InferenceModel, optimize_for_inference, optimized_forward

        # reduced precision: the convolution weights stored once in that dtype (no cast per call)
        weight_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(choice.precision)
        # compiled: PyTorch's default shapes (static for the first input size, one dynamic graph after a change)
        fast = optimize_for_inference(model, weight_dtype=weight_dtype, compile=choice.compiled, dynamic=None)
        compiled = ', torch.compile: compiles at the first image' if choice.compiled else ''
        return InferencePath(
            'optimized',
            choice.precision,
            InferenceModel(fast, device, choice.precision),
            optimized_forward(fast, device, choice.precision),
            f'path: optimised PyTorch {choice.precision} on {device.type}{compiled} ({choice.reason})',
        )
    if choice.name == 'onnxruntime':
        if device.type != 'cpu':
            raise ValueError(f'build_inference_path: the onnxruntime path runs on the CPU, not on {device}.')
        from deploy.onnx_predictor import onnx_forward

        if checkpoint is None or builder is None:
            raise ValueError('build_inference_path: the onnxruntime path needs the checkpoint and the builder.')
        key = cache_key(checkpoint, builder, strict)
        name = str(builder.model_args.get('backbone', 'model'))
        try:
            session, path, how = cached_onnx_export(model, key, cache_dir or default_cache_dir(), name)
        except ExportMismatch as error:
            logger.warning('ONNX Runtime path not used: the export is not exact (%s).', error)
            reason = 'the default on a CPU when the ONNX export is not exact'
            return build_inference_path(model, device, PathChoice('optimized', 'fp32', reason))
        return InferencePath(
            'onnxruntime',
            'fp32',
            OnnxRuntimeModel(session),
            onnx_forward(session),
            f'path: onnxruntime fp32 ({how} {path}; {choice.reason}; --plain: the model as built)',
            onnx_path=path,
        )
    raise ValueError(f'build_inference_path: unknown path {choice.name!r}.')


def detector_from_experiment(
    experiment: str,
    checkpoint: str,
    overrides=(),
    device: str | None = None,
    plain: bool = False,
    optimize: bool = False,
    precision: str | None = None,
    compiled: bool = False,
    strict: bool = True,
    cache_dir: str | None = None,
    box_thresh: float | None = None,
    thresh: float | None = None,
    announce: Callable[[str], None] | None = None,
    **detector_options,
):
    """A ``structure.predictor.Detector`` for ``experiment`` (a YAML file, with ``overrides`` 'PATH=VALUE') and
    ``checkpoint`` on the path ``choose_path`` picks for ``device`` ('cpu', 'cuda', None: CUDA when available)
    and the flags ``plain`` / ``optimize`` / ``precision`` / ``compiled`` (--compile); ``strict=False`` is
    --non_strict. ``box_thresh``: None takes the experiment's representer box_thresh, else the original's 0.6.
    ``announce`` gets the lines a run prints (the box_thresh and where it came from, then the path and why;
    default: the log). ``detector_options``: the other ``Detector`` arguments (image_short_side,
    is_output_polygon, batch_size, pipeline, max_pending). The detector's ``path`` attribute is the
    ``InferencePath``; ``box_thresh`` the threshold used."""
    from concern.distributed import choose_device
    from concern.runtime import build_model_with_weights, load_experiment_for_inference
    from deploy.cli import check_precision_device, resolve_box_thresh
    from structure.predictor import Detector

    announce = announce or logger.info
    config = load_experiment_for_inference(experiment, overrides)
    box_thresh, source = resolve_box_thresh(box_thresh, config)
    announce(f'box_thresh {box_thresh} (from {source})')
    structure = config.build('Experiment.structure')
    device = choose_device(device)
    precision = resolve_precision(precision, device.type)
    check_precision_device(precision, device.type)
    choice = choose_path(device.type, plain=plain, optimize=optimize, precision=precision, compiled=compiled)
    model = build_model_with_weights(structure, checkpoint, device, strict=strict)
    path = build_inference_path(model, device, choice, checkpoint, structure.builder, strict, cache_dir)
    announce(path.description)
    representer = structure.representer
    representer.box_thresh = box_thresh
    if thresh is not None:
        representer.thresh = thresh
    detector = Detector(path.forward, representer, **detector_options)
    detector.path = path
    detector.box_thresh = box_thresh
    return detector
