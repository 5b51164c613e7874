#!/usr/bin/env python
"""Train a DBNet experiment.

    python train.py experiments/seg_detector/totaltext_resnet50_deform_thre.yaml
    torchrun --nproc_per_node 4 train.py EXPERIMENT.yaml            # DistributedDataParallel, 4 GPUs
    python train.py EXPERIMENT.yaml --num_gpus 4                    # the same: starts the 4 processes itself
    python train.py experiments/synthetic/quickstart.yaml           # CPU quick start, no download

Logs and checkpoints go to ``workspace/<name>/`` (``--name``, default: the YAML file's stem).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import traceback

import numpy as np
import torch

from concern.cli import run_main, set_loader_workers, user_error_message
from concern.config import load_config
from concern.cpu import cpu_has_bf16
from concern.distributed import init_distributed, launch_processes
from concern.errors import UserError
from concern.model_zoo import weights_path
from training.trainer import Trainer, TrainOptions, distribute


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a DBNet / DBNet++ experiment.')
    parser.add_argument('exp', help='experiment YAML file')
    parser.add_argument('--name', help='experiment name: logs and checkpoints go to workspace/<name>')
    parser.add_argument('--workspace_root', default='workspace', help='folder holding every workspace/<name>')
    parser.add_argument(
        '--batch_size', type=int, help='training batch size (in total over all processes, as in the original)'
    )
    parser.add_argument('--resume', help="checkpoint to resume from (this project's or the original's)")
    parser.add_argument(
        '--init_weights',
        help='start from the model weights of this checkpoint (a full training state or a weights-only file, or the '
        'name of a model shipped in assets/models/, e.g. ic15_resnet18) with a fresh optimizer and the counters at '
        '--start_epoch / --start_iter (default 0): fine-tuning',
    )
    parser.add_argument('--epochs', type=int, help='number of epochs (also the learning-rate decay length)')
    parser.add_argument(
        '--num_workers', type=int, help='data-loading worker processes of every loader (training and validation)'
    )
    parser.add_argument(
        '--start_iter', type=int, help='iteration counter to start from (--init_weights, weights-only --resume)'
    )
    parser.add_argument(
        '--start_epoch', type=int, help='epoch counter to start from (--init_weights, weights-only --resume)'
    )
    parser.add_argument('--lr', type=float, help='learning rate (optimizer and schedule)')
    parser.add_argument(
        '--ema',
        type=float,
        metavar='DECAY',
        help='validate and save an exponential moving average of the weights with this decay (e.g. 0.999; '
        "Experiment.train.ema_decay; default: the YAML's, else none)",
    )
    parser.add_argument(
        '--num_gpus',
        type=int,
        default=1,
        help='start this many DDP processes, one per GPU, as torchrun would (with --device cpu: CPU processes)',
    )
    parser.add_argument(
        '--validate',
        dest='validate',
        action='store_true',
        default=True,
        help='validate every `interval` iterations (default)',
    )
    parser.add_argument('--no-validate', dest='validate', action='store_false', help='do not validate')
    parser.add_argument('--print-config-only', action='store_true', help='print the compiled config and exit')
    parser.add_argument('--debug', action='store_true', help='verbose logs and autograd anomaly detection')
    parser.add_argument('--benchmark', action='store_true', help='cudnn.benchmark (fixed input sizes)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: float16 with a loss scaler on CUDA, bfloat16 on a CPU (about 1.8x faster on CPUs '
        'with AMX-BF16; 3x with --channels_last)',
    )
    parser.add_argument(
        '--channels_last',
        action='store_true',
        help='model and images in channels-last (NHWC) memory order: the layout oneDNN and tensor cores run '
        'fastest (1.4x on a CPU in float32)',
    )
    parser.add_argument('--device', help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when available)")
    parser.add_argument('--seed', type=int, default=0, help='seed of model initialisation and data order')
    parser.add_argument(
        '--sync_bn', action='store_true', help='SyncBatchNorm in a multi-process CUDA run (torchrun or --num_gpus)'
    )
    parser.add_argument('--max_iterations', type=int, help='stop after this many iterations in total')
    parser.add_argument('--polygon', action='store_true', help='validate with polygon output (curved text)')
    parser.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    parser.add_argument(
        '--keep_denormals',
        action='store_true',
        help='CPU: keep denormal floats (by default they are flushed to zero, which makes CPU training '
        'about 1.3x faster once the weights are trained)',
    )
    parser.add_argument(
        '--opt',
        action='append',
        default=[],
        metavar='PATH=VALUE',
        help='override any config value, e.g. --opt Experiment.train.epochs=3',
    )
    args = parser.parse_args(argv)
    if args.init_weights is not None:
        args.init_weights = weights_path(args.init_weights)
    return args


# The original's command-line flags (and this project's --ema) and the config paths (under Experiment.train) each
# one sets. --epochs and --lr also set the learning-rate schedule's own values when the experiment has a schedule.
FLAG_PATHS = {
    'batch_size': ['data_loader.batch_size'],
    'epochs': ['epochs', 'scheduler.learning_rate.epochs'],
    'lr': ['scheduler.optimizer_args.lr', 'scheduler.learning_rate.lr'],
    'ema': ['ema_decay'],
    'resume': ['checkpoint.resume'],
    'init_weights': ['checkpoint.init_weights'],
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


def compile_config(args):
    """The experiment's Config with the --opt overrides and the original's flags applied."""
    config = load_config(args.exp, args.opt)
    for path, value in flag_overrides(args, config):
        config.set(path, value)
    for section in ('Experiment.train', 'Experiment.validation'):
        set_loader_workers(config, section, args.num_workers)
    return config


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_processes(args) -> None:
    """Refuses, in one sentence, the --num_gpus / --sync_bn / --device combinations that cannot work."""
    launched = 'WORLD_SIZE' in os.environ  # torchrun, or a process started by --num_gpus
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')  # choose_device's default
    if args.num_gpus < 1:
        raise UserError(f'--num_gpus {args.num_gpus} is not a number of processes; give 1 or more.')
    if args.num_gpus > 1 and launched and int(os.environ['WORLD_SIZE']) != args.num_gpus:
        raise UserError('--num_gpus starts its own processes; leave it out when launching with torchrun.')
    if args.num_gpus > 1 and not launched and args.device != 'cpu':
        if ':' in device:
            raise UserError(
                f'--device {device} names one GPU, but --num_gpus {args.num_gpus} uses GPUs 0 to '
                f'{args.num_gpus - 1}; give --device cuda (or set CUDA_VISIBLE_DEVICES).'
            )
        count = torch.cuda.device_count()
        if count < args.num_gpus:
            raise UserError(
                f'--num_gpus {args.num_gpus} needs {args.num_gpus} CUDA devices but {count} are '
                f'visible; lower --num_gpus, or add --device cpu to train in {args.num_gpus} CPU '
                f'processes.'
            )
    if args.sync_bn and not ((launched or args.num_gpus > 1) and device.startswith('cuda')):
        raise UserError(
            '--sync_bn needs a multi-process CUDA run (torchrun or --num_gpus on GPUs; SyncBatchNorm '
            'does not run on the CPU); leave --sync_bn out.'
        )


def failure_message(error: BaseException, trainer: Trainer, context) -> str:
    """One line for a process of a multi-process run that failed: its rank, the iteration, the first line of the
    error, and where the newest checkpoint is."""
    first = (user_error_message(error) or f'{type(error).__name__}: {error}').strip().splitlines()
    checkpoint = trainer.last_checkpoint()
    where = f'the last checkpoint is {checkpoint}' if checkpoint else 'no checkpoint was saved yet'
    return (
        f'error: rank {context.rank} of {context.world_size} failed after iteration {trainer.step}: '
        f'{first[0] if first else type(error).__name__}; {where}.'
    )


def run_training_process(argv) -> int:
    """One process of a ``--num_gpus`` run: ``main`` under the same user-error rule as the command."""
    return run_main(main, argv)


def flush_denormals(device: torch.device, keep: bool = False) -> bool:
    """On a CPU (unless ``keep``), flushes denormal floats to zero in this process and returns True.

    Trained weights, activations and gradients drift into the denormal range (below 1.2e-38), where x86
    arithmetic is many times slower: flushing them changed no logged loss of the quick start (to 4 decimals) and
    made it 2.2x faster on 2 cores. CUDA keeps its own setting (fast denormals already)."""
    if device.type != 'cpu' or keep:
        return False
    return torch.set_flush_denormal(True)


def setup_logger(args, config, context):
    """The experiment's Logger (or a default one) writing to ``workspace/<name>/``, and that folder; the main process
    also writes the compiled experiment there (``config.yaml``)."""
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
    return logger, workspace


def build_model(args, structure, device, logger):
    """The experiment's model on ``device`` (channels_last with --channels_last, before DDP wraps it)."""
    model = structure.builder.build().to(device)
    if args.channels_last:  # before DDP, whose gradient buckets follow the parameters' layout
        model = model.to(memory_format=torch.channels_last)
    if args.amp and device.type == 'cpu' and not cpu_has_bf16():
        logger.warning(
            '--amp on a CPU without AVX512-BF16 or AMX-BF16: bfloat16 is emulated there and may be slower than float32.'
        )
    return model


