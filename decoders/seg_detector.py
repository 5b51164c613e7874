"""The DB head (SegDetector): FPN fusion, probability map and, with ``adaptive``, the threshold
map and the differentiable binarization. Names and initialisation are the original's."""

from collections import OrderedDict

import torch
import torch.nn as nn


def weights_init(m):
    """The original's head initialisation: kaiming-normal conv weights, BN weight 1, bias 1e-4."""
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.kaiming_normal_(m.weight.data)
    elif classname.find('BatchNorm') != -1:
        m.weight.data.fill_(1.0)
        m.bias.data.fill_(1e-4)


class Float32Sigmoid(nn.Sigmoid):
    """nn.Sigmoid computed in float32: (any shape, any float dtype) -> float32, same shape. Under fp16 / bf16
    autocast a half-precision sigmoid rounds every logit above ~8 (fp16) or ~6 (bf16) to exactly 1.0, which the
    BCE loss then reads as log(0) (clamped to -100) on confident negatives, and which hides the probability
    map's top end from the box score. Parameter-free, so state-dict keys are the original's."""

    def forward(self, x):
        return torch.sigmoid(x.float())


class SegDetector(nn.Module):
    """DB head. forward(features, gt=None, masks=None, training=False).

    features: (c2, c3, c4, c5) at strides 4, 8, 16, 32 with ``in_channels`` channels.
    Returns, when ``training`` is False, the probability map (N, 1, H, W) at the input image
    size (4x the c2 size); when True, an OrderedDict with 'binary' (the probability map) and,
    if ``adaptive``, 'thresh' (threshold map) and 'thresh_binary' = 1 / (1 + exp(-k (P - T))).

    in_channels: backbone channels; inner_channels: FPN width (the fused map has this many
    channels, a quarter per scale); k: binarization amplification (the class default is the
    original's 10, its experiments pass 50); bias: conv biases; adaptive: predict the threshold
    map; smooth: nearest upsampling + conv instead of deconvolution in the threshold branch;
    serial: feed the probability map to the threshold branch too.
    Fix: with smooth=True the original built ``nn.Sequential(list)`` (an error) and a 1x1 conv
    with padding 1; here the modules are unpacked and that conv has padding 0.
    """

    def __init__(
        self,
        in_channels=[64, 128, 256, 512],
        inner_channels=256,
        k=10,
        bias=False,
        adaptive=False,
        smooth=False,
        serial=False,
    ):
        super().__init__()
        self.k = k
        self.serial = serial
        self.up5 = nn.Upsample(scale_factor=2, mode='nearest')
        self.up4 = nn.Upsample(scale_factor=2, mode='nearest')
        self.up3 = nn.Upsample(scale_factor=2, mode='nearest')

        self.in5 = nn.Conv2d(in_channels[-1], inner_channels, 1, bias=bias)
        self.in4 = nn.Conv2d(in_channels[-2], inner_channels, 1, bias=bias)
        self.in3 = nn.Conv2d(in_channels[-3], inner_channels, 1, bias=bias)
        self.in2 = nn.Conv2d(in_channels[-4], inner_channels, 1, bias=bias)

        self.out5 = self._output_conv(inner_channels, 8, bias)
        self.out4 = self._output_conv(inner_channels, 4, bias)
        self.out3 = self._output_conv(inner_channels, 2, bias)
        self.out2 = nn.Conv2d(inner_channels, inner_channels // 4, 3, padding=1, bias=bias)

        self.binarize = nn.Sequential(
            nn.Conv2d(inner_channels, inner_channels // 4, 3, padding=1, bias=bias),
            nn.BatchNorm2d(inner_channels // 4),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(inner_channels // 4, inner_channels // 4, 2, 2),
            nn.BatchNorm2d(inner_channels // 4),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(inner_channels // 4, 1, 2, 2),
            Float32Sigmoid(),
        )
        self.binarize.apply(weights_init)

        self.adaptive = adaptive
        if adaptive:
            self.thresh = self._init_thresh(inner_channels, serial=serial, smooth=smooth, bias=bias)
            self.thresh.apply(weights_init)

        for module in (self.in5, self.in4, self.in3, self.in2, self.out5, self.out4, self.out3, self.out2):
            module.apply(weights_init)

    @staticmethod
    def _output_conv(inner_channels, scale, bias):
        return nn.Sequential(
            nn.Conv2d(inner_channels, inner_channels // 4, 3, padding=1, bias=bias),
            nn.Upsample(scale_factor=scale, mode='nearest'),
        )

    def _init_thresh(self, inner_channels, serial=False, smooth=False, bias=False):
        in_channels = inner_channels + 1 if serial else inner_channels
        return nn.Sequential(
            nn.Conv2d(in_channels, inner_channels // 4, 3, padding=1, bias=bias),
            nn.BatchNorm2d(inner_channels // 4),
            nn.ReLU(inplace=True),
            self._init_upsample(inner_channels // 4, inner_channels // 4, smooth=smooth, bias=bias),
            nn.BatchNorm2d(inner_channels // 4),
            nn.ReLU(inplace=True),
            self._init_upsample(inner_channels // 4, 1, smooth=smooth, bias=bias),
            Float32Sigmoid(),
        )

    @staticmethod
    def _init_upsample(in_channels, out_channels, smooth=False, bias=False):
        if not smooth:
            return nn.ConvTranspose2d(in_channels, out_channels, 2, 2)
        inter_out_channels = in_channels if out_channels == 1 else out_channels
        modules = [
            nn.Upsample(scale_factor=2, mode='nearest'),
            nn.Conv2d(in_channels, inter_out_channels, 3, 1, 1, bias=bias),
        ]
        if out_channels == 1:
            modules.append(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=True))
        return nn.Sequential(*modules)

    def pyramid(self, features):
        """FPN: (c2, c3, c4, c5) -> [p5, p4, p3, p2], each (N, inner_channels/4, H/4, W/4)."""
        c2, c3, c4, c5 = features
        in5 = self.in5(c5)
        in4 = self.in4(c4)
        in3 = self.in3(c3)
        in2 = self.in2(c2)
        out4 = self.up5(in5) + in4  # 1/16
        out3 = self.up4(out4) + in3  # 1/8
        out2 = self.up3(out3) + in2  # 1/4
        p5 = self.out5(in5)
        p4 = self.out4(out4)
        p3 = self.out3(out3)
        p2 = self.out2(out2)
        return [p5, p4, p3, p2]

    def fuse(self, features):
        """(c2, c3, c4, c5) -> the concatenated pyramid (N, inner_channels, H/4, W/4)."""
        return torch.cat(self.pyramid(features), 1)

    def forward(self, features, gt=None, masks=None, training=False):
        fuse = self.fuse(features)
        # 'binarize' predicts the probability map; the name is kept for the trained weights.
        binary = self.binarize(fuse)
        if not training:
            return binary
        result = OrderedDict(binary=binary)
        if self.adaptive:
            if self.serial:
                fuse = torch.cat((fuse, nn.functional.interpolate(binary, fuse.shape[2:])), 1)
            thresh = self.thresh(fuse)
            result.update(thresh=thresh, thresh_binary=self.step_function(binary, thresh))
        return result

    def step_function(self, x, y):
        """Differentiable binarization 1 / (1 + exp(-k (x - y))), in float32 (see ``Float32Sigmoid``)."""
        return torch.reciprocal(1 + torch.exp(-self.k * (x.float() - y.float())))
