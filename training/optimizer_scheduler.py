"""The optimizer and its learning-rate schedule, as the original's YAML names them."""

from __future__ import annotations

import logging

import torch

from .learning_rate import schedule_lr_warning

logger = logging.getLogger('dbnet')

__all__ = ['OptimizerScheduler']


class OptimizerScheduler:
    """Builds ``torch.optim.<optimizer>(params, **optimizer_args)`` and sets the learning rate of
    every parameter group from ``learning_rate.get_learning_rate(epoch, step)`` before each step.

    ``optimizer`` is a class name in ``torch.optim`` ('SGD', 'Adam', 'AdamW', ...).
    """

    def __init__(self, optimizer: str = 'SGD', optimizer_args: dict | None = None, learning_rate=None):
        if not hasattr(torch.optim, str(optimizer)):
            raise ValueError(f"optimizer '{optimizer}' is not in torch.optim; use e.g. SGD, Adam or AdamW.")
        self.optimizer = optimizer
        self.optimizer_args = dict(optimizer_args or {})
        self.learning_rate = learning_rate
        message = schedule_lr_warning(learning_rate, self.optimizer_args)
        if message:
            logger.warning(message)

    def create_optimizer(self, parameters) -> torch.optim.Optimizer:
        return getattr(torch.optim, self.optimizer)(parameters, **self.optimizer_args)

    def current_lr(self, epoch: int, step: int, steps_per_epoch: int | None = None) -> float:
        if self.learning_rate is None:
            return float(self.optimizer_args.get('lr', 0.0))
        return float(self.learning_rate.get_learning_rate(epoch, step, steps_per_epoch))

    def update(
        self, optimizer: torch.optim.Optimizer, epoch: int, step: int, steps_per_epoch: int | None = None
    ) -> float:
        rate = self.current_lr(epoch, step, steps_per_epoch)
        for group in optimizer.param_groups:
            group['lr'] = rate
        return rate
