"""Training images/s of an experiment's model on one device, without the data pipeline: the ``--gpu_images_per_s``
that benchmarks/bench_train_pipeline.py turns into the number of data workers.

    python -m benchmarks.bench_train_step --device cuda [--experiment EXP.yaml] [--batch 16] [--size 640] [--amp]
    python -m benchmarks.bench_train_step --device cpu --experiment experiments/icdar2015/ic15_resnet18_cpu.yaml \
        --batch 8 --size 448 --amp --channels_last     # the CPU recipe's step

Builds ``Experiment.structure`` (model and loss) and the optimizer of ``Experiment.train.scheduler`` of the
experiment (default: experiments/seg_detector/ic15_resnet18_deform_thre.yaml, deformable ResNet-18; the backbone
is built without ImageNet weights, which do not change the time), and times full training steps (forward, loss,
backward, optimizer step; ``--amp`` and ``--channels_last`` as in train.py: float16 autocast and a GradScaler on
CUDA, bfloat16 autocast on a CPU; NHWC memory order) on one batch kept on the device: a random image and label
maps shaped as the pipeline's (text rectangles covering about a tenth of the crop, border maps in [0.3, 0.7]).
Prints the median step time over ``--repeats`` groups of ``--steps`` steps and the images/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

if __package__ in (None, ''):  # run by its path (python tools/x.py): the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from concern.config import load_config
from concern.errors import UserError
from training.trainer import autocast_dtype

DEFAULT_EXPERIMENT = 'experiments/seg_detector/ic15_resnet18_deform_thre.yaml'
BACKBONE_ARGS = 'Experiment.structure.builder.model_args.backbone_args'


def label_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> dict:
    """A training batch as the pipeline makes it (shapes, dtypes, value ranges), on ``device``."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((batch, 1, size, size), np.float32)
    for index in range(batch):
        for _ in range(8):  # eight text lines of about 1/8 x 1/10 of the crop
            x, y = rng.integers(0, size - size // 8, 2)
            gt[index, 0, y : y + size // 10, x : x + size // 8] = 1.0
    thresh_mask = np.minimum(gt[:, 0] * 2 + rng.random((batch, size, size), np.float32) * 0.1, 1.0) > 0.5
    data = {
        'image': rng.standard_normal((batch, 3, size, size), np.float32) * 0.3,
        'gt': gt,
        'mask': np.ones((batch, size, size), np.float32),
        'thresh_map': 0.3 + 0.4 * rng.random((batch, size, size), np.float32),
        'thresh_mask': thresh_mask.astype(np.float32),
    }
    return {key: torch.from_numpy(value).to(device) for key, value in data.items()}


def time_steps(
    experiment: str,
    device: str,
    batch: int,
    size: int,
    amp: bool,
    steps: int,
    repeats: int,
    overrides=(),
    channels_last: bool = False,
) -> list:
    """Seconds per training step, one figure per group of ``steps`` steps (after two warm-up groups)."""
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UserError('--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or run on a GPU machine.')
    config = load_config(experiment, list(overrides))
    if config.has(BACKBONE_ARGS):  # no ImageNet download: the weights do not change the time
        config.set(f'{BACKBONE_ARGS}.pretrained', False)
    else:
        config.set(BACKBONE_ARGS, {'pretrained': False})
    model = config.build('Experiment.structure').builder.build().to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    model.train()
    optimizer = config.build('Experiment.train.scheduler').create_optimizer(model.parameters())
    scaler = torch.amp.GradScaler('cuda', enabled=amp and device.type == 'cuda')
    data = label_batch(batch, size, device)
    data['image'] = data['image'].contiguous(memory_format=memory_format)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype(device), enabled=amp):
            loss, _pred, _metrics = model(data, training=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    times = []
    for group in range(repeats + 2):
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        if group >= 2:  # the first groups pay cuDNN's algorithm search and the allocator's growth
            times.append((time.perf_counter() - start) / steps)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--experiment', default=DEFAULT_EXPERIMENT, help='experiment whose model and optimizer run')
    parser.add_argument('--device', default='cuda', help='torch device (default cuda)')
    parser.add_argument('--batch', type=int, default=16, help='images per step (default 16)')
    parser.add_argument('--size', type=int, default=640, help='square crop side (default 640)')
    parser.add_argument('--amp', action='store_true', help='mixed precision as train.py --amp (bfloat16 on a CPU)')
    parser.add_argument('--channels_last', action='store_true', help='NHWC memory order, as train.py --channels_last')
    parser.add_argument('--steps', type=int, default=10, help='steps per timed group (default 10)')
    parser.add_argument('--repeats', type=int, default=3, help='timed groups; the median is reported (default 3)')
    parser.add_argument('--cudnn_benchmark', action='store_true', help='torch.backends.cudnn.benchmark = True')
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE', help='config override')
    args = parser.parse_args(argv)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    times = time_steps(
        args.experiment,
        args.device,
        args.batch,
        args.size,
        args.amp,
        args.steps,
        args.repeats,
        args.opt,
        channels_last=args.channels_last,
    )
    step = statistics.median(times)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else args.device
    print(
        f'{args.experiment} on {name}, batch {args.batch} at {args.size}x{args.size}'
        f'{", amp" if args.amp else ""}{", channels_last" if args.channels_last else ""}: '
        f'{step * 1000:.1f} ms/step (groups: '
        f'{", ".join(f"{t * 1000:.1f}" for t in times)} ms), {args.batch / step:.1f} images/s '
        f'-> bench_train_pipeline --gpu_images_per_s {args.batch / step:.0f}'
    )
    return 0


if __name__ == '__main__':
    from concern.cli import run_main

    raise SystemExit(run_main(main))
