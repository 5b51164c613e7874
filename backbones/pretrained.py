"""Loading ImageNet initialisations into backbones (the original's ``strict=False`` load)."""

import os

import torch

from concern.checkpoint_io import load_checkpoint, load_model_weights
from concern.config import ConfigError
from concern.errors import UserError


class PretrainedDownloadError(UserError, RuntimeError):
    """The ImageNet weights of ``pretrained: true`` could not be downloaded (offline); the message says what
    to set instead."""


def load_pretrained(model, pretrained, url=None, name='backbone'):
    """Load ``pretrained`` into ``model`` with strict=False and return the model.

    pretrained: False/None (nothing), True (download ``url`` into the torch hub cache, or use the
    cached file), or a local file path. Offline downloads fail with one sentence saying what to do.
    """
    if pretrained is None or pretrained is False:
        return model
    if isinstance(pretrained, (str, os.PathLike)):
        load_model_weights(model, load_checkpoint(pretrained), strict=False)
        return model
    if pretrained is not True:
        raise ConfigError(f'{name}: pretrained must be true, false or a file path, not {pretrained!r}.')
    if url is None:
        raise ConfigError(
            f'{name}: there is no download for pretrained=true; set '
            f'`backbone_args: {{pretrained: /path/to/weights.pth}}` or false.'
        )
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location='cpu', progress=False, weights_only=True)
    except Exception as error:  # urllib / socket / hash errors all mean the same to the user
        cache = os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(url))
        raise PretrainedDownloadError(
            f'{name}: could not download the ImageNet weights {url} ({type(error).__name__}); '
            f'set `backbone_args: {{pretrained: false}}`, give a local file with '
            f'`backbone_args: {{pretrained: /path/file.pth}}`, or place the file at {cache}.'
        ) from None
    load_model_weights(model, state, strict=False)
    return model
