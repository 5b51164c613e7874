"""What eval.py and demo.py both do before running a model: compile the experiment, build the structure
and the model with the checkpoint's weights."""

from __future__ import annotations

import logging

from concern.checkpoint_io import load_model_weights
from concern.config import Config, ConfigError, load_config

__all__ = ['load_experiment_for_inference', 'build_model_with_weights']

logger = logging.getLogger('dbnet')


def load_experiment_for_inference(path: str, overrides=()) -> Config:
    """The experiment with the backbone's ImageNet download switched off (the checkpoint supplies
    the weights)."""
    config = load_config(path, overrides)
    model_args = config.get('Experiment.structure.builder.model_args')
    if not isinstance(model_args, dict):
        raise ConfigError(
            f"{path}: 'Experiment.structure.builder.model_args' is missing; is this a DBNet experiment file?"
        )
    backbone_args = model_args.setdefault('backbone_args', {})
    backbone_args['pretrained'] = False
    return config


def build_model_with_weights(structure, checkpoint_path: str, device, strict: bool = True):
    """``structure.builder.build()`` on ``device`` in eval mode, weights from ``checkpoint_path``.

    strict=True (inference and export): a checkpoint missing any of the model's keys, or with another shape, is
    refused (``concern.checkpoint_io.CheckpointMismatchError``); extra keys are a warning. strict=False (the
    original's lenient load, ``--non_strict``): the matching keys are loaded and the rest is a warning."""
    model = structure.builder.build()
    missing, unexpected = load_model_weights(model, checkpoint_path, fitting=strict)
    if missing or unexpected:
        logger.warning(
            '%s: %d missing and %d unexpected keys (see the warnings above).',
            checkpoint_path,
            len(missing),
            len(unexpected),
        )
    return model.to(device).eval()
