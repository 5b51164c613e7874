"""The precision of the optimised PyTorch model: ``--precision auto`` resolved for the device, and the check that a
precision can run there.

``auto`` is fp16 on a CUDA GPU, bf16 on a CPU with AMX-BF16 (oneDNN's AMX kernels; on CPUs with AVX512-BF16 alone,
or without either, bf16 gains little or is slower), fp32 elsewhere; the F change of these was measured with
benchmarks/bench_inference.py (docs/deployment.md). Imports no torch."""

from __future__ import annotations

from concern.cpu import cpu_flags
from concern.errors import UserError

__all__ = ['auto_torch_precision', 'resolve_precision', 'check_precision_device', 'BF16_CPU_FLAGS']


BF16_CPU_FLAGS = ('amx_bf16',)  # where bf16 inference is fast enough for --precision auto


def auto_torch_precision(device_type: str, flags=None) -> tuple[str, str]:
    """``(precision, reason)`` for the optimised PyTorch model on a device of ``device_type``; ``flags``: the
    CPU flags (default: read from /proc/cpuinfo)."""
    if device_type == 'cuda':
        return 'fp16', 'precision auto: fp16 (CUDA GPU)'
    flags = cpu_flags() if flags is None else flags
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if found:
        return 'bf16', f'precision auto: bf16 (the CPU has {found[0]})'
    return 'fp32', 'precision auto: fp32 (the CPU has no AMX-BF16, where bf16 would not be faster)'


def resolve_precision(precision: str | None, device_type: str) -> str | None:
    """``--precision`` with ``auto`` replaced by what ``inference.precision.auto_torch_precision`` picks for a device
    of ``device_type`` (fp16 on a GPU, bf16 on a CPU with AMX, else fp32; the choice and its reason are printed);
    other values (None included) unchanged."""
    if precision != 'auto':
        return precision
    from inference.precision import auto_torch_precision

    chosen, reason = auto_torch_precision(device_type)
    print(reason, flush=True)
    return chosen


def check_precision_device(precision: str, device_type: str) -> None:
    """Raises UserError, one sentence, when ``precision`` cannot run on a device of ``device_type``."""
    if precision == 'fp16' and device_type != 'cuda':
        raise UserError(
            f'--precision fp16 needs a CUDA device, and this run uses {device_type}; use '
            f'--precision bf16 or fp32 on a CPU.'
        )
