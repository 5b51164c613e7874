"""SyntheticTextDataset: determinism, polygons covering the ink, don't cares, and the DB-layout round trip."""

import json
import os

import cv2
import numpy as np
import pytest

from data.image_dataset import ImageDataset
from data.synth import SyntheticTextDataset, main, resolve_photo_sources, write_db_layout


def ink_inside_fraction(sample):
    inside = np.zeros(sample['ink'].shape, np.uint8)
    for line in sample['lines']:
        cv2.fillPoly(inside, [np.round(np.array(line['poly'])).astype(np.int32)], 1)
    ink = sample['ink'] > 0.5
    return float(inside[ink].mean()) if ink.any() else 1.0


@pytest.mark.parametrize('difficulty', ['easy', 'medium', 'hard', 'photo'])
def test_polygons_cover_the_ink(difficulty):
    dataset = SyntheticTextDataset(num_samples=6, seed=11, difficulty=difficulty)
    fractions, words = [], 0
    for index in range(len(dataset)):
        sample = dataset.generate(index)
        fractions.append(ink_inside_fraction(sample))
        words += len(sample['lines'])
        for line in sample['lines']:
            poly = np.array(line['poly'])
            assert poly.shape[0] >= 4 and poly.min() >= 0 and poly[:, 0].max() < 320 and poly[:, 1].max() < 320
    assert words >= 6 and min(fractions) >= 0.95


def test_same_seed_same_sample_other_seed_differs():
    a = SyntheticTextDataset(num_samples=3, seed=5, difficulty='medium')
    b = SyntheticTextDataset(num_samples=3, seed=5, difficulty='medium')
    for index in (2, 0):  # order of generation does not matter
        sa, sb = a.generate(index), b.generate(index)
        assert sa['lines'] == sb['lines'] and np.array_equal(sa['image'], sb['image'])
    assert SyntheticTextDataset(num_samples=3, seed=6).generate(0)['lines'] != a.generate(0)['lines']


def test_sample_dict_processes_and_curved_dont_care_options():
    dataset = SyntheticTextDataset(
        num_samples=4,
        seed=1,
        image_size=(96, 128),
        fonts='hershey',
        processes=[lambda d: dict(d, seen=True)],
        options={
            'curve_prob': 1.0,
            'curve_amount': 0.8,
            'dont_care_prob': 0.5,
            'num_words': (4, 4),
            'x_height': (10, 14),
        },
    )
    sample = dataset[0]
    assert set(sample) == {'image', 'lines', 'filename', 'data_id', 'is_training', 'seen'}
    assert sample['image'].shape == (96, 128, 3) and sample['image'].dtype == np.uint8
    lines = [line for i in range(4) for line in dataset[i]['lines']]
    texts = [line['text'] for line in lines]
    assert '###' in texts and any(t != '###' for t in texts)
    assert all(len(line['poly']) == 16 for line in lines)  # curved: 8 points per side
    with pytest.raises(ValueError, match='unknown option'):
        SyntheticTextDataset(options={'curvy': 1})


def test_easy_preset_is_readable_size():
    dataset = SyntheticTextDataset(num_samples=4, seed=0)
    for index in range(4):
        for line in dataset.generate(index)['lines']:
            poly = np.array(line['poly'], np.float32)
            assert min(cv2.minAreaRect(poly)[1]) >= 14  # x-height >= 14 px plus padding


def test_db_layout_round_trip(tmp_path):
    for split, seed in (('train', 0), ('test', 1)):
        write_db_layout(str(tmp_path), 3, seed=seed, split=split, fonts='hershey', image_size=(64, 96))
        dataset = ImageDataset(data_dir=[str(tmp_path)], data_list=[str(tmp_path / f'{split}_list.txt')])
        assert dataset.is_training == (split == 'train')
        source = SyntheticTextDataset(num_samples=3, seed=seed, fonts='hershey', image_size=(64, 96))
        for index in range(3):
            read, made = dataset[index], source.generate(index)
            assert read['image'].shape == (64, 96, 3)
            assert [line['text'] for line in read['lines']] == [line['text'] for line in made['lines']]
            for got, want in zip(read['lines'], made['lines']):
                assert np.abs(np.array(got['poly']) - np.array(want['poly'])).max() <= 0.051


