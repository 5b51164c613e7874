"""ResNet backbones (plain and with modulated deformable convolution), torchvision naming.

Every builder returns a ``ResNet`` whose forward gives the four stage outputs (c2, c3, c4, c5)
at strides 4, 8, 16, 32. Module and parameter names are the original's (torchvision's plus
``conv2_offset`` in deformable blocks and the unused ``fc`` / ``smooth`` layers the original
kept), so the original's release files load key for key.
"""

import math

import torch.nn as nn

from assets.ops.dcn import DeformConv, ModulatedDeformConv, conv_output_size, original_stride_read

from .pretrained import load_pretrained

__all__ = [
    'ResNet',
    'BasicBlock',
    'Bottleneck',
    'resnet18',
    'resnet34',
    'resnet50',
    'resnet101',
    'resnet152',
    'deformable_resnet18',
    'deformable_resnet50',
    'deformable_resnet101',
]

# The ImageNet files the original loaded (torchvision's first release of each).
model_urls = {
    'resnet18': 'https://download.pytorch.org/models/resnet18-5c106cde.pth',
    'resnet34': 'https://download.pytorch.org/models/resnet34-333f7ec4.pth',
    'resnet50': 'https://download.pytorch.org/models/resnet50-19c8e357.pth',
    'resnet101': 'https://download.pytorch.org/models/resnet101-5d3b4d8f.pth',
    'resnet152': 'https://download.pytorch.org/models/resnet152-b121ed2d.pth',
}


def _make_conv2(block, planes, stride, dcn, dcn_stride_quirk):
    """Give ``block`` its 3x3 ``conv2`` (and ``conv2_offset`` when deformable).

    The offset conv has the deformable conv's stride unless ``dcn_stride_quirk`` is set, in which
    case it has stride 1 as in the original (see ``ResNet``).
    """
    block.with_dcn = dcn is not None
    block.with_modulated_dcn = False
    block.offset_read_quirk = False
    if not block.with_dcn or dcn.get('fallback_on_stride', False):
        block.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        block.with_dcn = False
        return
    deformable_groups = dcn.get('deformable_groups', 1)
    block.with_modulated_dcn = dcn.get('modulated', False)
    conv_op = ModulatedDeformConv if block.with_modulated_dcn else DeformConv
    offset_channels = 27 if block.with_modulated_dcn else 18
    block.offset_read_quirk = dcn_stride_quirk and stride != 1
    block.conv2_offset = nn.Conv2d(
        planes, deformable_groups * offset_channels, kernel_size=3, padding=1, stride=1 if dcn_stride_quirk else stride
    )
    block.conv2 = conv_op(
        planes, planes, kernel_size=3, padding=1, stride=stride, deformable_groups=deformable_groups, bias=False
    )


def _run_conv2(block, out):
    """Apply the block's 3x3 conv (plain or deformable) to ``out``."""
    if not block.with_dcn:
        return block.conv2(out)
    offset_mask = block.conv2_offset(out)
    groups = block.conv2.deformable_groups
    offset = offset_mask[:, : 18 * groups]
    mask = offset_mask[:, -9 * groups :].sigmoid() if block.with_modulated_dcn else None
    if block.offset_read_quirk:
        conv = block.conv2
        size = conv_output_size(out.shape[2:], conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        offset = original_stride_read(offset, size)
        mask = original_stride_read(mask, size) if mask is not None else None
    if block.with_modulated_dcn:
        return block.conv2(out, offset, mask)
    return block.conv2(out, offset)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs); the stride is in conv1, so a deformable conv2 always
    has stride 1. forward: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dcn=None, dcn_stride_quirk=True):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        _make_conv2(self, planes, 1, dcn, dcn_stride_quirk)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(_run_conv2(self, out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3 with the stride, 1x1 x4). forward: (N, inplanes, H, W)
    -> (N, planes * 4, H / stride, W / stride)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dcn=None, dcn_stride_quirk=True):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        _make_conv2(self, planes, stride, dcn, dcn_stride_quirk)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.dcn = dcn

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(_run_conv2(self, out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    """ResNet feature extractor. forward: image (N, 3, H, W) -> (c2, c3, c4, c5) with
    64/128/256/512 x ``block.expansion`` channels at strides 4, 8, 16, 32.

    dcn: None or {'modulated', 'deformable_groups', 'fallback_on_stride'}: deformable 3x3 convs
    in the stages flagged by ``stage_with_dcn`` (the stem stage never has one).
    dcn_stride_quirk: reproduce the original's deformable strided blocks (default, what the
    released deformable ResNet-50 weights were trained with). In the first block of stages 2-4
    of a Bottleneck ResNet the offset conv ``conv2_offset`` has stride 1 while the deformable
    conv has stride 2; the original CUDA op, without checking shapes, read the first
    C * Ho * Wo values of each sample's offset (C=18) and mask (C=9) buffers as (C, Ho, Wo).
    When False, the offset conv has the block's stride (offsets aligned with the output, as in
    the DCN paper) -- the same parameters, different behaviour. BasicBlock (ResNet-18/34) and
    stride-1 blocks are unaffected either way.
    ``avgpool``, ``fc`` and ``smooth`` are unused by forward and kept for the original's keys; ``fc`` and
    ``smooth`` are frozen (``requires_grad`` False) so that DistributedDataParallel does not wait for
    gradients they never receive (their keys and values load and save as before).
    original_unused_layers: False leaves ``fc`` and ``smooth`` out (1.0M parameters of ResNet-18 that forward never
    uses; the model shipped in assets/models/ is built so); True (default) keeps the original's keys.
    """

    def __init__(
        self,
        block,
        layers,
        num_classes=1000,
        dcn=None,
        stage_with_dcn=(False, False, False, False),
        dcn_stride_quirk=True,
        original_unused_layers=True,
    ):
        super().__init__()
        self.dcn = dcn
        self.stage_with_dcn = tuple(stage_with_dcn)
        self.dcn_stride_quirk = dcn_stride_quirk
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stage_dcn = [dcn if with_dcn else None for with_dcn in self.stage_with_dcn]
        self.layer1 = self._make_layer(block, 64, layers[0], dcn=stage_dcn[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dcn=stage_dcn[1])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dcn=stage_dcn[2])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dcn=stage_dcn[3])
        self.avgpool = nn.AvgPool2d(7, stride=1)
        if original_unused_layers:
            self.fc = nn.Linear(512 * block.expansion, num_classes).requires_grad_(False)
            self.smooth = nn.Conv2d(2048, 256, kernel_size=1, stride=1, padding=1).requires_grad_(False)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if hasattr(m, 'conv2_offset'):
                nn.init.zeros_(m.conv2_offset.weight)
                nn.init.zeros_(m.conv2_offset.bias)

    def _make_layer(self, block, planes, blocks, stride=1, dcn=None):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, dcn=dcn, dcn_stride_quirk=self.dcn_stride_quirk)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dcn=dcn, dcn_stride_quirk=self.dcn_stride_quirk))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x2 = self.layer1(x)
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        return x2, x3, x4, x5


