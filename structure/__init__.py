from .builder import Builder
from .model import BasicModel, SegDetectorModel
