"""ONNX export: the sampled deformable conv against the op, and ONNX Runtime against PyTorch for every
backbone family (plain ResNet, deformable BasicBlock, deformable Bottleneck with the stride-2 offset read,
MobileNetV3) at several input sizes from one exported file."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from assets.ops.dcn import DeformConv, ModulatedDeformConv, deform_conv, original_stride_read
from backbones.resnet import Bottleneck, ResNet
from decoders.seg_detector import SegDetector
from inference.deform_conv import SampledDeformConv, sampled_deform_conv
from inference.onnx_export import export_onnx, export_torchscript, exportable_copy
from structure.model import SegDetectorModel

SIZES = [(1, 64, 96), (2, 96, 64), (1, 32, 32)]


def randomize(model, seed=0):
    """Non-trivial BatchNorm statistics and non-zero offsets (the release init makes offsets zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
            if hasattr(module, 'conv2_offset'):
                module.conv2_offset.weight.normal_(0, 0.05, generator=generator)
                module.conv2_offset.bias.normal_(0, 1.0, generator=generator)
    return model.eval()


def db_model(backbone, in_channels, seed=0):
    """A small-headed DB model with seeded random weights (the global RNG is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SegDetectorModel(
            dict(
                backbone=backbone,
                backbone_args=dict(pretrained=False),
                decoder='SegDetector',
                decoder_args=dict(adaptive=True, in_channels=in_channels, k=50, inner_channels=32),
            )
        )
    return randomize(model, seed)


class TinyBottleneckDB(nn.Module):
    """One deformable Bottleneck per stage: the first blocks of stages 2-4 have the stride-2 offset read."""

    def __init__(self):
        super().__init__()
        self.backbone = ResNet(
            Bottleneck,
            [1, 1, 1, 1],
            dcn=dict(modulated=True, deformable_groups=1),
            stage_with_dcn=(False, True, True, True),
        )
        self.decoder = SegDetector(in_channels=[256, 512, 1024, 2048], inner_channels=32, adaptive=True, k=50)

    def forward(self, image, training=False):
        return self.decoder(self.backbone(image), training=training)


def test_sampled_deform_conv_matches_the_op():
    generator = torch.Generator().manual_seed(1)
    for stride, padding, dilation, dg in [
        ((1, 1), (1, 1), (1, 1), 1),
        ((2, 2), (1, 1), (1, 1), 1),
        ((1, 2), (2, 0), (2, 1), 2),
    ]:
        x = torch.randn(2, 4, 9, 11, generator=generator)
        weight = torch.randn(6, 4, 3, 3, generator=generator)
        bias = torch.randn(6, generator=generator)
        ho = (9 + 2 * padding[0] - dilation[0] * 2 - 1) // stride[0] + 1
        wo = (11 + 2 * padding[1] - dilation[1] * 2 - 1) // stride[1] + 1
        # offsets large enough to leave the image on some taps
        offset = 3 * torch.randn(2, dg * 18, ho, wo, generator=generator)
        mask = torch.rand(2, dg * 9, ho, wo, generator=generator)
        expected = deform_conv(x, offset, weight, stride, padding, dilation, 1, dg, bias=bias, mask=mask)
        got = sampled_deform_conv(x, offset, weight, bias, mask, stride, padding, dilation, dg)
        assert torch.allclose(got, expected, atol=1e-4), (stride, dg, (got - expected).abs().max())
        v1 = sampled_deform_conv(x, offset, weight, None, None, stride, padding, dilation, dg)
        assert torch.allclose(v1, deform_conv(x, offset, weight, stride, padding, dilation, 1, dg), atol=1e-4)


def test_exportable_copy_swaps_only_the_copy():
    model = TinyBottleneckDB().eval()
    copied = exportable_copy(model)
    assert sum(isinstance(m, ModulatedDeformConv) for m in model.modules()) == 3
    assert sum(isinstance(m, SampledDeformConv) for m in copied.modules()) == 3
    assert not any(isinstance(m, (DeformConv, ModulatedDeformConv)) for m in copied.modules())
    assert set(copied.state_dict()) == set(model.state_dict())


def run_onnx_against_torch(model, tmp_path, name):
    ort = pytest.importorskip('onnxruntime')
    path = export_onnx(model, str(tmp_path / f'{name}.onnx'), example_size=(64, 64))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(2)
    for batch, height, width in SIZES:
        image = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = model(image, training=False).numpy()
        got = session.run(None, {'image': image.numpy()})[0]
        assert got.shape == expected.shape == (batch, 1, height, width)
        difference = np.abs(got - expected).max()
        assert difference < 1e-4, (name, (batch, height, width), difference)


@pytest.mark.parametrize(
    'backbone, channels',
    [
        ('resnet18', [64, 128, 256, 512]),
        ('deformable_resnet18', [64, 128, 256, 512]),
        ('mobilenet_v3_small', [16, 24, 48, 576]),  # the large variant has the same blocks (wider, deeper)
    ],
)
def test_onnx_matches_pytorch(backbone, channels, tmp_path):
    run_onnx_against_torch(db_model(backbone, channels), tmp_path, backbone)


def test_onnx_matches_pytorch_deformable_bottleneck_stride_read(tmp_path):
    model = randomize(TinyBottleneckDB())
    first = model.backbone.layer2[0]
    assert first.offset_read_quirk and first.conv2_offset.stride == (1, 1) and first.conv2.stride == (2, 2)
    run_onnx_against_torch(model, tmp_path, 'bottleneck')


def test_stride_read_is_not_a_no_op_here():
    """The quirk changes the output on these inputs, so the comparison above does exercise it."""
    model = randomize(TinyBottleneckDB())
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        quirky = model(image)
        for block in (model.backbone.layer2[0], model.backbone.layer3[0], model.backbone.layer4[0]):
            block.offset_read_quirk = False
            block.conv2_offset.stride = (2, 2)
        aligned = model(image)
    assert (quirky - aligned).abs().max() > 1e-3
    assert original_stride_read(torch.arange(32.0).reshape(1, 2, 4, 4), (2, 2)).flatten().tolist() == list(range(8))


def test_torchscript_runs_other_sizes(tmp_path):
    model = db_model('deformable_resnet18', [64, 128, 256, 512])
    path = export_torchscript(model, str(tmp_path / 'model.pt'), example_size=(32, 32))
    loaded = torch.jit.load(path)
    image = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(loaded(image), model(image, training=False), atol=1e-5)


def test_low_opset_is_refused(tmp_path):
    with pytest.raises(ValueError, match='GridSample'):
        export_onnx(db_model('resnet18', [64, 128, 256, 512]), str(tmp_path / 'x.onnx'), opset_version=13)
