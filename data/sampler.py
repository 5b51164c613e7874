"""A sampler whose order depends only on (seed, epoch), shards across ranks, and can resume mid-epoch.

Each item it yields is ``(index, sample_seed)``; ``SeededDataset`` seeds Python's, NumPy's and
torch's random generators with ``sample_seed`` before producing the sample, so augmentation of a
sample is the same whichever worker draws it and whether or not training was interrupted.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ['ResumableSampler', 'SeededDataset']


class ResumableSampler(Sampler):
    """Yields ``(index, sample_seed)`` for this rank's share of ``dataset_size`` items.

    The permutation of epoch ``e`` is drawn from ``seed + e``; rank ``r`` of ``world_size`` takes
    positions ``r, r + world_size, ...`` (the total padded to a multiple of ``world_size``, as
    DistributedSampler does). ``skip(n)`` drops this rank's first ``n`` items of the current epoch
    (used when resuming from a checkpoint saved mid-epoch); it lasts for one epoch.
    """

    def __init__(self, dataset_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        if dataset_size <= 0:
            raise ValueError('the dataset is empty: no samples to train on.')
        self.dataset_size = dataset_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip = 0
        self.per_rank = -(-dataset_size // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def skip(self, count: int) -> None:
        self._skip = max(0, int(count))

    def _order(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.dataset_size, generator=generator).tolist()
        else:
            order = list(range(self.dataset_size))
        total = self.per_rank * self.world_size
        order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self):
        order = self._order()
        skip, self._skip = self._skip, 0
        for position, index in enumerate(order):
            if position < skip:
                continue
            sample_seed = (self.seed * 1_000_003 + self.epoch * 100_003 + index) % (2**31)
            yield index, sample_seed

    def __len__(self) -> int:
        return self.per_rank


class SeededDataset(Dataset):
    """Wraps a dataset so that ``dataset[(index, seed)]`` seeds the random generators first."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        if isinstance(item, tuple):
            index, seed = item
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
        else:
            index = item
        return self.dataset[index]

    def __getattr__(self, name):
        if name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)
