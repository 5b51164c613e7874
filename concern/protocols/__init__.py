"""Text-detection evaluation protocols: per-image evaluation + a micro-averaged combine step."""

from concern.protocols.deteval import DetectionDetEvalEvaluator
from concern.protocols.icdar2013 import DetectionICDAR2013Evaluator
from concern.protocols.iou import DetectionIoUEvaluator
from concern.protocols.tiou import DetectionTIoUEvaluator
from concern.registry import lookup

PROTOCOL_NAMES = ('iou', 'deteval', 'icdar2013', 'tiou')
# The three figures every protocol's combine step reports (besides its counts).
METRIC_KEYS = ('precision', 'recall', 'fmeasure')


def make_protocol(name, **kwargs):
    """Build the evaluator called `name` ('iou', 'deteval' (Total-Text), 'icdar2013', 'tiou') with its
    keyword arguments; an unknown name is an error listing the known ones."""
    classes = {
        'iou': DetectionIoUEvaluator,
        'deteval': DetectionDetEvalEvaluator,
        'icdar2013': DetectionICDAR2013Evaluator,
        'tiou': DetectionTIoUEvaluator,
    }
    return lookup(classes, name, 'evaluation protocol', 'protocol')(**kwargs)
