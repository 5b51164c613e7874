"""The CPU's feature flags, read once from /proc/cpuinfo: the one place training and inference ask what the CPU has
(bfloat16 dot products for --amp / --precision, int8 dot products for the int8 ONNX model). Imports no torch."""

from __future__ import annotations

import os

__all__ = ['cpu_flags', 'cpu_has_bf16', 'INT8_CPU_FLAGS', 'BF16_INSTRUCTION_FLAGS']


INT8_CPU_FLAGS = ('amx_int8', 'avx512_vnni', 'avx_vnni')


BF16_INSTRUCTION_FLAGS = ('avx512_bf16', 'amx_bf16')  # bf16 dot products in hardware at all


def cpu_flags(path: str = '/proc/cpuinfo') -> frozenset:
    """The CPU's feature flags (the first ``flags`` line of ``path``); empty where there is no such file."""
    if not os.path.exists(path):
        return frozenset()
    with open(path) as handle:
        for line in handle:
            if line.startswith('flags'):
                return frozenset(line.split(':', 1)[1].split())
    return frozenset()


def cpu_has_bf16(flags=None) -> bool:
    """Whether the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX-BF16; elsewhere bfloat16 is
    emulated and slower than float32). ``flags``: the CPU flags (default: read from /proc/cpuinfo)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_INSTRUCTION_FLAGS)