_DCN = dict(modulated=True, deformable_groups=1, fallback_on_stride=False)
_DCN_STAGES = (False, True, True, True)


def _build(name, block, layers, pretrained, deformable=False, **kwargs):
    if deformable:
        kwargs.setdefault('dcn', dict(_DCN))
        kwargs.setdefault('stage_with_dcn', _DCN_STAGES)
    model = ResNet(block, layers, **kwargs)
    return load_pretrained(model, pretrained, model_urls[name], name=name)


def resnet18(pretrained=True, **kwargs):
    """ResNet-18 (BasicBlock); outputs 64/128/256/512 channels. ``pretrained``: True (ImageNet),
    False, or a local file path; other keyword arguments go to ``ResNet``."""
    return _build('resnet18', BasicBlock, [2, 2, 2, 2], pretrained, **kwargs)


def deformable_resnet18(pretrained=True, **kwargs):
    """ResNet-18 with modulated deformable 3x3 convs in stages 2-4 (the stride stays in conv1,
    so no offset quirk applies); outputs 64/128/256/512 channels."""
    return _build('resnet18', BasicBlock, [2, 2, 2, 2], pretrained, deformable=True, **kwargs)


def resnet34(pretrained=True, **kwargs):
    """ResNet-34 (BasicBlock); outputs 64/128/256/512 channels."""
    return _build('resnet34', BasicBlock, [3, 4, 6, 3], pretrained, **kwargs)


def resnet50(pretrained=True, **kwargs):
    """ResNet-50 (Bottleneck); outputs 256/512/1024/2048 channels."""
    return _build('resnet50', Bottleneck, [3, 4, 6, 3], pretrained, **kwargs)


def deformable_resnet50(pretrained=True, dcn_stride_quirk=True, **kwargs):
    """ResNet-50 with modulated deformable 3x3 convs in stages 2-4; outputs 256/512/1024/2048
    channels. ``dcn_stride_quirk`` (default True, the original's behaviour): see ``ResNet``."""
    return _build(
        'resnet50', Bottleneck, [3, 4, 6, 3], pretrained, deformable=True, dcn_stride_quirk=dcn_stride_quirk, **kwargs
    )


def resnet101(pretrained=True, **kwargs):
    """ResNet-101 (Bottleneck); outputs 256/512/1024/2048 channels."""
    return _build('resnet101', Bottleneck, [3, 4, 23, 3], pretrained, **kwargs)


def deformable_resnet101(pretrained=True, dcn_stride_quirk=True, **kwargs):
    """ResNet-101 with modulated deformable 3x3 convs in stages 2-4 and the original's offset
    read (``dcn_stride_quirk``, see ``ResNet``); outputs 256/512/1024/2048 channels."""
    return _build(
        'resnet101', Bottleneck, [3, 4, 23, 3], pretrained, deformable=True, dcn_stride_quirk=dcn_stride_quirk, **kwargs
    )


def resnet152(pretrained=True, **kwargs):
    """ResNet-152 (Bottleneck); outputs 256/512/1024/2048 channels."""
    return _build('resnet152', Bottleneck, [3, 8, 36, 3], pretrained, **kwargs)
