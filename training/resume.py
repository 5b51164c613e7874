"""Where training starts: the YAML's ``Checkpoint`` section."""

from __future__ import annotations

__all__ = ['Checkpoint']


class Checkpoint:
    """Resume settings: ``resume`` is a checkpoint path (the original's release files or this
    project's own); ``start_epoch`` / ``start_iter`` set the counters when the file does not."""

    def __init__(self, start_epoch: int = 0, start_iter: int = 0, resume: str | None = None):
        self.start_epoch = int(start_epoch)
        self.start_iter = int(start_iter)
        self.resume = resume
