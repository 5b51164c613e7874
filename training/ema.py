"""An exponential moving average of a model's weights (``--ema DECAY``, ``Experiment.train.ema_decay``)."""

from __future__ import annotations

import copy

import torch

from concern.config import ConfigError

__all__ = ['ModelEMA', 'check_ema_decay']


def check_ema_decay(decay, where: str = 'Experiment.train.ema_decay') -> float:
    """``decay`` as a float in [0, 1) (0: no average), else a ConfigError naming ``where``."""
    try:
        value = float(decay)
    except (TypeError, ValueError):
        value = None
    if value is None or not 0.0 <= value < 1.0:
        raise ConfigError(
            f'{where}: {decay!r} is not a decay of the weight average; give a number in [0, 1), e.g. 0.999 '
            f'(about the last 1000 iterations), or 0 for none.'
        )
    return value


class ModelEMA:
    """A copy of ``model`` whose floating-point parameters and buffers (BatchNorm's running statistics
    included) follow the trained ones as ``ema = d * ema + (1 - d) * weights`` after every optimiser step;
    integer buffers (BatchNorm's batch counter) are copied.

    ``d`` is ``min(decay, (1 + n) / (10 + n))`` at the n-th update (as TensorFlow's moving averages), so the
    first updates, whose weights are far from the last, are forgotten fast and the average starts near the
    model. ``model``: the module itself (not a DistributedDataParallel wrapper). The copy is in eval mode,
    without gradients, on the model's device and memory format; ``module`` is what validation runs and what a
    checkpoint stores as its ``'model'`` weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = check_ema_decay(decay, 'ModelEMA decay')
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Moves the average towards ``model``'s current weights (call after each optimiser step)."""
        decay = self.current_decay()
        averaged = self.module.state_dict()
        for name, value in model.state_dict().items():
            target = averaged[name]
            if target.is_floating_point():
                target.lerp_(value.detach().to(target.dtype), 1.0 - decay)
            else:
                target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        """``{'decay', 'updates'}``: the counters a resumed run needs (the weights are stored as the model's)."""
        return {'decay': self.decay, 'updates': self.updates}

    def reset(self, model: torch.nn.Module) -> None:
        """Restarts the average at ``model``'s current weights, its warm-up included (weights loaded into the
        model after the average was made: ``--init_weights``, a checkpoint without an average)."""
        self.module.load_state_dict(model.state_dict())
        self.updates = 0
