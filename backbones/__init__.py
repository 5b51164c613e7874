"""Feature extractors; every builder is exported by its name: getattr(backbones, name)(**args)."""

from .mobilenetv3 import MobileNetV3, mobilenet_v3_large, mobilenet_v3_small
from .resnet import (
    ResNet,
    deformable_resnet18,
    deformable_resnet50,
    deformable_resnet101,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)
