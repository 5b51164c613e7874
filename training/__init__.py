"""Training settings named by the YAML files: checkpoints, saving, optimizer and schedules."""

from .learning_rate import ConstantLearningRate, DecayLearningRate, MultiStepLR, PiecewiseConstantLearningRate, WarmupLR
from .model_saver import ModelSaver
from .optimizer_scheduler import OptimizerScheduler
from .resume import Checkpoint
