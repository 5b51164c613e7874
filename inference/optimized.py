"""The optimised PyTorch model: the same results, faster. BatchNorm folding, channels_last, inference mode,
reduced precision (bf16 autocast on CPU, fp16 on GPU), deformable convolutions as ``Float32DeformConv`` and,
optionally, ``torch.compile``.

    fast = optimize_for_inference(model)                  # a folded, channels_last copy in eval mode
    detector = Detector(optimized_forward(fast, device), representer, 736)
    detector = Detector(optimized_forward(fast, device, precision='bf16'), representer, 736)
    compiled = optimize_for_inference(model, compile=True)  # + torch.compile with frozen weights (CPU: 1.7-1.8x)

Folding: in eval mode a BatchNorm after a convolution is an affine map per output channel, so it is merged
into the convolution's weight and bias: w' = w * g / s, b' = (b - mean) * g / s + beta with s = sqrt(var + eps).
This holds for Conv2d, ConvTranspose2d (output channels on weight dim 1) and the modulated deformable conv
(its output is a linear function of its weight, plus its bias); DeformConv (v1) has no bias, so a
BatchNorm after it is kept. Pairs are found where the BatchNorm is known to read the convolution's output
directly: consecutive modules of an ``nn.Sequential``, and ``convK`` / ``bnK`` of the ResNet blocks and stem.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from assets.ops.dcn import ModulatedDeformConv
from backbones.resnet import BasicBlock, Bottleneck, ResNet
from inference.deform_conv import Float32DeformConv, replace_deform_convs

__all__ = [
    'fold_batchnorm',
    'optimize_for_inference',
    'optimized_forward',
    'optimized_tensor_forward',
    'PRECISIONS',
    'CompiledInferenceModel',
    'InferenceModel',
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
    """A forward function for ``inference.detector.Detector``: (N, 3, H, W) float32 numpy -> (N, 1, H, W)
    float32 numpy probability maps; ``optimized_tensor_forward`` with the copies to and from ``device``."""
    tensor_forward = optimized_tensor_forward(model, device, precision, channels_last)

    def forward(images: np.ndarray) -> np.ndarray:
        return tensor_forward(torch.from_numpy(images)).cpu().numpy()

    return forward
