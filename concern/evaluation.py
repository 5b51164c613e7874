"""Model -> representer -> measurer over a validation loader, shared by train.py and eval.py.

In a distributed run each rank takes every ``world_size``-th image and the per-image results are
gathered on all ranks before they are combined, so every rank returns the same metrics.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader as TorchDataLoader, Subset
from tqdm import tqdm

from concern.distributed import DistributedContext, all_gather_objects

__all__ = ['iterate_predictions', 'evaluate', 'shard_loader']


def shard_loader(loader, context: DistributedContext):
    """This rank's share of a validation loader, in dataset order (never shuffled, nothing dropped,
    whatever the YAML's DataLoader says)."""
    dataset = loader.dataset
    if context.is_distributed:
        dataset = Subset(dataset, range(context.rank, len(dataset), context.world_size))
    return TorchDataLoader(dataset, batch_size=loader.batch_size, num_workers=loader.num_workers,
                           collate_fn=loader.collate_fn, shuffle=False, drop_last=False)


def iterate_predictions(model, loader, device: torch.device, show_progress: bool = True,
                        desc: str = 'evaluating', dropped: list | None = None) -> Iterator[tuple[dict, torch.Tensor]]:
    """Yields (batch, probability map (N,1,H,W) on the CPU) for every batch of ``loader``.

    Images a test set left out (``on_error: skip``: ``ImageDataset`` marks them and ``ICDARCollectFN`` lists
    their paths under ``batch['dropped']``) are appended to ``dropped`` when it is given; a batch whose every
    image was left out yields nothing."""
    model.eval()
    with torch.inference_mode():
        for batch in tqdm(loader, total=len(loader), disable=not show_progress, desc=desc, dynamic_ncols=True):
            if dropped is not None:
                dropped.extend(batch.get('dropped', []))
            if 'image' not in batch:
                continue
            image = batch['image'].to(device, non_blocking=True)
            pred = model({**batch, 'image': image}, training=False)
            if isinstance(pred, dict):
                pred = pred['binary']
            yield batch, pred.float().cpu()


def evaluate(model, loader, representer, measurer, device: torch.device,
             context: DistributedContext | None = None, is_output_polygon: bool = False,
             box_thresh: float = 0.6, show_progress: bool = True) -> dict:
    """Precision / recall / F-measure of ``model`` on ``loader``.

    Returns the measurer's combined metrics (plain floats), plus ``skipped_images`` (how many test images
    could not be read and were left out, under ``on_error: skip``) when there were any.
    """
    context = context or DistributedContext()
    raw, dropped = [], []
    for batch, pred in iterate_predictions(model, shard_loader(loader, context), device,
                                           show_progress and context.is_main, dropped=dropped):
        output = representer.represent(batch, pred, is_output_polygon=is_output_polygon)
        raw.append(measurer.validate_measure(batch, output, is_output_polygon=is_output_polygon,
                                             box_thresh=box_thresh))
    raw = all_gather_objects(raw, context)
    dropped = all_gather_objects(dropped, context)
    metrics = measurer.gather_measure(raw)
    if dropped:
        metrics['skipped_images'] = len(dropped)
    return metrics
