from .seg_detector import SegDetector
from .seg_detector_asf import SegSpatialScaleDetector
from .feature_attention import (ScaleChannelAttention, ScaleChannelSpatialAttention,
                                ScaleFeatureSelection, ScaleSpatialAttention)
from .balance_cross_entropy_loss import BalanceCrossEntropyLoss
from .dice_loss import DiceLoss
from .l1_loss import MaskL1Loss, BalanceL1Loss
from .seg_detector_loss import (SegDetectorLossBuilder, L1BalanceCELoss, AdaptiveDiceLoss, L1DiceLoss,
                                FullL1DiceLoss, L1BCEMiningLoss, BalanceBCELoss, BinaryDiceLoss)
