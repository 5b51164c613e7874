"""Deformable convolution (v1 and modulated v2) on top of ``torchvision.ops.deform_conv2d``.

The classes keep the constructor arguments and parameter names of the original's
``assets/ops/dcn`` extension (itself mmdetection v1's), so checkpoints load key for key, but
the arithmetic is torchvision's compiled CPU/CUDA kernel: there is nothing to build.

Offset layout. Both the original kernel and torchvision read the offset tensor as
``(N, deformable_groups * 2 * kh * kw, Ho, Wo)`` where, inside one deformable group, channel
``2 * t`` is the vertical offset (dy) and channel ``2 * t + 1`` the horizontal offset (dx) of
kernel tap ``t = i * kw + j`` (row-major over the kernel window). The mask is
``(N, deformable_groups * kh * kw, Ho, Wo)``, one channel per tap. Sampling is bilinear with
zeros outside the image in both. So tensors produced for the original op are passed unchanged.
"""

import math

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d


def conv_output_size(input_size, kernel_size, stride, padding, dilation):
    """(Ho, Wo) of a convolution over ``input_size`` (H, W); every argument a pair."""
    return tuple(
        (size + 2 * pad - (dil * (k - 1) + 1)) // st + 1
        for size, k, st, pad, dil in zip(input_size, kernel_size, stride, padding, dilation)
    )


def original_stride_read(tensor, output_size):
    """Read each sample of ``tensor`` (N, C, Hi, Wi) as the original CUDA op did: (N, C, Ho, Wo).

    The original op did not check the offset / mask shapes; for sample ``n`` it took the first
    ``C * Ho * Wo`` values in memory of that sample's (C, Hi, Wi) block, row-major, and used them
    as a (C, Ho, Wo) tensor. This returns exactly those values as a view (a copy only if a
    sample's block is not contiguous), so gradients flow back to the same positions.
    """
    n, c, hi, wi = tensor.shape
    ho, wo = output_size
    if ho * wo > hi * wi:
        raise ValueError(
            f'original_stride_read: the offset/mask map {hi}x{wi} is smaller than the output '
            f'{ho}x{wo}; this read only makes sense for input-resolution maps of a strided conv.'
        )
    per_sample = tensor.reshape(n, c * hi * wi)
    return per_sample[:, : c * ho * wo].view(n, c, ho, wo)


def _check_map(name, tensor, batch, channels, output_size):
    expected = (batch, channels) + tuple(output_size)
    if tuple(tensor.shape) != expected:
        raise ValueError(
            f'deformable conv: {name} has shape {tuple(tensor.shape)} but {expected} is needed '
            f"(batch, channels, output height, output width); compute it with the conv's stride "
            f'or read it with assets.ops.dcn.original_stride_read.'
        )


