"""concern.registry.lookup: the one name -> class lookup, and every table that goes through it."""

import pytest

from concern.errors import UserError
from concern.registry import UnknownNameError, closest_names, lookup


def test_lookup_returns_the_value_and_names_the_closest_on_a_typo():
    table = {'resnet18': 18, 'resnet50': 50, 'mobilenet_v3_large': 3}
    assert lookup(table, 'resnet50', 'backbone', 'model_args.backbone') == 50
    with pytest.raises(UnknownNameError) as error:
        lookup(table, 'resnet5', 'backbone', 'exp.yaml: model_args.backbone')
    message = str(error.value)
    assert message.startswith("exp.yaml: model_args.backbone: unknown backbone 'resnet5'; did you mean resnet50")
    assert 'mobilenet' not in message  # only the close names
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)


def test_lookup_lists_every_name_when_none_is_close_and_refuses_non_strings():
    with pytest.raises(UnknownNameError, match=r"unknown reader 'zzz'; the known names are a, b\."):
        lookup({'b': 1, 'a': 2}, 'zzz', 'reader', 'where')
    with pytest.raises(UnknownNameError, match='unknown reader 3'):
        lookup({'3': 1}, 3, 'reader', 'where')
    assert closest_names('icdar2015', ['icdar2013', 'gnhk', 'icdar2015x']) == ['icdar2015x', 'icdar2013']


def test_every_name_table_uses_the_same_error():
    from concern.protocols import make_protocol
    from data.image_dataset import ImageDataset
    from decoders import SegSpatialScaleDetector
    from decoders.seg_detector_loss import SegDetectorLossBuilder
    from structure import Builder

    cases = [
        (lambda: make_protocol('ioo'), 'did you mean iou'),
        (lambda: ImageDataset(data_dir=['d'], data_list=['l'], reader='gnkh'), 'did you mean gnhk'),
        (lambda: SegSpatialScaleDetector(attention_type='scale_spacial'), 'did you mean scale_spatial'),
        (lambda: SegDetectorLossBuilder('L1BalanceCE'), 'did you mean L1BalanceCELoss'),
        (
            lambda: Builder('SegDetectorModel', {'backbone': 'resnet_18', 'decoder': 'SegDetector'}).build(),
            "model_args.backbone: unknown backbone 'resnet_18'; did you mean resnet18",
        ),
        (
            lambda: Builder(
                'SegDetectorModel',
                {'backbone': 'resnet18', 'backbone_args': {'pretrained': False}, 'decoder': 'SegDetektor'},
            ).build(),
            'did you mean SegDetector',
        ),
    ]
    for build, expected in cases:
        with pytest.raises(UnknownNameError) as error:
            build()
        assert expected in str(error.value)
