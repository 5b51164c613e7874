"""The deformable-conv op against a slow, explicit reference written here."""

import math

import numpy as np
import pytest
import torch

from assets.ops.dcn import (
    DeformConv,
    DeformConvPack,
    ModulatedDeformConv,
    ModulatedDeformConvPack,
    original_stride_read,
)


def bilinear(image, y, x):
    """Original kernel's sampling: (C,) values at (y, x) of image (C, H, W), zeros outside."""
    channels, height, width = image.shape
    if y <= -1 or y >= height or x <= -1 or x >= width:
        return np.zeros(channels)
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    value = np.zeros(channels)
    for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xx, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yy < height and 0 <= xx < width:
                value += wy * wx * image[:, yy, xx]
    return value


def reference(x, weight, bias, offset_at, mask_at, stride, padding, dilation, groups, dg, out_size):
    """Slow DCN: offset_at(n, ch, ho, wo) and mask_at(n, tap, ho, wo) give the read values;
    offsets are (dy, dx) per tap inside each deformable group."""
    n_batch, cin, _, _ = x.shape
    cout, cin_g, kh, kw = weight.shape
    ho_n, wo_n = out_size
    out = np.zeros((n_batch, cout, ho_n, wo_n))
    cin_dg = cin // dg
    cout_g = cout // groups
    for n in range(n_batch):
        for ho in range(ho_n):
            for wo in range(wo_n):
                # sampled columns: (cin, taps)
                cols = np.zeros((cin, kh * kw))
                for g in range(dg):
                    chans = slice(g * cin_dg, (g + 1) * cin_dg)
                    for i in range(kh):
                        for j in range(kw):
                            t = i * kw + j
                            dy = offset_at(n, g * 2 * kh * kw + 2 * t, ho, wo)
                            dx = offset_at(n, g * 2 * kh * kw + 2 * t + 1, ho, wo)
                            m = 1.0 if mask_at is None else mask_at(n, g * kh * kw + t, ho, wo)
                            y = ho * stride - padding + i * dilation + dy
                            xx = wo * stride - padding + j * dilation + dx
                            cols[chans, t] = m * bilinear(x[n, chans], y, xx)
                for o in range(cout):
                    g = o // cout_g
                    c = cols[g * cin_g : (g + 1) * cin_g]
                    out[n, o, ho, wo] = (weight[o].reshape(cin_g, kh * kw) * c).sum()
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def dense_reader(tensor):
    array = tensor.detach().double().numpy()
    return lambda n, ch, ho, wo: array[n, ch, ho, wo]


