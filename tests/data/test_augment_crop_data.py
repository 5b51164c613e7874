"""AugmentCropData (the one-warp fast path) against AugmentDetectionData + RandomCropData, draw for draw."""

import cv2
import numpy as np
import pytest

from data.processes import (
    AugmentCropData,
    AugmentDetectionData,
    MakeBorderMap,
    MakeICDARData,
    MakeSegDetectionData,
    RandomCropData,
)

TRAIN_ARGS = [['Fliplr', 0.5], {'cls': 'Affine', 'rotate': [-10, 10]}, ['Resize', [0.5, 3.0]]]
WORDS = [
    [[20, 14], [90, 20], [88, 44], [18, 38]],
    [[110, 60], [180, 60], [180, 84], [110, 84]],
    [[30, 80], [70, 80], [70, 100], [30, 100]],
    [[140, 10], [170, 10], [170, 24], [140, 24]],  # '###': don't care
]
LABELS = ('gt', 'mask', 'thresh_map', 'thresh_mask')


def photo(shape=(120, 200), seed=0):
    """A smooth random colour image (as a photo: no pixel-level noise) with the WORDS drawn on it."""
    coarse = np.random.RandomState(seed).randint(0, 256, (shape[0] // 8, shape[1] // 8, 3)).astype(np.float32)
    image = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    for word in WORDS[:3]:
        cv2.fillPoly(image, [np.array(word, np.int32)], (250, 250, 250))
    lines = [{'poly': word, 'text': 'w'} for word in WORDS]
    lines[3]['text'] = '###'
    return dict(image=np.clip(image, 0, 255), lines=lines, filename='f.jpg')


def run(processes, seed, size=(96, 96)):
    """The sample after ``processes`` and the label makers, and numpy's random state after the processes."""
    np.random.seed(seed)
    data = photo()
    for process in processes:
        data = process(data)
    state = np.random.get_state()[1].copy()
    for process in (MakeICDARData(), MakeSegDetectionData(min_text_size=2), MakeBorderMap()):
        data = process(data)
    return data, state


def two_paths(args=TRAIN_ARGS, size=(96, 96), **kwargs):
    slow = [AugmentDetectionData(augmenter_args=args), RandomCropData(size=size, max_tries=10)]
    fused = [AugmentCropData(augmenter_args=args, size=size, max_tries=10, **kwargs)]
    return slow, fused


@pytest.mark.parametrize(
    'args',
    [
        TRAIN_ARGS,
        [['Flipud', 0.5], {'cls': 'Affine', 'rotate': [-30, 30], 'scale': [0.8, 1.2]}, ['Resize', [0.5, 2.0]]],
        [['Resize', {'width': 150, 'height': 90}], ['Fliplr', 1.0]],
        [],
    ],
)
def test_same_draws_polygons_and_label_maps_images_close(args):
    slow, fused = two_paths(args)
    image_diffs = []
    for seed in range(12):
        a, state_a = run(slow, seed)
        b, state_b = run(fused, seed)
        assert np.array_equal(state_a, state_b), 'the fused path must make exactly the same random draws'
        assert len(a['polygons']) == len(b['polygons']) and a['ignore_tags'].tolist() == b['ignore_tags'].tolist()
        for p, q in zip(a['polygons'], b['polygons']):
            assert np.abs(p - q).max() < 1e-3
        for key in LABELS:  # the same polygons through the same arithmetic: identical maps
            assert np.array_equal(a[key], b[key]), key
        assert a['image'].shape == b['image'].shape == (96, 96, 3) and b['image'].dtype == np.float32
        image_diffs.append(np.abs(a['image'] - b['image']).mean())
    # interpolation only (one bilinear warp instead of rotate + cubic scale + crop resize), on a 0..255 scale
    assert np.mean(image_diffs) < 1.5 and max(image_diffs) < 4.0, image_diffs


def test_crop_windows_have_the_same_distribution(monkeypatch):
    """Over many seeds, the crop search sees the same transformed size and polygons and picks the same window
    (the same distribution, draw for draw), and the windows do vary (the test is not vacuous)."""
    windows = []
    original = RandomCropData.crop_area

    def recording(self, shape, polys):
        crop = original(self, shape, polys)
        windows.append((tuple(shape), crop, [np.round(p, 6).tolist() for p in polys]))
        return crop

    monkeypatch.setattr(RandomCropData, 'crop_area', recording)
    slow, fused = two_paths()
    seen = {}
    for name, processes in (('slow', slow), ('fused', fused)):
        windows.clear()
        for seed in range(150):
            np.random.seed(seed)
            data = photo()
            for process in processes:
                data = process(data)
        seen[name] = list(windows)
    assert seen['slow'] == seen['fused']
    origins = [crop[:2] for _, crop, _ in seen['fused']]
    sizes = [shape for shape, _, _ in seen['fused']]
    assert len(set(origins)) > 50 and len(set(sizes)) > 50  # scales in [0.5, 3] and crops drawn anew each time
    scales = np.array([shape[1] / 200 for shape in sizes])
    assert 0.5 <= scales.min() < 0.8 and 2.7 < scales.max() <= 3.0  # uniform over [0.5, 3.0]


def test_fused_image_matches_its_polygons():
    np.random.seed(3)
    process = AugmentCropData(augmenter_args=TRAIN_ARGS, size=(128, 128))
    for _ in range(5):
        data = process(photo())
        assert data['shape'] == (120, 200) and data['is_training'] is True and data['scale_w'] == data['scale_h']
        for line in data['polys']:
            if line['ignore']:
                continue
            inside = np.zeros(data['image'].shape[:2], np.uint8)
            cv2.fillPoly(inside, [np.round(line['points']).astype(np.int32)], 1)
            core = cv2.erode(inside, np.ones((3, 3), np.uint8)).astype(bool)
            if core.sum() > 20:  # the drawn word is white where its polygon says
                assert np.median(data['image'][core]) > 200


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='not geometric'):
        AugmentCropData(augmenter_args=[{'cls': 'ColorJitter', 'brightness': 0.2}])
    with pytest.raises(ValueError, match='interpolation'):
        AugmentCropData(augmenter_args=TRAIN_ARGS, interpolation='bicubic')
    with pytest.raises(ValueError, match='crop must be one of fit, window'):
        AugmentCropData(augmenter_args=TRAIN_ARGS, crop='random')


@pytest.mark.parametrize('scale', [0.5, 1.0, 2.0])
def test_window_crop_keeps_the_augmented_scale_and_holds_text(scale):
    """crop='window': the output is the size window of the scaled photo, pixel for pixel (no resize), its
    polygons moved by the window's offset only, and it holds a cared-for word."""
    args = [['Resize', [scale, scale]]]
    size = (64, 48)
    np.random.seed(5)
    for _ in range(10):
        source = photo()
        data = AugmentCropData(augmenter_args=args, size=size, crop='window')(dict(source))
        assert data['image'].shape == (48, 64, 3) and data['scale_w'] == data['scale_h'] == 1.0
        scaled = cv2.resize(source['image'], None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        words = np.array(WORDS[:3], np.float64)
        scaled_words = (words + 0.5) * scale - 0.5
        cared = [line for line in data['polys'] if not line['ignore']]
        assert cared, 'the window holds no cared-for word'
        # the offset is the same for every polygon and is a whole pixel: the window is a cut, not a resize
        offsets = {
            tuple(np.round(np.asarray(scaled_words[index]) - line['points'], 6)[0])
            for line in cared
            for index in range(3)
            if np.allclose(
                np.asarray(scaled_words[index]) - line['points'], (np.asarray(scaled_words[index]) - line['points'])[0]
            )
        }
        offset = next(iter(offsets))
        assert len(offsets) == 1 and all(float(v).is_integer() for v in offset)
        x, y = int(offset[0]), int(offset[1])
        assert 0 <= x <= max(0, scaled.shape[1] - size[0]) and 0 <= y <= max(0, scaled.shape[0] - size[1])
        h, w = min(size[1], scaled.shape[0] - y), min(size[0], scaled.shape[1] - x)
        np.testing.assert_allclose(data['image'][:h, :w], scaled[y : y + h, x : x + w], atol=0.5)
        assert not data['image'][h:].any() and not data['image'][:, w:].any()  # zero padding beyond the photo
