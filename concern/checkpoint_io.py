"""Checkpoint I/O: safe loading (never runs code), tolerant weight loading, atomic saving.

Two file kinds are read:
- the original release files: a bare state dict of ``SegDetectorModel`` (keys
  ``model.module.backbone.*`` / ``model.module.decoder.*``);
- this project's checkpoints: ``{'model': state_dict, 'optimizer', 'scheduler', 'epoch',
  'iteration', 'config'}`` (the config must be plain data: dicts, lists, strings, numbers); trained with a weight
  average (``ema_decay``), ``'model'`` is the average and ``'training_model'`` the trained weights.
"""

import logging
import os
import pickle
import re
import tempfile

import torch

from concern.errors import UserError

__all__ = [
    'CheckpointError',
    'CheckpointMismatchError',
    'CheckpointNotFoundError',
    'align_keys',
    'describe_model_keys',
    'load_checkpoint',
    'load_model_weights',
    'save_checkpoint',
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(UserError, RuntimeError):
    """A checkpoint that does not fit the experiment's model (missing keys or other shapes), refused for inference
    and export; the message names the first keys and the experiment the file seems to belong to."""


# Key prefixes that wrappers add: the original's ``self.model = DataParallel(BasicModel)`` gives
# ``model.module.``, a bare DataParallel/DDP gives ``module.``.
_PREFIXES = ('model.module.', 'module.', 'model.')


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file that cannot be used: corrupt, refused (code in the pickle), not a dict, or not
    matching the experiment; the message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist or is a folder; the message names it (and a folder's checkpoints)."""


def _folder_message(path: str) -> str:
    names = sorted(
        name for name in os.listdir(path) if not name.startswith('.') and os.path.isfile(os.path.join(path, name))
    )
    listed = ', '.join(names[:10]) + (f' and {len(names) - 10} more' if len(names) > 10 else '')
    if names:
        return f'Checkpoint {path} is a folder, not a file; pass one of the files in it: {listed}.'
    return f'Checkpoint {path} is a folder, not a file, and holds no files; pass a checkpoint file.'


def load_checkpoint(path, map_location='cpu'):
    """Load a checkpoint file with ``torch.load(weights_only=True)`` and return its dict.

    A file whose pickle would import or call anything (code execution) is refused; a missing
    or unreadable file is named in the error.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointNotFoundError(_folder_message(path))
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f'Checkpoint {path} does not exist; check the path given.')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        # torch wraps the safe unpickler's complaint in a long paragraph; its own line names the cause
        detail = next(
            (line.strip() for line in message.splitlines() if line.strip().startswith('Unsupported')),
            message.splitlines()[0] if message else '',
        )
        if 'GLOBAL' in message or 'global' in message:
            raise CheckpointError(
                f'Checkpoint {path} was refused: unpickling it would import or run code '
                f'(only tensors and plain data are accepted); re-save it as a plain state dict '
                f'from a trusted environment.'
            ) from None
        if detail.startswith('Unsupported') and _starts_with(path, b'\x80'):  # a pickle (PROTO opcode)
            raise CheckpointError(
                f'Checkpoint {path} was refused: it uses pickle instructions the safe loader does not accept '
                f"({detail}; e.g. a pickle.dump file rather than torch.save's); re-save it with torch.save "
                f'as a plain state dict from a trusted environment.'
            ) from None
        raise CheckpointError(
            f'Checkpoint {path} is corrupt or not a PyTorch file ({detail}); re-download or re-save it.'
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        raise CheckpointError(
            f'Checkpoint {path} is corrupt or not a PyTorch file '
            f'({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}); '
            f're-download or re-save it.'
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f'Checkpoint {path} holds a {type(state).__name__}, not a dict; '
            f"expected a state dict or {{'model': state_dict, ...}}."
        )
    return state


def _starts_with(path, prefix: bytes) -> bool:
    with open(path, 'rb') as handle:
        return handle.read(len(prefix)) == prefix


def _state_dict_of(state):
    """The model state dict inside a loaded checkpoint (project format or bare)."""
    if 'model' in state and isinstance(state['model'], dict):
        return state['model']
    if 'state_dict' in state and isinstance(state['state_dict'], dict):
        return state['state_dict']
    return state


def _strip(key, prefix):
    return key[len(prefix) :] if key.startswith(prefix) else None


def align_keys(state_dict, model_keys):
    """Rename ``state_dict`` keys by adding or removing a wrapper prefix so they match
    ``model_keys`` best (the original's ``model.module.``, DataParallel's ``module.``)."""
    model_keys = set(model_keys)
    candidates = [dict(state_dict)]
    for prefix in _PREFIXES:
        stripped = {_strip(k, prefix): v for k, v in state_dict.items() if k.startswith(prefix)}
        if stripped:
            candidates.append(stripped)
    expanded = []
    for candidate in candidates:
        for prefix in _PREFIXES:
            expanded.append({prefix + k: v for k, v in candidate.items()})
    candidates += expanded
    return max(candidates, key=lambda c: (len(model_keys.intersection(c)), -len(c)))


def describe_model_keys(keys) -> str:
    """What model a state dict's keys describe, read from the keys alone, with the experiment files that build it:
    MobileNetV3 (``backbone.features.*``), else the ResNet depth (layer3 block count; Bottleneck ``conv3`` keys
    tell ResNet-50 from ResNet-34), deformable or not (``conv2_offset`` keys) and DBNet++'s ASF
    (``decoder.concat_attention`` keys)."""
    keys = list(keys)
    if not any('backbone.' in key for key in keys):
        return 'no backbone keys: not a DBNet checkpoint'
    if any('backbone.features.' in key for key in keys):
        return 'a MobileNetV3-large DBNet (experiments/seg_detector/totaltext_mobilenet_v3_large_thre.yaml)'
    blocks = {int(found.group(1)) for key in keys for found in [re.search(r'backbone\.layer3\.(\d+)\.', key)] if found}
    bottleneck = any(re.search(r'backbone\.layer\d\.\d+\.conv3\.', key) for key in keys)
    depth = {(2, False): 18, (6, False): 34, (6, True): 50, (23, True): 101, (36, True): 152}.get(
        (len(blocks), bottleneck)
    )
    if depth is None:
        return f"a backbone with {len(blocks)} layer3 blocks, not one of this project's experiments"
    deformable = any('conv2_offset' in key for key in keys)
    asf = any('decoder.concat_attention' in key for key in keys)
    name = f'{"deformable " if deformable else ""}ResNet-{depth} {"DBNet++ (ASF)" if asf else "DBNet"}'
    if asf and deformable and depth == 50:
        files = 'experiments/ASF/*_resnet50_deform_thre_asf.yaml'
    elif deformable and not asf and depth in (18, 50):
        files = f'experiments/seg_detector/*_resnet{depth}_deform_thre.yaml'
    elif not deformable and not asf and depth == 18:
        files = 'experiments/synthetic/quickstart.yaml'
    else:
        return f'a {name} (no experiment file here builds it; set the backbone to match)'
    return f'a {name} ({files})'


def _fit_error(source, model_state, incoming, missing, mismatched) -> CheckpointMismatchError:
    """The one-sentence refusal of a checkpoint that does not fit ``model_state``."""
    parts = []
    if missing:
        shown = ', '.join(missing[:3]) + (f' and {len(missing) - 3} more' if len(missing) > 3 else '')
        parts.append(f"lacks {len(missing)} of the model's keys ({shown})")
    if mismatched:
        key, (found, expected) = min(mismatched.items())
        more = f' and {len(mismatched) - 1} more' if len(mismatched) > 1 else ''
        parts.append(f'has other shapes ({key}: {found} in the file, {expected} in the model{more})')
    held, built = describe_model_keys(incoming), describe_model_keys(model_state)
    if held == built:
        advice = (
            f'the file holds {held} like the experiment, with other layer sizes or layers, so check the '
            f"experiment's model_args"
        )
    else:
        advice = f'the file seems to hold {held} while the experiment builds {built}, so pick the matching experiment'
    return CheckpointMismatchError(
        f"Checkpoint {source} does not fit this experiment's model: it "
        f'{" and ".join(parts)}; {advice} (or pass --non_strict to load only the '
        f'matching keys).'
    )


def load_model_weights(model, state_or_path, strict=False, fitting=False):
    """Load weights into ``model`` and return ``(missing_keys, unexpected_keys)``.

    state_or_path: a path, a bare state dict (the original's release files), or this project's
    checkpoint dict ({'model': state_dict, ...}); keys with or without the ``model.module.``
    prefix are matched to the model's. Missing, unexpected and shape-mismatched keys are logged
    by name (shape mismatches are not loaded and count as missing); strict=True raises on any.
    fitting=True (inference and export) raises CheckpointMismatchError, one sentence naming the first keys and
    the experiment the file seems to belong to, when any model key is missing or has another shape;
    unexpected extra keys stay a warning.
    """
    source = state_or_path
    if isinstance(state_or_path, (str, os.PathLike)):
        state_or_path = load_checkpoint(state_or_path)
        source = os.fspath(source)
    else:
        source = 'the given state dict'
    model_state = model.state_dict()
    incoming = align_keys(_state_dict_of(state_or_path), model_state.keys())

    mismatched = {
        k: (tuple(v.shape), tuple(model_state[k].shape))
        for k, v in incoming.items()
        if k in model_state and hasattr(v, 'shape') and tuple(v.shape) != tuple(model_state[k].shape)
    }
    loadable = {k: v for k, v in incoming.items() if k not in mismatched}
    missing = sorted(set(model_state) - set(loadable))
    unexpected = sorted(set(loadable) - set(model_state))

    if fitting and (missing or mismatched):
        raise _fit_error(source, model_state, incoming, [k for k in missing if k not in mismatched], mismatched)
    problems = []
    if missing:
        problems.append(f'missing keys {missing}')
    if unexpected:
        problems.append(f'unexpected keys {unexpected}')
    if mismatched:
        problems.append(
            'shape mismatches ' + ', '.join(f'{k}: file {a} vs model {b}' for k, (a, b) in sorted(mismatched.items()))
        )
    if problems and strict:
        raise RuntimeError(
            f'Loading weights from {source} (strict): '
            + '; '.join(problems)
            + '; pass strict=False to load the matching keys only.'
        )
    for problem in problems:
        logger.warning('Loading weights from %s: %s.', source, problem)
    model.load_state_dict({k: v for k, v in loadable.items() if k in model_state}, strict=False)
    return missing, unexpected


def save_checkpoint(state, path):
    """Save ``state`` (a dict) to ``path`` atomically: a temporary file in the same folder is
    written, flushed, fsync'ed, then renamed over ``path``; a crash never leaves ``path``
    half-written (the previous file stays intact). Temporary files of ``path`` left by a process
    killed during an earlier save (SIGKILL cannot be cleaned up after) are removed after success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = '.' + os.path.basename(path) + '.'
    leftovers = [name for name in os.listdir(folder) if name.startswith(prefix) and name.endswith('.tmp')]
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix='.tmp', dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(handle, 'wb') as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    if hasattr(os, 'O_DIRECTORY'):
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    for name in leftovers:  # older than this save: left by a killed process (one process saves a path)
        try:
            os.remove(os.path.join(folder, name))
        except FileNotFoundError:
            pass
