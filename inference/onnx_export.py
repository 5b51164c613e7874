"""Export a DB model to ONNX (deformable convolution included, as ``inference.deform_conv.SampledDeformConv``)
and to TorchScript. The swap happens on a copy of the model: the model passed in is not modified."""

from __future__ import annotations

import copy
import logging
import os
import warnings

import torch
import torch.nn as nn

from inference.deform_conv import SampledDeformConv, replace_deform_convs

__all__ = ['ProbabilityMapModel', 'exportable_copy', 'export_onnx', 'export_torchscript', 'DEFAULT_OPSET']


DEFAULT_OPSET = 17


logger = logging.getLogger('dbnet')


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
    # traced symbolically (tests/inference/test_onnx_export.py runs other sizes than the example's).
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
