"""The one way every entry point ends: ``sys.exit(run_main(main))``.

A :class:`concern.errors.UserError` (a mistake in the files, folders, YAML, flags, checkpoints or optional packages
the user gave) becomes ``error: <one sentence>`` on stderr and exit code 2, without a traceback; any other exception
is a bug and propagates with its traceback. A UserError raised in a DataLoader worker reaches the main process
re-wrapped by torch (its message then carries the worker's traceback; a class whose constructor takes more than
the message comes back as a RuntimeError); it is recognised by the class name torch writes and reduced to its
own last line.
"""

from __future__ import annotations

import sys
from typing import Callable

from concern.errors import UserError

__all__ = ['run_main', 'user_error_message', 'set_loader_workers', 'set_test_size', 'USER_ERROR_EXIT_CODE']

USER_ERROR_EXIT_CODE = 2


def _user_error_names() -> set[str]:
    """The names of UserError and of every subclass defined so far."""
    names, pending = set(), [UserError]
    while pending:
        kind = pending.pop()
        names.add(kind.__name__)
        pending += kind.__subclasses__()
    return names


def user_error_message(error: BaseException) -> str | None:
    """The one-sentence message of ``error`` when it is a user error (directly, or re-raised from a DataLoader
    worker), else None."""
    text = str(error)
    # torch's ExceptionWrapper: "Caught <Name> in DataLoader worker process N.\nOriginal Traceback ...\n<Name>: msg"
    if text.startswith('Caught ') and text.split(' ', 2)[1] in _user_error_names():
        last = text.rstrip().splitlines()[-1]
        return last.split(': ', 1)[1] if ': ' in last else last
    if isinstance(error, UserError):
        return text
    return None


def run_main(main: Callable[..., int | None], argv: list[str] | None = None) -> int:
    """Runs ``main(argv)`` and returns its exit code (None counts as 0); a user error is printed as one line on
    stderr and returns 2."""
    try:
        code = main(argv)
    except Exception as error:
        message = user_error_message(error)
        if message is None:
            raise
        print(f'error: {message}', file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    return 0 if code is None else int(code)


def _loader_names(config, section: str) -> list:
    """The names of the ``data_loaders`` mapping of ``section`` (none when it has no such mapping)."""
    loaders = config.get(f'{section}.data_loaders')
    return list(loaders) if isinstance(loaders, dict) else []


def set_loader_workers(config, section: str, num_workers: int | None) -> None:
    """``--num_workers``: sets ``num_workers`` of every data loader of ``section`` (``Experiment.train`` or an
    ``Experiment.validation`` / ``Experiment.evaluation`` with its ``data_loaders`` mapping) in ``config``."""
    if num_workers is None or not config.has(section):
        return
    if config.has(f'{section}.data_loader'):
        config.set(f'{section}.data_loader.num_workers', num_workers)
    for name in _loader_names(config, section):
        config.set(f'{section}.data_loaders.{name}.num_workers', num_workers)


def set_test_size(config, section: str, size) -> None:
    """``--test_size WIDTH HEIGHT``: sets the fixed size of the ``['Resize', {'width': W, 'height': H}]`` augmenter
    in the processes of every test dataset of ``section`` (e.g. ``Experiment.evaluation``) in ``config``. Both must
    be positive multiples of 32 (the network's stride); a test dataset with no such augmenter is refused."""
    if size is None:
        return
    width, height = (int(value) for value in size)
    if width <= 0 or height <= 0 or width % 32 or height % 32:
        raise UserError(f'--test_size {width} {height}: give a width and a height that are positive multiples of 32.')
    for name in _loader_names(config, section):
        found = False
        for process in config.get(f'{section}.data_loaders.{name}.dataset.processes') or []:
            for augmenter in (getattr(process, 'args', None) or {}).get('augmenter_args') or []:
                if (
                    isinstance(augmenter, list)
                    and len(augmenter) == 2
                    and augmenter[0] == 'Resize'
                    and isinstance(augmenter[1], dict)
                    and {'width', 'height'} <= set(augmenter[1])
                ):
                    augmenter[1].update(width=width, height=height)
                    found = True
        if not found:
            raise UserError(
                f"--test_size: the test data of '{name}' in {config.path} has no "
                "['Resize', {'width': W, 'height': H}] augmenter to change; set its size with --opt instead."
            )
