from .seg_detector import SegDetector
from .seg_detector_asf import SegSpatialScaleDetector
from .feature_attention import (ScaleChannelAttention, ScaleChannelSpatialAttention,
                                ScaleFeatureSelection, ScaleSpatialAttention)