# Checksums of the existing presets, recorded before the 'photo' preset was added: adding presets and
# ingredients must not change a single byte of the images the quick start (and 'medium' / 'hard') train on.
# What the presets drew before, recorded by `python -m tests.data.test_synth` (rerun it only when a change to the
# generator is meant to change its images). The words, their polygons and the random draws behind them are exact
# on every machine; the pixels go through OpenCV and NumPy kernels that differ by the CPU's instruction set
# (AVX2, AVX-512, SSE only) in their last bits, so they are compared as 8x8-pixel block means: none more than 4
# grey levels away, 0.2 on average (measured: 2.3 and 0.045 at most, in the 'photo' preset with OpenCV and NumPy
# limited to SSE3; a change to what the generator draws moves them by tens).
REFERENCE = os.path.join(os.path.dirname(__file__), 'synth_reference.json')
REFERENCE_PRESETS = ('easy', 'medium', 'hard', 'photo')


def preset_summary(difficulty):
    """Six samples of ``difficulty`` (seed 3, 96x128): their words and polygons (0.001 px), the image's 8x8 block
    means and the ink's sum, as JSON-ready values."""
    dataset = SyntheticTextDataset(num_samples=6, seed=3, image_size=(96, 128), difficulty=difficulty, fonts='hershey')
    samples = []
    for index in range(6):
        sample = dataset.generate(index)
        blocks = sample['image'].astype(np.float64).reshape(12, 8, 16, 8, 3).mean(axis=(1, 3))
        samples.append(
            {
                'texts': [line['text'] for line in sample['lines']],
                'polys': [np.round(np.array(line['poly'], np.float64), 3).tolist() for line in sample['lines']],
                'blocks': np.round(blocks, 1).tolist(),
                'ink': round(float(sample['ink'].sum()), 2),
            }
        )
    return samples


@pytest.mark.parametrize('difficulty', REFERENCE_PRESETS)
def test_existing_presets_unchanged(difficulty):
    with open(REFERENCE) as handle:
        expected = json.load(handle)[difficulty]
    got = preset_summary(difficulty)
    for index, (a, b) in enumerate(zip(got, expected)):
        assert a['texts'] == b['texts'], f'sample {index}: other words'
        assert len(a['polys']) == len(b['polys'])
        for poly_a, poly_b in zip(a['polys'], b['polys']):
            np.testing.assert_allclose(poly_a, poly_b, atol=0.01)
        difference = np.abs(np.array(a['blocks']) - np.array(b['blocks']))
        assert difference.max() <= 4.0 and difference.mean() <= 0.2, f'sample {index}: other pixels'
        assert abs(a['ink'] - b['ink']) <= 0.01 * b['ink'] + 1, f'sample {index}: other ink'


def test_photo_preset_is_deterministic_and_each_ingredient_switches_off():
    a = SyntheticTextDataset(num_samples=4, seed=7, image_size=(128, 160), difficulty='photo')
    b = SyntheticTextDataset(num_samples=4, seed=7, image_size=(128, 160), difficulty='photo')
    for index in (3, 1):
        sa, sb = a.generate(index), b.generate(index)
        assert sa['lines'] == sb['lines'] and np.array_equal(sa['image'], sb['image'])
    # every ingredient forced on covers the ink; switched off it draws nothing (so it changes the image)
    ingredients = {
        'surface_prob': 1.0,
        'multiline_prob': 0.5,
        'panel_prob': 1.0,
        'shadow_prob': 1.0,
        'defocus_prob': 1.0,
        'motion_blur_prob': 1.0,
        'jpeg_prob': 1.0,
        'lowres_prob': 1.0,
    }
    forced = SyntheticTextDataset(num_samples=3, seed=2, image_size=(160, 192), difficulty='photo', options=ingredients)
    samples = [forced.generate(i) for i in range(3)]
    assert min(ink_inside_fraction(s) for s in samples) >= 0.95
    assert sum(len(s['lines']) for s in samples) >= 6
    for name in ingredients:
        off = SyntheticTextDataset(
            num_samples=1, seed=2, image_size=(160, 192), difficulty='photo', options=dict(ingredients, **{name: 0.0})
        )
        assert not np.array_equal(off.generate(0)['image'], samples[0]['image']), name


@pytest.mark.parametrize('background', ['photo', 'texture', 'facade', 'packaging'])
def test_new_backgrounds(background):
    dataset = SyntheticTextDataset(
        num_samples=2,
        seed=4,
        image_size=(96, 128),
        difficulty='photo',
        options={'backgrounds': (background,), 'surface_prob': 0.0},
    )
    image = dataset.generate(1)['image']
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8 and image.std() > 3
    with pytest.raises(ValueError, match='no photo'):
        SyntheticTextDataset(
            num_samples=1, difficulty='photo', options={'backgrounds': ('photo',), 'photos': ('nonexistent',)}
        ).generate(0)


