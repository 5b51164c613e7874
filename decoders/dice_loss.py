"""Dice loss on probability maps."""
import torch
import torch.nn as nn

from .balance_cross_entropy_loss import as_maps


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
