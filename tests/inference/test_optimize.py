"""Inference optimisations give the plain forward's results: BatchNorm folding (plain, transposed and modulated
deformable convs), channels_last, torch.compile with frozen weights, bf16 autocast
with deformable convs, ONNX Runtime int8 quantisation."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from assets.ops.dcn import ModulatedDeformConv
from inference.deform_conv import Float32DeformConv
from inference.optimized import CompiledInferenceModel, fold_batchnorm, optimize_for_inference, optimized_forward
from inference.quantize import quantize_onnx
from structure.model import SegDetectorModel
from tests.inference.test_onnx_export import TinyBottleneckDB, db_model, randomize

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
    # weights stored in bf16: what autocast casts them to at every call, so the same maps without the casts
    stored = optimize_for_inference(model, weight_dtype=torch.bfloat16)
    convs = [m for m in stored.modules() if type(m) in (nn.Conv2d, nn.ConvTranspose2d)]
    assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
    assert np.abs(optimized_forward(stored, 'cpu', precision='bf16')(inputs) - got).max() < 1e-6


def test_channels_last_deform_conv_layout_and_product_precision():
    """The optimised deformable conv returns the sampled form's numbers as a channels_last view (no copy before
    the next conv); under bf16 autocast its matrix product is bf16 (sampling float32), within bf16 rounding."""
    from inference.deform_conv import channels_last_deform_conv, sampled_deform_conv

    generator = torch.Generator().manual_seed(3)
    conv = ModulatedDeformConv(16, 24, 3, stride=2, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.1)
        conv.bias.copy_(torch.randn(24, generator=generator))
    x = torch.randn(2, 16, 20, 28, generator=generator).contiguous(memory_format=torch.channels_last)
    offset = torch.randn(2, 18, 10, 14, generator=generator) * 2
    mask = torch.rand(2, 9, 10, 14, generator=generator)
    wrapped = Float32DeformConv(conv, 'sampled')
    with torch.inference_mode():
        expected = sampled_deform_conv(x, offset, conv.weight, conv.bias, mask, (2, 2), (1, 1), (1, 1))
        got = channels_last_deform_conv(wrapped, x, offset, mask)
        assert got.is_contiguous(memory_format=torch.channels_last) and got.dtype == torch.float32
        assert (got - expected).abs().max() < 1e-5
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = wrapped(x, offset, mask)
        assert low.dtype == torch.bfloat16 and low.is_contiguous(memory_format=torch.channels_last)
        error = (low.float() - expected).abs().max() / expected.abs().max()
        assert 0 < error < 0.02


@pytest.mark.parametrize(
    'stride, padding, dilation, modulated',
    [((1, 1), (1, 1), (1, 1), True), ((2, 2), (1, 1), (1, 1), True), ((1, 2), (2, 1), (2, 1), False)],
)
def test_gathered_deform_conv_matches_the_kernel(stride, padding, dilation, modulated):
    """The embedding_bag form gives torchvision's numbers (v1 and v2, strides, dilation, offsets reaching far
    outside the image, batch 2) and a channels_last result; under bf16 autocast it is bf16 within its rounding."""
    from assets.ops.dcn import DeformConv
    from assets.ops.dcn.deform_conv import deform_conv

    generator = torch.Generator().manual_seed(1)
    cls = ModulatedDeformConv if modulated else DeformConv
    conv = cls(8, 12, 3, stride=stride, padding=padding, dilation=dilation)
    if modulated:
        with torch.no_grad():
            conv.bias.copy_(torch.randn(12, generator=generator))
    x = torch.randn(2, 8, 13, 17, generator=generator)
    ho = (13 + 2 * padding[0] - 2 * dilation[0] - 1) // stride[0] + 1
    wo = (17 + 2 * padding[1] - 2 * dilation[1] - 1) // stride[1] + 1
    offset = torch.randn(2, 18, ho, wo, generator=generator) * 6
    mask = torch.rand(2, 9, ho, wo, generator=generator) if modulated else None
    wrapped = Float32DeformConv(conv, 'gather')
    with torch.inference_mode():
        expected = deform_conv(x, offset, conv.weight, stride, padding, dilation, 1, 1, conv.bias, mask)
        got = wrapped(x.contiguous(memory_format=torch.channels_last), offset, mask)
        assert got.is_contiguous(memory_format=torch.channels_last) and (got - expected).abs().max() < 1e-4
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = wrapped(x, offset, mask)
        assert low.dtype == torch.bfloat16
        assert 0 < (low.float() - expected).abs().max() / expected.abs().max() < 0.03


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

    from inference.onnx_export import export_onnx

    model = MODELS['resnet18']()
    path = export_onnx(model, str(tmp_path / 'fp32.onnx'), example_size=(64, 64))
    inputs = images(batch=1, height=64, width=64)
    expected = plain(model, inputs)
    for mode, op in (('dynamic', 'ConvInteger'), ('static', 'QuantizeLinear')):
        kwargs = (
            {'calibration_images': [images(1, 64, 64, seed) for seed in range(4)] + [inputs]}
            if mode == 'static'
            else {}
        )
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
    for implementation in ('gather', 'sampled', 'kernel'):
        fast = optimize_for_inference(model, deform_conv=implementation)
        assert {m.implementation for m in fast.modules() if isinstance(m, Float32DeformConv)} == {implementation}
        assert np.abs(optimized_forward(fast, 'cpu')(inputs) - expected).max() < 1e-4
    with pytest.raises(ValueError, match='implementation'):
        optimize_for_inference(model, deform_conv='cuda')


class TinyDeformableDB(nn.Module):
    """A stem, one modulated deformable conv (Float32DeformConv after optimisation) and a DB head: the smallest
    graph that exercises every kind of layer the optimised path changes, so that it compiles in seconds."""

    def __init__(self):
        super().__init__()
        from decoders.seg_detector import SegDetector

        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.offset = nn.Conv2d(8, 27, 3, padding=1)
        self.deform = ModulatedDeformConv(8, 8, 3, padding=1, bias=False)
        self.decoder = SegDetector(in_channels=[8, 8, 8, 8], inner_channels=16, adaptive=True, k=50)

    def forward(self, image, training=False):
        c2 = self.stem(image)
        offset_mask = self.offset(c2)
        c2 = c2 + self.deform(c2, offset_mask[:, :18], torch.sigmoid(offset_mask[:, 18:]))
        pool = nn.functional.avg_pool2d
        return self.decoder((c2, pool(c2, 2), pool(c2, 4), pool(c2, 8)), training=training)


def test_compiled_model_matches_the_plain_forward_at_several_sizes():
    import shutil

    if not (shutil.which('gcc') or shutil.which('g++') or shutil.which('cc')):
        pytest.skip('torch.compile on CPU needs a C++ compiler (gcc); none on PATH')
    model = randomize(TinyDeformableDB()).eval()
    with torch.no_grad():
        model.offset.weight.normal_(0, 0.1)
    # dynamic=False: a static graph per size compiles in ~15 s on 2 cores, a dynamic one in ~60 s (the
    # benchmark runs dynamic=True, the default, on the real models)
    fast = optimize_for_inference(model, compile=True, dynamic=False)
    assert isinstance(fast, CompiledInferenceModel)
    assert sum(isinstance(m, Float32DeformConv) for m in fast.modules()) == 1
    forward = optimized_forward(fast, 'cpu')
    for height, width in ((64, 64), (96, 64)):  # the second size recompiles
        inputs = images(batch=1, height=height, width=width)
        got = forward(inputs)
        assert got.shape == (1, 1, height, width) and np.abs(got - plain(model, inputs)).max() < 1e-4
    with pytest.raises(RuntimeError, match='inference_mode'):
        fast(torch.from_numpy(inputs), training=False)


def test_static_int8_options(tmp_path):
    pytest.importorskip('onnxruntime.quantization')
    import onnx
    import onnxruntime as ort

    from inference.onnx_export import export_onnx

    model = MODELS['resnet18']()
    path = export_onnx(model, str(tmp_path / 'fp32.onnx'), example_size=(64, 64))
    inputs = images(batch=1, height=64, width=64)
    calibration = [images(1, 64, 64, seed) for seed in range(3)] + [inputs]
    output = quantize_onnx(
        path,
        str(tmp_path / 'qop.onnx'),
        mode='static',
        calibration_images=calibration,
        quant_format='qoperator',
        calibrate_method='percentile',
    )
    ops = [node.op_type for node in onnx.load(output).graph.node]
    # QLinearConv for the convolutions; the head's deconvolutions have no quantised kernel and stay float
    assert 'QLinearConv' in ops and ops.count('ConvTranspose') == 2 and 'DequantizeLinear' in ops
    got = ort.InferenceSession(output, providers=['CPUExecutionProvider']).run(None, {'image': inputs})[0]
    expected = plain(model, inputs)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9
    excluded = [n.name for n in onnx.load(path).graph.node if n.op_type == 'ConvTranspose']
    output = quantize_onnx(
        path,
        str(tmp_path / 'qdq.onnx'),
        mode='static',
        calibration_images=calibration,
        quant_format='qdq',
        calibrate_method='minmax',
        nodes_to_exclude=excluded,
    )
    graph = onnx.load(output).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    deconvs = [node for node in graph.node if node.op_type == 'ConvTranspose']
    assert len(deconvs) == 2 and all(producers.get(node.input[1]) != 'DequantizeLinear' for node in deconvs)
    assert 'QuantizeLinear' in producers.values()  # QDQ: the other convolutions are quantised
    # untrained BatchNorms fold to equal (zero) biases, which the exporter writes once and shares through
    # Identity nodes: the QOperator quantiser needs each conv's bias as its own initializer
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = SegDetectorModel(
            dict(
                backbone='resnet18',
                backbone_args=dict(pretrained=False),
                decoder='SegDetector',
                decoder_args=dict(in_channels=[64, 128, 256, 512], inner_channels=32),
            )
        ).eval()
    fresh_path = export_onnx(fresh, str(tmp_path / 'fresh.onnx'), example_size=(64, 64))
    assert 'Identity' in {node.op_type for node in onnx.load(fresh_path).graph.node}
    output = quantize_onnx(
        fresh_path,
        str(tmp_path / 'fresh_qop.onnx'),
        mode='static',
        calibration_images=calibration,
        quant_format='qoperator',
    )
    assert 'QLinearConv' in {node.op_type for node in onnx.load(output).graph.node}
    output = quantize_onnx(
        path, str(tmp_path / 'all.onnx'), mode='static', calibration_images=calibration, op_types='all'
    )
    ops = [node.op_type for node in onnx.load(output).graph.node]
    assert {'QLinearConv', 'QLinearAdd', 'QLinearConcat'} <= set(ops) and ops[-1] == 'Sigmoid'
    got = ort.InferenceSession(output, providers=['CPUExecutionProvider']).run(None, {'image': inputs})[0]
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.9
    for option, value in (('quant_format', 'qint4'), ('calibrate_method', 'mean'), ('op_types', 'some')):
        with pytest.raises(ValueError, match=option):
            quantize_onnx(
                path, str(tmp_path / 'x.onnx'), mode='static', calibration_images=calibration, **{option: value}
            )


def test_calibration_inputs_of_mixed_sizes_are_centre_cropped_to_the_common_size():
    from inference.quantize import crop_to_common_size

    landscape = np.arange(1 * 3 * 64 * 128, dtype=np.float32).reshape(1, 3, 64, 128)
    portrait = -np.arange(1 * 3 * 96 * 64, dtype=np.float32).reshape(1, 3, 96, 64)
    same = [landscape, landscape + 1]
    assert all(a is b for a, b in zip(crop_to_common_size(same), same))  # one size: untouched
    cropped = crop_to_common_size([landscape, portrait])
    assert [x.shape for x in cropped] == [(1, 3, 64, 64), (1, 3, 64, 64)]
    np.testing.assert_array_equal(cropped[0], landscape[..., :, 32:96])
    np.testing.assert_array_equal(cropped[1], portrait[..., 16:80, :])
    assert all(x.flags['C_CONTIGUOUS'] for x in cropped)
