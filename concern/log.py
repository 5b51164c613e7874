"""Training logs: text (console + file), JSON lines of metrics, TensorBoard when it is installed."""

from __future__ import annotations

import json
import logging
import os
import time

from concern.errors import UserError, import_optional

__all__ = ['Logger']


class Logger:
    """The YAML's ``Logger`` section plus the sinks the trainer opens under the workspace.

    ``setup(workspace, enabled)`` opens ``<workspace>/output.log`` (text) and
    ``<workspace>/metrics.jsonl`` (one JSON object per reported step), and a TensorBoard writer in
    ``<workspace>/tensorboard``: ``tensorboard=None`` (default) when the package is installed (an info line says
    when it is not), ``True`` always (a UserError naming the install command when it is missing), ``False``
    never. Only the process with ``enabled=True`` (rank 0) writes anything.
    """

    def __init__(
        self, verbose: bool = False, level: str = 'info', log_interval: int = 100, tensorboard: bool | None = None
    ):
        if str(level).upper() not in logging._nameToLevel:  # noqa: SLF001 - stable public mapping
            raise ValueError(f"Logger level '{level}' is not a logging level (debug, info, warning, error).")
        self.verbose = verbose
        self.level = str(level).upper()
        self.log_interval = int(log_interval)
        self.tensorboard = None if tensorboard is None else bool(tensorboard)
        self.workspace = None
        self.enabled = False
        self._logger = logging.getLogger('dbnet')
        self._metrics_file = None
        self._writer = None
        self._handlers = []

    def setup(self, workspace: str, enabled: bool = True) -> Logger:
        self.workspace = workspace
        self.enabled = enabled
        self._logger.setLevel(self.level)
        # The sinks sit on the root logger, so that the warnings of other modules (a skipped sample in
        # data.image_dataset, missing keys in concern.checkpoint_io) reach output.log too.
        self._root = logging.getLogger()
        if not enabled:
            return self
        with_tensorboard = self._tensorboard_available()  # before any sink is opened: it may refuse
        os.makedirs(workspace, exist_ok=True)
        formatter = logging.Formatter('[%(asctime)s] %(levelname)s: %(message)s', '%Y-%m-%d %H:%M:%S')
        for handler in (
            logging.FileHandler(os.path.join(workspace, 'output.log'), encoding='utf-8'),
            logging.StreamHandler(),
        ):
            handler.setFormatter(formatter)
            self._root.addHandler(handler)
            self._handlers.append(handler)
        self._metrics_file = open(os.path.join(workspace, 'metrics.jsonl'), 'a', encoding='utf-8')
        if with_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.path.join(workspace, 'tensorboard'))
        elif self.tensorboard is None:
            self._logger.info(
                'TensorBoard is not installed (pip install tensorboard); logging text and JSON lines only.'
            )
        return self

    def _tensorboard_available(self) -> bool:
        """Whether to write TensorBoard events; ``tensorboard: true`` without the package is a UserError."""
        if self.tensorboard is False:
            return False
        try:
            import_optional('tensorboard', "the Logger's tensorboard: true")
        except UserError:
            if self.tensorboard:
                raise
            return False
        return True

    def info(self, message: str) -> None:
        if self.enabled:
            self._logger.info(message)

    def warning(self, message: str) -> None:
        if self.enabled:
            self._logger.warning(message)

    def debug(self, message: str) -> None:
        if self.enabled and self.verbose:
            self._logger.debug(message)

    def report(self, step: int, metrics: dict, prefix: str = 'train') -> None:
        """Appends ``metrics`` (floats) at ``step`` to metrics.jsonl and TensorBoard."""
        if not self.enabled:
            return
        values = {key: float(value) for key, value in metrics.items()}
        if self._metrics_file:
            record = {'time': time.time(), 'step': step, 'split': prefix, **values}
            self._metrics_file.write(json.dumps(record) + '\n')
            self._metrics_file.flush()
        if self._writer:
            for key, value in values.items():
                self._writer.add_scalar(f'{prefix}/{key}', value, step)

    def close(self) -> None:
        for handler in self._handlers:
            self._root.removeHandler(handler)
            handler.close()
        self._handlers = []
        if self._metrics_file:
            self._metrics_file.close()
            self._metrics_file = None
        if self._writer:
            self._writer.close()
            self._writer = None
