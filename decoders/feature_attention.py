"""Adaptive Scale Fusion (DBNet++): attention weights over the four pyramid scales.

Module names and initialisation follow the original so its DBNet++ weights load key for key.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from concern.registry import lookup


def _init_attention(module):
    """Kaiming-normal (fan_out, relu) convs with zero bias, BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def _spatial_wise():
    return nn.Sequential(
        nn.Conv2d(1, 1, 3, bias=False, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 1, bias=False), nn.Sigmoid()
    )


def _attention_wise(in_planes, num_features):
    return nn.Sequential(nn.Conv2d(in_planes, num_features, 1, bias=False), nn.Sigmoid())


class ScaleChannelAttention(nn.Module):
    """Channel (SE-like) scale attention: (N, in_planes, H, W) -> (N, num_features, 1, 1),
    a softmax over the scales."""

    def __init__(self, in_planes, out_planes, num_features, init_weight=True):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_planes, out_planes, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_planes)
        self.fc2 = nn.Conv2d(out_planes, num_features, 1, bias=False)
        if init_weight:
            _init_attention(self)

    def forward(self, x):
        global_x = F.relu(self.bn(self.fc1(self.avgpool(x))))
        return F.softmax(self.fc2(global_x), 1)


class ScaleChannelSpatialAttention(nn.Module):
    """Channel then spatial scale attention: (N, in_planes, H, W) -> (N, num_features, H, W)."""

    def __init__(self, in_planes, out_planes, num_features, init_weight=True):
        super().__init__()
        self.channel_wise = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_planes, out_planes, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(out_planes, in_planes, 1, bias=False),
        )
        self.spatial_wise = _spatial_wise()
        self.attention_wise = _attention_wise(in_planes, num_features)
        if init_weight:
            _init_attention(self)

    def forward(self, x):
        global_x = self.channel_wise(x).sigmoid() + x
        mean = torch.mean(global_x, dim=1, keepdim=True)
        global_x = self.spatial_wise(mean) + global_x
        return self.attention_wise(global_x)


class ScaleSpatialAttention(nn.Module):
    """Spatial scale attention (the paper's default): (N, in_planes, H, W) ->
    (N, num_features, H, W) in [0, 1]."""

    def __init__(self, in_planes, out_planes, num_features, init_weight=True):
        super().__init__()
        self.spatial_wise = _spatial_wise()
        self.attention_wise = _attention_wise(in_planes, num_features)
        if init_weight:
            _init_attention(self)

    def forward(self, x):
        global_x = self.spatial_wise(torch.mean(x, dim=1, keepdim=True)) + x
        return self.attention_wise(global_x)


ATTENTION_TYPES = {
    'scale_spatial': (ScaleSpatialAttention, 4),
    'scale_channel_spatial': (ScaleChannelSpatialAttention, 4),
    'scale_channel': (ScaleChannelAttention, 2),
}


class ScaleFeatureSelection(nn.Module):
    """ASF: forward(concat_x, features_list) -> (N, out_features_num * C, H, W).

    concat_x: the concatenated pyramid (N, in_channels, H, W); features_list: the
    ``out_features_num`` maps (N, C, H, W) it was made of. A 3x3 ``conv`` reduces concat_x to
    ``inter_channels``, ``enhanced_attention`` gives one weight map per scale, and each scale is
    multiplied by its weight before concatenating again.
    attention_type: 'scale_spatial' | 'scale_channel_spatial' | 'scale_channel'.
    """

    def __init__(self, in_channels, inter_channels, out_features_num=4, attention_type='scale_spatial'):
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.out_features_num = out_features_num
        self.conv = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.type = attention_type
        attention, reduction = lookup(
            ATTENTION_TYPES, attention_type, 'attention_type', 'ScaleFeatureSelection attention_type'
        )
        self.enhanced_attention = attention(inter_channels, inter_channels // reduction, out_features_num)

    def forward(self, concat_x, features_list):
        if len(features_list) != self.out_features_num:
            raise ValueError(
                f'ScaleFeatureSelection: got {len(features_list)} feature maps, built for {self.out_features_num}.'
            )
        score = self.enhanced_attention(self.conv(concat_x))
        if self.type == 'scale_channel':
            score = F.interpolate(score, size=features_list[0].shape[2:], mode='bilinear')
        return torch.cat([score[:, i : i + 1] * features_list[i] for i in range(self.out_features_num)], dim=1)
