"""The DB training losses, by the original's names (YAML: ``loss_class: L1BalanceCELoss``).

Every loss is an nn.Module with ``forward(pred, batch) -> (loss, metrics)``:
    pred:  {'binary': (N, 1, H, W) probabilities, 'thresh': (N, 1, H, W) threshold map,
            'thresh_binary': (N, 1, H, W) approximate binary map 1 / (1 + exp(-k (P - T)))}
    batch: {'gt': (N, 1, H, W), 'mask': (N, H, W), 'thresh_map': (N, H, W), 'thresh_mask': (N, H, W)}
    loss: scalar tensor; metrics: dict of the loss's parts (scalar tensors) for logging.
Where the code (followed here) and the paper differ: see docs/losses.md.
"""
import torch.nn as nn

from concern.registry import lookup

from .balance_cross_entropy_loss import BalanceCrossEntropyLoss
from .dice_loss import DiceLoss
from .l1_loss import BalanceL1Loss, MaskL1Loss


class BinaryDiceLoss(nn.Module):
    """Dice loss on ``binary`` only (for a head without the threshold branch); builder name DiceLoss.

    metrics: {'dice_loss'}.
    """

    def __init__(self, eps=1e-6):
        super().__init__()
        self.loss = DiceLoss(eps)

    def forward(self, pred, batch):
        loss = self.loss(pred['binary'], batch['gt'], batch['mask'])
        return loss, dict(dice_loss=loss)


class BalanceBCELoss(nn.Module):
    """Balanced BCE on ``binary`` only. metrics: {'bce_loss'}. ``eps`` is accepted as in the
    original (which did not use it)."""

    def __init__(self, eps=1e-6):
        super().__init__()
        self.loss = BalanceCrossEntropyLoss()

    def forward(self, pred, batch):
        loss = self.loss(pred['binary'], batch['gt'], batch['mask'])
        return loss, dict(bce_loss=loss)


class AdaptiveDiceLoss(nn.Module):
    """Dice(binary) + Dice(thresh_binary), both against gt / mask.

    metrics: {'main_loss', 'thresh_loss'}.
    """

    def __init__(self, eps=1e-6):
        super().__init__()
        self.main_loss = DiceLoss(eps)
        self.thresh_loss = DiceLoss(eps)

    def forward(self, pred, batch):
        main_loss = self.main_loss(pred['binary'], batch['gt'], batch['mask'])
        thresh_loss = self.thresh_loss(pred['thresh_binary'], batch['gt'], batch['mask'])
        return main_loss + thresh_loss, dict(main_loss=main_loss, thresh_loss=thresh_loss)


class L1DiceLoss(nn.Module):
    """AdaptiveDiceLoss + l1_scale * MaskL1(thresh, thresh_map, thresh_mask).

    metrics: {'main_loss', 'thresh_loss', 'l1_loss'}.
    """

    def __init__(self, eps=1e-6, l1_scale=10):
        super().__init__()
        self.dice_loss = AdaptiveDiceLoss(eps=eps)
        self.l1_loss = MaskL1Loss()
        self.l1_scale = l1_scale

    def forward(self, pred, batch):
        dice_loss, metrics = self.dice_loss(pred, batch)
        l1_loss, l1_metrics = self.l1_loss(pred['thresh'], batch['thresh_map'], batch['thresh_mask'])
        metrics.update(l1_metrics)
        return dice_loss + self.l1_scale * l1_loss, metrics


class FullL1DiceLoss(L1DiceLoss):
    """L1DiceLoss whose L1 part also counts the hardest pixels outside thresh_mask (BalanceL1Loss).

    metrics: {'main_loss', 'thresh_loss', 'l1_loss', 'nge_l1_loss'}.
    """

    def __init__(self, eps=1e-6, l1_scale=10):
        super().__init__(eps=eps, l1_scale=l1_scale)
        self.l1_loss = BalanceL1Loss()


