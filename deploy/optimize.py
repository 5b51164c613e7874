"""Faster inference with the same results: BatchNorm folding, channels_last, inference mode, reduced precision
(bf16 autocast on CPU, fp16 on GPU) and ONNX Runtime int8 quantisation.

    fast = optimize_for_inference(model)                  # a folded, channels_last copy in eval mode
    detector = Detector(optimized_forward(fast, device), representer, 736)
    detector = Detector(optimized_forward(fast, device, precision='bf16'), representer, 736)
    compiled = optimize_for_inference(model, compile=True)  # + torch.compile with frozen weights (CPU: 1.7-1.8x)
    quantize_onnx('model.onnx', 'model.int8.onnx', mode='static', calibration_images=[...],
                  quant_format='qoperator', calibrate_method='percentile')

Folding: in eval mode a BatchNorm after a convolution is an affine map per output channel, so it is merged
into the convolution's weight and bias: w' = w * g / s, b' = (b - mean) * g / s + beta with s = sqrt(var + eps).
This holds for Conv2d, ConvTranspose2d (output channels on weight dim 1) and the modulated deformable conv
(its output is a linear function of its weight, plus its bias); DeformConv (v1) has no bias, so a
BatchNorm after it is kept. Pairs are found where the BatchNorm is known to read the convolution's output
directly: consecutive modules of an ``nn.Sequential``, and ``convK`` / ``bnK`` of the ResNet blocks and stem.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from assets.ops.dcn import ModulatedDeformConv
from assets.ops.dcn.deform_conv import deform_conv
from backbones.resnet import BasicBlock, Bottleneck, ResNet
from deploy.onnx_export import SampledDeformConv, replace_deform_convs, sampled_deform_columns

__all__ = [
    'fold_batchnorm',
    'optimize_for_inference',
    'optimized_forward',
    'optimized_tensor_forward',
    'quantize_onnx',
    'calibration_inputs',
    'PRECISIONS',
    'Float32DeformConv',
    'channels_last_deform_conv',
    'gathered_deform_conv',
    'DEFORM_CONV_IMPLEMENTATIONS',
    'CompiledInferenceModel',
    'InferenceModel',
    'QUANT_FORMATS',
    'CALIBRATE_METHODS',
    'OP_TYPE_SETS',
]

PRECISIONS = ('fp32', 'bf16', 'fp16')
_FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d, ModulatedDeformConv)
# (conv, batchnorm) attribute pairs whose forward is bn(conv(x)) in these classes
_NAMED_PAIRS = {
    ResNet: [('conv1', 'bn1')],
    BasicBlock: [('conv1', 'bn1'), ('conv2', 'bn2')],
    Bottleneck: [('conv1', 'bn1'), ('conv2', 'bn2'), ('conv3', 'bn3')],
}


def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Merge ``bn`` (eval statistics) into ``conv`` in place; conv gets a bias if it had none."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    weight = conv.weight.detach()
    channel_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    if isinstance(conv, nn.ConvTranspose2d) and conv.groups != 1:
        raise ValueError('fold_batchnorm: grouped ConvTranspose2d is not supported.')
    shape = [1] * weight.dim()
    shape[channel_dim] = -1
    conv.weight = nn.Parameter(weight * scale.reshape(shape))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    conv.bias = nn.Parameter(bias * scale + shift)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every foldable BatchNorm2d merged into the preceding conv and
    replaced by ``nn.Identity``. Returns the copy; ``model`` is not modified."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            children = list(module._modules.items())
            for (_, first), (name, second) in zip(children, children[1:]):
                if isinstance(first, _FOLDABLE) and isinstance(second, nn.BatchNorm2d):
                    _fold(first, second)
                    module._modules[name] = nn.Identity()
        for conv_name, bn_name in _NAMED_PAIRS.get(type(module), []):
            conv, bn = getattr(module, conv_name), getattr(module, bn_name)
            if isinstance(conv, _FOLDABLE) and isinstance(bn, nn.BatchNorm2d):
                _fold(conv, bn)
                setattr(module, bn_name, nn.Identity())
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


class CompiledInferenceModel(nn.Module):
    """``torch.compile`` of a model for inference (inductor; on CPU its C++ backend, gcc needed) with
    ``torch._inductor.config.freezing`` on while it compiles (set for these calls only): the weights become
    constants, so BatchNorm is folded, the convolution weights are pre-packed for oneDNN, and pointwise ops
    (ReLU, residual adds, upsampling, concatenation) are fused. Call it like the model it wraps, with gradients
    off (``torch.inference_mode`` / ``no_grad``; ``optimized_forward`` does so).

    ``dynamic``: True compiles one graph for every input size (H, W, batch), False specialises on the first
    size and recompiles for each new one, None is PyTorch's default (static first, dynamic after a change).
    With True, a square first input makes PyTorch assume H == W (duck sizing), so the first non-square
    input compiles once more. A compile takes 20-30 s for ResNet-18 on 2 cores (a static graph of a tiny model
    ~15 s, a dynamic one ~60 s; cached on disk by PyTorch for the next process); a later change of the
    wrapped model's weights is not seen (frozen)."""

    def __init__(self, model: nn.Module, dynamic: bool | None = True):
        super().__init__()
        self.compiled = torch.compile(model, dynamic=dynamic)

    def forward(self, *args, **kwargs):
        if torch.is_grad_enabled():
            raise RuntimeError(
                'CompiledInferenceModel: call it under torch.inference_mode() or torch.no_grad() '
                '(weights are frozen), e.g. through optimized_forward.'
            )
        from torch._inductor import config

        with config.patch(freezing=True):
            return self.compiled(*args, **kwargs)


