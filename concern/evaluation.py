"""The one evaluation loop: model -> representer -> measurer over a test loader, used by eval.py and by
validation during training.

``evaluate`` runs the model once and scores the detections at ``box_thresh`` or, given ``sweep``, at every
threshold of the sweep (the detections at a higher threshold are those at the lowest one that score at least as
much), keeps the threshold with the best F-measure, and (given ``result_dir``) writes ``res_<image>.txt`` at the
threshold its metrics describe. Given ``thresh_sweep`` it also post-processes the same model output at every
binarisation threshold and scores each with every box threshold. In a distributed run each rank takes every
``world_size``-th image and the per-image results are gathered on all ranks before they are combined, so every
rank returns the same metrics; the main rank writes the result files. Given ``bootstrap`` it adds a confidence
interval of the kept threshold's metrics, from the images drawn again with replacement (``bootstrap_interval``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import Subset
from tqdm import tqdm

from concern.distributed import DistributedContext, all_gather_objects
from concern.protocols import METRIC_KEYS
from concern.result_files import result_filename, write_result_file

__all__ = ['bootstrap_interval', 'iterate_predictions', 'evaluate', 'keep_scores_above', 'shard_loader']

GT_KEYS = ('polygons', 'ignore_tags', 'shape', 'filename')


def shard_loader(loader, context: DistributedContext):
    """This rank's share of a validation loader, in dataset order (never shuffled, nothing dropped,
    whatever the YAML's DataLoader says)."""
    dataset = loader.dataset
    if context.is_distributed:
        dataset = Subset(dataset, range(context.rank, len(dataset), context.world_size))
    return TorchDataLoader(
        dataset,
        batch_size=loader.batch_size,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        shuffle=False,
        drop_last=False,
    )


def iterate_predictions(
    model,
    loader,
    device: torch.device,
    show_progress: bool = True,
    desc: str = 'evaluating',
    dropped: list | None = None,
) -> Iterator[tuple[dict, torch.Tensor]]:
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


def keep_scores_above(output, threshold: float):
    """The detections of a representer output ``(boxes per image, scores per image)`` whose score is at least
    ``threshold`` (the representer's own box_thresh filter, applied after the fact for a sweep)."""
    boxes_batch, scores_batch = output
    kept_boxes, kept_scores = [], []
    for boxes, scores in zip(boxes_batch, scores_batch):
        keep = [index for index, score in enumerate(scores) if score >= threshold]
        kept_boxes.append([boxes[index] for index in keep])
        kept_scores.append([scores[index] for index in keep])
    return kept_boxes, kept_scores


def bootstrap_interval(per_image: Sequence[dict], measurer, resamples: int, level: float = 0.95, seed: int = 0):
    """The percentile-bootstrap interval of precision, recall and F over images.

    ``per_image``: the measurer's per-image results of one evaluation (at one pair of thresholds). The images are
    drawn again with replacement ``resamples`` times (a random stream seeded with ``seed``: the same interval on
    every run) and each draw is scored with ``measurer.gather_measure``. Returns ``{'precision': [low, high],
    'recall': [...], 'fmeasure': [...], 'level', 'resamples', 'images'}``: how far the figures could move on
    another set of as many images like these; it says nothing of the noise of training."""
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f'bootstrap_interval: need resamples >= 1 and 0 < level < 1, got {resamples} and {level}.')
    per_image = list(per_image)
    if not per_image:
        raise ValueError('bootstrap_interval: no image was evaluated, so there is nothing to resample.')
    rng = np.random.default_rng(seed)
    draws = {key: [] for key in METRIC_KEYS}
    for _ in range(resamples):
        picked = rng.integers(0, len(per_image), len(per_image))
        metrics = measurer.gather_measure([per_image[index] for index in picked])
        for key in METRIC_KEYS:
            draws[key].append(metrics[key])
    tail = (1 - level) / 2 * 100
    interval = {key: [float(np.percentile(draws[key], q)) for q in (tail, 100 - tail)] for key in METRIC_KEYS}
    return {**interval, 'level': float(level), 'resamples': int(resamples), 'images': len(per_image)}


