"""When and where training writes checkpoints: the YAML's ``ModelSaver`` section."""

from __future__ import annotations

import os

__all__ = ['ModelSaver']


class ModelSaver:
    """Checkpoints go to ``<workspace>/<dir_path>/``: ``model_epoch_E_minibatch_I`` every
    ``save_interval`` iterations and at the end, and ``model_latest`` each time. Creating the file
    ``<workspace>/<signal_path>`` asks for a save at the next iteration (it is removed then)."""

    def __init__(self, dir_path: str = 'model', save_interval: int = 1000, signal_path: str | None = None):
        self.dir_path = dir_path
        self.save_interval = int(save_interval)
        self.signal_path = signal_path

    def directory(self, workspace: str) -> str:
        return os.path.join(workspace, self.dir_path)

    def should_save(self, step: int, workspace: str) -> bool:
        if self.save_interval > 0 and step > 0 and step % self.save_interval == 0:
            return True
        if self.signal_path:
            signal = os.path.join(workspace, self.signal_path)
            if os.path.exists(signal):
                os.remove(signal)
                return True
        return False

    @staticmethod
    def checkpoint_name(epoch: int, step: int) -> str:
        return f'model_epoch_{epoch}_minibatch_{step}'