@pytest.mark.parametrize('stride,padding,dilation,groups,dg', [(1, 1, 1, 1, 1), (2, 1, 1, 1, 1), (1, 2, 2, 2, 2)])
def test_modulated_matches_reference(stride, padding, dilation, groups, dg):
    torch.manual_seed(0)
    conv = ModulatedDeformConv(
        4, 6, 3, stride=stride, padding=padding, dilation=dilation, groups=groups, deformable_groups=dg, bias=True
    ).double()
    with torch.no_grad():
        conv.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    ho = (7 + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (6 + 2 * padding - dilation * 2 - 1) // stride + 1
    # offsets large enough to cross pixels and leave the image
    offset = torch.randn(2, dg * 18, ho, wo, dtype=torch.float64) * 2.5
    mask = torch.rand(2, dg * 9, ho, wo, dtype=torch.float64)
    got = conv(x, offset, mask).detach().numpy()
    want = reference(
        x.numpy(),
        conv.weight.detach().numpy(),
        conv.bias.detach().numpy(),
        dense_reader(offset),
        dense_reader(mask),
        stride,
        padding,
        dilation,
        groups,
        dg,
        (ho, wo),
    )
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_deform_conv_v1_matches_reference():
    torch.manual_seed(1)
    conv = DeformConv(3, 5, 3, stride=1, padding=1).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    offset = torch.randn(1, 18, 5, 5, dtype=torch.float64) * 1.7
    got = conv(x, offset).detach().numpy()
    want = reference(x.numpy(), conv.weight.detach().numpy(), None, dense_reader(offset), None, 1, 1, 1, 1, 1, (5, 5))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_cpu_autocast_runs_the_deformable_conv_in_float32():
    """torchvision's CPU kernel has no bfloat16 version: under CPU autocast (train.py --amp) the op runs in float32
    on bfloat16 inputs and gives what float32 gives for them; gradients reach the bfloat16 inputs."""
    torch.manual_seed(4)
    conv = ModulatedDeformConv(4, 6, 3, stride=1, padding=1)
    x = torch.randn(2, 4, 7, 7).bfloat16().requires_grad_()
    offset, mask = torch.randn(2, 18, 7, 7).bfloat16(), torch.rand(2, 9, 7, 7).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x, offset, mask)
    expected = conv(x.float(), offset.float(), mask.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and x.grad.abs().sum() > 0


def test_zero_offsets_and_unit_mask_equal_plain_conv():
    torch.manual_seed(2)
    conv = ModulatedDeformConv(4, 4, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 4, 9, 9)
    out = conv(x, torch.zeros(2, 18, 5, 5), torch.ones(2, 9, 5, 5))
    expected = torch.nn.functional.conv2d(x, conv.weight, stride=2, padding=1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_stride2_quirk_read_matches_reference():
    """Offsets/mask at input resolution, read per sample as the first C*Ho*Wo values."""
    torch.manual_seed(3)
    n, c, h, w = 2, 3, 9, 8
    ho, wo = 5, 4
    conv = ModulatedDeformConv(c, 4, 3, stride=2, padding=1, bias=False).double()
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    offset_mask = torch.randn(n, 27, h, w, dtype=torch.float64)
    offset = offset_mask[:, :18]  # as the backbone slices it: not contiguous per batch
    mask = offset_mask[:, -9:].sigmoid()  # a new contiguous tensor
    got = conv(x, original_stride_read(offset, (ho, wo)), original_stride_read(mask, (ho, wo))).detach().numpy()

    # the original kernel: a flat pointer at the start of sample n's offset channels
    raw = offset_mask.numpy()
    raw_mask = mask.numpy()

    def offset_at(b, ch, y, xx):
        flat = raw[b, :18].reshape(-1)  # sample b's 18 offset channels, row-major
        return flat[ch * ho * wo + y * wo + xx]

    def mask_at(b, ch, y, xx):
        flat = raw_mask[b].reshape(-1)
        return flat[ch * ho * wo + y * wo + xx]

    want = reference(x.numpy(), conv.weight.detach().numpy(), None, offset_at, mask_at, 2, 1, 1, 1, 1, (ho, wo))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # and it is not what a plain subsampling would give
    plain = conv(x, offset[:, :, ::2, ::2], mask[:, :, ::2, ::2]).detach().numpy()
    assert not np.allclose(plain, want)


def test_stride_read_keeps_gradients_on_read_positions():
    t = torch.randn(2, 2, 4, 4, requires_grad=True)
    original_stride_read(t, (2, 2)).sum().backward()
    grad = t.grad.reshape(2, -1)
    assert grad[:, :8].eq(1).all() and grad[:, 8:].eq(0).all()


def test_shape_mismatch_is_a_clear_error():
    conv = ModulatedDeformConv(2, 2, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match='offset has shape'):
        conv(torch.randn(1, 2, 8, 8), torch.zeros(1, 18, 8, 8), torch.ones(1, 9, 8, 8))


def test_packs_start_as_plain_convs_and_backprop():
    torch.manual_seed(4)
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    pack = ModulatedDeformConvPack(3, 4, 3, stride=1, padding=1)
    assert set(dict(pack.named_parameters())) == {'weight', 'bias', 'conv_offset_mask.weight', 'conv_offset_mask.bias'}
    out = pack(x)
    # zero offsets, mask sigmoid(0) = 0.5
    expected = 0.5 * torch.nn.functional.conv2d(x, pack.weight, padding=1) + pack.bias[:, None, None]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert pack.conv_offset_mask.weight.grad is not None and x.grad is not None

    pack1 = DeformConvPack(3, 4, 3, padding=1)
    assert set(dict(pack1.named_parameters())) == {'weight', 'conv_offset.weight', 'conv_offset.bias'}
    torch.testing.assert_close(pack1(x), torch.nn.functional.conv2d(x, pack1.weight, padding=1), rtol=1e-5, atol=1e-5)