def optimize_for_inference(
    model: nn.Module,
    fold_bn: bool = True,
    channels_last: bool = True,
    deform_conv: str = 'auto',
    compile: bool = False,
    dynamic: bool | None = True,
    weight_dtype: torch.dtype | None = None,
) -> nn.Module:
    """A copy of ``model`` for inference: eval mode, BatchNorm folded, weights in channels_last layout,
    deformable convs as ``Float32DeformConv`` with ``deform_conv`` as its implementation (float32, so that
    bf16 / fp16 autocast runs every model).
    ``compile``: the result wrapped in ``CompiledInferenceModel`` (torch.compile with frozen weights;
    ``dynamic`` as there); it compiles on its first call.
    ``weight_dtype`` (torch.bfloat16 / torch.float16): the Conv2d / ConvTranspose2d weights and biases stored in
    it, which is what autocast in that precision casts them to at every call (the same numbers, without the
    casts); run such a model only with that ``precision``.
    Feed it with ``optimized_forward`` (which also makes its inputs channels_last)."""
    model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    replace_deform_convs(model, lambda conv: Float32DeformConv(conv, deform_conv))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if weight_dtype is not None:
        for module in model.modules():
            if type(module) in (nn.Conv2d, nn.ConvTranspose2d):
                module.to(weight_dtype)
    return CompiledInferenceModel(model, dynamic) if compile else model


