"""Command-line options shared by demo.py and eval.py: faster inference and the detection threshold. Imports no
torch (demo.py --onnx runs without it)."""

from __future__ import annotations

import argparse

from concern.errors import UserError

__all__ = [
    'add_inference_arguments',
    'wants_optimized_model',
    'check_precision_device',
    'apply_inference_options',
    'precision_of',
    'resolve_box_thresh',
    'ORIGINAL_BOX_THRESH',
]

# The original eval.py / demo.py --box_thresh default, used when neither the command line nor the experiment's
# representer sets one (the original's experiment files set none).
ORIGINAL_BOX_THRESH = 0.6


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--optimize`` and ``--precision {fp32,bf16,fp16}`` to ``parser``."""
    parser.add_argument(
        '--optimize',
        action='store_true',
        help='BatchNorm folded into the convolutions, channels_last, inference mode '
        '(deploy/optimize.py): the same maps within 1e-4, faster',
    )
    parser.add_argument(
        '--precision',
        choices=['fp32', 'bf16', 'fp16', 'auto'],
        help='autocast precision of the optimised model (any value implies --optimize; without it '
        'the model runs as built, in fp32): fp16 / bf16 on a GPU, bf16 on a CPU with '
        'AVX512-BF16 / AMX (elsewhere slower); auto: fp16 on a GPU, bf16 on a CPU with AMX, else fp32 '
        '(with --onnx: the int8 copy convert_to_onnx.py --int8 checked, on a CPU with VNNI / AMX)',
    )


def wants_optimized_model(args: argparse.Namespace) -> bool:
    """True when ``--optimize`` or any ``--precision`` was given."""
    return bool(args.optimize or args.precision is not None)


def precision_of(args: argparse.Namespace) -> str:
    """The precision the model runs in: ``--precision``, else fp32."""
    return args.precision or 'fp32'


def apply_inference_options(model, args: argparse.Namespace, device):
    """``model`` as ``--optimize`` / ``--precision`` ask: unchanged, or a ``deploy.optimize.InferenceModel`` over
    its optimised copy (same call interface; torch is imported only then). ``--precision auto`` is resolved here
    (``deploy.precision.auto_torch_precision``; the choice and its reason are printed) and ``args.precision``
    set to the precision chosen."""
    if not wants_optimized_model(args):
        return model
    from deploy.optimize import InferenceModel, optimize_for_inference

    if args.precision == 'auto':
        from deploy.precision import auto_torch_precision

        args.precision, reason = auto_torch_precision(device.type)
        print(reason, flush=True)

    import torch

    precision = precision_of(args)
    weight_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    return InferenceModel(optimize_for_inference(model, weight_dtype=weight_dtype), device, precision)


def check_precision_device(precision: str, device_type: str) -> None:
    """Raises UserError, one sentence, when ``precision`` cannot run on a device of ``device_type``."""
    if precision == 'fp16' and device_type != 'cuda':
        raise UserError(
            f'--precision fp16 needs a CUDA device, and this run uses {device_type}; use '
            f'--precision bf16 or fp32 on a CPU.'
        )


def resolve_box_thresh(given: float | None, config) -> tuple[float, str]:
    """``(box_thresh, where it came from)``: ``--box_thresh`` when given, else the box_thresh that the experiment
    (a compiled ``concern.config.Config``) gives its representer, else the original's command-line default 0.6."""
    spec = config.get('Experiment.structure.representer')
    representer_args = getattr(spec, 'args', spec if isinstance(spec, dict) else {})
    experiment = config.path
    if given is not None:
        return float(given), '--box_thresh'
    if 'box_thresh' in representer_args:
        return float(representer_args['box_thresh']), f"the representer's box_thresh in {experiment}"
    return ORIGINAL_BOX_THRESH, (f'the original eval.py / demo.py default; {experiment} sets no representer box_thresh')
