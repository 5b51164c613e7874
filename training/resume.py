"""Where training starts: the YAML's ``Checkpoint`` section."""

from __future__ import annotations

__all__ = ['Checkpoint']


class Checkpoint:
    """Where training starts.

    ``resume`` is a checkpoint path (the original's release files or this project's own): a full training state
    continues with its own counters, optimizer and data order; a weights-only file starts at ``start_epoch`` /
    ``start_iter``. ``init_weights`` is a checkpoint of either kind whose model weights alone start the run (a
    fresh optimizer, the counters at ``start_epoch`` / ``start_iter``): the way to fine-tune from a pre-training.
    """

    def __init__(
        self,
        start_epoch: int = 0,
        start_iter: int = 0,
        resume: str | None = None,
        init_weights: str | None = None,
    ):
        self.start_epoch = int(start_epoch)
        self.start_iter = int(start_iter)
        self.resume = resume
        self.init_weights = init_weights
