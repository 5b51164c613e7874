"""CPU cost of the training data pipeline per sample, by stage, and the cores a GPU needs to stay busy.

    python -m benchmarks.bench_train_pipeline datasets/icdar2015
    python -m benchmarks.bench_train_pipeline datasets/icdar2015 --experiment EXP.yaml --num 50 --repeats 3

Builds ``train_data`` of the experiment (default: experiments/seg_detector/ic15_resnet18_deform_thre.yaml, the
original's ICDAR 2015 pipeline: flip, rotate, resize 0.5-3x, 640x640 crop, MakeICDARData, MakeSegDetectionData,
MakeBorderMap, NormalizeImage, FilterKeys) through the config builder with ``data_dir`` / ``data_list`` pointed
at DATASET_DIR, and times, on one thread (OpenCV and torch limited to 1 thread, as one DataLoader worker):
reading (ground truth + JPEG decode), every process (AugmentDetectionData also per augmenter) and the collate
into batches of ``--batch``. Every repeat replays the same random draws (numpy / random seeded alike), so the
repeats differ only by machine noise; the figures are the medians over repeats.

Three paths are timed: ``two``, the pipeline with AugmentDetectionData + RandomCropData (the experiment's own, or
AugmentCropData split back into them); ``fused``, the same with AugmentCropData built from their arguments (the
one-warp fast path: same draws, polygons and label maps) and NormalizeImage writing float32; ``uint8``, the fused
one with NormalizeImage(on_device=True) (a uint8 image through collation, normalised by the model on the GPU).
They alternate repeat by repeat, so that a change in the machine's load hits all; ``--paths`` picks one.

Cores needed = ``--gpu_images_per_s`` / (images/s per core). The default, 250 images/s, is an ESTIMATE for
deformable ResNet-18 training at 640x640 batch 16 on an H100 (float32 / TF32), not a measurement: the
inference speed measured in docs/deployment.md (481 images/s at 800x800 batch 8, forward only), scaled by the
pixel count (x 800^2 / 640^2) and divided by 3 for forward + backward. Measure the real figure on the GPU with
``python -m benchmarks.bench_train_step --device cuda`` and pass it.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections import defaultdict

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.config import load_config
from data.processes import AugmentCropData, AugmentDetectionData, NormalizeImage, RandomCropData

DEFAULT_EXPERIMENT = 'experiments/seg_detector/ic15_resnet18_deform_thre.yaml'


class Timed:
    """Wraps a callable; adds its wall time to ``totals[name]`` on each call."""

    def __init__(self, name: str, function, totals: dict):
        self.name, self.function, self.totals = name, function, totals

    def __call__(self, *args):
        start = time.perf_counter()
        result = self.function(*args)
        self.totals[self.name] += time.perf_counter() - start
        return result


def build_dataset(experiment: str, dataset_dir: str, list_path: str, overrides=()):
    """``train_data`` of ``experiment`` reading ``dataset_dir`` / ``list_path``."""
    config = load_config(
        experiment, [f'train_data.data_dir=[{dataset_dir!r}]', f'train_data.data_list=[{list_path!r}]', *overrides]
    )
    return config.build('train_data')


def fused_processes(processes: list, on_device=None) -> list:
    """``processes`` with each training AugmentDetectionData directly followed by RandomCropData replaced by the
    equivalent AugmentCropData; ``on_device`` True / False replaces each NormalizeImage by one with that option."""
    out = []
    for process in processes:
        previous = out[-1] if out else None
        if isinstance(process, NormalizeImage) and on_device is not None:
            out.append(NormalizeImage(on_device=on_device))
        elif (
            isinstance(process, RandomCropData)
            and not process.require_original_image
            and isinstance(previous, AugmentDetectionData)
            and not previous.only_resize
        ):
            out[-1] = AugmentCropData(
                augmenter_args=previous.augmenter_args,
                size=process.size,
                max_tries=process.max_tries,
                min_crop_side_ratio=process.min_crop_side_ratio,
            )
        else:
            out.append(process)
    return out


def unfused_processes(processes: list) -> list:
    """``processes`` with each AugmentCropData replaced by the two processes it stands for."""
    out = []
    for process in processes:
        if isinstance(process, AugmentCropData):
            crop = process.crop
            out += [
                AugmentDetectionData(augmenter_args=process.augment.augmenter_args),
                RandomCropData(size=crop.size, max_tries=crop.max_tries, min_crop_side_ratio=crop.min_crop_side_ratio),
            ]
        else:
            out.append(process)
    return out


def run_once(dataset, indices, batch_size: int, seed: int) -> dict:
    """Seconds spent per stage over ``indices`` (one pass, with the random draws seeded by ``seed``)."""
    totals = defaultdict(float)
    stages = []
    for process in dataset.processes:
        name = type(process).__name__
        stages.append((name, process))
        if isinstance(process, AugmentDetectionData):
            augmenters = process.augmenter.augmenters
            originals = list(augmenters)
            augmenters[:] = [Timed(f'  {name}.{type(a).__name__}', a, defaultdict(float)) for a in originals]
    np.random.seed(seed)
    random.seed(seed)
    samples = []
    for index in indices:
        start = time.perf_counter()
        data = dataset.load(index)
        totals['read (gt + JPEG decode)'] += time.perf_counter() - start
        for name, process in stages:
            start = time.perf_counter()
            data = process(data)
            totals[name] += time.perf_counter() - start
        samples.append(data)
    start = time.perf_counter()
    for first in range(0, len(samples) - batch_size + 1, batch_size):
        default_collate(samples[first : first + batch_size])
    totals[f'collate (batches of {batch_size})'] += time.perf_counter() - start
    num_collated = len(samples) // batch_size * batch_size
    if num_collated:
        totals[f'collate (batches of {batch_size})'] *= len(samples) / num_collated  # per sample as if all were
    for _, process in stages:
        if isinstance(process, AugmentDetectionData):
            for timed in process.augmenter.augmenters:
                totals[timed.name] = timed.totals[timed.name]
            process.augmenter.augmenters[:] = [timed.function for timed in process.augmenter.augmenters]
    return dict(totals)


def report(runs: list, num: int, gpu_images_per_s: float, batch_size: int) -> str:
    """The text table: median ms per sample and share per stage, images/s per core, cores needed."""
    names = list(runs[0])
    median_ms = {name: statistics.median(run[name] for run in runs) / num * 1000 for name in names}
    top = [name for name in names if not name.startswith('  ')]
    total = statistics.median(sum(run[name] for name in top) for run in runs) / num * 1000
    spread = [sum(run[name] for name in top) / num * 1000 for run in runs]
    lines = [f'{"stage":42s} {"ms/sample":>10s} {"share":>7s}']
    for name in names:
        share = median_ms[name] / total * 100
        lines.append(f'{name:42s} {median_ms[name]:10.2f} {share:6.1f}%')
    per_core = 1000.0 / total
    cores = gpu_images_per_s / per_core
    slowest = max(top, key=lambda name: median_ms[name])
    lines += [
        f'{"total":42s} {total:10.2f} (repeats: {", ".join(f"{t:.1f}" for t in spread)} ms)',
        f'images/s per core: {per_core:.2f}; slowest stage: {slowest.strip()} '
        f'({median_ms[slowest] / total * 100:.0f}%)',
        f'cores to feed {gpu_images_per_s:g} images/s (the GPU training speed, --gpu_images_per_s): '
        f'{cores:.1f} -> {math.ceil(cores)} data workers',
    ]
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dataset_dir', help='dataset folder in the DB layout (train_images/, train_gts/)')
    parser.add_argument('--experiment', default=DEFAULT_EXPERIMENT, help='experiment whose train_data is timed')
    parser.add_argument('--list', help='list of images (default DATASET_DIR/train_list.txt)')
    parser.add_argument('--num', type=int, default=50, help='samples per repeat (default 50)')
    parser.add_argument('--repeats', type=int, default=3, help='repeats; the median is reported (default 3)')
    parser.add_argument('--batch', type=int, default=16, help='collate batch size (default 16)')
    parser.add_argument(
        '--gpu_images_per_s',
        type=float,
        default=250.0,
        help='training images/s of the GPU (default 250: an estimate for an H100, see the doc)',
    )
    parser.add_argument(
        '--paths',
        choices=['all', 'two', 'fused', 'uint8'],
        default='all',
        help='time the two-process augmentation + crop, the fused AugmentCropData, the fused one with '
        'NormalizeImage(on_device=True), or all three (default)',
    )
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE', help='config override')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    list_path = args.list or os.path.join(args.dataset_dir, 'train_list.txt')
    dataset = build_dataset(args.experiment, args.dataset_dir, list_path, args.opt)
    indices = np.random.default_rng(0).choice(len(dataset), size=min(args.num, len(dataset)), replace=False)
    load = os.getloadavg()
    print(
        f'{args.experiment} train_data on {len(indices)} images of {list_path}, {args.repeats} repeats, '
        f'1 thread; machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} '
        f'at start'
    )
    own = list(dataset.processes)
    paths = {
        'two processes (AugmentDetectionData + RandomCropData)': unfused_processes(fused_processes(own, False)),
        'fused (AugmentCropData)': fused_processes(own, on_device=False),
        'uint8 (AugmentCropData, NormalizeImage on_device)': fused_processes(own, on_device=True),
    }
    paths = {name: processes for name, processes in paths.items() if args.paths in ('all', name.split()[0])}
    runs = {name: [] for name in paths}
    for repeat in range(-1, args.repeats):  # the paths alternate, so that a change in the machine's load hits both
        for name, processes in paths.items():
            dataset.processes = processes
            if repeat < 0:
                run_once(dataset, indices[:2], args.batch, seed=1)  # warm-up (imports, caches)
            else:
                runs[name].append(run_once(dataset, indices, args.batch, seed=0))
    totals = {}
    for name in paths:
        print(f'\n== {name} ==')
        print(report(runs[name], len(indices), args.gpu_images_per_s, args.batch))
        totals[name] = statistics.median(sum(v for k, v in run.items() if not k.startswith('  ')) for run in runs[name])
    dataset.processes = own
    if len(totals) > 1:
        ms = [total / len(indices) * 1000 for total in totals.values()]
        print(
            f'\n{" -> ".join(name.split()[0] for name in totals)}: {" -> ".join(f"{t:.2f}" for t in ms)} ms/sample '
            f'({ms[0] / ms[-1]:.2f}x); cores to feed {args.gpu_images_per_s:g} images/s: '
            f'{" -> ".join(f"{args.gpu_images_per_s * t / 1000:.1f}" for t in ms)}'
        )
    load = os.getloadavg()
    print(
        f'load average at end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (above the core count: figures are '
        f'slower than on an idle machine)'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
