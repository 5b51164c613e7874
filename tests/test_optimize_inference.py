"""Inference optimisations give the plain forward's results: BatchNorm folding (plain, transposed and modulated
deformable convs), channels_last, bf16 autocast with deformable convs, ONNX Runtime int8 quantisation."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from assets.ops.dcn import ModulatedDeformConv
from deploy.optimize import (Float32DeformConv, fold_batchnorm, optimize_for_inference, optimized_forward,
                             quantize_onnx)
from tests.test_onnx_export import TinyBottleneckDB, db_model, randomize

MODELS = {
    'resnet18': lambda: db_model('resnet18', [64, 128, 256, 512]),
    'deformable_resnet18': lambda: db_model('deformable_resnet18', [64, 128, 256, 512]),
    'bottleneck_stride_read': lambda: randomize(TinyBottleneckDB()),
    'mobilenet_v3_small': lambda: db_model('mobilenet_v3_small', [16, 24, 48, 576]),
}


def images(batch=2, height=64, width=64, seed=5):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed)).numpy()


def plain(model, array):
    with torch.no_grad():
        return model(torch.from_numpy(array), training=False).numpy()


@pytest.mark.parametrize('name', sorted(MODELS))
def test_folded_and_channels_last_match_the_plain_forward(name):
    model = MODELS[name]()
    inputs = images()
    expected = plain(model, inputs)
    folded = fold_batchnorm(model)
    decoder = [m for m in folded.modules() if hasattr(m, 'binarize')][0]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in decoder.binarize)
    backbone_bns = [m for m in folded.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not backbone_bns, f'{len(backbone_bns)} BatchNorms left in {name}'
    assert np.abs(plain(folded, inputs) - expected).max() < 1e-4
    # the model passed in is untouched
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert np.array_equal(plain(model, inputs), expected)
    fast = optimize_for_inference(model)
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for channels_last in (True, False):
        got = optimized_forward(fast, 'cpu', channels_last=channels_last)(inputs)
        assert got.dtype == np.float32 and np.abs(got - expected).max() < 1e-4


def test_deformable_conv_folding_adds_the_bias():
    model = MODELS['deformable_resnet18']()
    convs = [m for m in fold_batchnorm(model).modules() if isinstance(m, ModulatedDeformConv)]
    assert len(convs) == 6 and all(conv.bias is not None for conv in convs)


def test_bf16_autocast_runs_deformable_models_close_to_fp32():
    model = MODELS['deformable_resnet18']()
    fast = optimize_for_inference(model)
    assert sum(isinstance(m, Float32DeformConv) for m in fast.modules()) == 6
    inputs = images(batch=1)
    got = optimized_forward(fast, 'cpu', precision='bf16')(inputs)
    difference = np.abs(got - plain(model, inputs))
    assert got.dtype == np.float32 and difference.max() < 0.1 and difference.mean() < 0.01


def test_precision_is_checked():
    model = MODELS['resnet18']()
    with pytest.raises(ValueError, match='bf16'):
        optimized_forward(model, 'cpu', precision='fp16')
    with pytest.raises(ValueError, match='int4'):
        optimized_forward(model, 'cpu', precision='int4')


def test_onnx_int8_quantisation(tmp_path):
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxruntime.quantization')
    import onnx

    from deploy.onnx_export import export_onnx
    model = MODELS['resnet18']()
    path = export_onnx(model, str(tmp_path / 'fp32.onnx'), example_size=(64, 64))
    inputs = images(batch=1, height=64, width=64)
    expected = plain(model, inputs)
    for mode, op in (('dynamic', 'ConvInteger'), ('static', 'QuantizeLinear')):
        kwargs = {'calibration_images': [images(1, 64, 64, seed) for seed in range(4)] + [inputs]} \
            if mode == 'static' else {}
        output = quantize_onnx(path, str(tmp_path / f'{mode}.onnx'), mode=mode, **kwargs)
        assert op in {node.op_type for node in onnx.load(output).graph.node}
        got = ort.InferenceSession(output, providers=['CPUExecutionProvider']).run(None, {'image': inputs})[0]
        assert got.shape == expected.shape
        # a random model's saturated maps are harsh on int8; the F-measure change on a trained model is
        # measured by benchmarks/bench_inference.py
        correlation = np.corrcoef(got.ravel(), expected.ravel())[0, 1]
        assert correlation > 0.9 and np.abs(got - expected).mean() < 0.15, (mode, correlation)
    with pytest.raises(ValueError, match='calibration'):
        quantize_onnx(path, str(tmp_path / 'x.onnx'), mode='static')


def test_deform_conv_implementations_agree_and_are_checked():
    model = MODELS['bottleneck_stride_read']()
    inputs = images(batch=1)
    expected = plain(model, inputs)
    for implementation in ('sampled', 'kernel'):
        fast = optimize_for_inference(model, deform_conv=implementation)
        assert {m.implementation for m in fast.modules() if isinstance(m, Float32DeformConv)} == {implementation}
        assert np.abs(optimized_forward(fast, 'cpu')(inputs) - expected).max() < 1e-4
    with pytest.raises(ValueError, match='implementation'):
        optimize_for_inference(model, deform_conv='cuda')
