"""Command-line options shared by demo.py and eval.py for faster inference. Imports no torch (demo.py --onnx
runs without it)."""
from __future__ import annotations

import argparse

__all__ = ['add_inference_arguments', 'wants_optimized_model', 'check_precision_device', 'apply_inference_options']


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--optimize`` and ``--precision {fp32,bf16,fp16}`` to ``parser``."""
    parser.add_argument('--optimize', action='store_true',
                        help='BatchNorm folded into the convolutions, channels_last, inference mode '
                             '(deploy/optimize.py): the same maps within 1e-4, faster')
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'], default='fp32',
                        help='autocast precision of the optimised model (implies --optimize): fp16 / bf16 on a GPU, '
                             'bf16 on a CPU with AVX512-BF16 / AMX (elsewhere slower)')


def wants_optimized_model(args: argparse.Namespace) -> bool:
    return bool(args.optimize or args.precision != 'fp32')


def apply_inference_options(model, args: argparse.Namespace, device):
    """``model`` as ``--optimize`` / ``--precision`` ask: unchanged, or a ``deploy.optimize.InferenceModel`` over
    its optimised copy (same call interface; torch is imported only then)."""
    if not wants_optimized_model(args):
        return model
    from deploy.optimize import InferenceModel, optimize_for_inference
    return InferenceModel(optimize_for_inference(model), device, args.precision)


def check_precision_device(precision: str, device_type: str) -> None:
    """Raises ValueError, one sentence, when ``precision`` cannot run on a device of ``device_type``."""
    if precision == 'fp16' and device_type != 'cuda':
        raise ValueError(f"--precision fp16 needs a CUDA device, and this run uses {device_type}; use "
                         f"--precision bf16 or fp32 on a CPU.")
