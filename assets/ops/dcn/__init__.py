"""Deformable convolution ops (torchvision kernels, the original's class names and arguments)."""

from .deform_conv import (
    DeformConv,
    DeformConvPack,
    ModulatedDeformConv,
    ModulatedDeformConvPack,
    conv_output_size,
    deform_conv,
    modulated_deform_conv,
    original_stride_read,
)

__all__ = [
    'DeformConv',
    'DeformConvPack',
    'ModulatedDeformConv',
    'ModulatedDeformConvPack',
    'conv_output_size',
    'deform_conv',
    'modulated_deform_conv',
    'original_stride_read',
]