def start_from_checkpoint(args, trainer, checkpoint) -> None:
    """Where training starts: the counters of --start_epoch / --start_iter, then --init_weights (weights only) or
    --resume (the full training state, or an original's weights-only file)."""
    if checkpoint is None:
        return
    trainer.epoch, trainer.step = checkpoint.start_epoch, checkpoint.start_iter
    if checkpoint.resume and checkpoint.init_weights:
        raise UserError(
            f'--resume {checkpoint.resume} and --init_weights {checkpoint.init_weights} both say where '
            f'training starts; give --resume to continue a run, or --init_weights to fine-tune from weights.'
        )
    if checkpoint.init_weights:
        trainer.init_weights(checkpoint.init_weights)
    elif checkpoint.resume:
        counters = args.start_iter is not None or args.start_epoch is not None
        trainer.resume(checkpoint.resume, counters_given=counters)


def run_trainer(trainer, logger, context) -> int:
    """Trains; the exit code (0: finished, stopped by max_iterations or a signal). In a multi-process run a
    failure prints its traceback (unless it is a user error) and one line saying where things are."""
    try:
        reason = trainer.train()
    except Exception as error:
        if not context.is_distributed:
            raise
        # the traceback (unless a user error), then one line saying where things are
        if user_error_message(error) is None:
            traceback.print_exc()
        print(failure_message(error, trainer, context), file=sys.stderr)
        return 1
    finally:
        logger.close()
    if context.is_distributed:
        torch.distributed.destroy_process_group()
    return {'finished': 0, 'max_iterations': 0, 'SIGINT': 0, 'SIGTERM': 0}.get(reason, 1)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_processes(args)
    if args.num_gpus > 1 and 'WORLD_SIZE' not in os.environ and not args.print_config_only:
        compile_config(args)  # a mistake in the YAML or --opt is reported once, before any process starts
        return launch_processes(args.num_gpus, run_training_process, list(sys.argv[1:] if argv is None else argv))
    config = compile_config(args)
    if args.print_config_only:
        print(config.dump())
        return 0
    context, device = init_distributed(args.device)
    seed_everything(args.seed)
    structure = config.build('Experiment.structure')
    train_settings = config.build('Experiment.train')
    validation = (
        config.build('Experiment.validation') if (args.validate and config.has('Experiment.validation')) else None
    )
    logger, workspace = setup_logger(args, config, context)
    torch.backends.cudnn.benchmark = args.benchmark
    flushed = flush_denormals(device, keep=args.keep_denormals)
    if args.debug:
        torch.autograd.set_detect_anomaly(True)
    model = build_model(args, structure, device, logger)
    if context.is_distributed:
        model = distribute(model, device, sync_bn=args.sync_bn)

    options = TrainOptions(
        workspace=workspace,
        validate=args.validate,
        amp=args.amp,
        channels_last=args.channels_last,
        seed=args.seed,
        max_iterations=args.max_iterations,
        show_progress=args.progress,
        is_output_polygon=args.polygon,
    )
    trainer = Trainer(
        model, train_settings, structure, validation, logger, options, context, device, config_text=config.dump()
    )
    start_from_checkpoint(args, trainer, train_settings.checkpoint)
    logger.info(
        f'training {args.exp} on {device} (world size {context.world_size}'
        + (', denormals flushed to zero' if flushed else '')
        + f'), workspace {workspace}'
    )
    return run_trainer(trainer, logger, context)


if __name__ == '__main__':
    sys.exit(run_main(main))
