"""MobileNetV3 backbones with the original's layout (``features`` ModuleList, ``classifier``).

forward gives four feature maps at strides 4, 8, 16, 32:
- large: features 3, 6, 12, 16 -> 24, 40, 112, 960 channels (the original's taps);
- small: features 1, 3, 8, 12 -> 16, 24, 48, 576 channels. The original tapped 3, 6, 12, 16
  for both modes, which for ``small`` gives strides 8, 16, 32 and then fails (the small network
  has 16 feature modules); these taps are the last module at each stride.
The pooled head (features after the taps, ``classifier``) is unused and kept for the keys.
"""

import math

import torch.nn as nn
import torch.nn.functional as F

from .pretrained import load_pretrained

__all__ = ['MobileNetV3', 'mobilenet_v3_large', 'mobilenet_v3_small']

# k, exp, c, se, nl, s  (MobileNetV3 paper, tables 1 and 2)
LARGE_SETTING = [
    [3, 16, 16, False, 'RE', 1],
    [3, 64, 24, False, 'RE', 2],
    [3, 72, 24, False, 'RE', 1],
    [5, 72, 40, True, 'RE', 2],
    [5, 120, 40, True, 'RE', 1],
    [5, 120, 40, True, 'RE', 1],
    [3, 240, 80, False, 'HS', 2],
    [3, 200, 80, False, 'HS', 1],
    [3, 184, 80, False, 'HS', 1],
    [3, 184, 80, False, 'HS', 1],
    [3, 480, 112, True, 'HS', 1],
    [3, 672, 112, True, 'HS', 1],
    [5, 672, 160, True, 'HS', 2],
    [5, 960, 160, True, 'HS', 1],
    [5, 960, 160, True, 'HS', 1],
]
SMALL_SETTING = [
    [3, 16, 16, True, 'RE', 2],
    [3, 72, 24, False, 'RE', 2],
    [3, 88, 24, False, 'RE', 1],
    [5, 96, 40, True, 'HS', 2],
    [5, 240, 40, True, 'HS', 1],
    [5, 240, 40, True, 'HS', 1],
    [5, 120, 48, True, 'HS', 1],
    [5, 144, 48, True, 'HS', 1],
    [5, 288, 96, True, 'HS', 2],
    [5, 576, 96, True, 'HS', 1],
    [5, 576, 96, True, 'HS', 1],
]
FEATURE_TAPS = {'large': (3, 6, 12, 16), 'small': (1, 3, 8, 12)}
LAST_CONV = {'large': 960, 'small': 576}


def make_divisible(x, divisible_by=8):
    """The smallest multiple of ``divisible_by`` that is >= x."""
    return int(math.ceil(x / divisible_by) * divisible_by)


class Hswish(nn.Module):
    """Hard swish: x * relu6(x + 3) / 6 (shape preserved)."""

    def __init__(self, inplace=True):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return x * F.relu6(x + 3.0, inplace=self.inplace) / 6.0


class Hsigmoid(nn.Module):
    """Hard sigmoid: relu6(x + 3) / 6 (shape preserved)."""

    def __init__(self, inplace=True):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu6(x + 3.0, inplace=self.inplace) / 6.0


class SEModule(nn.Module):
    """Squeeze-excitation: (N, C, H, W) -> same, channels scaled by fc(avgpool(x))."""

    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel, bias=False),
            Hsigmoid(),
        )

    def forward(self, x):
        b, c = x.shape[:2]
        return x * self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)


def conv_bn(inp, oup, stride, nlin_layer):
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nlin_layer(inplace=True))


def conv_1x1_bn(inp, oup, nlin_layer):
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nlin_layer(inplace=True))


