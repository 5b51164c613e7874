"""The one exception type for mistakes in what the user gave: files, folders, YAML, flags, checkpoints,
missing optional packages.

Every entry point (train.py, eval.py, demo.py, convert_to_onnx.py, tools/*, ``python -m data.synth``) runs its
``main`` through ``concern.cli.run_main``, which prints a ``UserError`` as its one-sentence message on stderr and
exits with code 2, without a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib

__all__ = ['UserError', 'import_optional']

# The optional packages and the extra (setup.py) / requirements file that installs each.
OPTIONAL_PACKAGES = {
    'onnx': 'pip install -r requirements-onnx.txt (or pip install .[onnx])',
    'onnxruntime': 'pip install -r requirements-onnx.txt (or pip install .[onnx])',
    'tensorboard': 'pip install tensorboard (or pip install .[tensorboard])',
}


class UserError(Exception):
    """A problem with the user's input. Its message is one sentence naming the file, line, key or flag and
    what to do about it."""


def import_optional(module: str, needed_for: str):
    """``importlib.import_module(module)`` for an optional package; raises UserError naming ``needed_for`` and
    the install command when it is not installed."""
    top = module.split('.')[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if getattr(error, 'name', None) not in (None, top, module):  # the package itself is broken: a bug
            raise
        raise UserError(
            f"{needed_for} needs the optional package '{top}', which is not installed; install it "
            f'with {OPTIONAL_PACKAGES.get(top, f"pip install {top}")}.'
        ) from None
