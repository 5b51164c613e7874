from .feature_attention import (
    ScaleChannelAttention,
    ScaleChannelSpatialAttention,
    ScaleFeatureSelection,
    ScaleSpatialAttention,
)
from .seg_detector import SegDetector
from .seg_detector_asf import SegSpatialScaleDetector
from .seg_detector_loss import (
    AdaptiveDiceLoss,
    BalanceBCELoss,
    BalanceCrossEntropyLoss,
    BalanceL1Loss,
    BinaryDiceLoss,
    DiceLoss,
    FullL1DiceLoss,
    L1BalanceCELoss,
    L1BCEMiningLoss,
    L1DiceLoss,
    MaskL1Loss,
    SegDetectorLossBuilder,
)