def nearest_right_gaps(lines):
    """Horizontal gap from each axis-aligned polygon to the nearest one to its right in the same row."""
    boxes = [(*np.array(line['poly']).min(0), *np.array(line['poly']).max(0)) for line in lines]
    gaps = []
    for x0, y0, x1, y1 in boxes:
        right = [
            bx0 - x1
            for bx0, by0, bx1, by1 in boxes
            if bx0 > x0 and min(y1, by1) - max(y0, by0) > 0.5 * min(y1 - y0, by1 - by0)
        ]
        if right:
            gaps.append(min(right))
    return gaps


def test_word_space_sets_the_gap_between_the_words_of_a_line():
    # blocks only, upright, one x-height (16 px: polygon margin 3 px), so an ink gap of 0.3-0.5 x-heights is a
    # polygon gap of -1.2 to 2 px; without word_space the words of a line are 12 px apart, and any two words
    # that are not neighbours in one block at least 10 px (twice the claim's margin)
    options = dict(multiline_prob=1.0, surface_prob=0.0, rotation=0.0, x_height=(16, 16), word_space=(0.3, 0.5))
    tight = SyntheticTextDataset(num_samples=8, seed=3, image_size=(320, 384), difficulty='photo', options=options)
    wide = SyntheticTextDataset(
        num_samples=8, seed=3, image_size=(320, 384), difficulty='photo', options=dict(options, word_space=None)
    )
    tight_gaps, wide_gaps = [], []
    for index in range(8):
        sample = tight.generate(index)
        assert ink_inside_fraction(sample) >= 0.95  # every word keeps its own polygon around its ink
        tight_gaps += nearest_right_gaps(sample['lines'])
        wide_gaps += nearest_right_gaps(wide.generate(index)['lines'])
    tight_gaps, wide_gaps = np.array(tight_gaps), np.array(wide_gaps)
    assert np.sum(tight_gaps < 10) >= 5 and np.all((tight_gaps >= 10) | ((tight_gaps > -1.5) & (tight_gaps < 2.5)))
    assert np.sum(np.abs(wide_gaps - 12) < 0.5) >= 3 and wide_gaps.min() > 11.5
    with pytest.raises(ValueError, match='word_space'):
        SyntheticTextDataset(num_samples=1, difficulty='photo', options={'word_space': 0.5})


def test_clutter_draws_unlabelled_objects_only_when_on():
    # clutter has its own random stream and is drawn before the words: the same words and polygons with and
    # without it, and the image changes outside them; (0, 0) draws nothing
    options = dict(surface_prob=0.0, panel_prob=0.0)
    plain = SyntheticTextDataset(num_samples=3, seed=8, image_size=(160, 192), difficulty='photo', options=options)
    cluttered = SyntheticTextDataset(
        num_samples=3, seed=8, image_size=(160, 192), difficulty='photo', options=dict(options, clutter=(6, 6))
    )
    for index in range(3):
        a, b = plain.generate(index), cluttered.generate(index)
        assert a['lines'] == b['lines'] and len(a['lines']) > 0 and np.array_equal(a['ink'], b['ink'])
        outside_words = np.ones(a['image'].shape[:2], np.uint8)
        for line in a['lines']:
            cv2.fillPoly(outside_words, [np.round(np.array(line['poly'])).astype(np.int32)], 0)
        difference = np.abs(a['image'].astype(int) - b['image'].astype(int)).max(axis=2)
        assert (difference[outside_words > 0] > 40).mean() > 0.01
    for bad in ((3, 1), 5, (-1, 2)):
        with pytest.raises(ValueError, match='clutter'):
            SyntheticTextDataset(num_samples=1, difficulty='photo', options={'clutter': bad})


def test_block_x_height_sets_the_size_of_multi_line_blocks():
    # blocks only, upright, no surface: a word's polygon height is its rendered height plus the margin, so
    # blocks drawn at x-height 30-32 are taller than any drawn at the default lower half of 6-20 (6-13)
    options = dict(multiline_prob=1.0, surface_prob=0.0, rotation=0.0, perspective=0.0, x_height=(6, 20))
    heights = {}
    for name, value in (('default', None), ('large', (30, 32))):
        dataset = SyntheticTextDataset(
            num_samples=4,
            seed=5,
            image_size=(384, 384),
            difficulty='photo',
            options=dict(options, block_x_height=value),
        )
        polys = [np.array(line['poly'], np.float32) for i in range(4) for line in dataset.generate(i)['lines']]
        heights[name] = [min(cv2.minAreaRect(poly)[1]) for poly in polys]
    assert len(heights['default']) >= 4 and len(heights['large']) >= 4
    assert max(heights['default']) < min(heights['large'])
    with pytest.raises(ValueError, match='block_x_height'):
        SyntheticTextDataset(num_samples=1, difficulty='photo', options={'block_x_height': (4,)})


