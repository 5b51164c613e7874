#!/usr/bin/env python
"""Train a DBNet experiment.

    python train.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml --num_gpus 1
    torchrun --nproc_per_node 4 train.py EXPERIMENT.yaml            # DistributedDataParallel
    python train.py experiments/synthetic/quickstart.yaml           # CPU quick start, no download

Logs and checkpoints go to ``workspace/<name>/`` (``--name``, default: the YAML file's stem).
"""
from __future__ import annotations

import argparse
import os
import random
import sys

import numpy as np
import torch

from concern.cli import run_main, set_loader_workers
from concern.config import load_config
from concern.distributed import init_distributed
from concern.errors import UserError
from training.trainer import TrainOptions, Trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a DBNet / DBNet++ experiment.')
    parser.add_argument('exp', help='experiment YAML file')
    parser.add_argument('--name', help='experiment name: logs and checkpoints go to workspace/<name>')
    parser.add_argument('--workspace_root', default='workspace', help='folder holding every workspace/<name>')
    parser.add_argument('--batch_size', type=int, help='training batch size (in total over all processes, as in the original)')
    parser.add_argument('--resume', help='checkpoint to resume from (this project\'s or the original\'s)')
    parser.add_argument('--epochs', type=int, help='number of epochs (also the learning-rate decay length)')
    parser.add_argument('--num_workers', type=int,
                        help='data-loading worker processes of every loader (training and validation)')
    parser.add_argument('--start_iter', type=int, help='iteration counter to start from (weights-only resume)')
    parser.add_argument('--start_epoch', type=int, help='epoch counter to start from (weights-only resume)')
    parser.add_argument('--lr', type=float, help='learning rate (optimizer and schedule)')
    parser.add_argument('--num_gpus', type=int, default=1, help='GPUs for DataParallel (without torchrun)')
    parser.add_argument('--validate', dest='validate', action='store_true', default=True,
                        help='validate every `interval` iterations (default)')
    parser.add_argument('--no-validate', dest='validate', action='store_false', help='do not validate')
    parser.add_argument('--print-config-only', action='store_true', help='print the compiled config and exit')
    parser.add_argument('--debug', action='store_true', help='verbose logs and autograd anomaly detection')
    parser.add_argument('--benchmark', action='store_true', help='cudnn.benchmark (fixed input sizes)')
    parser.add_argument('--amp', action='store_true', help='CUDA mixed precision (refused on a CPU)')
    parser.add_argument('--device', help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when available)")
    parser.add_argument('--seed', type=int, default=0, help='seed of model initialisation and data order')
    parser.add_argument('--sync_bn', action='store_true', help='SyncBatchNorm under DDP (CUDA)')
    parser.add_argument('--max_iterations', type=int, help='stop after this many iterations in total')
    parser.add_argument('--polygon', action='store_true', help='validate with polygon output (curved text)')
    parser.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    parser.add_argument('--opt', action='append', default=[], metavar='PATH=VALUE',
                        help='override any config value, e.g. --opt Experiment.train.epochs=3')
    return parser.parse_args(argv)


# The original's command-line flags and the config paths (under Experiment.train) each one sets. --epochs and
# --lr also set the learning-rate schedule's own values when the experiment has a schedule.
FLAG_PATHS = {
    'batch_size': ['data_loader.batch_size'],
    'epochs': ['epochs', 'scheduler.learning_rate.epochs'],
    'lr': ['scheduler.optimizer_args.lr', 'scheduler.learning_rate.lr'],
    'resume': ['checkpoint.resume'],
    'start_iter': ['checkpoint.start_iter'],
    'start_epoch': ['checkpoint.start_epoch'],
}


def flag_overrides(args, config) -> list[tuple[str, object]]:
    """(config path, value) for each of the original's flags given on the command line."""
    has_schedule = config.has('Experiment.train.scheduler.learning_rate')
    pairs = []
    for flag, paths in FLAG_PATHS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        for path in paths:
            if path.startswith('scheduler.learning_rate.') and not has_schedule:
                continue
            pairs.append((f'Experiment.train.{path}', value))
    return pairs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = load_config(args.exp, args.opt)
    for path, value in flag_overrides(args, config):
        config.set(path, value)
    for section in ('Experiment.train', 'Experiment.validation'):
        set_loader_workers(config, section, args.num_workers)
    if args.print_config_only:
        print(config.dump())
        return 0
    context, device = init_distributed(args.device)
    if args.amp and device.type != 'cuda':
        raise UserError(f'--amp is CUDA mixed precision and this run uses {device.type}; drop --amp or train on a '
                        f'GPU (--device cuda).')
    seed_everything(args.seed)
    structure = config.build('Experiment.structure')
    train_settings = config.build('Experiment.train')
    validation = config.build('Experiment.validation') if (
        args.validate and config.has('Experiment.validation')) else None
    logger = config.build('Experiment.logger') if config.has('Experiment.logger') else None
    if logger is None:
        from concern.log import Logger
        logger = Logger()
    name = args.name or os.path.splitext(os.path.basename(args.exp))[0]
    workspace = os.path.join(args.workspace_root, name)
    logger.verbose = logger.verbose or args.debug
    logger.setup(workspace, enabled=context.is_main)
    if context.is_main:
        with open(os.path.join(workspace, 'config.yaml'), 'w', encoding='utf-8') as handle:
            handle.write(config.dump())
    torch.backends.cudnn.benchmark = args.benchmark
    if args.debug:
        torch.autograd.set_detect_anomaly(True)

    model = structure.builder.build().to(device)
    if context.is_distributed:
        if args.sync_bn:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    elif args.num_gpus > 1 and device.type == 'cuda':
        model = torch.nn.DataParallel(model, device_ids=list(range(args.num_gpus)))

    options = TrainOptions(workspace=workspace, validate=args.validate, amp=args.amp, seed=args.seed,
                           max_iterations=args.max_iterations, show_progress=args.progress,
                           is_output_polygon=args.polygon)
    trainer = Trainer(model, train_settings, structure, validation, logger, options, context, device,
                      config_text=config.dump())
    checkpoint = train_settings.checkpoint
    if checkpoint is not None:
        trainer.epoch, trainer.step = checkpoint.start_epoch, checkpoint.start_iter
        if checkpoint.resume:
            trainer.resume(checkpoint.resume)
    logger.info(f'training {args.exp} on {device} (world size {context.world_size}), workspace {workspace}')
    try:
        reason = trainer.train()
    finally:
        logger.close()
    if context.is_distributed:
        torch.distributed.destroy_process_group()
    return {'finished': 0, 'max_iterations': 0, 'SIGINT': 0, 'SIGTERM': 0}.get(reason, 1)


if __name__ == '__main__':
    sys.exit(run_main(main))
