"""Backbones: output strides and channels, deformable wiring, the stride-2 offset read,
pretrained loading (local file, offline failure)."""

import urllib.error

import numpy as np
import pytest
import torch

import backbones

EXPECTED_CHANNELS = {
    'resnet18': [64, 128, 256, 512],
    'resnet34': [64, 128, 256, 512],
    'resnet50': [256, 512, 1024, 2048],
    'resnet101': [256, 512, 1024, 2048],
    'resnet152': [256, 512, 1024, 2048],
    'deformable_resnet18': [64, 128, 256, 512],
    'deformable_resnet50': [256, 512, 1024, 2048],
    'deformable_resnet101': [256, 512, 1024, 2048],
    'mobilenet_v3_large': [24, 40, 112, 960],
    'mobilenet_v3_small': [16, 24, 48, 576],
}


@pytest.mark.parametrize('name', sorted(EXPECTED_CHANNELS))
def test_output_strides_and_channels(name):
    torch.manual_seed(0)
    model = getattr(backbones, name)(pretrained=False).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 96))
    assert len(outputs) == 4
    for output, channels, stride in zip(outputs, EXPECTED_CHANNELS[name], (4, 8, 16, 32)):
        assert tuple(output.shape) == (1, channels, 64 // stride, 96 // stride)
        assert torch.isfinite(output).all()


def test_deformable_layout():
    model = backbones.deformable_resnet50(pretrained=False)
    names = dict(model.named_parameters())
    assert 'layer1.0.conv2_offset.weight' not in names
    for stage in (2, 3, 4):
        weight = names[f'layer{stage}.0.conv2_offset.weight']
        assert weight.shape[0] == 27
        assert weight.abs().sum() == 0 and names[f'layer{stage}.0.conv2_offset.bias'].abs().sum() == 0
    assert type(model.layer2[0].conv2).__name__ == 'ModulatedDeformConv'
    assert model.layer2[0].conv2.bias is None
    # stride-1 offset conv in the strided block: the original's quirk is on by default
    assert model.layer2[0].conv2_offset.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)
    fixed = backbones.deformable_resnet50(pretrained=False, dcn_stride_quirk=False)
    assert fixed.layer2[0].conv2_offset.stride == (2, 2)
    assert {k: v.shape for k, v in fixed.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_bottleneck_reads_offsets_like_the_original():
    """In a strided deformable Bottleneck, conv2 receives the first C*Ho*Wo values of each
    sample's input-resolution offset and mask buffers."""
    torch.manual_seed(1)
    model = backbones.deformable_resnet50(pretrained=False).eval()
    block = model.layer2[0]
    torch.nn.init.normal_(block.conv2_offset.weight, std=0.05)
    torch.nn.init.normal_(block.conv2_offset.bias, std=0.5)
    x = torch.randn(2, 256, 10, 12)
    captured = {}
    block.conv2.register_forward_hook(lambda module, inputs, output: captured.update(inputs=inputs))
    with torch.no_grad():
        block(x)
        raw = block.conv2_offset(block.relu(block.bn1(block.conv1(x)))).numpy()
    _, offset, mask = captured['inputs']
    assert tuple(offset.shape) == (2, 18, 5, 6) and tuple(mask.shape) == (2, 9, 5, 6)
    for n in range(2):
        flat_offset = raw[n, :18].reshape(-1)[: 18 * 30].reshape(18, 5, 6)
        flat_mask = (1 / (1 + np.exp(-raw[n, 18:]))).reshape(-1)[: 9 * 30].reshape(9, 5, 6)
        np.testing.assert_allclose(offset[n].numpy(), flat_offset, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(mask[n].numpy(), flat_mask, rtol=1e-5, atol=1e-6)

    # the non-quirk variant aligns offsets with the output instead
    fixed = backbones.deformable_resnet50(pretrained=False, dcn_stride_quirk=False).eval()
    fixed.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(fixed.layer2[0](x), block(x))


def test_basic_block_deformable_is_stride_one():
    model = backbones.deformable_resnet18(pretrained=False)
    block = model.layer3[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    assert not block.offset_read_quirk


def test_pretrained_local_file(tmp_path):
    torch.manual_seed(2)
    source = backbones.resnet18(pretrained=False)
    path = tmp_path / 'imagenet.pth'
    torch.save(source.state_dict(), path)
    torch.manual_seed(3)
    loaded = backbones.deformable_resnet18(pretrained=str(path))
    torch.testing.assert_close(loaded.layer3[1].conv1.weight, source.layer3[1].conv1.weight)
    torch.testing.assert_close(loaded.conv1.weight, source.conv1.weight)
    assert loaded.layer3[1].conv2_offset.weight.abs().sum() == 0  # not in the file: stays zero


def test_offline_download_fails_with_one_sentence(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', offline)
    with pytest.raises(RuntimeError) as info:
        backbones.resnet18(pretrained=True)
    message = str(info.value)
    assert 'pretrained: false' in message and 'resnet18-5c106cde.pth' in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_mobilenet_has_no_download():
    with pytest.raises(ValueError, match='pretrained'):
        backbones.mobilenet_v3_large(pretrained=True)