def deform_conv(
    input, offset, weight, stride=1, padding=0, dilation=1, groups=1, deformable_groups=1, bias=None, mask=None
):
    """Deformable convolution of ``input`` (N, Cin, H, W) -> (N, Cout, Ho, Wo).

    offset: (N, deformable_groups * 2 * kh * kw, Ho, Wo), (dy, dx) per tap; mask (modulated
    version, after the sigmoid): (N, deformable_groups * kh * kw, Ho, Wo) or None. ``groups``
    must equal ``Cin // weight.shape[1]``.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    kh, kw = weight.shape[2:]
    if input.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f'deformable conv: input has {input.shape[1]} channels but the weight expects '
            f'{weight.shape[1] * groups} ({weight.shape[1]} per group x {groups} groups).'
        )
    output_size = conv_output_size(input.shape[2:], (kh, kw), stride, padding, dilation)
    _check_map('offset', offset, input.shape[0], deformable_groups * 2 * kh * kw, output_size)
    if mask is not None:
        _check_map('mask', mask, input.shape[0], deformable_groups * kh * kw, output_size)
    if input.device.type == 'cpu' and torch.is_autocast_enabled('cpu'):
        # torchvision's CPU kernel has no bfloat16 version and no CPU autocast rule (its CUDA rule runs the op in
        # float32): the same here, so that train.py --amp runs deformable models on a CPU
        with torch.autocast('cpu', enabled=False):
            input, offset, weight = input.float(), offset.float(), weight.float()
            bias = None if bias is None else bias.float()
            mask = None if mask is None else mask.float()
            return deform_conv2d(
                input, offset, weight, bias=bias, stride=stride, padding=padding, dilation=dilation, mask=mask
            )
    return deform_conv2d(input, offset, weight, bias=bias, stride=stride, padding=padding, dilation=dilation, mask=mask)


def modulated_deform_conv(
    input, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, deformable_groups=1
):
    """Modulated deformable convolution (DCNv2); argument order of the original function."""
    return deform_conv(
        input,
        offset,
        weight,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        deformable_groups=deformable_groups,
        bias=bias,
        mask=mask,
    )


class _DeformConvBase(nn.Module):
    """Arguments, ``weight`` and optional ``bias`` shared by both deformable convs."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deformable_groups, bias
    ):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f'{type(self).__name__}: in_channels {in_channels} and out_channels '
                f'{out_channels} must both be divisible by groups {groups}.'
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.with_bias = bias
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        """The original's init: uniform(+-1/sqrt(fan_in)) weight, zero bias."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _offset_conv(self, values_per_tap):
        """A zero-initialised conv predicting ``values_per_tap`` numbers per kernel tap."""
        conv = nn.Conv2d(
            self.in_channels,
            self.deformable_groups * values_per_tap * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            bias=True,
        )
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
        return conv


class DeformConv(_DeformConvBase):
    """Deformable convolution v1 (no mask, no bias), the original's ``DeformConv``.

    forward(x, offset): x (N, in_channels, H, W), offset (N, deformable_groups*2*kh*kw, Ho, Wo)
    -> (N, out_channels, Ho, Wo). Parameter: ``weight`` (out, in // groups, kh, kw).
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        deformable_groups=1,
        bias=False,
    ):
        if bias:
            raise ValueError(
                'DeformConv: bias=True is not supported (as in the original); '
                'use ModulatedDeformConv or add a bias after the conv.'
            )
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deformable_groups, bias
        )

    def forward(self, x, offset):
        return deform_conv(
            x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups, self.deformable_groups
        )


class DeformConvPack(DeformConv):
    """DeformConv that predicts its own offsets with ``conv_offset`` (zero-initialised).

    forward(x): x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset = self._offset_conv(2)

    def forward(self, x):
        return super().forward(x, self.conv_offset(x))


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution (DCNv2), the original's ``ModulatedDeformConv``.

    forward(x, offset, mask): x (N, in_channels, H, W); offset (N, dg*2*kh*kw, Ho, Wo);
    mask (N, dg*kh*kw, Ho, Wo), already passed through a sigmoid -> (N, out_channels, Ho, Wo).
    Parameters: ``weight`` (out, in // groups, kh, kw) and ``bias`` (out,) when bias=True.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        deformable_groups=1,
        bias=True,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deformable_groups, bias
        )

    def forward(self, x, offset, mask):
        return modulated_deform_conv(
            x,
            offset,
            mask,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.deformable_groups,
        )


class ModulatedDeformConvPack(ModulatedDeformConv):
    """ModulatedDeformConv predicting offsets and mask with ``conv_offset_mask`` (zero init).

    Its 3*dg*kh*kw outputs are split in three equal chunks: the first two concatenated are the
    offsets, the sigmoid of the third is the mask (the original's split).
    forward(x): x (N, in_channels, H, W) -> (N, out_channels, Ho, Wo).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.conv_offset_mask = self._offset_conv(3)

    def forward(self, x):
        o1, o2, mask = torch.chunk(self.conv_offset_mask(x), 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        return super().forward(x, offset, torch.sigmoid(mask))