class MobileBottleneck(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise (stride), SE (optional), 1x1 project.
    forward: (N, inp, H, W) -> (N, oup, H / stride, W / stride), residual when shapes agree."""

    def __init__(self, inp, oup, kernel, stride, exp, se=False, nl='RE'):
        super().__init__()
        if stride not in (1, 2) or kernel not in (3, 5) or nl not in ('RE', 'HS'):
            raise ValueError(
                f'MobileBottleneck: stride {stride} (1 or 2), kernel {kernel} '
                f"(3 or 5) or nl {nl!r} ('RE' or 'HS') not supported."
            )
        self.use_res_connect = stride == 1 and inp == oup
        nlin_layer = nn.ReLU if nl == 'RE' else Hswish
        self.conv = nn.Sequential(
            nn.Conv2d(inp, exp, 1, 1, 0, bias=False),
            nn.BatchNorm2d(exp),
            nlin_layer(inplace=True),
            nn.Conv2d(exp, exp, kernel, stride, (kernel - 1) // 2, groups=exp, bias=False),
            nn.BatchNorm2d(exp),
            SEModule(exp) if se else nn.Identity(),
            nlin_layer(inplace=True),
            nn.Conv2d(exp, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV3(nn.Module):
    """MobileNetV3 feature extractor. forward: (N, 3, H, W) -> four maps at strides 4, 8, 16, 32
    (channels in ``out_channels``). Arguments are the original's. The layers after the last feature tap and
    the classifier are unused and frozen (``requires_grad`` False; their keys are kept)."""

    def __init__(self, n_class=1000, input_size=224, dropout=0.8, mode='small', width_mult=1.0):
        super().__init__()
        if mode not in FEATURE_TAPS:
            raise ValueError(f"MobileNetV3: mode {mode!r} is not 'large' or 'small'.")
        if input_size % 32:
            raise ValueError(f'MobileNetV3: input_size {input_size} must be a multiple of 32.')
        setting = LARGE_SETTING if mode == 'large' else SMALL_SETTING
        input_channel = 16
        last_channel = make_divisible(1280 * width_mult) if width_mult > 1.0 else 1280
        self.features = nn.ModuleList([conv_bn(3, input_channel, 2, nlin_layer=Hswish)])
        channels = [input_channel]
        for k, exp, c, se, nl, s in setting:
            output_channel = make_divisible(c * width_mult)
            self.features.append(
                MobileBottleneck(input_channel, output_channel, k, s, make_divisible(exp * width_mult), se, nl)
            )
            input_channel = output_channel
            channels.append(output_channel)
        last_conv = make_divisible(LAST_CONV[mode] * width_mult)
        self.features.append(conv_1x1_bn(input_channel, last_conv, nlin_layer=Hswish))
        channels.append(last_conv)
        self.features.append(nn.AdaptiveAvgPool2d(1))
        self.features.append(nn.Conv2d(last_conv, last_channel, 1, 1, 0))
        self.features.append(Hswish(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, n_class))
        self.taps = FEATURE_TAPS[mode]
        self.out_channels = [channels[i] for i in self.taps]
        self._initialize_weights()
        # The layers after the last tap (pooling, 1280-channel conv, classifier) are kept for the original's
        # keys but never run: frozen, so that DistributedDataParallel does not wait for their gradients.
        for unused in (*self.features[self.taps[-1] + 1 :], self.classifier):
            unused.requires_grad_(False)

    def forward(self, x):
        outputs = []
        for index in range(self.taps[-1] + 1):
            x = self.features[index](x)
            if index in self.taps:
                outputs.append(x)
        return tuple(outputs)

    def _initialize_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def mobilenet_v3_large(pretrained=False, **kwargs):
    """MobileNetV3-Large; outputs 24/40/112/960 channels. ``pretrained``: False (the original's
    default) or a local file in this layout (there is no download)."""
    return load_pretrained(MobileNetV3(mode='large', **kwargs), pretrained, name='mobilenet_v3_large')


def mobilenet_v3_small(pretrained=False, **kwargs):
    """MobileNetV3-Small; outputs 16/24/48/576 channels. ``pretrained``: False or a local file."""
    return load_pretrained(MobileNetV3(mode='small', **kwargs), pretrained, name='mobilenet_v3_small')
