"""The ONNX export cache of the default CPU path: one verified export per checkpoint and model.

The cache: ``<cache_dir>/<backbone>-<key[:16]>.onnx`` where the key is the SHA-256 of the checkpoint file's
SHA-256, the model-defining part of the compiled experiment (the builder's model class and ``model_args``: not the
representer's run-time options such as box_thresh), the strictness of the load and the exporter's versions. The
folder is ``--cache_dir``, else ``$DBNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/dbnet/onnx`` (``~/.cache/dbnet/onnx``).
A file is written to a temporary name in the folder and renamed (``os.replace``), so a reader, or a second
process exporting at the same time, never sees half a file. Every load is verified before the file is used: the
key stored in its metadata must be the run's key, ONNX Runtime must load it, and it must give the PyTorch model's
probability map (within ``VERIFY_TOLERANCE``) on a real photograph (``verification_image``); otherwise it is
rebuilt, with one log line saying why. A new export that still differs raises ``ExportMismatch`` (the caller,
``inference.paths.build_inference_path``, then runs the optimised PyTorch model and says so in one warning line).
A use touches the file; after each new export the folder keeps the ``$DBNET_CACHE_MAX_ENTRIES`` (default 10)
most recently used exports and removes the rest (``prune_cache``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn

from concern.errors import UserError
from concern.hashing import file_sha256
from inference.onnx_export import DEFAULT_OPSET, export_onnx

__all__ = [
    'cached_onnx_export',
    'default_cache_dir',
    'cache_key',
    'cache_entries',
    'prune_cache',
    'verification_image',
    'ExportMismatch',
    'CACHE_ENV',
    'CACHE_ENTRIES_ENV',
    'CACHE_KEY_METADATA',
    'VERIFY_TOLERANCE',
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


def cache_key(checkpoint: str, builder, strict: bool = True) -> str:
    """The cache key of a model: SHA-256 over the checkpoint file's SHA-256, ``builder``'s model class and
    ``model_args`` (the model-defining part of the experiment), ``strict`` and the exporter's versions."""

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
