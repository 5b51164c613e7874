"""Name -> class (or function) lookups with one "did you mean" error.

Every table a user reaches by name goes through ``lookup``: the YAML ``class:`` names (concern.config), the
backbone and decoder names of ``model_args`` (structure.model), the loss names (decoders.seg_detector_loss),
the evaluation protocols (concern.protocols), the annotation readers (data.image_dataset) and the ASF attention
types (decoders.feature_attention).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from concern.errors import UserError

__all__ = ['UnknownNameError', 'closest_names', 'lookup']


class UnknownNameError(UserError, ValueError):
    """A name that is not in its table; the message names where it was written, the closest known names
    and how many names there are."""


def closest_names(name: str, choices: Iterable[str], count: int = 3) -> list[str]:
    """Up to ``count`` names of ``choices`` that look like ``name`` (difflib's ratio >= 0.5), best first."""
    return difflib.get_close_matches(str(name), [str(choice) for choice in choices], n=count, cutoff=0.5)


def lookup(table: Mapping[str, Any], name: str, what: str, where: str) -> Any:
    """``table[name]``, or an UnknownNameError such as
    "exp.yaml: 'model_args.backbone': unknown backbone 'resnet5'; did you mean resnet50, resnet152?".

    ``what`` says what the names are ('backbone', 'loss_class'...); ``where`` where the name was written
    (a file and key, a flag); the message lists the closest names, or all of them when none is close.
    """
    if isinstance(name, str) and name in table:
        return table[name]
    close = closest_names(name, table)
    hint = f'did you mean {", ".join(close)}?' if close else f'the known names are {", ".join(sorted(table))}.'
    raise UnknownNameError(f'{where}: unknown {what} {name!r}; {hint}')
