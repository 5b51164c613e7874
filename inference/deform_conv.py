"""Deformable convolution computed without torchvision's kernel: for the ONNX export and the optimised CPU path.

ONNX Runtime does not run ONNX's ``DeformConv`` operator, so for export each deformable convolution is
swapped for ``SampledDeformConv``: the same parameters, computed with operators ONNX Runtime does run.
For a kernel tap ``t = i * kw + j`` and an output position ``(ho, wo)`` the input is read, bilinearly with
zeros outside the image, at

    y = ho * stride_h - pad_h + i * dilation_h + dy[t],   x = wo * stride_w - pad_w + j * dilation_w + dx[t]

(``GridSample``, ``align_corners=False``, the coordinates normalised as ``(2 x + 1) / W - 1`` so that it
reads pixel ``x`` exactly), multiplied by the mask of the tap (modulated version), and the (C * kh * kw)
sampled columns go through one matrix product with the weight (``MatMul``). The backbone's offset
handling -- the original's stride-2 read (``assets.ops.dcn.original_stride_read``, a Reshape and a Slice)
included -- happens before the convolution is called, so it is exported unchanged.

``Float32DeformConv`` is the optimised path's form: positions in float32 under reduced precision, and on a CPU
an im2col by ``embedding_bag`` (``gathered_deform_conv``) or by ``grid_sample`` (``channels_last_deform_conv``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from assets.ops.dcn import DeformConv, DeformConvPack, ModulatedDeformConv, ModulatedDeformConvPack
from assets.ops.dcn.deform_conv import deform_conv

__all__ = [
    'SampledDeformConv',
    'sampled_deform_conv',
    'sampled_deform_columns',
    'replace_deform_convs',
    'Float32DeformConv',
    'channels_last_deform_conv',
    'gathered_deform_conv',
    'DEFORM_CONV_IMPLEMENTATIONS',
]


def sampled_deform_columns(
    input,
    offset,
    mask=None,
    kernel_size=(3, 3),
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    deformable_groups=1,
    inplace=False,
):
    """The columns of a deformable convolution: the input sampled bilinearly (zeros outside) at every tap's
    offset position, times the tap's mask. input (N, C, H, W); offset (N, dg * 2 * kh * kw, Ho, Wo) with
    (dy, dx) per tap; mask (N, dg * kh * kw, Ho, Wo) after the sigmoid, or None -> (N, C * kh * kw, Ho * Wo),
    row ``c * kh * kw + t`` for channel c and tap t (the layout of a (Cout, C, kh, kw) weight).
    ``inplace``: the mask multiplies the sampled tensor in place (saves one allocation of the columns' size).
    """
    n, channels, height, width = input.shape
    kh, kw = kernel_size
    taps = kh * kw
    dg = deformable_groups
    ho, wo = offset.shape[2], offset.shape[3]
    options = dict(dtype=input.dtype, device=input.device)
    rows = torch.arange(ho, **options) * stride[0] - padding[0]
    cols = torch.arange(wo, **options) * stride[1] - padding[1]
    tap_y = (torch.arange(kh, **options) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, **options) * dilation[1]).repeat(kh)
    offset = offset.reshape(n * dg, taps, 2, ho, wo)
    y = rows.reshape(1, 1, -1, 1) + tap_y.reshape(1, taps, 1, 1) + offset[:, :, 0]
    x = cols.reshape(1, 1, 1, -1) + tap_x.reshape(1, taps, 1, 1) + offset[:, :, 1]
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    sampled = F.grid_sample(
        input.reshape(n * dg, channels // dg, height, width),
        grid.reshape(n * dg, taps * ho, wo, 2),
        mode='bilinear',
        padding_mode='zeros',
        align_corners=False,
    )
    sampled = sampled.reshape(n, dg, channels // dg, taps, ho, wo)
    if mask is not None:
        mask = mask.reshape(n, dg, 1, taps, ho, wo)
        sampled = sampled.mul_(mask) if inplace else sampled * mask
    return sampled.reshape(n, channels * taps, ho * wo)


def sampled_deform_conv(
    input, offset, weight, bias=None, mask=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), deformable_groups=1
):
    """Deformable convolution (v1, or v2 with ``mask``) by bilinear sampling and a matrix product.

    input (N, C, H, W); offset (N, dg * 2 * kh * kw, Ho, Wo) with (dy, dx) per tap; mask (N, dg * kh * kw,
    Ho, Wo) after the sigmoid, or None; weight (Cout, C, kh, kw) (groups=1) -> (N, Cout, Ho, Wo).
    The same numbers as ``assets.ops.dcn.deform_conv`` up to float rounding.
    """
    n, channels = input.shape[:2]
    out_channels, _, kh, kw = weight.shape
    ho, wo = offset.shape[2], offset.shape[3]
    columns = sampled_deform_columns(input, offset, mask, (kh, kw), stride, padding, dilation, deformable_groups)
    out = torch.matmul(weight.reshape(out_channels, channels * kh * kw), columns)
    out = out.reshape(n, out_channels, ho, wo)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


class SampledDeformConv(nn.Module):
    """A ``DeformConv`` / ``ModulatedDeformConv`` computed by ``sampled_deform_conv`` (exportable).

    Built from the conv it replaces and sharing its ``weight`` / ``bias`` parameters (same state-dict
    keys). forward(x, offset, mask=None): x (N, Cin, H, W), offset (N, dg*2*kh*kw, Ho, Wo), mask
    (N, dg*kh*kw, Ho, Wo) or None -> (N, Cout, Ho, Wo).
    """

    def __init__(self, conv: nn.Module):
        super().__init__()
        if conv.groups != 1:
            raise ValueError(
                f'SampledDeformConv: groups={conv.groups} is not supported (only 1, what every '
                f'backbone of this project uses); export a model without grouped deformable convs.'
            )
        self.modulated = isinstance(conv, ModulatedDeformConv)
        self.weight = conv.weight
        self.bias = conv.bias
        self.kernel_size = conv.kernel_size
        self.stride = conv.stride
        self.padding = conv.padding
        self.dilation = conv.dilation
        self.groups = conv.groups
        self.deformable_groups = conv.deformable_groups

    def forward(self, x, offset, mask=None):
        if self.modulated and mask is None:
            raise ValueError('SampledDeformConv: a modulated deformable conv needs its mask.')
        return sampled_deform_conv(
            x,
            offset,
            self.weight,
            self.bias,
            mask if self.modulated else None,
            self.stride,
            self.padding,
            self.dilation,
            self.deformable_groups,
        )


def replace_deform_convs(model: nn.Module, factory) -> nn.Module:
    """Replace, in place, every ``DeformConv`` / ``ModulatedDeformConv`` of ``model`` by ``factory(conv)``."""
    for name, module in list(model.named_modules()):
        if isinstance(module, (DeformConvPack, ModulatedDeformConvPack)):
            raise TypeError(
                f"replace_deform_convs: '{name}' is a {type(module).__name__}, which predicts its own "
                f"offsets; only DeformConv / ModulatedDeformConv (the backbones' layout) are swapped."
            )
        if type(module) in (DeformConv, ModulatedDeformConv):
            parent_name, _, child = name.rpartition('.')
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, factory(module))
    return model


DEFORM_CONV_IMPLEMENTATIONS = ('auto', 'gather', 'sampled', 'kernel')


def channels_last_deform_conv(conv: SampledDeformConv, x, offset, mask=None, product_dtype=torch.float32):
    """``conv`` (a ``SampledDeformConv``) on float32 ``x`` / ``offset`` / ``mask`` as the optimised path runs it:
    the columns of ``sampled_deform_columns`` (float32 sampling, mask applied in place), then one product
    columns^T (N, Ho*Wo, C*kh*kw) x weight^T in ``product_dtype`` (bfloat16 / float16: oneDNN's AMX / tensor-core
    kernels; the sampled positions stay float32). Its (N, Ho*Wo, Cout) result is returned as an (N, Cout, Ho, Wo)
    channels_last view, the layout the next convolution reads, so no copy follows. -> ``product_dtype``."""
    n = x.shape[0]
    out_channels = conv.weight.shape[0]
    ho, wo = offset.shape[2], offset.shape[3]
    columns = sampled_deform_columns(
        x,
        offset,
        mask,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.deformable_groups,
        inplace=True,
    )
    weight = conv.weight.reshape(out_channels, -1).t().to(product_dtype)
    out = torch.matmul(columns.to(product_dtype).transpose(1, 2), weight)
    if conv.bias is not None:
        out += conv.bias.to(product_dtype)
    return out.reshape(n, ho, wo, out_channels).permute(0, 3, 1, 2)


def _bilinear_corners(offset, mask, height, width, kernel_size, stride, padding, dilation):
    """Where each tap of a deformable conv reads, as rows of an (N * (H + 3) * (W + 3), C) table: the input
    padded with one zero row / column before and two after. -> (index, weight), each (N * Ho * Wo * taps, 4):
    the four bilinear corners of every (image, output position, tap), in that order, and their weights times the
    tap's mask. A position is first clamped to [-1, H] x [-1, W]: outside that band all four corners are zeros
    of the padding either way, so the clamp changes no value and keeps every corner inside the table."""
    n, _, ho, wo = offset.shape
    kh, kw = kernel_size
    taps = kh * kw
    options = dict(dtype=offset.dtype, device=offset.device)
    rows = torch.arange(ho, **options) * stride[0] - padding[0]
    cols = torch.arange(wo, **options) * stride[1] - padding[1]
    tap_y = (torch.arange(kh, **options) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, **options) * dilation[1]).repeat(kh)
    offset = offset.reshape(n, taps, 2, ho, wo)
    y = (offset[:, :, 0] + tap_y.reshape(1, taps, 1, 1) + rows.reshape(1, 1, -1, 1)).clamp_(-1, height)
    x = (offset[:, :, 1] + tap_x.reshape(1, taps, 1, 1) + cols.reshape(1, 1, 1, -1)).clamp_(-1, width)
    y0, x0 = y.floor(), x.floor()
    low_y, low_x = y.sub_(y0), x.sub_(x0)  # the far corner's share along each axis
    high_y, high_x = 1 - low_y, 1 - low_x
    if mask is not None:
        mask = mask.reshape(n, taps, ho, wo)
        high_y, low_y = high_y * mask, low_y * mask
    row_length = width + 3
    image_start = torch.arange(n, device=offset.device).reshape(n, 1, 1, 1) * ((height + 3) * row_length)
    first = (y0.add_(1).long() * row_length).add_(x0.add_(1).long()).add_(image_start)
    index = torch.stack((first, first + 1, first + row_length, first + (row_length + 1)), dim=-1)
    weight = torch.stack((high_y * high_x, high_y * low_x, low_y * high_x, low_y * low_x), dim=-1)
    return index.permute(0, 2, 3, 1, 4).reshape(-1, 4), weight.permute(0, 2, 3, 1, 4).reshape(-1, 4)


def gathered_deform_conv(conv: SampledDeformConv, x, offset, mask=None, product_dtype=torch.float32):
    """``conv`` (a ``SampledDeformConv`` with one deformable group) on float32 ``x`` / ``offset`` / ``mask`` as an
    im2col with precomputed bilinear weights: the four corners and weights of every tap are computed once for all
    channels (``_bilinear_corners``), ``embedding_bag`` sums the weighted corner rows of the channels_last input
    (contiguous C-vectors, no per-channel gathers; the mask is in the weights), giving the (N*Ho*Wo, kh*kw*C)
    columns, and one product with the weight (in ``product_dtype``: bf16 runs oneDNN's AMX kernels; the table
    and corner weights are rounded to it too, the positions stay float32) writes the (N*Ho*Wo, Cout) result that
    is returned as an (N, Cout, Ho, Wo) channels_last view. The same numbers as ``sampled_deform_conv`` within
    float rounding."""
    n, channels, height, width = x.shape
    out_channels, _, kh, kw = conv.weight.shape
    ho, wo = offset.shape[2], offset.shape[3]
    index, corner_weight = _bilinear_corners(
        offset, mask, height, width, (kh, kw), conv.stride, conv.padding, conv.dilation
    )
    table = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 2, 1, 2)).reshape(-1, channels).to(product_dtype)
    columns = F.embedding_bag(index, table, per_sample_weights=corner_weight.to(product_dtype), mode='sum')
    weight = conv.weight.permute(0, 2, 3, 1).reshape(out_channels, -1).t().to(product_dtype)
    columns = columns.reshape(n * ho * wo, kh * kw * channels)
    if conv.bias is None:
        out = torch.mm(columns, weight)
    else:
        out = torch.addmm(conv.bias.to(product_dtype), columns, weight)
    return out.reshape(n, ho, wo, out_channels).permute(0, 3, 1, 2)


class Float32DeformConv(SampledDeformConv):
    """A deformable conv whose sampling positions are computed in float32 with autocast off, so that reduced
    precision does not move them; under bf16 / fp16 autocast its matrix product (and, for 'gather', the sampled
    values) runs in that precision (oneDNN AMX on CPU). Shares the replaced conv's parameters (same state-dict
    keys). ``implementation``: 'gather' (``gathered_deform_conv``: bilinear corners and weights computed once for
    all channels, ``embedding_bag`` over the channels_last input, one product; deformable_groups=1), 'sampled'
    (``channels_last_deform_conv``: ``grid_sample`` per channel, the mask, one product; the ONNX export's form),
    'kernel' (torchvision's ``deform_conv2d``, float32) or 'auto' (gather on CPU, sampled there for several
    deformable groups, kernel on CUDA, where the kernel is the faster; see benchmarks/bench_dcn.py). The CPU
    forms give the kernel's numbers within float rounding (1e-5) and return channels_last results.
    forward(x, offset, mask=None) -> (N, Cout, Ho, Wo), float32 or the autocast dtype (CPU forms)."""

    def __init__(self, conv: nn.Module, implementation: str = 'auto'):
        super().__init__(conv)
        if implementation not in DEFORM_CONV_IMPLEMENTATIONS:
            raise ValueError(
                f'Float32DeformConv: implementation {implementation!r} is not one of {DEFORM_CONV_IMPLEMENTATIONS}.'
            )
        if implementation == 'gather' and self.deformable_groups != 1:
            raise ValueError("Float32DeformConv: implementation 'gather' needs deformable_groups=1; use 'sampled'.")
        self.implementation = implementation

    def forward(self, x, offset, mask=None):
        device_type = x.device.type
        autocast = torch.is_autocast_enabled(device_type)
        product_dtype = torch.get_autocast_dtype(device_type) if autocast else torch.float32
        with torch.autocast(device_type, enabled=False):
            x, offset = x.float(), offset.float()
            mask = mask.float() if mask is not None else None
            if self.implementation == 'kernel' or (self.implementation == 'auto' and x.is_cuda):
                return deform_conv(
                    x.contiguous(),
                    offset.contiguous(),
                    self.weight,
                    self.stride,
                    self.padding,
                    self.dilation,
                    self.groups,
                    self.deformable_groups,
                    self.bias,
                    mask.contiguous() if self.modulated else None,
                )
            if self.modulated and mask is None:
                raise ValueError('Float32DeformConv: a modulated deformable conv needs its mask.')
            mask = mask if self.modulated else None
            if self.implementation == 'gather' or (self.implementation == 'auto' and self.deformable_groups == 1):
                return _eager_gathered_forward(self, x, offset, mask, product_dtype)
            return _eager_sampled_forward(self, x, offset, mask, product_dtype)


# Under torch.compile the CPU forms run eagerly (a graph break): inductor's own lowering of grid_sample is
# 1.5-3x slower than ATen's on CPU and took 2-5 minutes to compile for the deformable ResNets.
_eager_sampled_forward = torch.compiler.disable(channels_last_deform_conv)
_eager_gathered_forward = torch.compiler.disable(gathered_deform_conv)
