"""DBNet++ head: SegDetector with Adaptive Scale Fusion over the pyramid."""

import torch

from .feature_attention import ScaleFeatureSelection
from .seg_detector import SegDetector


class SegSpatialScaleDetector(SegDetector):
    """DB head with ASF (``concat_attention``) weighting the four scales before ``binarize``.

    Same inputs, outputs and arguments as ``SegDetector`` (see it), plus attention_type
    ('scale_spatial' | 'scale_channel_spatial' | 'scale_channel') and fpn, which must stay True:
    the original's fpn=False branch has no pyramid outputs and fails in forward.
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
        fpn=True,
        attention_type='scale_spatial',
    ):
        if not fpn:
            raise ValueError(
                'SegSpatialScaleDetector: fpn=False is not supported (the '
                "original's forward needs the pyramid); remove `fpn` from "
                'decoder_args.'
            )
        super().__init__(
            in_channels=in_channels,
            inner_channels=inner_channels,
            k=k,
            bias=bias,
            adaptive=adaptive,
            smooth=smooth,
            serial=serial,
        )
        self.fpn = fpn
        self.concat_attention = ScaleFeatureSelection(
            inner_channels, inner_channels // 4, attention_type=attention_type
        )

    def fuse(self, features):
        pyramid = self.pyramid(features)
        return self.concat_attention(torch.cat(pyramid, 1), pyramid)
