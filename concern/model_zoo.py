"""The trained models shipped in ``assets/models/``, by short name: each is an experiment file and a weights file
whose SHA-256 is written here and checked before the weights are used, so a damaged or replaced copy stops with one
sentence instead of detecting with wrong weights. docs/models.md is the model card of each.

``resolve(name)`` -> ``ShippedModel`` with absolute paths (any working directory); ``verified_weights(model)`` ->
the weights path once its checksum matched (each file is hashed once per process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from concern.errors import UserError
from concern.hashing import file_sha256

__all__ = ['ShippedModel', 'MODELS', 'DEFAULT_MODEL', 'resolve', 'verified_weights', 'names_help']

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: ``name`` (the short name the scripts take), ``experiment`` and ``weights`` (absolute
    paths), ``sha256`` (of the weights file) and ``summary`` (one line for --help)."""

    name: str
    experiment: str
    weights: str
    sha256: str
    summary: str


def _shipped(name: str, sha256: str, summary: str) -> ShippedModel:
    folder = os.path.join(_ROOT, 'assets', 'models')
    return ShippedModel(
        name, os.path.join(folder, f'{name}.yaml'), os.path.join(folder, f'{name}.pth'), sha256, summary
    )


MODELS = {
    model.name: model
    for model in (
        _shipped(
            'ic15_resnet18',
            'ecbe890d23c07007d5579a612e13531c1f630afadb17f862240f3401e40b0e40',
            'DB ResNet-18, words in photos (ICDAR 2015 + synthetic scenes); F 0.67 on held-out ICDAR 2015 photos',
        ),
    )
}
DEFAULT_MODEL = 'ic15_resnet18'
_VERIFIED: set = set()


def names_help() -> str:
    """The shipped names with their one-line summaries, for a flag's help text."""
    return '; '.join(f'{model.name}: {model.summary}' for model in MODELS.values())


def resolve(name: str) -> ShippedModel:
    """The shipped model called ``name``; an unknown name is one sentence listing the known ones."""
    if name not in MODELS:
        raise UserError(f'--model {name!r} is not a shipped model; choose one of: {", ".join(sorted(MODELS))}.')
    return MODELS[name]


def verified_weights(model: ShippedModel) -> str:
    """``model.weights`` after checking that it exists and that its SHA-256 is the recorded one."""
    if model.weights in _VERIFIED:
        return model.weights
    if not os.path.isfile(model.weights):
        raise UserError(
            f"The shipped model's weights '{model.weights}' are missing; restore them with "
            f'`git checkout -- {os.path.relpath(model.weights, _ROOT)}`.'
        )
    actual = file_sha256(model.weights)
    if actual != model.sha256:
        raise UserError(
            f"The shipped model's weights '{model.weights}' do not match their SHA-256 (got {actual[:16]}..., "
            f'expected {model.sha256[:16]}...): the file is damaged or was replaced; restore it with '
            f'`git checkout -- {os.path.relpath(model.weights, _ROOT)}`.'
        )
    _VERIFIED.add(model.weights)
    return model.weights


def add_model_argument(parser, default_note: str = '') -> None:
    """``--model NAME``: a shipped model in place of the experiment file and --resume."""
    parser.add_argument(
        '--model',
        metavar='NAME',
        help=f'a model shipped in assets/models/ instead of EXPERIMENT and --resume{default_note} ({names_help()})',
    )


def use_shipped_model(args, parser, default: bool = False, required: bool = True) -> None:
    """Fills ``args.exp`` and ``args.resume`` from ``args.model`` (with ``default``: also from DEFAULT_MODEL when
    neither an experiment nor --resume is given); the weights' checksum is checked here. ``required``: a run
    left without an experiment and a checkpoint is a usage error (demo.py, which also takes --onnx, checks
    itself)."""
    name = args.model
    if name is None and default and args.exp is None and args.resume is None:
        name = DEFAULT_MODEL
    if name is not None:
        if args.exp is not None or args.resume is not None:
            parser.error(
                '--model gives the experiment and the weights: drop the experiment file and --resume, or --model.'
            )
        model = resolve(name)
        args.exp, args.resume = model.experiment, verified_weights(model)
    if required and (args.exp is None or args.resume is None):
        parser.error('an experiment file and --resume are required (or --model NAME).')


def weights_path(value: str) -> str:
    """``value`` itself, or the verified weights of the shipped model of that name (train.py --init_weights)."""
    if value in MODELS and not os.path.exists(value):
        return verified_weights(MODELS[value])
    return value
