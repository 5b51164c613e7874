"""One process or many: the distributed context that train.py and eval.py share.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; ``init_distributed`` then starts the process group
(NCCL on CUDA, gloo on CPU). Without those variables everything runs in a single process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ['DistributedContext', 'init_distributed', 'choose_device', 'all_gather_objects',
           'broadcast_flag']


@dataclass
class DistributedContext:
    """Rank / world size of this process; ``is_main`` is rank 0 (the one that logs and saves)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """``requested`` ('cpu', 'cuda', 'cuda:1', None = CUDA when available)."""
    if requested:
        device = torch.device(requested)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError(f"--device {requested} was asked for, but CUDA is not available here; "
                               f"use --device cpu.")
        if device.type == 'cuda' and device.index is None:
            device = torch.device('cuda', local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device('cuda', local_rank)
    return torch.device('cpu')


def init_distributed(device_request: str | None = None) -> tuple[DistributedContext, torch.device]:
    """Reads torchrun's environment, starts the process group, and picks this process's device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    context = DistributedContext(rank, world_size, local_rank)
    device = choose_device(device_request, local_rank)
    if context.is_distributed and not dist.is_initialized():
        backend = 'nccl' if device.type == 'cuda' else 'gloo'
        if device.type == 'cuda':
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return context, device


def all_gather_objects(items: list, context: DistributedContext) -> list:
    """Concatenates each rank's list (in rank order) on every rank."""
    if not context.is_distributed:
        return list(items)
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


def broadcast_flag(flag: bool, context: DistributedContext, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    if not context.is_distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)
