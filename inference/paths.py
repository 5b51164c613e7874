"""Which forward path runs a checkpoint, and building it: the one place demo.py, eval.py and
``inference.build.detector_from_experiment`` choose between the plain PyTorch model, the optimised PyTorch model
and ONNX Runtime.

The default is the fastest path whose detections equal the plain model's (probability maps within
``inference.onnx_cache.VERIFY_TOLERANCE`` on a real photograph):

- on a CPU with onnxruntime installed: ONNX Runtime fp32 on an export of the checkpoint made once and cached
  (``inference.onnx_cache``; 2.5-3.5x faster than the plain model on a 2-core AVX-512 CPU);
- on a CPU without onnxruntime, and on CUDA: the optimised PyTorch model (``inference.optimized``: BatchNorm
  folded, channels_last, inference mode; ONNX Runtime's CPU build does not use the GPU).

``--plain`` runs the model as built (the original's path); ``--optimize`` / ``--precision`` / ``--compile`` ask for
the optimised PyTorch model (``--compile``: wrapped in ``torch.compile``). ``choose_path`` is the rule (pure: it
builds nothing), ``build_inference_path`` builds what it chose; a new path is one more case in each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from concern.errors import UserError
from inference.detector import torch_forward
from inference.onnx_cache import ExportMismatch, cache_key, cached_onnx_export, default_cache_dir
from inference.onnx_runtime import onnx_forward
from inference.optimized import InferenceModel, optimize_for_inference, optimized_forward

__all__ = ['PathChoice', 'InferencePath', 'OnnxRuntimeModel', 'choose_path', 'build_inference_path']


logger = logging.getLogger('dbnet')


@dataclass
class PathChoice:
    """The forward path a run takes. ``name``: 'plain' (the model as built), 'optimized' (inference.optimized) or
    'onnxruntime' (a cached ONNX export); ``precision``: 'fp32', 'bf16' or 'fp16'; ``reason``: why, for people;
    ``compiled``: the optimised model runs under ``torch.compile`` (``inference.optimized.CompiledInferenceModel``)."""

    name: str
    precision: str
    reason: str
    compiled: bool = False


def onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec('onnxruntime') is not None and importlib.util.find_spec('onnx') is not None


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
    ``onnxruntime.InferenceSession`` of an exported model (``inference.onnx_export.export_onnx``)."""

    def __init__(self, session):
        super().__init__()
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

    model.eval()
    if choice.name == 'plain':
        description = f'path: plain PyTorch fp32 ({choice.reason})'
        return InferencePath('plain', 'fp32', model, torch_forward(model, device), description)
    if choice.name == 'optimized':
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
