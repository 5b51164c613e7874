"""Balanced binary cross entropy with hard-negative mining."""
import torch
import torch.nn as nn
import torch.nn.functional as F


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