def evaluate(
    model,
    loader,
    representer,
    measurer,
    device: torch.device,
    context: DistributedContext | None = None,
    is_output_polygon: bool = False,
    box_thresh: float = 0.6,
    show_progress: bool = True,
    sweep: Sequence[float] = (),
    thresh_sweep: Sequence[float] = (),
    result_dir: str | None = None,
    on_batch: Callable | None = None,
    desc: str = 'evaluating',
    bootstrap: int = 0,
) -> dict:
    """Precision / recall / F-measure of ``model`` on ``loader``, from one pass of the model.

    Args:
        box_thresh: the minimum detection score; ignored when ``sweep`` is given.
        sweep: thresholds to score; the one with the best F-measure is kept (first best on ties).
        thresh_sweep: binarisation thresholds of the probability map (the representer's ``thresh``) to score,
            each with every box threshold (``sweep``, else ``box_thresh``): the post-processing runs once per
            value on the same model output; the best pair is kept (first best on ties, ``thresh`` major).
        result_dir: when given, ``res_<image>.txt`` (ICDAR submission format) is written there for every image,
            with the detections at the thresholds the returned metrics describe.
        on_batch: called as ``on_batch(batch, polygons per image, scores per image)`` with the detections at
            ``box_thresh`` for every batch (e.g. overlays); not allowed with either sweep.
        bootstrap: when positive, that many resamples of the images give the 95% interval of the kept
            thresholds' metrics (``interval``, see ``bootstrap_interval``; a sweep's best pair is chosen on the
            same images, so its interval is optimistic by that choice).

    Returns ``{'box_thresh', 'precision', 'recall', 'fmeasure'}`` (plain floats; with ``thresh_sweep`` also
    ``thresh``), plus ``sweep`` (a list of the same dicts, one per threshold or pair of thresholds) when sweeping,
    ``interval`` with ``bootstrap``, and ``skipped_images`` (how many test images could not be read and were left
    out, under ``on_error: skip``) with their paths under ``skipped_files`` when there were any.
    """
    if (sweep or thresh_sweep) and on_batch is not None:
        raise ValueError("evaluate: on_batch draws one threshold's detections and cannot be used with a sweep.")
    if thresh_sweep and not hasattr(representer, 'thresh'):
        raise ValueError(
            f'evaluate: thresh_sweep needs a representer with a thresh; {type(representer).__name__} has none.'
        )
    context = context or DistributedContext()
    thresholds = [float(threshold) for threshold in sweep] or [float(box_thresh)]
    binarisations = [float(value) for value in thresh_sweep] or [None]  # None: the representer's own thresh
    pairs = [(binarisation, threshold) for binarisation in binarisations for threshold in thresholds]
    dropped: list = []
    predictions = iterate_predictions(
        model, shard_loader(loader, context), device, show_progress and context.is_main, desc=desc, dropped=dropped
    )
    raw, images = _measure(
        predictions, representer, measurer, pairs, bool(sweep), is_output_polygon, result_dir is not None, on_batch
    )
    dropped = all_gather_objects(dropped, context)
    # per-image results, flat (validate_measure returns one list per batch)
    gathered = {pair: [image for part in all_gather_objects(raw[pair], context) for image in part] for pair in pairs}
    table = [
        {
            **({} if thresh is None else {'thresh': thresh}),
            'box_thresh': box,
            **measurer.gather_measure(gathered[thresh, box]),
        }
        for thresh, box in pairs
    ]
    metrics = dict(max(table, key=lambda row: row['fmeasure']))
    if sweep or thresh_sweep:
        metrics['sweep'] = table
    if bootstrap:
        metrics['interval'] = bootstrap_interval(
            gathered[metrics.get('thresh'), metrics['box_thresh']], measurer, bootstrap
        )
    if result_dir is not None:
        _write_results(result_dir, all_gather_objects(images[metrics.get('thresh')], context), metrics, context)
    if dropped:
        metrics['skipped_images'] = len(dropped)
        metrics['skipped_files'] = dropped
    return metrics


def _write_results(result_dir: str, images: list, metrics: dict, context) -> None:
    """``res_<image>.txt`` of every image at the kept thresholds (the main process writes them)."""
    if not context.is_main:
        return
    os.makedirs(result_dir, exist_ok=True)
    for name, polygons, scores in images:
        polygons, scores = keep_scores_above(([polygons], [scores]), metrics['box_thresh'])
        write_result_file(os.path.join(result_dir, result_filename(name)), polygons[0], scores[0])


def _measure(predictions, representer, measurer, pairs, swept, is_output_polygon, keep_images, on_batch):
    """One pass over ``predictions`` ((batch, probability map) pairs): the per-batch measures of every
    (thresh, box_thresh) pair and the detections per image at the lowest box_thresh (``keep_images``), per thresh.
    The representer's thresholds are restored afterwards."""
    raw = {pair: [] for pair in pairs}
    binarisations = list(dict.fromkeys(binarisation for binarisation, _ in pairs))
    thresholds = list(dict.fromkeys(threshold for _, threshold in pairs))
    images = {binarisation: [] for binarisation in binarisations}  # (filename, detections at the lowest threshold)
    previous, previous_thresh = getattr(representer, 'box_thresh', None), getattr(representer, 'thresh', None)
    if previous is not None:
        representer.box_thresh = min(thresholds)  # the others are subsets of its detections
    try:
        for batch, pred in predictions:
            gt = {key: batch[key] for key in GT_KEYS if key in batch}
            for binarisation in binarisations:
                if binarisation is not None:
                    representer.thresh = binarisation
                output = representer.represent(batch, pred, is_output_polygon=is_output_polygon)
                for threshold in thresholds:
                    detections = keep_scores_above(output, threshold) if swept else output
                    raw[binarisation, threshold].append(
                        measurer.validate_measure(
                            gt, detections, is_output_polygon=is_output_polygon, box_thresh=threshold
                        )
                    )
                if keep_images:
                    images[binarisation] += [(str(n), p, s) for n, p, s in zip(batch['filename'], *output)]
                if on_batch is not None:
                    on_batch(batch, *output)
    finally:
        if previous is not None:
            representer.box_thresh = previous
        if binarisations != [None]:
            representer.thresh = previous_thresh
    return raw, images
