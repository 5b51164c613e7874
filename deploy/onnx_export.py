"""Export a DB model to ONNX (deformable convolution included) and to TorchScript.

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

The swap happens on a copy of the model: the model passed in is not modified.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from assets.ops.dcn import DeformConv, DeformConvPack, ModulatedDeformConv, ModulatedDeformConvPack

__all__ = [
    'SampledDeformConv',
    'sampled_deform_conv',
    'sampled_deform_columns',
    'ProbabilityMapModel',
    'exportable_copy',
    'replace_deform_convs',
    'export_onnx',
    'export_torchscript',
    'DEFAULT_OPSET',
]

DEFAULT_OPSET = 17
logger = logging.getLogger('dbnet')


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


class ProbabilityMapModel(nn.Module):
    """The exported graph: normalised images (N, 3, H, W) float32 -> probability map (N, 1, H, W).

    Wraps a ``SegDetectorModel`` (or anything called as ``model(image, training=False)``).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image):
        pred = self.model(image, training=False)
        if isinstance(pred, dict):
            pred = pred['binary']
        return pred


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


def exportable_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with every deformable conv replaced by ``SampledDeformConv``."""
    return replace_deform_convs(copy.deepcopy(model).eval(), SampledDeformConv)


def _example_input(model: nn.Module, height: int, width: int, batch: int = 1):
    parameter = next(model.parameters())
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, height, width, generator=generator).to(parameter.device)


def export_onnx(
    model: nn.Module,
    path: str,
    opset_version: int = DEFAULT_OPSET,
    example_size: tuple[int, int] = (128, 160),
    metadata: dict | None = None,
) -> str:
    """Write ``model`` (a SegDetectorModel) to ``path`` as ONNX with dynamic batch, height and width.

    Input ``image`` (N, 3, H, W) float32, normalised as in training (H, W multiples of 32); output
    ``probability`` (N, 1, H, W). Deformable convs are exported through ``SampledDeformConv``.
    ``metadata``: string key -> string value pairs stored in the file's metadata_props. Returns ``path``.
    """
    if opset_version < 16:
        raise ValueError(f'export_onnx: opset {opset_version} has no GridSample; use --opset 16 or later.')
    wrapped = ProbabilityMapModel(exportable_copy(model)).eval()
    example = _example_input(wrapped, *example_size)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    axes = {0: 'batch', 2: 'height', 3: 'width'}
    # The tracer warns about every Python-level shape check it meets; the shapes that matter are
    # traced symbolically (tests/deploy/test_onnx_export.py runs other sizes than the example's).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(
            wrapped,
            (example,),
            path,
            dynamo=False,
            opset_version=opset_version,
            input_names=['image'],
            output_names=['probability'],
            dynamic_axes={'image': axes, 'probability': axes},
            do_constant_folding=True,
        )
    if metadata:
        import onnx

        proto = onnx.load(path)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        onnx.save(proto, path)
    logger.info('wrote %s (opset %d)', path, opset_version)
    return path


def export_torchscript(model: nn.Module, path: str, example_size: tuple[int, int] = (128, 160)) -> str:
    """Write ``model`` traced to TorchScript at ``path``: ``torch.jit.load(path)(image)`` -> probability map.

    The deformable convs stay torchvision's ``deform_conv2d`` (load with ``import torchvision`` first);
    shapes are traced symbolically, so other batch sizes and image sizes (multiples of 32) run.
    """
    wrapped = ProbabilityMapModel(copy.deepcopy(model).eval()).eval()
    example = _example_input(wrapped, *example_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapped, (example,), check_trace=False)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    traced.save(path)
    logger.info('wrote %s (TorchScript)', path)
    return path