def write_colour_photos(folder):
    """A folder of background photos: pure red (BGR) at the top, pure blue in a subfolder, and a text file."""
    (folder / 'more').mkdir(parents=True)
    red, blue = np.zeros((90, 120, 3), np.uint8), np.zeros((70, 100, 3), np.uint8)
    red[:, :, 2], blue[:, :, 0] = 255, 255
    cv2.imwrite(str(folder / 'red.png'), red)
    cv2.imwrite(str(folder / 'more' / 'blue.jpg'), blue)
    (folder / 'notes.txt').write_text('not an image')
    return folder


def background_colours(images):
    """'red' or 'blue' for each image, from the median of its red and blue channels."""
    colours = []
    for image in images:
        blue, red = np.median(image[:, :, 0]), np.median(image[:, :, 2])
        assert abs(red - blue) > 100, (red, blue)  # one of the two photos, not a drawn background
        colours.append('red' if red > blue else 'blue')
    return colours


def test_photos_from_a_folder_of_image_files(tmp_path):
    folder = write_colour_photos(tmp_path / 'backgrounds')
    assert resolve_photo_sources([str(folder), 'coffee']) == [
        ('file', str(folder / 'more' / 'blue.jpg')),
        ('file', str(folder / 'red.png')),
        ('skimage', 'coffee'),
    ]
    # no surface, lighting or shadow over the scene: its median colour is the photo's
    options = {'backgrounds': ('photo',), 'photos': [str(folder)], 'surface_prob': 0.0, 'lighting': 0.0}
    options['shadow_prob'] = 0.0
    dataset = SyntheticTextDataset(num_samples=8, seed=3, image_size=(64, 80), difficulty='photo', options=options)
    colours = background_colours(dataset.generate(index)['image'] for index in range(8))
    assert set(colours) == {'red', 'blue'}
    # one file alone: every background comes from it
    options['photos'] = [str(folder / 'red.png')]
    dataset = SyntheticTextDataset(num_samples=3, seed=3, image_size=(64, 80), difficulty='photo', options=options)
    assert background_colours(dataset.generate(index)['image'] for index in range(3)) == ['red'] * 3


def test_photos_that_cannot_be_used_are_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no photos here')
    with pytest.raises(ValueError, match='empty.*holds no image'):
        SyntheticTextDataset(num_samples=1, difficulty='photo', options={'photos': [str(tmp_path / 'empty')]})
    with pytest.raises(ValueError, match='missing.jpg.*neither a file nor a folder'):
        SyntheticTextDataset(num_samples=1, difficulty='photo', options={'photos': [str(tmp_path / 'missing.jpg')]})
    (tmp_path / 'broken.jpg').write_bytes(b'not a jpeg')
    dataset = SyntheticTextDataset(
        num_samples=1,
        difficulty='photo',
        options={'backgrounds': ('photo',), 'photos': [str(tmp_path / 'broken.jpg')]},
    )
    with pytest.raises(ValueError, match='cannot read the background photo.*broken.jpg'):
        dataset.generate(0)


def test_generator_command_line_takes_options(tmp_path, capsys):
    folder = write_colour_photos(tmp_path / 'backgrounds')
    out = tmp_path / 'set'
    main(
        [
            *('--out', str(out), '--num', '3', '--size', '64', '80', '--difficulty', 'photo', '--seed', '1'),
            *('--option', 'backgrounds=[photo]', '--option', 'surface_prob=0', '--option', 'lighting=0'),
            *('--option', 'shadow_prob=0'),
            *('--option', f'photos=[{folder / "red.png"}]', '--option', 'extra_fonts=false'),
        ]
    )
    names = (out / 'train_list.txt').read_text().split()
    assert len(names) == 3
    assert background_colours(cv2.imread(str(out / 'train_images' / name)) for name in names) == ['red'] * 3
    with pytest.raises(SystemExit):
        main(['--out', str(out), '--option', 'extra_fonts'])
    assert 'KEY=VALUE' in capsys.readouterr().err


def test_generator_samples_take_options(tmp_path, capsys):
    folder = write_colour_photos(tmp_path / 'backgrounds')
    options = ('backgrounds=[photo]', 'surface_prob=0', 'lighting=0', 'shadow_prob=0', f'photos=[{folder / "red.png"}]')
    main(['--samples', str(tmp_path / 'demo'), *(word for option in options for word in ('--option', option))])
    paths = capsys.readouterr().out.split()
    assert len(paths) == 3
    assert background_colours(cv2.imread(path) for path in paths) == ['red'] * 3


if __name__ == '__main__':  # records the reference of test_existing_presets_unchanged
    with open(REFERENCE, 'w') as handle:
        json.dump({name: preset_summary(name) for name in REFERENCE_PRESETS}, handle, separators=(',', ':'))
    print(f'wrote {REFERENCE}')
