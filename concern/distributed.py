"""One process or many: the distributed context that train.py and eval.py share.

``torchrun`` (or ``launch_processes``, behind ``train.py --num_gpus N``) sets RANK / WORLD_SIZE / LOCAL_RANK;
``init_distributed`` then starts the process group (NCCL on CUDA, gloo on CPU), also for a world of one process.
Without those variables everything runs in a single process without a process group.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException, ProcessExitedException

__all__ = [
    'DistributedContext',
    'init_distributed',
    'choose_device',
    'all_gather_objects',
    'broadcast_flag',
    'free_port',
    'launch_processes',
]


@dataclass
class DistributedContext:
    """Rank / world size of this process; ``is_main`` is rank 0 (the one that logs and saves). ``launched``: started
    by torchrun or ``launch_processes`` (a process group exists even when ``world_size`` is 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """``requested`` ('cpu', 'cuda', 'cuda:1', None = CUDA when available)."""
    if requested:
        device = torch.device(requested)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise RuntimeError(f'--device {requested} was asked for, but CUDA is not available here; use --device cpu.')
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
    context = DistributedContext(rank, world_size, local_rank, launched='WORLD_SIZE' in os.environ)
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


def free_port() -> int:
    """A TCP port on this machine that nothing listens on now (for MASTER_PORT)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run_rank(rank: int, world_size: int, entry, argv: list) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    code = entry(argv)
    if code:
        sys.exit(code)


def launch_processes(world_size: int, entry, argv: list) -> int:
    """Runs ``entry(argv)`` in ``world_size`` new processes on this machine with the environment torchrun gives
    (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free port), and waits for them.

    ``entry`` must be a module-level function (the processes are spawned). When a process fails (a non-zero
    exit or an exception), the others are terminated and, after one line on stderr naming that process (which
    has printed its own message), the result is its exit code (1 for an exception or a signal); 0 when every
    process succeeded."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // world_size)))
    try:
        mp.start_processes(
            _run_rank, args=(world_size, entry, argv), nprocs=world_size, join=True, start_method='spawn'
        )
    except ProcessException as error:
        print(
            f'error: training process {error.error_index} of {world_size} failed and the others were stopped; '
            f'its message is above.',
            file=sys.stderr,
        )
        code = getattr(error, 'exit_code', 1) if isinstance(error, ProcessExitedException) else 1
        return code if code > 0 else 1
    return 0