class L1BalanceCELoss(nn.Module):
    """The DB loss of the original's experiments (``loss_class: L1BalanceCELoss``).

    loss = Dice(thresh_binary, gt, mask) + l1_scale * MaskL1(thresh, thresh_map, thresh_mask)
           + bce_scale * BalanceBCE(binary, gt, mask)
    (the paper: BCE for both binary maps, alpha = 1, beta = 10; see docs/losses.md). When ``pred``
    has no 'thresh' (a head with adaptive=False) the loss is the balanced BCE alone.
    metrics: {'bce_loss', 'thresh_loss' (the dice part), 'l1_loss'}.
    """

    def __init__(self, eps=1e-6, l1_scale=10, bce_scale=5):
        super().__init__()
        self.dice_loss = DiceLoss(eps=eps)
        self.l1_loss = MaskL1Loss()
        self.bce_loss = BalanceCrossEntropyLoss()
        self.l1_scale = l1_scale
        self.bce_scale = bce_scale

    def forward(self, pred, batch):
        bce_loss = self.bce_loss(pred['binary'], batch['gt'], batch['mask'])
        metrics = dict(bce_loss=bce_loss)
        if 'thresh' not in pred:
            return bce_loss, metrics
        l1_loss, l1_metrics = self.l1_loss(pred['thresh'], batch['thresh_map'], batch['thresh_mask'])
        dice_loss = self.dice_loss(pred['thresh_binary'], batch['gt'], batch['mask'])
        metrics['thresh_loss'] = dice_loss
        metrics.update(l1_metrics)
        return dice_loss + self.l1_scale * l1_loss + self.bce_scale * bce_loss, metrics


class L1BCEMiningLoss(L1BalanceCELoss):
    """L1BalanceCELoss whose dice part weights each pixel by 1 + its min-max normalised BCE.

    As in the original, the BCE map used as weights is not detached.
    metrics: {'bce_loss', 'thresh_loss', 'l1_loss'}.
    """

    def __init__(self, eps=1e-6, l1_scale=10, bce_scale=5):
        super().__init__(eps=eps, l1_scale=l1_scale, bce_scale=bce_scale)
        self.eps = eps

    def forward(self, pred, batch):
        bce_loss, bce_map = self.bce_loss(pred['binary'], batch['gt'], batch['mask'], return_origin=True)
        l1_loss, l1_metrics = self.l1_loss(pred['thresh'], batch['thresh_map'], batch['thresh_mask'])
        bce_map = (bce_map - bce_map.min()) / (bce_map.max() - bce_map.min() + self.eps)
        dice_loss = self.dice_loss(pred['thresh_binary'], batch['gt'], batch['mask'], weights=bce_map + 1)
        metrics = dict(bce_loss=bce_loss, thresh_loss=dice_loss)
        metrics.update(l1_metrics)
        return dice_loss + self.l1_scale * l1_loss + self.bce_scale * bce_loss, metrics


LOSSES = {
    'DiceLoss': BinaryDiceLoss,
    'BinaryDiceLoss': BinaryDiceLoss,
    'BalanceBCELoss': BalanceBCELoss,
    'AdaptiveDiceLoss': AdaptiveDiceLoss,
    'L1DiceLoss': L1DiceLoss,
    'FullL1DiceLoss': FullL1DiceLoss,
    'L1BalanceCELoss': L1BalanceCELoss,
    'L1BCEMiningLoss': L1BCEMiningLoss,
}


class SegDetectorLossBuilder:
    """Builds a loss by its original name: SegDetectorLossBuilder('L1BalanceCELoss', **kwargs).build().

    Names: see ``LOSSES`` ('DiceLoss' is the binary-only dice loss, BinaryDiceLoss here, to keep it
    apart from the map-level decoders.dice_loss.DiceLoss).
    """

    def __init__(self, loss_class, *args, **kwargs):
        lookup(LOSSES, loss_class, 'loss', 'model_args.loss_class')
        self.loss_class = loss_class
        self.loss_args = args
        self.loss_kwargs = kwargs

    def build(self) -> nn.Module:
        return LOSSES[self.loss_class](*self.loss_args, **self.loss_kwargs)
