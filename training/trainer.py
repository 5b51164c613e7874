"""The training loop: forward, loss, backward, step — one process, or one of several under DDP (torchrun or
``train.py --num_gpus N``).

A plain loop in the manner of torchvision's reference scripts. What it adds to the original's loop:
checkpoints with the full training state written atomically (``model_latest`` and
``model_epoch_E_minibatch_I``), exact resumption (same iteration, learning rate, optimizer state and
data order), non-finite losses or gradients skipped (training stops after ``max_nonfinite`` in a row; under
CUDA ``--amp`` a gradient overflow at a loss scale above 1 is the GradScaler's normal search for its scale: the
step is skipped and the scale lowered, but it does not count as non-finite),
SIGINT / SIGTERM answered by a resumable checkpoint and a clean exit, an error while loading data
answered by saving ``model_latest`` before it propagates, and the samples the dataset skipped
(``batch['skipped']``, summed over DataLoader workers and processes) counted and logged.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from concern.checkpoint_io import CheckpointError, load_checkpoint, load_model_weights, save_checkpoint
from concern.distributed import DistributedContext, broadcast_flag
from concern.evaluation import evaluate
from data.data_loader import make_train_loader
from training.ema import ModelEMA

__all__ = ['TrainOptions', 'Trainer', 'autocast_dtype', 'distribute', 'move_to_device', 'unwrap']


@dataclass
class TrainOptions:
    """Loop settings that come from the command line rather than the YAML."""

    workspace: str = 'workspace/experiment'
    validate: bool = True
    amp: bool = False  # autocast: float16 with a GradScaler on CUDA, bfloat16 (no scaler needed) on a CPU
    channels_last: bool = False  # images in NHWC memory order (the model is converted before DDP wraps it)
    seed: int = 0
    max_nonfinite: int = 10
    max_iterations: int | None = None  # stop after this many iterations in total (tests, debugging)
    show_progress: bool = True
    is_output_polygon: bool = False


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel."""
    while isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    return model


def distribute(model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel for the initialised process group (BatchNorm turned into
    SyncBatchNorm first with ``sync_bn``; CUDA only). Every trainable parameter of the project's models
    receives a gradient at every step (the layers the original kept only for its keys are frozen in the
    backbones), so DDP need not search for unused parameters; a model that leaves a trainable parameter
    without gradient fails at its second step with DDP's message naming it."""
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == 'cuda' else None
    )


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The reduced precision of ``--amp`` on ``device``: float16 on CUDA (with a GradScaler, as its range is
    narrow), bfloat16 on a CPU (float32's range, so no scaler; oneDNN runs its convolutions on AMX-BF16 or
    AVX512-BF16 units where the CPU has them)."""
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def move_to_device(batch: dict, device: torch.device) -> dict:
    """Tensors of a batch moved to ``device``; other values unchanged."""
    return {
        key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value for key, value in batch.items()
    }


class _StopRequest:
    """Turns SIGINT / SIGTERM into a flag the loop checks after each iteration."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


