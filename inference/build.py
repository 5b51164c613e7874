"""The detector of an experiment and a checkpoint, on the path ``inference.paths`` chooses: what demo.py,
the notebook and Python users call.

    from inference.build import detector_from_experiment
    detector = detector_from_experiment('experiments/.../totaltext_resnet50_deform_thre.yaml', 'model.pth')
    polygons, scores = detector.detect([image])[0]
"""

from __future__ import annotations

import logging
from typing import Callable

from inference.detector import Detector
from inference.paths import build_inference_path, choose_path
from inference.precision import check_precision_device, resolve_precision
from inference.thresholds import resolve_box_thresh

__all__ = ['detector_from_experiment']


logger = logging.getLogger('dbnet')


def detector_from_experiment(
    experiment: str,
    checkpoint: str,
    overrides=(),
    device: str | None = None,
    local_rank: int = 0,
    plain: bool = False,
    optimize: bool = False,
    precision: str | None = None,
    compiled: bool = False,
    strict: bool = True,
    cache_dir: str | None = None,
    box_thresh: float | None = None,
    thresh: float | None = None,
    announce: Callable[[str], None] | None = None,
    **detector_options,
):
    """A ``inference.detector.Detector`` for ``experiment`` (a YAML file, with ``overrides`` 'PATH=VALUE') and
    ``checkpoint`` on the path ``choose_path`` picks for ``device`` ('cpu', 'cuda', None: CUDA when available; with
    'cuda' or None GPU ``local_rank``, the process's own under torchrun) and the flags ``plain`` / ``optimize`` /
    ``precision`` / ``compiled`` (--compile); ``strict=False`` is --non_strict.
    ``box_thresh``: None takes the experiment's representer box_thresh, else the original's 0.6.
    ``announce`` gets the lines a run prints (the box_thresh and where it came from, then the path and why;
    default: the log). ``detector_options``: the other ``Detector`` arguments (image_short_side,
    is_output_polygon, batch_size, pipeline, max_pending). The detector's ``path`` attribute is the
    ``InferencePath``; ``box_thresh`` the threshold used."""
    from concern.distributed import choose_device
    from concern.runtime import build_model_with_weights, load_experiment_for_inference

    announce = announce or logger.info
    config = load_experiment_for_inference(experiment, overrides)
    box_thresh, source = resolve_box_thresh(box_thresh, config)
    announce(f'box_thresh {box_thresh} (from {source})')
    structure = config.build('Experiment.structure')
    device = choose_device(device, local_rank)
    precision = resolve_precision(precision, device.type)
    check_precision_device(precision, device.type)
    choice = choose_path(device.type, plain=plain, optimize=optimize, precision=precision, compiled=compiled)
    model = build_model_with_weights(structure, checkpoint, device, strict=strict)
    path = build_inference_path(model, device, choice, checkpoint, structure.builder, strict, cache_dir)
    announce(path.description)
    representer = structure.representer
    representer.box_thresh = box_thresh
    if thresh is not None:
        representer.thresh = thresh
    detector = Detector(path.forward, representer, **detector_options)
    detector.path = path
    detector.box_thresh = box_thresh
    return detector
