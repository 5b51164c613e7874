"""DataLoader (the original's YAML keys, plus distributed sampling and a seed) and ICDARCollectFN."""
from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import torch
import torch.distributed
import torch.utils.data

__all__ = ['DataLoader', 'ICDARCollectFN', 'seed_worker']


def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a worker from torch's per-worker seed (different per worker and epoch).

    The original seeded every worker with its id, so each epoch repeated the same augmentations.
    """
    seed = torch.initial_seed() % 2 ** 32
    np.random.seed(seed)
    random.seed(seed)


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
                raise ValueError(f'ICDARCollectFN: images of different shapes {sorted(shapes)} cannot be stacked; '
                                 f'use batch_size 1 for validation or resize to a fixed size.')
            data['image'] = torch.stack(images, 0)
        if dropped:
            data['dropped'] = dropped
        return data


class DataLoader(torch.utils.data.DataLoader):
    """torch DataLoader built from the original's YAML keys.

    Args:
        dataset: a map-style dataset returning sample dicts.
        batch_size: the global batch; with ``distributed`` each process loads ``batch_size // world_size``.
        num_workers, drop_last, collect_fn (a collate callable; None = torch's default_collate, which stacks
            tensors and arrays): as the original.
        is_train: training loader; ``shuffle`` None means ``is_train``. Loaders with ``is_train`` False never
            drop the last incomplete batch (evaluation must see every image).
        distributed: use a DistributedSampler over the initialised process group; call ``set_epoch(epoch)``
            every epoch to reshuffle.
        seed: order of the shuffled samples depends only on (seed, epoch) when given (None: torch's RNG).
        pin_memory: passed to torch.
    Yields batches: dicts of stacked tensors (training) or of ICDARCollectFN's stacked images and lists.
    """

    def __init__(self, dataset, batch_size=256, num_workers=10, is_train=True, collect_fn=None, drop_last=True,
                 shuffle=None, distributed=False, seed=None, pin_memory=False):
        self.is_train = is_train
        self.shuffle = is_train if shuffle is None else bool(shuffle)
        self.seed = seed
        self.distributed = distributed
        self.collect_fn = collect_fn if collect_fn is not None else torch.utils.data.default_collate
        drop_last = bool(drop_last) and is_train
        self.order_generator = None
        sampler = None
        if distributed:
            if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
                raise RuntimeError('DataLoader(distributed=True) needs an initialised process group; '
                                   'launch with torchrun or set distributed: false.')
            world = torch.distributed.get_world_size()
            if batch_size % world:
                raise ValueError(f'DataLoader: batch_size {batch_size} is not divisible by the world size {world}.')
            batch_size //= world
            sampler = torch.utils.data.DistributedSampler(dataset, shuffle=self.shuffle, drop_last=drop_last,
                                                          seed=0 if seed is None else seed)
        elif self.shuffle and seed is not None:
            self.order_generator = torch.Generator().manual_seed(seed)
            sampler = torch.utils.data.RandomSampler(dataset, generator=self.order_generator)
        super().__init__(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last,
                         shuffle=self.shuffle if sampler is None else None, sampler=sampler,
                         collate_fn=self.collect_fn, pin_memory=pin_memory, worker_init_fn=seed_worker,
                         persistent_workers=False)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass's order a function of (seed, epoch) (distributed or seeded loaders)."""
        if isinstance(self.sampler, torch.utils.data.DistributedSampler):
            self.sampler.set_epoch(epoch)
        elif self.order_generator is not None:
            self.order_generator.manual_seed(self.seed + epoch)
