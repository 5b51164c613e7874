"""The one data-loading path: the YAML's ``DataLoader`` (the original's keys) and ``make_train_loader``, which
turns it into the training loader (a ``ResumableSampler`` sharded per process, per-sample seeds); also the
validation collate ``ICDARCollectFN``. Validation and eval.py read the same YAML loaders through
``concern.evaluation.shard_loader`` (dataset order, sharded per process)."""

from __future__ import annotations

import signal
from collections import OrderedDict

import numpy as np
import torch
import torch.utils.data

from concern.distributed import DistributedContext
from concern.errors import UserError
from data.sampler import ResumableSampler, SeededDataset

__all__ = ['DataLoader', 'ICDARCollectFN', 'ignore_stop_signals', 'make_train_loader']


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker start: SIGINT / SIGTERM (Ctrl-C or a scheduler signals the whole process group)
    are left to the main process, which finishes its step, saves and shuts the workers down; a worker
    killed by them would break the batch being loaded (whatever the multiprocessing start method)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ICDARCollectFN:
    """Validation collate: ``image`` tensors are stacked to (N, 3, H, W); every other key stays a list of
    per-sample values, numpy arrays converted to tensors (as the original). Samples a test set left out
    (``{'dropped': path}`` from ``ImageDataset`` under ``on_error: skip``) are removed from the batch and their
    paths listed under ``'dropped'``; a batch of only such samples is ``{'dropped': [...]}``."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, batch):
        data = OrderedDict()
        dropped = [sample['dropped'] for sample in batch if 'dropped' in sample]
        for sample in (sample for sample in batch if 'dropped' not in sample):
            for key, value in sample.items():
                data.setdefault(key, []).append(torch.from_numpy(value) if isinstance(value, np.ndarray) else value)
        images = data.get('image')
        if images is not None:
            shapes = {tuple(image.shape) for image in images}
            if len(shapes) > 1:
                raise ValueError(
                    f'ICDARCollectFN: images of different shapes {sorted(shapes)} cannot be stacked; '
                    f'use batch_size 1 for validation or resize to a fixed size.'
                )
            data['image'] = torch.stack(images, 0)
        if dropped:
            data['dropped'] = dropped
        return data


class DataLoader(torch.utils.data.DataLoader):
    """torch DataLoader built from the original's YAML keys (``class: DataLoader`` in the experiment files).

    Args:
        dataset: a map-style dataset returning sample dicts.
        batch_size: the global batch (under DDP each process loads ``batch_size // world_size``).
        num_workers, drop_last, collect_fn (a collate callable; None = torch's default_collate, which stacks
            tensors and arrays): as the original.
        is_train: training loader; ``shuffle`` None means ``is_train``. Loaders with ``is_train`` False never
            drop the last incomplete batch (evaluation must see every image).
    Training does not iterate this object: ``make_train_loader`` builds the loader that does (order from the
    seed and epoch, sharded per process, resumable mid-epoch). Iterated directly it is a plain torch DataLoader
    (one process, torch's random order). Yields batches: dicts of stacked tensors (default_collate) or of
    ICDARCollectFN's stacked images and lists.
    """

    def __init__(
        self, dataset, batch_size=256, num_workers=10, is_train=True, collect_fn=None, drop_last=True, shuffle=None
    ):
        self.is_train = is_train
        self.shuffle = is_train if shuffle is None else bool(shuffle)
        self.collect_fn = collect_fn if collect_fn is not None else torch.utils.data.default_collate
        super().__init__(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=bool(drop_last) and is_train,
            shuffle=self.shuffle,
            collate_fn=self.collect_fn,
            persistent_workers=False,
        )


def make_train_loader(loader, context: DistributedContext, seed: int):
    """(torch DataLoader, its ResumableSampler) over the YAML DataLoader's dataset, workers and collate function,
    sharded for this rank. The YAML's batch_size is the total over all processes (as in the original): each of
    ``world_size`` processes takes ``batch_size // world_size``. The order of epoch ``e`` and each sample's
    augmentation depend only on (seed, e), so a resumed run sees the same data as an uninterrupted one."""
    dataset = loader.dataset
    if loader.batch_size % context.world_size:
        raise ValueError(
            f'batch_size {loader.batch_size} is not divisible by the {context.world_size} '
            f'processes; choose a multiple of {context.world_size}.'
        )
    batch_size = loader.batch_size // context.world_size
    sampler = ResumableSampler(
        len(dataset),
        shuffle=getattr(loader, 'shuffle', True) is not False,
        seed=seed,
        rank=context.rank,
        world_size=context.world_size,
    )
    torch_loader = torch.utils.data.DataLoader(
        SeededDataset(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=loader.num_workers,
        collate_fn=getattr(loader, 'collate_fn', None),
        drop_last=getattr(loader, 'drop_last', True),
        pin_memory=torch.cuda.is_available(),
        # the workers live through the run: an epoch of 900 photos lasts seconds on a GPU, and starting the
        # workers again at each one cost a third of the time (the order still comes from the sampler, per epoch)
        persistent_workers=loader.num_workers > 0,
        worker_init_fn=ignore_stop_signals,
    )
    if len(torch_loader) == 0:
        raise UserError(
            f'The training set has {len(sampler)} samples per process, fewer than one batch of '
            f'{batch_size}; lower --batch_size or add data.'
        )
    return torch_loader, sampler
