"""L1 losses for the threshold map."""
import torch
import torch.nn as nn

from .balance_cross_entropy_loss import as_maps


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
