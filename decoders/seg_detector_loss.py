"""The DB training losses, by the original's names (YAML: ``loss_class: L1BalanceCELoss``).

Every loss is an nn.Module with ``forward(pred, batch) -> (loss, metrics)``:
    pred:  {'binary': (N, 1, H, W) probabilities, 'thresh': (N, 1, H, W) threshold map,
            'thresh_binary': (N, 1, H, W) approximate binary map 1 / (1 + exp(-k (P - T)))}
    batch: {'gt': (N, 1, H, W), 'mask': (N, H, W), 'thresh_map': (N, H, W), 'thresh_mask': (N, H, W)}
    loss: scalar tensor; metrics: dict of the loss's parts (scalar tensors) for logging.
Where the code (followed here) and the paper differ: see docs/losses.md.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from concern.registry import lookup

# ---------------------------------------------------------------- the parts: BCE, dice, L1


def as_maps(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W) float32; anything else is an error naming ``name``."""
    if tensor.dim() == 4 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.dim() != 3:
        raise ValueError(f"loss input '{name}' must be (N, 1, H, W) or (N, H, W), got {tuple(tensor.shape)}.")
    return tensor.float()


class BalanceCrossEntropyLoss(nn.Module):
    """BCE over all positive pixels and the hardest negative_ratio-times-as-many negative pixels.

    forward(pred, gt, mask, return_origin=False): pred probabilities (N, 1, H, W), gt (N, 1, H, W)
    or (N, H, W) in {0, 1}, mask (N, H, W) (0 = don't care). Returns the scalar
    (sum of positive losses + sum of the top-k negative losses) / (positives + k + eps), with
    k = min(negatives, positives * negative_ratio); with return_origin also the per-pixel BCE map
    (N, H, W). gt and mask are brought to (N, H, W) first, so any batch size is handled (an early
    original broadcast them to (N, N, H, W)). Computed in float32 with autocast off.
    """

    def __init__(self, negative_ratio=3.0, eps=1e-6):
        super().__init__()
        self.negative_ratio = negative_ratio
        self.eps = eps

    def forward(self, pred, gt, mask, return_origin=False):
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, gt, mask = as_maps(pred, 'pred'), as_maps(gt, 'gt'), as_maps(mask, 'mask')
            positive = gt * mask
            negative = (1 - gt) * mask
            positive_count = int(positive.sum().item())
            negative_count = min(int(negative.sum().item()), int(positive_count * self.negative_ratio))
            loss = F.binary_cross_entropy(pred, gt, reduction='none')
            positive_loss = (loss * positive).sum()
            negative_loss = torch.topk((loss * negative).reshape(-1), negative_count).values.sum()
            balance_loss = (positive_loss + negative_loss) / (positive_count + negative_count + self.eps)
        if return_origin:
            return balance_loss, loss
        return balance_loss


class DiceLoss(nn.Module):
    """1 - 2 |P * G| / (|P| + |G| + eps), all sums over the masked pixels of the whole batch.

    forward(pred, gt, mask, weights=None): pred (N, 1, H, W), gt (N, 1, H, W) or (N, H, W), mask
    (N, H, W); optional per-pixel weights (N, H, W) multiply the mask. Returns a scalar in [0, 1].
    """

    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, pred, gt, mask, weights=None):
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, gt, mask = as_maps(pred, 'pred'), as_maps(gt, 'gt'), as_maps(mask, 'mask')
            if weights is not None:
                mask = as_maps(weights, 'weights') * mask
            intersection = (pred * gt * mask).sum()
            union = (pred * mask).sum() + (gt * mask).sum() + self.eps
            return 1 - 2.0 * intersection / union


class MaskL1Loss(nn.Module):
    """Mean |pred - gt| over the pixels where mask is 1.

    forward(pred (N, 1, H, W), gt (N, H, W), mask (N, H, W)) -> (loss, {'l1_loss': loss}).
    An all-zero mask gives a zero loss (still attached to pred), as the original's ``mask_sum == 0`` branch.
    """

    def forward(self, pred, gt, mask):
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, gt, mask = as_maps(pred, 'pred'), as_maps(gt, 'gt'), as_maps(mask, 'mask')
            loss = (torch.abs(pred - gt) * mask).sum() / mask.sum().clamp(min=1e-6)
        return loss, dict(l1_loss=loss)


class BalanceL1Loss(nn.Module):
    """L1 over the masked pixels plus the mean of the top-k L1 losses outside the mask.

    forward(pred (N, 1, H, W), gt (N, H, W), mask (N, H, W)) -> (positive + negative loss,
    {'l1_loss': positive, 'nge_l1_loss': negative}) with k = min(unmasked pixels,
    negative_ratio * masked pixels). An empty part contributes zero.
    """

    def __init__(self, negative_ratio=3.0):
        super().__init__()
        self.negative_ratio = negative_ratio

    def forward(self, pred, gt, mask):
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, gt, mask = as_maps(pred, 'pred'), as_maps(gt, 'gt'), as_maps(mask, 'mask')
            loss = torch.abs(pred - gt)
            positive_count = int(mask.sum().item())
            negative_count = min(int((1 - mask).sum().item()), int(positive_count * self.negative_ratio))
            negative = torch.topk((loss * (1 - mask)).reshape(-1), negative_count).values
            negative_loss = negative.sum() / max(negative_count, 1)
            positive_loss = (loss * mask).sum() / max(positive_count, 1)
        return positive_loss + negative_loss, dict(l1_loss=positive_loss, nge_l1_loss=negative_loss)


# ---------------------------------------------------------------- the DB losses by the original's names


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
    apart from the map-level DiceLoss above).
    """

    def __init__(self, loss_class, *args, **kwargs):
        lookup(LOSSES, loss_class, 'loss', 'model_args.loss_class')
        self.loss_class = loss_class
        self.loss_args = args
        self.loss_kwargs = kwargs

    def build(self) -> nn.Module:
        return LOSSES[self.loss_class](*self.loss_args, **self.loss_kwargs)
