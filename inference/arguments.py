"""Command-line options shared by demo.py and eval.py for the forward path (``inference.paths``).
Imports no torch until a path is built (demo.py --onnx runs without it)."""

from __future__ import annotations

import argparse

__all__ = ['add_inference_arguments', 'inference_path_from_args', 'precision_of']


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--plain``, ``--optimize``, ``--precision {fp32,bf16,fp16,auto}``, ``--compile`` and ``--cache_dir``
    to ``parser``."""
    parser.add_argument(
        '--plain',
        action='store_true',
        help="run the model as built, in PyTorch (the original's path; slower). Default: the fastest path with "
        'the same detections: ONNX Runtime on a CPU (an export cached in --cache_dir), the optimised PyTorch '
        'model on CUDA or without onnxruntime',
    )
    parser.add_argument(
        '--cache_dir',
        help='folder of the cached ONNX exports of the default CPU path (default: $DBNET_CACHE_DIR, else '
        '~/.cache/dbnet/onnx)',
    )
    parser.add_argument(
        '--optimize',
        action='store_true',
        help='run the optimised PyTorch model: BatchNorm folded into the convolutions, channels_last, inference '
        'mode (inference/optimized.py): the same maps within 1e-4 (the default on CUDA)',
    )
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'fp16', 'auto'],
        help='autocast precision of the optimised model (any value implies --optimize; without it '
        'the model runs as built, in fp32): fp16 / bf16 on a GPU, bf16 on a CPU with '
        'AVX512-BF16 / AMX (elsewhere slower); auto: fp16 on a GPU, bf16 on a CPU with AMX, else fp32 '
        '(with --onnx: the int8 copy convert_to_onnx.py --int8 checked, on a CPU with VNNI / AMX)',
    )
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile the optimised model (implies --optimize; needs a C++ compiler on a CPU): weights '
        'pre-packed, pointwise ops fused; with --precision bf16 on a CPU with AMX 1.5-1.7x faster end to end than '
        'without. The first image compiles (25-80 s on 2 cores; PyTorch caches it on disk for later runs) and the '
        'first image of another size compiles once more, for every size (a slower, size-independent graph): it '
        'pays on many photos of one size',
    )


def precision_of(args: argparse.Namespace) -> str:
    """The precision the model runs in: ``--precision``, else fp32."""
    return args.precision or 'fp32'


def inference_path_from_args(model, structure, args: argparse.Namespace, device):
    """The ``inference.paths.InferencePath`` that ``--plain`` / ``--optimize`` / ``--precision`` / ``--compile`` /
    ``--cache_dir`` ask for over ``model`` (built from ``structure`` with ``args.resume``, on ``device``); prints
    its one line."""
    from inference.paths import build_inference_path, choose_path
    from inference.precision import resolve_precision

    args.precision = resolve_precision(args.precision, device.type)
    choice = choose_path(
        device.type, plain=args.plain, optimize=args.optimize, precision=args.precision, compiled=args.compile
    )
    path = build_inference_path(
        model,
        device,
        choice,
        checkpoint=args.resume,
        builder=structure.builder,
        strict=not args.non_strict,
        cache_dir=args.cache_dir,
    )
    print(path.description, flush=True)
    return path
