"""Learning-rate schedules named by the original's YAML files.

Each schedule maps (epoch, step) to a learning rate: ``get_learning_rate(epoch, step,
steps_per_epoch=None)``. ``OptimizerScheduler`` writes that value into every parameter group
before each optimizer step, so a schedule's own ``lr`` (its default when the YAML gives none) is the
learning rate, whatever ``optimizer_args.lr`` says (the original's rule); ``schedule_lr_warning`` says
so when the two differ.
"""

from __future__ import annotations

__all__ = [
    'ConstantLearningRate',
    'DecayLearningRate',
    'MultiStepLR',
    'PiecewiseConstantLearningRate',
    'WarmupLR',
    'schedule_lr_warning',
]


def schedule_lr_warning(learning_rate, optimizer_args: dict) -> str | None:
    """The warning for a schedule without an ``lr`` of its own whose default differs from ``optimizer_args['lr']``
    (None when there is nothing to say): which value is used and how to choose the other."""
    if learning_rate is None or getattr(learning_rate, 'lr_stated', True) or 'lr' not in optimizer_args:
        return None
    stated = float(optimizer_args['lr'])
    if stated == float(learning_rate.lr):
        return None
    name = type(learning_rate).__name__
    return (
        f'{name} has no lr of its own, so its default {learning_rate.lr} is the learning rate at every step and '
        f"optimizer_args.lr {stated} is overridden (the original's rule); to train at {stated}, set "
        f'scheduler.learning_rate.lr: {stated} in the experiment file (or pass --lr {stated}).'
    )


class ConstantLearningRate:
    """A fixed learning rate ``lr`` (default 0.0001)."""

    def __init__(self, lr: float | None = None):
        self.lr_stated = lr is not None
        self.lr = 0.0001 if lr is None else lr

    def get_learning_rate(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        return self.lr


class DecayLearningRate:
    """The original's polynomial decay: ``lr * (1 - epoch / (epochs + 1)) ** factor``, per epoch.

    Note (as in the original): this object's own ``lr`` (default 0.007) is what the optimizer gets
    at every step; ``optimizer_args.lr`` only matters before the first step. When the YAML gives no
    ``lr`` here and the optimizer's differs, training logs a warning (``schedule_lr_warning``).

    Options beyond the original, off by default:
    - ``per_iteration``: decay by the fractional epoch ``step / steps_per_epoch`` instead of the
      integer epoch (a smooth poly schedule);
    - ``warmup_iters`` / ``warmup_ratio``: linear warm-up from ``lr * warmup_ratio`` to the decayed
      value over the first ``warmup_iters`` steps;
    - ``to_zero``: divide by ``epochs`` instead of ``epochs + 1``, so that the rate reaches 0 at the end
      of the last epoch (the original's divisor stops at ``(1 / (epochs + 1)) ** factor`` of ``lr``:
      0.54 of it for a one-epoch run).
    """

    def __init__(
        self,
        lr: float | None = None,
        epochs: int = 1200,
        factor: float = 0.9,
        per_iteration: bool = False,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
        to_zero: bool = False,
    ):
        if epochs <= 0:
            raise ValueError(f'DecayLearningRate: epochs must be positive, got {epochs}.')
        self.lr_stated = lr is not None  # False: the default below, which schedule_lr_warning reports
        self.lr = 0.007 if lr is None else lr
        self.epochs = epochs
        self.factor = factor
        self.per_iteration = per_iteration
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.to_zero = to_zero

    def get_learning_rate(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        progress = float(epoch)
        if self.per_iteration and steps_per_epoch:
            progress = step / steps_per_epoch
        span = self.epochs if self.to_zero else self.epochs + 1
        rate = self.lr * max(0.0, 1.0 - progress / span) ** self.factor
        if self.warmup_iters and step < self.warmup_iters:
            alpha = step / self.warmup_iters
            rate = rate * (self.warmup_ratio + (1.0 - self.warmup_ratio) * alpha)
        return rate


class MultiStepLR:
    """``lr * gamma ** (number of milestones <= epoch)`` (``lr`` default 0.007)."""

    def __init__(self, lr: float | None = None, milestones: list | None = None, gamma: float = 0.1):
        self.lr_stated = lr is not None
        self.lr = 0.007 if lr is None else lr
        self.milestones = sorted(milestones or [])
        self.gamma = gamma

    def get_learning_rate(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        passed = sum(1 for milestone in self.milestones if epoch >= milestone)
        return self.lr * self.gamma**passed


class PiecewiseConstantLearningRate:
    """``values[i]`` while ``step < boundaries[i]`` (steps are global iterations)."""

    def __init__(self, boundaries: list | None = None, values: list | None = None):
        boundaries, values = list(boundaries or [10000, 20000]), list(values or [0.001, 0.0001, 0.00001])
        if len(values) != len(boundaries) + 1:
            raise ValueError('PiecewiseConstantLearningRate: values needs one more entry than boundaries.')
        self.boundaries, self.values = boundaries, values

    def get_learning_rate(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step < boundary:
                return value
        return self.values[-1]


class WarmupLR:
    """Linear warm-up over ``warmup_epochs`` (fractional, from steps) into ``origin_lr``'s schedule."""

    def __init__(self, steps: int = 0, warmup_lr: float = 1e-5, origin_lr=None):
        self.steps = steps
        self.warmup_lr = warmup_lr
        self.origin_lr = origin_lr or ConstantLearningRate()

    def get_learning_rate(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        target = self.origin_lr.get_learning_rate(epoch, step, steps_per_epoch)
        if step < self.steps:
            return self.warmup_lr + (target - self.warmup_lr) * step / max(1, self.steps)
        return target
