"""AugmentDetectionData, RandomCropData, NormalizeImage, FilterKeys and the YAML pipelines."""

import cv2
import numpy as np
import pytest
import torch

from data.processes import (
    AugmentDetectionData,
    FilterKeys,
    MakeBorderMap,
    MakeICDARData,
    MakeSegDetectionData,
    NormalizeImage,
    RandomCropData,
)

TRAIN_ARGS = [['Fliplr', 0.5], {'cls': 'Affine', 'rotate': [-10, 10]}, ['Resize', [0.5, 3.0]]]
WORD = [[30, 40], [150, 52], [145, 90], [25, 78]]


def drawn_sample(polygons, shape=(120, 200)):
    image = np.zeros(shape + (3,), np.uint8)
    for polygon in polygons:
        cv2.fillPoly(image, [np.array(polygon, np.int32)], (255, 255, 255))
    return dict(image=image, lines=[{'poly': p, 'text': 'w'} for p in polygons], filename='f.jpg')


def overlap(image, polygons):
    """IoU between the bright pixels of the image and the rasterised polygons."""
    drawn = np.zeros(image.shape[:2], np.uint8)
    for polygon in polygons:
        cv2.fillPoly(drawn, [np.round(np.asarray(polygon)).astype(np.int32)], 1)
    text = image[..., 0] > 127
    return (text & (drawn > 0)).sum() / max((text | (drawn > 0)).sum(), 1)


@pytest.mark.parametrize(
    'args',
    [
        [['Fliplr', 1.0]],
        [['Flipud', 1.0]],
        [{'cls': 'Affine', 'rotate': [-10, 10]}],
        [{'cls': 'Affine', 'rotate': 30, 'scale': 0.8}],
        [['Resize', [0.5, 3.0]]],
        [['Resize', {'width': 77, 'height': 150}]],
        TRAIN_ARGS,
    ],
)
def test_polygons_follow_the_image(args):
    np.random.seed(1)
    for _ in range(3):
        data = AugmentDetectionData(augmenter_args=args)(drawn_sample([WORD]))
        assert data['shape'] == (120, 200) and data['is_training'] is True
        assert overlap(data['image'], [p['points'] for p in data['polys']]) > 0.9


def test_flip_maps_pixel_centres_exactly():
    data = AugmentDetectionData(augmenter_args=[['Fliplr', 1.0]])(drawn_sample([WORD]))
    assert np.allclose(data['polys'][0]['points'][0], [199 - 30, 40])


def test_validation_resize_keeps_ratio_and_leaves_polygons_in_original_coordinates():
    process = AugmentDetectionData(
        augmenter_args=[['Resize', {'width': 736, 'height': 736}]], only_resize=True, keep_ratio=True
    )
    data = process(drawn_sample([WORD], shape=(300, 500)))
    assert data['image'].shape == (736, 1248, 3)  # ceil(500 * 736 / 300 / 32) * 32
    assert data['shape'] == (300, 500) and data['is_training'] is False
    assert np.allclose(data['polys'][0]['points'], WORD)
    fixed = AugmentDetectionData(
        augmenter_args=[['Resize', {'width': 1280, 'height': 736}]], only_resize=True, keep_ratio=False
    )(drawn_sample([WORD], shape=(300, 500)))
    assert fixed['image'].shape == (736, 1280, 3)


def test_bad_augmenter_args_are_clear_errors():
    with pytest.raises(ValueError, match='unknown augmenter'):
        AugmentDetectionData(augmenter_args=[['GaussianBlur', 1.0]])
    with pytest.raises(ValueError, match='only_resize'):
        AugmentDetectionData(augmenter_args=[['Fliplr', 0.5]], only_resize=True)


def test_color_jitter_changes_colours_not_geometry():
    np.random.seed(0)
    sample = drawn_sample([WORD])
    sample['image'][..., 1] = 90
    data = AugmentDetectionData(
        augmenter_args=[{'cls': 'ColorJitter', 'brightness': 0.3, 'contrast': 0.3, 'saturation': 0.3}]
    )(sample)
    assert data['image'].dtype == np.float32 and not np.array_equal(data['image'], drawn_sample([WORD])['image'])
    assert data['image'].min() >= 0 and data['image'].max() <= 255
    assert np.allclose(data['polys'][0]['points'], WORD)


def crop_input(polygons, shape=(400, 600), ignore=()):
    data = drawn_sample(polygons, shape)
    data['polys'] = [
        {'points': np.array(p, np.float64), 'ignore': i in ignore, 'text': 'w'} for i, p in enumerate(polygons)
    ]
    return data


def test_random_crop_keeps_text_whole_and_on_the_image():
    words = [
        [
            [40 + 180 * k, 50 + 110 * j],
            [140 + 180 * k, 50 + 110 * j],
            [140 + 180 * k, 90 + 110 * j],
            [40 + 180 * k, 90 + 110 * j],
        ]
        for k in range(3)
        for j in range(3)
    ]
    process = RandomCropData(size=[640, 640], max_tries=10)
    np.random.seed(0)
    for _ in range(10):
        data = process(crop_input(words))
        assert data['image'].shape == (640, 640, 3)
        assert data['polys'], 'some text must be kept'
        for line in data['polys']:
            points = line['points']
            assert points.min() >= -1 and points.max() <= 641  # not cut by the crop
        assert overlap(data['image'], [line['points'] for line in data['polys']]) > 0.85
        assert data['scale_w'] == data['scale_h']


