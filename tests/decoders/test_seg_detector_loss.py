"""The DB losses: hand-computed values, batch-size independence, finite gradients, training steps."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from decoders.seg_detector_loss import (
    LOSSES,
    BalanceCrossEntropyLoss,
    BalanceL1Loss,
    DiceLoss,
    L1BalanceCELoss,
    MaskL1Loss,
    SegDetectorLossBuilder,
)


def maps(values, shape=(1, 1, 2, 2)):
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def test_balanced_bce_keeps_the_hardest_negatives():
    pred = maps([0.9, 0.2, 0.6, 0.1])
    gt = maps([1, 0, 0, 0])
    mask = torch.ones(1, 2, 2)
    everything = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.9)) / 4
    assert BalanceCrossEntropyLoss()(pred, gt, mask).item() == pytest.approx(everything, rel=1e-5)
    hardest = -(math.log(0.9) + math.log(0.4)) / 2
    assert BalanceCrossEntropyLoss(negative_ratio=1)(pred, gt, mask).item() == pytest.approx(hardest, rel=1e-5)
    masked = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])  # the 0.6 negative is don't care
    second = -(math.log(0.9) + math.log(0.8)) / 2
    assert BalanceCrossEntropyLoss(negative_ratio=1)(pred, gt, masked).item() == pytest.approx(second, rel=1e-5)


def test_balanced_bce_is_correct_for_batches():
    torch.manual_seed(0)
    pred = torch.rand(3, 1, 6, 6).clamp(0.01, 0.99)
    gt = (torch.rand(3, 1, 6, 6) > 0.8).float()
    mask = (torch.rand(3, 6, 6) > 0.1).float()
    bce = -(gt * pred.log() + (1 - gt) * (1 - pred).log())[:, 0]
    positive = (gt[:, 0] * mask).bool()
    negative = ((1 - gt[:, 0]) * mask).bool()
    k = min(int(negative.sum()), int(positive.sum()) * 3)
    expected = (bce[positive].sum() + bce[negative].sort(descending=True).values[:k].sum()) / (positive.sum() + k)
    assert BalanceCrossEntropyLoss()(pred, gt, mask).item() == pytest.approx(expected.item(), rel=1e-5)
    # gt given as (N, H, W) is the same
    assert BalanceCrossEntropyLoss()(pred, gt[:, 0], mask).item() == pytest.approx(expected.item(), rel=1e-5)


def test_dice_and_l1_by_hand():
    pred = maps([0.5, 0.5, 0.25, 1.0])
    gt = maps([1, 0, 1, 0])
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    # intersection 0.5 + 0.25; |P| = 1.25; |G| = 2
    assert DiceLoss(eps=0)(pred, gt, mask).item() == pytest.approx(1 - 2 * 0.75 / 3.25)
    thresh_map = torch.tensor([[[0.3, 0.7], [0.5, 0.0]]])
    loss, metrics = MaskL1Loss()(pred, thresh_map, mask)
    assert loss.item() == pytest.approx((0.2 + 0.2 + 0.25) / 3) and metrics['l1_loss'] is loss
    loss, metrics = MaskL1Loss()(pred, thresh_map, torch.zeros(1, 2, 2))
    assert loss.item() == 0 and torch.isfinite(loss)
    loss, metrics = BalanceL1Loss(negative_ratio=1)(pred, thresh_map, torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]))
    assert metrics['l1_loss'].item() == pytest.approx(0.2) and metrics['nge_l1_loss'].item() == pytest.approx(1.0)


def make_batch(n=4, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    gt = torch.zeros(n, 1, size, size)
    thresh_mask = torch.zeros(n, size, size)
    for i in range(n):
        y, x = torch.randint(4, size - 12, (2,), generator=generator).tolist()
        gt[i, 0, y + 2 : y + 6, x + 2 : x + 10] = 1
        thresh_mask[i, y : y + 8, x : x + 12] = 1
    thresh_map = 0.3 + 0.4 * thresh_mask * (1 - gt[:, 0])
    return dict(gt=gt, mask=torch.ones(n, size, size), thresh_map=thresh_map, thresh_mask=thresh_mask)


def test_l1_balance_ce_combines_its_parts():
    torch.manual_seed(1)
    batch = make_batch()
    pred = {
        key: torch.rand(4, 1, 32, 32).clamp(0.02, 0.98).requires_grad_()
        for key in ('binary', 'thresh', 'thresh_binary')
    }
    loss, metrics = L1BalanceCELoss()(pred, batch)
    expected = metrics['thresh_loss'] + 10 * metrics['l1_loss'] + 5 * metrics['bce_loss']
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert metrics['bce_loss'].item() == pytest.approx(
        BalanceCrossEntropyLoss()(pred['binary'], batch['gt'], batch['mask']).item()
    )
    loss.backward()
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in pred.values())
    only_binary, metrics = L1BalanceCELoss()({'binary': pred['binary']}, batch)
    assert set(metrics) == {'bce_loss'} and only_binary.item() == pytest.approx(metrics['bce_loss'].item())


@pytest.mark.parametrize('name', sorted(LOSSES))
def test_every_loss_builds_and_gives_finite_gradients(name):
    torch.manual_seed(2)
    pred = {
        key: torch.rand(2, 1, 20, 20).clamp(0.02, 0.98).requires_grad_()
        for key in ('binary', 'thresh', 'thresh_binary')
    }
    loss, metrics = SegDetectorLossBuilder(name).build()(pred, make_batch(2, 20))
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss) and metrics
    assert all(torch.isfinite(v).all() for v in metrics.values())
    assert torch.isfinite(pred['binary'].grad).all() or torch.isfinite(pred['thresh_binary'].grad).all()


def test_builder_rejects_unknown_names():
    with pytest.raises(ValueError, match='L1BalanceCELoss'):
        SegDetectorLossBuilder('L1BalanceCE')


class TinyDB(nn.Module):
    """A two-conv stand-in for the DB head: probability, threshold and the step function (k = 50)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))

    def forward(self, x):
        binary, thresh = torch.sigmoid(self.body(x)).split(1, dim=1)
        return dict(
            binary=binary, thresh=thresh, thresh_binary=torch.reciprocal(1 + torch.exp(-50 * (binary - thresh)))
        )


def test_sgd_steps_on_a_batch_of_four_lower_the_loss():
    torch.manual_seed(0)
    batch = make_batch(4, 32)
    image = batch['gt'] + 0.1 * torch.randn(4, 1, 32, 32)
    model, criterion = TinyDB(), SegDetectorLossBuilder('L1BalanceCELoss').build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(40):
        loss, _ = criterion(model(image), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0]
