"""The one exception type for mistakes in what the user gave: files, folders, YAML, flags, checkpoints,
missing optional packages.

Every entry point (train.py, eval.py, demo.py, convert_to_onnx.py, tools/*, ``python -m data.synth``) prints a
``UserError`` as its one-sentence message on stderr and exits with code 2, without a traceback; any other
exception is a bug and keeps its traceback.
"""

__all__ = ['UserError']


class UserError(Exception):
    """A problem with the user's input. Its message is one sentence naming the file, line, key or flag and
    what to do about it."""