class _Throughput:
    """Images/s and the share of wall time spent waiting for the data loader, over the iterations since the last
    log line (validation excluded; step time includes the GPU: reading the loss synchronises every step)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.start, self.wait, self.steps, self.fetch_start = time.time(), 0.0, 0, time.time()

    def fetched(self) -> None:
        self.wait += time.time() - self.fetch_start

    def read(self, images_per_step: int) -> tuple[float, float]:
        """(images/s, data-wait share) since the last read or reset; starts a new window."""
        elapsed = max(1e-9, time.time() - self.start)
        figures = self.steps * images_per_step / elapsed, self.wait / elapsed
        self.start, self.wait, self.steps = time.time(), 0.0, 0
        return figures


class Trainer:
    """Trains ``model`` (a SegDetectorModel or anything whose ``forward(batch, training=True)``
    returns ``(loss, pred, metrics)``) with the YAML's TrainSettings.

    ``structure`` supplies the representer and measurer used for validation; ``validation`` is the
    YAML's ValidationSettings (or None); ``config_text`` is stored in every checkpoint.
    """

    def __init__(
        self,
        model,
        train_settings,
        structure,
        validation,
        logger,
        options: TrainOptions,
        context: DistributedContext,
        device: torch.device,
        config_text: str = '',
    ):
        self.settings = train_settings
        self.structure = structure
        self.validation = validation
        self.logger = logger
        self.options = options
        self.context = context
        self.device = device
        self.config_text = config_text
        self.model = model
        self.scheduler = train_settings.scheduler
        self.optimizer = self.scheduler.create_optimizer(unwrap(model).parameters())
        self.scaler = torch.amp.GradScaler('cuda', enabled=options.amp and device.type == 'cuda')
        self.autocast_dtype = autocast_dtype(device) if options.amp else None
        self.epoch = 0
        self.step = 0  # completed iterations
        self.epoch_step = 0  # completed iterations in the current epoch
        self.nonfinite_in_a_row = 0
        self.skipped_steps = 0
        self.overflow_steps = 0  # --amp steps skipped because the scaled fp16 gradients overflowed
        self.skipped_samples = 0  # samples the dataset replaced (on_error: skip), all workers and processes
        self._in_step = False  # True while a step is half done (no checkpoint may be written then)
        self._saved_step = None  # the iteration of the last save, so the end of training does not repeat it
        self.ema = ModelEMA(unwrap(model), train_settings.ema_decay) if train_settings.ema_decay else None

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        """The full training state. With a weight average, ``'model'`` holds the averaged weights (what eval.py,
        demo.py, export and --init_weights read) and ``'training_model'`` the trained ones (what --resume
        continues from), with ``'ema'`` its counters."""
        weights = unwrap(self.model).state_dict()
        extra = {}
        if self.ema is not None:
            extra = {'training_model': weights, 'ema': self.ema.state_dict()}
            weights = self.ema.module.state_dict()
        return {
            'model': weights,
            **extra,
            'optimizer': self.optimizer.state_dict(),
            'scaler': self.scaler.state_dict(),
            'epoch': self.epoch,
            'iteration': self.step,
            'epoch_iteration': self.epoch_step,
            'skipped_samples': self.skipped_samples,
            'config': self.config_text,
        }

    def save(self, names: list[str]) -> None:
        if not self.context.is_main:
            return
        directory = self.settings.model_saver.directory(self.options.workspace)
        os.makedirs(directory, exist_ok=True)
        state = self.state()
        for name in names:
            save_checkpoint(state, os.path.join(directory, name))
        self._saved_step = self.step
        self.logger.info(f'saved {", ".join(names)} at epoch {self.epoch}, iteration {self.step} in {directory}')

    def last_checkpoint(self) -> str | None:
        """The path of ``model_latest`` when it exists (the newest checkpoint of this workspace), else None."""
        path = os.path.join(self.settings.model_saver.directory(self.options.workspace), 'model_latest')
        return path if os.path.exists(path) else None

    def resume(self, path: str, counters_given: bool = False) -> None:
        """Loads this project's checkpoint (full state) or a weights-only file (the original's).

        ``counters_given`` (the command line named --start_iter / --start_epoch) refuses a full state, whose own
        counters would silently win: fine-tuning from it is :meth:`init_weights`."""
        checkpoint = load_checkpoint(path)
        full_state = 'optimizer' in checkpoint and isinstance(checkpoint.get('iteration'), int)
        if not full_state:
            self._load_weights(path, checkpoint)
            return
        if counters_given:
            raise CheckpointError(
                f'Checkpoint {path} is a full training state (epoch {checkpoint.get("epoch")}, iteration '
                f'{checkpoint["iteration"]}) that resumes its own counters, so --start_iter / --start_epoch would '
                f'be ignored; to fine-tune from its weights with fresh counters, pass it with --init_weights '
                f'instead of --resume.'
            )
        try:  # first: a different model's state is refused before its weights are half loaded
            self.optimizer.load_state_dict(checkpoint['optimizer'])
        except ValueError as error:  # torch: parameter groups / sizes differ
            raise CheckpointError(
                f'Checkpoint {path} is the training state of a different model (its optimizer '
                f"state does not fit this experiment's parameters: {error}); resume from a "
                f'checkpoint of this experiment.'
            ) from None
        self._load_resumed_weights(path, checkpoint)
        if checkpoint.get('scaler'):
            self.scaler.load_state_dict(checkpoint['scaler'])
        self.epoch = int(checkpoint['epoch'])
        self.step = int(checkpoint['iteration'])
        self.epoch_step = int(checkpoint.get('epoch_iteration', 0))
        self.skipped_samples = int(checkpoint.get('skipped_samples', 0))
        self.logger.info(f'resumed {path}: epoch {self.epoch}, iteration {self.step}')

    def _load_resumed_weights(self, path: str, checkpoint: dict) -> None:
        """The trained weights of a full state into the model and, with a weight average, its averaged weights
        into the average (which starts from the trained weights when the checkpoint has none)."""
        averaged = isinstance(checkpoint.get('training_model'), dict)
        load_model_weights(unwrap(self.model), {'model': checkpoint['training_model']} if averaged else checkpoint)
        if self.ema is not None and averaged:
            missing, unexpected = load_model_weights(self.ema.module, checkpoint)
            if missing or unexpected:
                raise CheckpointError(f'Checkpoint {path}: its averaged weights do not fit this experiment.')
            self.ema.updates = int((checkpoint.get('ema') or {}).get('updates', 0))
        elif self.ema is not None:
            self.ema.reset(unwrap(self.model))
            self.logger.info(f'{path} has no weight average: the average starts from its weights')
        elif averaged:
            self.logger.info(
                f'{path} also holds a weight average (ema_decay was set); this run has none and continues from '
                f'the trained weights'
            )

    def init_weights(self, path: str) -> None:
        """Initialises the model from the weights of ``path`` (a full training state or a weights-only file);
        the optimizer, the scaler and the counters stay as they are (fresh)."""
        self._load_weights(path, load_checkpoint(path))

    def _load_weights(self, path: str, checkpoint: dict) -> None:
        missing, unexpected = load_model_weights(unwrap(self.model), checkpoint)
        if self.ema is not None:  # the average starts from the loaded weights
            self.ema.reset(unwrap(self.model))
        self.logger.info(
            f'initialised the model from {path} (weights only; {len(missing)} missing, '
            f'{len(unexpected)} unexpected keys)'
        )

    # ------------------------------------------------------------------ one iteration
    def _gradients_finite(self) -> bool:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return True
        norms = torch._foreach_norm(grads)  # noqa: SLF001 - fused, public since 2.0
        return bool(torch.isfinite(torch.stack(norms)).all())

    def train_step(self, batch: dict) -> tuple[float | None, dict, str]:
        """One optimisation step. Returns (loss, metrics, status); status 'ok', 'nonfinite' (a non-finite loss
        or gradient on any process: the step is skipped) or 'overflow' (mixed precision: the loss was finite
        but its gradients, scaled by the GradScaler's scale > 1, overflowed; the step is skipped and the scale
        lowered, as torch.amp does); loss and metrics are None and {} unless 'ok'."""
        batch = move_to_device(batch, self.device)
        if self.options.channels_last and torch.is_tensor(batch.get('image')) and batch['image'].dim() == 4:
            batch['image'] = batch['image'].contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss, _pred, metrics = self.model(batch, training=True)
        # every process agrees before backward: under DDP a process that skipped backward alone would leave the
        # others waiting in the gradient all-reduce
        finite = not broadcast_flag(not bool(torch.isfinite(loss.detach()).all()), self.context, self.device)
        overflow = unscaled = False
        if finite:
            self.scaler.scale(loss).backward()
            if self.scaler.is_enabled():
                self.scaler.unscale_(self.optimizer)
                unscaled = True
            if not self._gradients_finite():
                finite = False
                overflow = self.scaler.is_enabled() and self.scaler.get_scale() > 1.0
        nonfinite = broadcast_flag(not finite and not overflow, self.context, self.device)
        overflow = broadcast_flag(overflow, self.context, self.device) if self.scaler.is_enabled() else False
        if nonfinite or overflow:
            if unscaled:
                self.scaler.update()  # required after unscale_; lowers the scale when the gradients overflowed
            self.optimizer.zero_grad(set_to_none=True)
            return None, {}, 'nonfinite' if nonfinite else 'overflow'
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(unwrap(self.model))
        return (
            float(loss.detach()),
            {key: float(value.detach()) if torch.is_tensor(value) else float(value) for key, value in metrics.items()},
            'ok',
        )

    def count_skipped(self, batch) -> int:
        """Removes ``'skipped'`` (per-sample counts of the samples the dataset passed over, written under
        ``on_error: skip``) from ``batch``, adds its sum over the batch and over the processes to
        ``skipped_samples``, and returns that sum."""
        if not isinstance(batch, dict) or 'skipped' not in batch:
            return 0
        skipped = batch.pop('skipped')
        count = torch.as_tensor(skipped).sum().to(torch.float64)
        if self.context.is_distributed:
            count = count.to(self.device)
            torch.distributed.all_reduce(count)
        count = int(count.item())
        self.skipped_samples += count
        return count

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict:
        results = {}
        model = self.ema.module if self.ema is not None else unwrap(self.model)
        for name, loader in (self.validation.data_loaders if self.validation else {}).items():
            # The measurer keeps detections scoring >= the representer's box_thresh (the original's
            # measurer default 0.6 sits below the representer's default 0.7, so defaults are unchanged).
            metrics = evaluate(
                model,
                loader,
                self.structure.representer,
                self.structure.measurer,
                self.device,
                self.context,
                is_output_polygon=self.options.is_output_polygon,
                box_thresh=self.structure.representer.box_thresh,
                show_progress=False,
            )
            results[name] = metrics
            self.logger.info(
                f'validation {name}{" (weight average)" if self.ema is not None else ""}: '
                + ', '.join(
                    f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
                    for k, v in metrics.items()
                    if isinstance(v, (int, float))
                )
            )
            self.logger.report(
                self.step, {k: v for k, v in metrics.items() if isinstance(v, (int, float))}, prefix=f'val_{name}'
            )
        unwrap(self.model).train()
        return results

    # ------------------------------------------------------------------ the loop
    def train(self) -> str:
        """Runs to the end (or a stop request / max_iterations); returns why it stopped:
        'finished', 'max_iterations', 'SIGINT' / 'SIGTERM' or 'nonfinite'.

        An exception between steps (a data error under ``on_error: raise``, a validation failure) first
        saves ``model_latest`` (when any step was done), then propagates."""
        settings, options, logger = self.settings, self.options, self.logger
        loader, sampler = make_train_loader(settings.data_loader, self.context, options.seed)
        saver = settings.model_saver
        self.model.train()
        logger.report(self.step, {'epoch': self.epoch}, prefix='start')  # minute 0 of training curves
        start_step = self.step
        with _StopRequest() as stop:
            try:
                reason = self._run(loader, sampler, stop)
            except Exception:
                if not self._in_step and self.step > start_step:
                    logger.warning(
                        f'error after iteration {self.step} (while loading data or validating); '
                        f'saving model_latest so that no training is lost.'
                    )
                    self.save(['model_latest'])
                raise
            if reason == 'nonfinite':
                return reason
            if reason in ('finished', 'max_iterations'):  # an intended end: 'final' as well
                names = ['model_latest', 'final']
                if self._saved_step != self.step:  # not already saved under its epoch name at this iteration
                    names.insert(0, saver.checkpoint_name(self.epoch, self.step))
                self.save(names)
            else:
                self.save(['model_latest'])
                logger.info(
                    f'stopped ({reason}) at iteration {self.step}; resume with --resume '
                    f'{os.path.join(saver.directory(options.workspace), "model_latest")}'
                )
        if self.skipped_steps:
            logger.info(f'{self.skipped_steps} steps were skipped for non-finite values.')
        if self.skipped_samples:
            logger.info(
                f'{self.skipped_samples} samples were skipped by the dataset (unreadable or invalid; '
                f'the warnings name each file).'
            )
        return reason

    def _run(self, loader, sampler, stop: _StopRequest) -> str:
        """Epoch after epoch from the current one; returns why training ended ('finished', 'nonfinite',
        'max_iterations', the stop signal's name)."""
        self._save_pending = False
        while self.epoch < self.settings.epochs:
            sampler.set_epoch(self.epoch)
            sampler.skip(self.epoch_step * loader.batch_size)
            outcome = self._run_epoch(loader, stop)
            if outcome is not None:
                return outcome
            self.epoch += 1
            self.epoch_step = 0
        return 'finished'

    def _run_epoch(self, loader, stop: _StopRequest) -> str | None:
        """The rest of the current epoch: step, log, save, validate, and stop when asked; None at its end."""
        options = self.options
        progress = tqdm(
            loader,
            total=len(loader),
            initial=self.epoch_step,
            disable=not (options.show_progress and self.context.is_main),
            desc=f'epoch {self.epoch}',
            dynamic_ncols=True,
        )
        throughput = _Throughput()
        for batch in progress:
            throughput.fetched()
            self.count_skipped(batch)
            lr = self.scheduler.update(self.optimizer, self.epoch, self.step, len(loader))
            self._in_step = True
            scale = self.scaler.get_scale() if self.scaler.is_enabled() else None
            loss, metrics, status = self.train_step(batch)
            self.step += 1
            self.epoch_step += 1
            throughput.steps += 1
            self._in_step = False
            if status == 'nonfinite' and self._count_nonfinite():
                return 'nonfinite'
            if status == 'overflow':
                self.overflow_steps += 1
                self.logger.info(
                    f'iteration {self.step}: mixed-precision gradients overflowed at loss scale '
                    f'{scale:g}; step skipped and the scale lowered'
                )
            elif status != 'nonfinite':
                self.nonfinite_in_a_row = 0
                progress.set_postfix(loss=f'{loss:.4f}', lr=f'{lr:.2e}', **{k: f'{v:.3f}' for k, v in metrics.items()})
                if self.step % max(1, self.logger.log_interval) == 0:
                    self._log_step(loss, lr, metrics, throughput.read(loader.batch_size * self.context.world_size))
            self._save_and_validate(throughput)
            stop_now = broadcast_flag(stop.requested is not None, self.context, self.device)
            if stop_now or (options.max_iterations and self.step >= options.max_iterations):
                return stop.requested or ('SIGTERM' if stop_now else 'max_iterations')
            throughput.fetch_start = time.time()
        return None

    def _count_nonfinite(self) -> bool:
        """Counts a skipped non-finite step; True when ``max_nonfinite`` in a row stop training."""
        self.skipped_steps += 1
        self.nonfinite_in_a_row += 1
        self.logger.warning(
            f'iteration {self.step}: non-finite loss or gradient, step skipped ({self.nonfinite_in_a_row} in a row)'
        )
        if self.nonfinite_in_a_row < self.options.max_nonfinite:
            return False
        self.logger.warning(
            f'stopping: {self.nonfinite_in_a_row} non-finite steps in a row; the last good checkpoint is kept '
            f'(lower the learning rate or check the data).'
        )
        return True

    def _log_step(self, loss: float, lr: float, metrics: dict, throughput: tuple) -> None:
        rate, data_wait = throughput
        skipped = f', skipped samples {self.skipped_samples}' if self.skipped_samples else ''
        self.logger.info(
            f'epoch {self.epoch} iteration {self.step}: loss {loss:.4f}, lr {lr:.6f}, '
            + ', '.join(f'{k} {v:.4f}' for k, v in metrics.items())
            + f', {rate:.1f} images/s, data wait {100 * data_wait:.0f}%'
            + skipped
        )
        figures = {'loss': loss, 'lr': lr, 'images_per_s': rate, 'data_wait_share': data_wait}
        self.logger.report(self.step, {**figures, 'skipped_samples': self.skipped_samples, **metrics})

    def _save_and_validate(self, throughput: _Throughput) -> None:
        """Saves when the saver asks (during a non-finite streak: at its end) and validates at the interval."""
        saver = self.settings.model_saver
        self._save_pending = saver.should_save(self.step, self.options.workspace) or self._save_pending
        if self._save_pending and self.nonfinite_in_a_row == 0:
            self.save([saver.checkpoint_name(self.epoch, self.step), 'model_latest'])
            self._save_pending = False
        interval = self.validation.interval if (self.validation and self.options.validate) else 0
        if interval and self.step % interval == 0 and self.epoch >= max(0, self.validation.exempt):
            self.validate()
            throughput.reset()  # validation time is not training throughput