def optimized_tensor_forward(
    model: nn.Module, device, precision: str = 'fp32', channels_last: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A forward function over tensors: (N, 3, H, W) float32 on any device -> (N, 1, H, W) float32 probability
    maps on ``device``, under ``torch.inference_mode``, with channels_last inputs and ``precision``: 'fp32',
    'bf16' (autocast; on CPU it pays off with AVX512-BF16 / AMX) or 'fp16' (autocast, GPU only). For timing
    the model alone on a GPU (no host copies) and for callers that keep their images on the GPU."""
    if precision not in PRECISIONS:
        raise ValueError(f'optimized_forward: precision {precision!r} is not one of {PRECISIONS}.')
    device = torch.device(device)
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError("optimized_forward: precision 'fp16' needs a CUDA device; use 'bf16' on CPU.")
    model.eval()
    autocast_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(images: torch.Tensor) -> torch.Tensor:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None),
        ):
            pred = model(images.to(device).contiguous(memory_format=memory_format), training=False)
            if isinstance(pred, dict):
                pred = pred['binary']
            return pred.float()

    return forward


class InferenceModel(nn.Module):
    """An optimised model behind the SegDetectorModel inference interface, for eval.py and other code that calls
    ``model(batch, training=False)``: forward(batch dict with 'image', or an (N, 3, H, W) tensor) -> float32
    (N, 1, H, W) probability maps, computed by ``optimized_tensor_forward`` (channels_last inputs, autocast
    ``precision``, inference mode). ``model``: the output of ``optimize_for_inference``."""

    def __init__(self, model: nn.Module, device, precision: str = 'fp32', channels_last: bool = True):
        super().__init__()
        self.model = model
        self._forward = optimized_tensor_forward(model, device, precision, channels_last)

    def forward(self, data, training=False):
        if training:
            raise ValueError('InferenceModel: inference only (training=False); train the original model.')
        return self._forward(data['image'] if isinstance(data, dict) else data)


def optimized_forward(
    model: nn.Module, device, precision: str = 'fp32', channels_last: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A forward function for ``structure.predictor.Detector``: (N, 3, H, W) float32 numpy -> (N, 1, H, W)
    float32 numpy probability maps; ``optimized_tensor_forward`` with the copies to and from ``device``."""
    tensor_forward = optimized_tensor_forward(model, device, precision, channels_last)

    def forward(images: np.ndarray) -> np.ndarray:
        return tensor_forward(torch.from_numpy(images)).cpu().numpy()

    return forward


def _unshare_initializers(model_path: str, output_path: str) -> str:
    """Write a copy of the ONNX model in which no initializer feeds more than one node input (each extra use gets
    its own copy), ``Identity`` nodes over an initializer read through. ONNX Runtime's QOperator quantiser fails
    on a conv whose bias is not an initializer, and the exporter writes equal constants once (random models: the
    all-zero folded biases) and the other uses as ``Identity`` of it."""
    import onnx

    proto = onnx.load(model_path)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    aliases = {
        node.output[0]: node.input[0]
        for node in proto.graph.node
        if node.op_type == 'Identity' and node.input[0] in initializers
    }
    seen = set()
    for node in proto.graph.node:
        if node.op_type == 'Identity' and node.output[0] in aliases:
            continue
        for position, name in enumerate(node.input):
            if name in aliases:
                name = aliases[name]
                node.input[position] = name
            if name not in initializers:
                continue
            if name in seen:
                copy_ = onnx.TensorProto()
                copy_.CopyFrom(initializers[name])
                copy_.name = f'{name}_{node.name or len(proto.graph.initializer)}_{position}'
                proto.graph.initializer.append(copy_)
                node.input[position] = copy_.name
            seen.add(name)
    onnx.save(proto, output_path)
    return output_path


QUANT_FORMATS = ('qdq', 'qoperator')
OP_TYPE_SETS = {
    'conv': ['Conv', 'ConvTranspose', 'MatMul'],
    'all': ['Conv', 'ConvTranspose', 'MatMul', 'Add', 'Mul', 'Concat', 'Resize', 'MaxPool', 'Relu', 'Clip'],
}


CALIBRATE_METHODS = ('minmax', 'percentile', 'entropy')


def quantize_onnx(
    model_path: str,
    output_path: str,
    mode: str = 'dynamic',
    calibration_images=None,
    per_channel: bool = True,
    quant_format: str = 'qoperator',
    calibrate_method: str = 'percentile',
    nodes_to_exclude=None,
    reduce_range: bool = False,
    op_types: str = 'conv',
) -> str:
    """Write an int8-quantised copy of an exported ONNX model with ONNX Runtime's quantiser.

    mode 'dynamic': int8 weights, activations quantised at run time (Conv and MatMul).
    mode 'static': int8 weights and activations of Conv / ConvTranspose / MatMul (the sigmoid and the rest stay
    float), activation ranges calibrated on ``calibration_images``: a sequence of (N, 3, H, W) float32 inputs as
    the model takes them (e.g. ``Detector.preprocess`` of a few images, stacked; never the images you measure on).
    Static options: ``quant_format`` 'qdq' (QuantizeLinear / DequantizeLinear pairs; the head's deconvolutions
    are quantised too: fastest) or 'qoperator' (QLinearConv; ONNX Runtime has no quantised ConvTranspose, so the
    head's deconvolutions stay float: the probability map near the thresholds is closer to fp32);
    ``calibrate_method`` 'minmax', 'percentile' (99.999%: robust to rare outliers) or 'entropy' (these two see
    centre crops of the inputs at their smallest common size when the sizes differ: ``crop_to_common_size``);
    ``nodes_to_exclude``: node names kept float; ``reduce_range``: 7-bit weights; ``op_types`` 'conv' (Conv,
    ConvTranspose, MatMul) or 'all' (also Add, Mul, Concat, Resize, MaxPool, Relu, ...: every op ONNX Runtime's
    quantiser handles, so fewer Quantize / Dequantize pairs between them; sigmoids stay float).
    The default, qoperator + percentile, is the robust one: on the quick-start model (benchmarks/bench_inference.py,
    accuracy mode) F changes by +0.33 point on its 48 validation images and +0.46 on 240 more, while qdq + minmax
    (up to 20% faster) gives +0.66 / -0.46 with 8 calibration images and loses 14 points with 32 (quantising the
    last deconvolution's output breaks once its calibrated range widens). Returns ``output_path``.
    """
    from onnxruntime import quantization

    if mode == 'dynamic':
        quantization.quantize_dynamic(
            model_path,
            output_path,
            weight_type=quantization.QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=['Conv', 'MatMul'],
        )
        return _copy_metadata(model_path, output_path)
    if mode != 'static':
        raise ValueError(f"quantize_onnx: mode {mode!r} is not 'dynamic' or 'static'.")
    if not calibration_images:
        raise ValueError("quantize_onnx: mode 'static' needs calibration_images (a few preprocessed inputs).")
    if quant_format not in QUANT_FORMATS:
        raise ValueError(f'quantize_onnx: quant_format {quant_format!r} is not one of {QUANT_FORMATS}.')
    if op_types not in OP_TYPE_SETS:
        raise ValueError(f'quantize_onnx: op_types {op_types!r} is not one of {tuple(OP_TYPE_SETS)}.')
    if calibrate_method not in CALIBRATE_METHODS:
        raise ValueError(f'quantize_onnx: calibrate_method {calibrate_method!r} is not one of {CALIBRATE_METHODS}.')

    if calibrate_method in ('percentile', 'entropy'):  # their histograms stack the inputs: one shape needed
        calibration_images = crop_to_common_size(calibration_images)

    class _Reader(quantization.CalibrationDataReader):
        def __init__(self, inputs):
            self.inputs = iter([{'image': np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

        def get_next(self):
            return next(self.inputs, None)

    formats = {'qdq': quantization.QuantFormat.QDQ, 'qoperator': quantization.QuantFormat.QOperator}
    methods = {
        'minmax': quantization.CalibrationMethod.MinMax,
        'percentile': quantization.CalibrationMethod.Percentile,
        'entropy': quantization.CalibrationMethod.Entropy,
    }
    with tempfile.TemporaryDirectory() as directory:
        unshared = _unshare_initializers(model_path, os.path.join(directory, 'unshared.onnx'))
        quantization.quantize_static(
            unshared,
            output_path,
            _Reader(calibration_images),
            quant_format=formats[quant_format],
            per_channel=per_channel,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            op_types_to_quantize=OP_TYPE_SETS[op_types],
            calibrate_method=methods[calibrate_method],
            nodes_to_exclude=list(nodes_to_exclude or []),
            reduce_range=reduce_range,
        )
    return _copy_metadata(model_path, output_path)


def calibration_inputs(folder: str, count: int, image_short_side: int, representer) -> list:
    """Up to ``count`` images of ``folder``, each preprocessed as the Detector does: (1, 3, H, W) float32."""
    from concern.errors import UserError
    from data.image_io import ImageReadError, find_images, read_image
    from structure.predictor import Detector

    preprocessor = Detector(None, representer, image_short_side)
    inputs = []
    for path in find_images(folder):
        try:
            inputs.append(preprocessor.preprocess(read_image(path))[None])
        except ImageReadError as error:
            logging.getLogger('dbnet').warning('calibration: skipped %s', error)
        if len(inputs) == count:
            break
    if not inputs:
        raise UserError(f"--calibration_images '{folder}': no readable image; give a folder of typical images.")
    return inputs


def crop_to_common_size(inputs):
    """(N, 3, H, W) inputs of several sizes -> centre crops of each to the smallest height and width among them
    (multiples of 32 when every input's are). ONNX Runtime's percentile and entropy calibrators stack every
    input's activations into one array and fail on mixed sizes (landscape and portrait photos); a crop keeps the
    photos' own pixels, where padding would add flat areas to the activation statistics. Inputs of one size are
    returned as they are."""
    inputs = list(inputs)
    if len({tuple(x.shape[-2:]) for x in inputs}) <= 1:
        return inputs
    height, width = min(x.shape[-2] for x in inputs), min(x.shape[-1] for x in inputs)
    cropped = []
    for x in inputs:
        top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
        cropped.append(np.ascontiguousarray(x[..., top : top + height, left : left + width]))
    return cropped


def _copy_metadata(source_path: str, output_path: str) -> str:
    """Give the quantised model the source model's metadata_props (the representer arguments that
    ``OnnxDetector`` and ``demo.py --onnx`` read, the experiment, the checkpoint), which the quantiser drops."""
    import onnx

    source, output = onnx.load(source_path, load_external_data=False), onnx.load(output_path)
    values = {entry.key: entry.value for entry in output.metadata_props}
    values.update({entry.key: entry.value for entry in source.metadata_props})
    del output.metadata_props[:]
    for key, value in values.items():
        output.metadata_props.add(key=key, value=value)
    onnx.save(output, output_path)
    return output_path