def test_random_crop_without_text_and_with_text_outside():
    np.random.seed(0)
    data = RandomCropData(size=[64, 32])(crop_input([], shape=(100, 300)))
    assert data['image'].shape == (32, 64, 3) and data['polys'] == []
    # a box reaching outside the image must still count as covering its columns
    data = RandomCropData(size=[128, 128])(crop_input([[[-50, 10], [60, 10], [60, 40], [-50, 40]]]))
    assert len(data['polys']) == 1 and data['image'].shape == (128, 128, 3)


def test_normalize_image_and_restore():
    image = np.random.RandomState(0).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    data = NormalizeImage()(dict(image=image.copy()))
    tensor = data['image']
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32 and tensor.shape == (3, 5, 7)
    assert tensor[0, 2, 3].item() == pytest.approx((image[2, 3, 0] - 122.67891434) / 255, abs=1e-6)
    assert tensor[2, 0, 0].item() == pytest.approx((image[0, 0, 2] - 104.00698793) / 255, abs=1e-6)
    assert np.array_equal(NormalizeImage.restore(tensor), image)


def test_normalize_image_is_bit_identical_to_normalize_then_transpose():
    from data.normalization import normalize

    for dtype in (np.uint8, np.float32):
        image = (np.random.RandomState(1).rand(9, 13, 3) * 255).astype(dtype)
        kept = image.copy()
        expected = torch.from_numpy(normalize(image)).permute(2, 0, 1).contiguous()  # the original's order of steps
        tensor = NormalizeImage()(dict(image=image))['image']
        assert tensor.is_contiguous() and torch.equal(tensor, expected)
        assert np.array_equal(image, kept)  # the sample's image is not normalised in place
    single = np.full((1, 1, 3), 100, np.float32)
    normalize(single, channels_first=True)
    assert single.min() == 100  # even a 1 x 1 image (whose transpose is contiguous) is copied


def test_normalize_image_on_device_leaves_rounded_uint8():
    image = np.array([[[-3.2, 0.5, 1.5], [254.6, 300.0, 17.49]]], np.float32)  # 1 x 2 x 3
    tensor = NormalizeImage(on_device=True)(dict(image=image))['image']
    assert tensor.dtype == torch.uint8 and tensor.shape == (3, 1, 2) and tensor.is_contiguous()
    assert tensor[:, 0, 0].tolist() == [0, 0, 2] and tensor[:, 0, 1].tolist() == [255, 255, 17]  # half to even
    normalised = NormalizeImage.normalize_tensor(tensor[None])[0]
    expected = NormalizeImage()(dict(image=tensor.permute(1, 2, 0).numpy()))['image']
    assert normalised.dtype == torch.float32 and torch.equal(normalised, expected)
    assert np.array_equal(NormalizeImage.restore(tensor), tensor.permute(1, 2, 0).numpy())


def test_filter_keys():
    data = FilterKeys(superfluous=['polygons', 'shape', 'absent'])(dict(image=1, polygons=2, shape=3, gt=4))
    assert data == dict(image=1, gt=4)
    assert FilterKeys(required=['image'])(dict(image=1, gt=2)) == dict(image=1)
    with pytest.raises(KeyError, match='required'):
        FilterKeys(required=['gt'])(dict(image=1))
    with pytest.raises(ValueError):
        FilterKeys(required=['a'], superfluous=['b'])


def test_training_and_validation_pipelines_as_in_the_yaml_files():
    np.random.seed(2)
    train = [
        AugmentDetectionData(augmenter_args=TRAIN_ARGS, only_resize=False, keep_ratio=False),
        RandomCropData(size=[640, 640], max_tries=10),
        MakeICDARData(),
        MakeSegDetectionData(),
        MakeBorderMap(),
        NormalizeImage(),
        FilterKeys(superfluous=['polygons', 'filename', 'shape', 'ignore_tags', 'is_training']),
    ]
    sample = drawn_sample([WORD, [[160, 10], [190, 10], [190, 30], [160, 30]]])
    sample['lines'][1]['text'] = '###'
    for process in train:
        sample = process(sample)
    assert {'image', 'gt', 'mask', 'thresh_map', 'thresh_mask'} <= set(sample)
    assert not {'polygons', 'filename', 'shape', 'ignore_tags', 'is_training'} & set(sample)
    assert sample['image'].shape == (3, 640, 640) and sample['gt'].shape == (1, 640, 640)
    assert sample['thresh_map'].shape == (640, 640) and sample['gt'].sum() > 0

    validate = [
        AugmentDetectionData(
            augmenter_args=[['Resize', {'width': 800, 'height': 800}]], only_resize=True, keep_ratio=True
        ),
        MakeICDARData(),
        MakeSegDetectionData(),
        NormalizeImage(),
    ]
    sample = drawn_sample([WORD, [[1, 1], [4, 1], [4, 3]]])
    for process in validate:
        sample = process(sample)
    assert {'polygons', 'ignore_tags', 'shape', 'filename'} <= set(sample)
    assert sample['image'].shape == (3, 800, 1344)
    assert tuple(sample['shape']) == (120, 200)
    assert np.allclose(sample['polygons'][0], WORD) and sample['ignore_tags'].tolist() == [False, True]
