"""The experiment objects that the YAML files name, and the modules their ``package:`` lists reach.

The original's YAML files list ``experiment`` under ``package:`` and expect it to provide Experiment,
Structure, Builder, TrainSettings, ValidationSettings, Checkpoint, ModelSaver, OptimizerScheduler,
Logger, the representers, measurers and visualizers; they are imported here for that lookup.
"""

from __future__ import annotations

from concern.log import Logger  # noqa: F401  (looked up by the YAML files)
from structure.builder import Builder  # noqa: F401
from structure.measurers import QuadMeasurer  # noqa: F401
from structure.representers import SegDetectorRepresenter  # noqa: F401
from structure.visualizers import SegDetectorVisualizer  # noqa: F401
from training import Checkpoint, ModelSaver, OptimizerScheduler  # noqa: F401
from training.ema import check_ema_decay

__all__ = ['Experiment', 'Structure', 'TrainSettings', 'ValidationSettings', 'EvaluationSettings']


class Structure:
    """What the experiment is: ``builder`` (the model), ``representer`` (probability map ->
    polygons), ``measurer`` (polygons -> precision / recall / F) and ``visualizer`` (overlays)."""

    def __init__(self, builder=None, representer=None, measurer=None, visualizer=None):
        self.builder = builder
        self.representer = representer
        self.measurer = measurer
        self.visualizer = visualizer

    @property
    def model_name(self) -> str:
        return getattr(self.builder, 'model_name', 'model')


class TrainSettings:
    """How to train: ``data_loader``, ``epochs``, ``checkpoint`` (resume), ``scheduler`` (optimizer
    and learning rate) and ``model_saver`` (when to save). ``ema_decay`` (this project's; 0, the original's
    behaviour, by default): validate and save an exponential moving average of the weights with this decay
    (``training.ema.ModelEMA``; ``train.py --ema DECAY``)."""

    def __init__(
        self, data_loader=None, epochs: int = 10, checkpoint=None, scheduler=None, model_saver=None, ema_decay=0.0
    ):
        self.data_loader = data_loader
        self.epochs = int(epochs)
        self.checkpoint = checkpoint
        self.scheduler = scheduler
        self.model_saver = model_saver
        self.ema_decay = check_ema_decay(ema_decay)


class ValidationSettings:
    """Validation during training (and evaluation): ``data_loaders`` is a mapping name -> DataLoader;
    every ``interval`` iterations; ``exempt`` epochs at the start are skipped (-1: never skip);
    ``visualize`` writes overlays."""

    def __init__(self, data_loaders=None, visualize: bool = False, interval: int = 100, exempt: int = -1):
        self.data_loaders = dict(data_loaders or {})
        self.visualize = bool(visualize)
        self.interval = int(interval)
        self.exempt = int(exempt)


EvaluationSettings = ValidationSettings


class Experiment:
    """Everything a YAML experiment defines: ``structure``, ``train``, ``validation``,
    ``evaluation`` and ``logger``. Scripts usually build only the parts they need through
    ``Config.build('Experiment.structure')`` and the like, so that evaluating does not read the
    training set."""

    def __init__(self, structure=None, train=None, validation=None, evaluation=None, logger=None):
        self.structure = structure
        self.train = train
        self.validation = validation
        self.evaluation = evaluation
        self.logger = logger
