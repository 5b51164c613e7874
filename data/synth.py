"""SyntheticTextDataset: procedural text images with exact polygons, for the quick start, tests and pre-training.

Every sample is a pure function of ``(seed, index)`` and the font set: printed words in OpenCV's Hershey
fonts and in the TrueType / OpenType fonts found on the machine, handwriting-like words (script fonts,
per-letter jitter, slant, varying stroke width), on paper, ruled-notebook, gradient or cluttered
backgrounds, rotated, perspective-warped and curved (multi-point polygons), with unlabelled distractors and
don't-care words (text ``'###'``: tiny, faint or blurred).

The 'photo' preset imitates photographs of scenes and documents: backgrounds from the photos scikit-image
ships, procedural materials (stone, wood, brick), building façades and packaging; words on sign plates and in
multi-line blocks, on a surface warped in perspective into the scene; lighting gradients, exposure and
shadows; defocus and motion blur, noise and JPEG artefacts; low contrast, small text and more Hershey faces.
Each ingredient is an option (``INGREDIENTS_OFF`` lists them) that can be turned off for ablations; the
ingredients are off in 'easy', 'medium' and 'hard', whose images are unchanged.

Each word is drawn as a mask in its own frame, then mapped into the image through
``curve (u, v) -> (u, v + bend(u))`` followed by a homography; the polygon is the padded ink box of the mask
mapped through the same functions, so the polygons cover the rendered ink.

Command line (the DB layout: ``{split}_images/``, ``{split}_gts/``, ``{split}_list.txt``)::

    python -m data.synth --out datasets/synthetic --num 2000 --seed 0 --split train
    python -m data.synth --out datasets/synthetic --num 200 --seed 1 --split test
    python -m data.synth --samples assets/images   # a few demo images
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import cv2
import numpy as np
import torch.utils.data
from PIL import Image, ImageDraw, ImageFont

from concern.cli import run_main
from concern.config import ConfigError, parse_override

from .image_dataset import gt_relative_path, original_gt_pattern
from .readers import format_db_line

__all__ = [
    'DIFFICULTIES',
    'INGREDIENTS_OFF',
    'SyntheticTextDataset',
    'find_truetype_fonts',
    'write_db_layout',
    'write_samples',
]

HERSHEY_PRINTED = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
HERSHEY_SCRIPT = (cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
FONT_DIRS = (
    '/usr/share/fonts',
    '/usr/local/share/fonts',
    '~/.fonts',
    '~/.local/share/fonts',
    '/Library/Fonts',
    '/System/Library/Fonts',
    'C:/Windows/Fonts',
)
FONT_EXCLUDE = ('emoji', 'symbol', 'wingding', 'dingbat', 'math', 'cursor', 'braille', 'icon', 'awesome')
WORDS = (
    'the of and to in is you that it he was for on are as with his they at be this have from or one had by word '
    'but not what all were we when your can said there use an each which she do how their if will up other about '
    'out many then them these so some her would make like him into time has look two more write go see number no '
    'way could people my than first water been call who oil its now find long down day did get come made may part '
    'over new sound take only little work know place year live me back give most very after thing our just name '
    'good sentence man think say great where help through much before line right too mean old any same tell boy '
    'follow came want show also around form three small set put end does another well large must big even such '
    'because turn here why ask went men read need land different home us move try kind hand picture again change '
    'off play spell air away animal house point page letter mother answer found study still learn should America '
    'world STOP EXIT OPEN Sale Coffee Hotel Street Avenue Menu Total Price Notes Meeting Monday Friday London Paris '
    'DBNet Text Detection Bank Market Station Parking Library Office Garden Museum Theatre Pharmacy Bakery'
).split()
CHARSET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789'

HERSHEY_EXTRA = (
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_COMPLEX_SMALL,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC,
)
# Photos shipped inside scikit-image (no download), chosen without legible text in them.
SKIMAGE_PHOTOS = (
    'chelsea',
    'coffee',
    'brick',
    'grass',
    'gravel',
    'camera',
    'moon',
    'hubble_deep_field',
    'immunohistochemistry',
    'retina',
    'cell',
    'colorwheel',
)
# Image files a folder of background photos may hold (options["photos"]).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
BACKGROUNDS = ('paper', 'ruled', 'gradient', 'cluttered', 'photo', 'texture', 'facade', 'packaging')

# The photo-like ingredients, each off (0 / False) in the original presets, so that their images stay the
# same bit for bit: every ingredient draws from the random stream only when it is switched on.
#   surface_prob: share of images whose words lie on a surface (sign, poster, page) warped in perspective
#       into the scene, with surface_perspective the corner jitter (fraction of the image side);
#   multiline_prob: chance that a word placement becomes a block of 2-4 left-aligned lines;
#   panel_prob: chance that a single word gets a sign plate (a filled, bordered patch) under it;
#   lighting: strength of a smooth gain field (gradient + spot) and colour cast; shadow_prob: a soft shadow;
#   defocus_prob / motion_blur_prob: disk and line blurs; jpeg_prob: re-encoding at quality 25-80;
#   lowres_prob: the image shrunk by 1.5-3x and enlarged back (a camera's low resolution: soft, blocky strokes);
#   word_space: (low, high) ink gap between the words of a multi-line block, in x-heights (real text: about
#       0.3-0.8), with blocks of 1-4 lines; None keeps the wide gap of every other placement (about 1.1 x-heights
#       plus 4 px) and blocks of 2-4 lines;
#   block_x_height: (low, high) x-height range of those blocks; None: the lower half of x_height (small print);
#   clutter: (min, max) unlabelled non-text objects that real scenes are full of and a text detector must learn to
#       ignore: pictograms (arrows, no-entry signs, figures), patterned patches (checkers, stripes, dot grids),
#       shelves of small coloured boxes and logos; (0, 0) draws none;
#   extra_fonts: Hershey plain, small and italic faces besides the printed and script ones;
#   photos: the photos of the 'photo' background: scikit-image photo names, image files and folders of images
#       (your own photos without legible text, e.g. SynthText's background set), see resolve_photo_sources.
INGREDIENTS_OFF = dict(
    surface_prob=0.0,
    surface_perspective=0.0,
    multiline_prob=0.0,
    panel_prob=0.0,
    lighting=0.0,
    shadow_prob=0.0,
    defocus_prob=0.0,
    motion_blur_prob=0.0,
    jpeg_prob=0.0,
    lowres_prob=0.0,
    word_space=None,
    block_x_height=None,
    clutter=(0, 0),
    extra_fonts=False,
    photos=SKIMAGE_PHOTOS,
)

# Difficulty presets: every argument of the generator, by name. 'easy' is the quick start's (learnable in minutes);
# 'photo' imitates photographs of scenes and documents (scene text pre-training).
DIFFICULTIES = {
    'easy': dict(
        num_words=(2, 6),
        x_height=(14, 26),
        rotation=8.0,
        perspective=0.0,
        curve_prob=0.0,
        curve_amount=0.0,
        handwriting_prob=0.2,
        dont_care_prob=0.0,
        distractors=(0, 2),
        backgrounds=('paper', 'ruled', 'gradient'),
        min_contrast=110,
        blur_prob=0.1,
        noise=3.0,
        **INGREDIENTS_OFF,
    ),
    'medium': dict(
        num_words=(3, 9),
        x_height=(10, 32),
        rotation=25.0,
        perspective=0.08,
        curve_prob=0.2,
        curve_amount=0.6,
        handwriting_prob=0.35,
        dont_care_prob=0.08,
        distractors=(1, 5),
        backgrounds=('paper', 'ruled', 'gradient', 'cluttered'),
        min_contrast=80,
        blur_prob=0.2,
        noise=5.0,
        **INGREDIENTS_OFF,
    ),
    'hard': dict(
        num_words=(4, 14),
        x_height=(8, 40),
        rotation=60.0,
        perspective=0.15,
        curve_prob=0.35,
        curve_amount=1.0,
        handwriting_prob=0.5,
        dont_care_prob=0.15,
        distractors=(3, 10),
        backgrounds=('paper', 'ruled', 'gradient', 'cluttered'),
        min_contrast=60,
        blur_prob=0.3,
        noise=8.0,
        **INGREDIENTS_OFF,
    ),
    'photo': dict(
        num_words=(3, 12),
        x_height=(6, 36),
        rotation=20.0,
        perspective=0.1,
        curve_prob=0.08,
        curve_amount=0.5,
        handwriting_prob=0.1,
        dont_care_prob=0.15,
        distractors=(2, 8),
        backgrounds=('photo', 'photo', 'texture', 'facade', 'packaging', 'cluttered', 'paper', 'gradient'),
        min_contrast=45,
        blur_prob=0.15,
        noise=4.0,
        surface_prob=0.5,
        surface_perspective=0.2,
        multiline_prob=0.2,
        panel_prob=0.35,
        lighting=0.35,
        shadow_prob=0.3,
        defocus_prob=0.2,
        motion_blur_prob=0.15,
        jpeg_prob=0.5,
        lowres_prob=0.0,
        word_space=None,
        block_x_height=None,
        clutter=(0, 0),
        extra_fonts=True,
        photos=SKIMAGE_PHOTOS,
    ),
}


def resolve_photo_sources(entries) -> list:
    """The photos of the 'photo' background: ``('skimage', name)`` for a scikit-image photo name (a bare word such
    as ``'coffee'``, unless it is a file or folder here) and ``('file', path)`` for an image file, a folder
    standing for its image files (every ``IMAGE_EXTENSIONS`` file under it, sorted by path so that a sample
    stays a function of its seed and index)."""
    sources = []
    for entry in entries:
        entry = str(entry)
        bare_word = os.sep not in entry and '/' not in entry and '.' not in entry
        if bare_word and (entry in SKIMAGE_PHOTOS or not os.path.exists(entry)):
            sources.append(('skimage', entry))  # checked when first used: importing scikit-image is slow
        elif os.path.isdir(entry):
            found = sorted(
                os.path.join(root, name)
                for root, _, files in os.walk(entry)
                for name in files
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            if not found:
                raise ValueError(
                    f'SyntheticTextDataset: the folder {entry!r} in options["photos"] holds no image '
                    f'({", ".join(IMAGE_EXTENSIONS)}); put background photos in it or remove it from the list.'
                )
            sources += [('file', path) for path in found]
        elif os.path.isfile(entry):
            sources.append(('file', entry))
        else:
            raise ValueError(
                f'SyntheticTextDataset: options["photos"] names {entry!r}, which is neither a file nor a folder; '
                f'give an image file, a folder of images or a scikit-image photo name ({", ".join(SKIMAGE_PHOTOS)}).'
            )
    return sources


def find_truetype_fonts(dirs=FONT_DIRS) -> list:
    """Sorted paths of the .ttf / .otf fonts under ``dirs`` (symbol, emoji and math fonts left out)."""
    found = []
    for folder in dirs:
        folder = os.path.expanduser(folder)
        for root, _, files in os.walk(folder):
            for name in files:
                lower = name.lower()
                if lower.endswith(('.ttf', '.otf')) and not any(word in lower for word in FONT_EXCLUDE):
                    found.append(os.path.join(root, name))
    return sorted(set(found))


class SyntheticTextDataset(torch.utils.data.Dataset):
    """Procedural text-detection samples, deterministic per ``(seed, index)`` for a given font set.

    Args:
        num_samples: dataset length.
        seed: base seed; sample ``i`` uses ``numpy.random.default_rng([seed, i])``. Use another seed for a
            held-out set.
        image_size: ``(height, width)`` of every image (default 320x320).
        processes: callables dict -> dict applied in order (the same processes as ImageDataset).
        difficulty: 'easy' (quick start: clear words, x-height >= 14 px, mild rotation), 'medium' or 'hard'
            (curves, perspective, clutter, don't cares) or 'photo' (photo-like scenes, for pre-training before
            real photos); any key of ``DIFFICULTIES[difficulty]`` can be overridden through ``options``.
        fonts: 'all' (Hershey + TrueType found on the machine), 'hershey' (identical on every machine) or
            a list of TrueType font paths (used with the Hershey fonts).
        is_training: the sample's ``is_training``.
        options: overrides of the difficulty preset, e.g. ``{'curve_prob': 0.5}`` or, to ablate an
            ingredient of 'photo', ``{'jpeg_prob': 0}`` / ``{'backgrounds': ['paper', 'texture']}``.

    Returns (``dataset[i]``) ``{'image': HxWx3 uint8 BGR, 'lines': [{'poly': [[x, y], ...], 'text'}],
    'filename': 'synth_<seed>_<i>.jpg', 'data_id': i, 'is_training'}`` after processes; ``generate(i)``
    also gives ``'ink'``, the HxW float32 coverage of the text drawn (for tests).
    """

    def __init__(
        self,
        num_samples=1000,
        seed=0,
        image_size=(320, 320),
        processes=[],
        difficulty='easy',
        fonts='all',
        is_training=True,
        options=None,
    ):
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f'SyntheticTextDataset: unknown difficulty {difficulty!r}; choose one of {sorted(DIFFICULTIES)}.'
            )
        self.params = dict(DIFFICULTIES[difficulty])
        unknown = sorted(set(options or {}) - set(self.params))
        if unknown:
            raise ValueError(f'SyntheticTextDataset: unknown option(s) {unknown}; accepted: {sorted(self.params)}.')
        self.params.update(options or {})
        # (low, high) ranges: word_space and block_x_height may be None (their default behaviour), clutter may not
        for key, optional, unit in (
            ('word_space', True, ' x-heights'),
            ('block_x_height', True, ''),
            ('clutter', False, ''),
        ):
            pair = self.params[key]
            if (pair is not None or not optional) and not (
                isinstance(pair, (list, tuple)) and len(pair) == 2 and 0 <= float(pair[0]) <= float(pair[1])
            ):
                raise ValueError(
                    f'SyntheticTextDataset: options["{key}"] must be {"None or " if optional else ""}[low, high]{unit} '
                    f'with 0 <= low <= high, got {pair!r}.'
                )
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.processes = list(processes or [])
        self.difficulty = difficulty
        self.is_training = bool(is_training)
        if fonts == 'all':
            truetype = find_truetype_fonts()
        elif fonts == 'hershey':
            truetype = []
        elif isinstance(fonts, (list, tuple)):
            truetype = [str(path) for path in fonts]
        else:
            raise ValueError(
                f"SyntheticTextDataset: fonts must be 'all', 'hershey' or a list of font paths, got {fonts!r}."
            )
        self.fonts = [('hershey', face) for face in HERSHEY_PRINTED + HERSHEY_SCRIPT] + [
            ('truetype', path) for path in truetype
        ]
        if self.params['extra_fonts']:
            self.fonts += [('hershey', face) for face in HERSHEY_EXTRA]
        self._pil_fonts = {}
        self._x_heights = {}
        self._photo_sources = resolve_photo_sources(self.params['photos'])
        self._photos = {}

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f'SyntheticTextDataset: index {index} out of range [0, {self.num_samples}).')
        data = self.generate(index)
        data.pop('ink')
        for process in self.processes:
            data = process(data)
        return data

    # ----- one image
    def generate(self, index: int) -> dict:
        """The sample dict of ``index`` before processes, plus ``'ink'`` (HxW float32 text coverage)."""
        rng = np.random.default_rng([self.seed, int(index)])
        p = self.params
        height, width = self.image_size
        image = self._background(rng, p['backgrounds'][rng.integers(len(p['backgrounds']))])
        for _ in range(rng.integers(p['distractors'][0], p['distractors'][1] + 1)):
            self._distractor(rng, image)
        if p['clutter'][1] > 0:  # its own random stream: the same words with and without clutter
            clutter_rng = np.random.default_rng([self.seed, int(index), 1])
            for _ in range(clutter_rng.integers(int(p['clutter'][0]), int(p['clutter'][1]) + 1)):
                self._clutter(clutter_rng, image)
        scene, surface = image, None
        if p['surface_prob'] > 0 and rng.random() < p['surface_prob']:
            surface = self._background(rng, p['backgrounds'][rng.integers(len(p['backgrounds']))])
            image = surface
        ink = np.zeros((height, width), np.float32)
        occupied = np.zeros((height, width), np.uint8)
        lines = []
        for _ in range(rng.integers(p['num_words'][0], p['num_words'][1] + 1)):
            if p['multiline_prob'] > 0 and rng.random() < p['multiline_prob']:
                lines += self._place_block(rng, image, ink, occupied)
                continue
            line = self._place_word(rng, image, ink, occupied)
            if line is not None:
                lines.append(line)
        if surface is not None:
            image, ink, lines = self._onto_scene(rng, scene, surface, ink, lines)
        image = self._photo_effects(rng, image)
        if rng.random() < p['blur_prob']:
            image = cv2.GaussianBlur(image, (3, 3), 0)
        image = self._camera_blur(rng, image)
        image = self._low_resolution(rng, image)
        if p['noise'] > 0:
            noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(p['noise'])
            image = np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        if p['jpeg_prob'] > 0 and rng.random() < p['jpeg_prob']:
            encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 81))])[1]
            image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        return {
            'image': image,
            'lines': lines,
            'filename': f'synth_{self.seed}_{index:06d}.jpg',
            'data_id': int(index),
            'is_training': self.is_training,
            'ink': ink,
        }

    # ----- backgrounds and distractors
    def _background(self, rng, kind: str) -> np.ndarray:
        height, width = self.image_size
        if kind in ('paper', 'ruled'):
            base = rng.uniform(215, 252) - np.array([0.0, rng.uniform(0, 12), rng.uniform(0, 20)])  # BGR: warm
            low = cv2.resize(
                rng.normal(0, 6, (4, 4)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
            )
            image = base[None, None, :] + low[:, :, None]
            if kind == 'ruled':
                gap = int(rng.integers(18, 34))
                line_colour = np.array([rng.uniform(180, 230), rng.uniform(150, 200), rng.uniform(120, 170)])
                for y in range(int(rng.integers(gap // 2, gap)), height, gap):
                    image[y : y + 1, :, :] = line_colour
                if rng.random() < 0.5:
                    x = int(rng.integers(width // 12, width // 5))
                    image[:, x : x + 1, :] = np.array([90.0, 90.0, 220.0])
        elif kind == 'gradient':
            start, stop = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            angle = rng.uniform(0, 2 * math.pi)
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            t = xs * math.cos(angle) + ys * math.sin(angle)
            t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
            image = start[None, None, :] * (1 - t[:, :, None]) + stop[None, None, :] * t[:, :, None]
        elif kind == 'cluttered':
            image = np.empty((height, width, 3), np.float64)
            image[:] = rng.uniform(0, 255, 3)
            image = np.ascontiguousarray(image.astype(np.uint8))
            for _ in range(int(rng.integers(8, 20))):
                self._shape(rng, image, filled=True)
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(1.0, 3.0))).astype(np.float64)
        elif kind == 'photo':
            image = self._photo_crop(rng)
        elif kind == 'texture':
            image = self._texture(rng)
        elif kind == 'facade':
            image = self._facade(rng)
        elif kind == 'packaging':
            image = self._packaging(rng)
        else:
            raise ValueError(
                f'SyntheticTextDataset: unknown background {kind!r} in options["backgrounds"]; '
                f'use one of {BACKGROUNDS}.'
            )
        return np.ascontiguousarray(np.clip(image, 0, 255).astype(np.uint8))

    def _photo(self, source) -> np.ndarray:
        """The photo of ``source`` (from resolve_photo_sources) as HxWx3 uint8 BGR. scikit-image photos are read
        once per dataset object; files are read at every use (a folder may hold thousands)."""
        kind, name = source
        if kind == 'file':
            photo = cv2.imread(name, cv2.IMREAD_COLOR)
            if photo is None:
                raise ValueError(
                    f'SyntheticTextDataset: cannot read the background photo {name!r} (options["photos"]); '
                    'replace it with a readable image or remove it.'
                )
            return photo
        if name not in self._photos:
            import skimage.data

            loader = getattr(skimage.data, name, None)
            if loader is None:
                raise ValueError(
                    f'SyntheticTextDataset: scikit-image has no photo {name!r}; remove it from '
                    f'options["photos"] (known: {SKIMAGE_PHOTOS}).'
                )
            photo = np.asarray(loader())
            if photo.dtype == bool:
                photo = photo.astype(np.uint8) * 255
            if photo.ndim == 2:
                photo = np.repeat(photo[:, :, None], 3, axis=2)
            self._photos[name] = np.ascontiguousarray(photo[:, :, 2::-1].astype(np.uint8))  # RGB(A) -> BGR
        return self._photos[name]

    def _photo_crop(self, rng) -> np.ndarray:
        """A random window of a background photo, resized to the image, flipped, tinted and re-exposed."""
        height, width = self.image_size
        sources = self._photo_sources
        photo = self._photo(sources[rng.integers(len(sources))])
        ph, pw = photo.shape[:2]
        scale = rng.uniform(0.35, 1.0) * min(ph / height, pw / width)
        ch, cw = min(max(int(height * scale), 8), ph), min(max(int(width * scale), 8), pw)
        y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
        image = cv2.resize(photo[y : y + ch, x : x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        gain = rng.uniform(0.6, 1.3) * rng.uniform(0.8, 1.2, 3)
        return image.astype(np.float64) * gain + rng.uniform(-30, 30)

    def _noise_field(self, rng, octaves: int = 4) -> np.ndarray:
        """HxW float32 fractal value noise in about [-1, 1]."""
        height, width = self.image_size
        field = np.zeros((height, width), np.float32)
        for octave in range(octaves):
            cells = 2 ** (octave + 2)
            grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
            field += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 2**octave
        return field / 1.9

    def _texture(self, rng) -> np.ndarray:
        """Procedural material: stone / concrete noise, wood grain, brick or tiles, between two colours."""
        height, width = self.image_size
        kind = rng.integers(3)
        noise = self._noise_field(rng)
        if kind == 0:  # stone, concrete, fabric
            t = 0.5 + 0.5 * noise + rng.normal(0, 0.08, (height, width)).astype(np.float32)
        elif kind == 1:  # wood grain: warped stripes
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            angle = rng.uniform(0, math.pi)
            u = xs * math.cos(angle) + ys * math.sin(angle)
            t = 0.5 + 0.5 * np.sin(u / rng.uniform(3, 12) + 6 * noise)
        else:  # bricks or tiles: mortar lines over noise
            t = 0.55 + 0.3 * noise
            row_h, col_w = int(rng.integers(12, 40)), int(rng.integers(20, 80))
            mortar = np.zeros((height, width), np.float32)
            for r, y in enumerate(range(0, height, row_h)):
                mortar[y : y + 2] = 1
                shift = (col_w // 2) * (r % 2) if rng.random() < 0.8 else 0
                for x in range(shift, width, col_w):
                    mortar[y : y + row_h, x : x + 2] = 1
            t = t * (1 - mortar) + rng.uniform(0.7, 1.0) * mortar
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return low[None, None, :] + (high - low)[None, None, :] * np.clip(t, 0, 1)[:, :, None]

    def _facade(self, rng) -> np.ndarray:
        """A building front: a wall texture, a grid of windows with frames, blank sign boards, pipes."""
        height, width = self.image_size
        wall = rng.uniform(60, 230, 3)
        image = wall[None, None, :] + 25 * self._noise_field(rng)[:, :, None]
        cell_w, cell_h = int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 6, height // 2))
        glass = rng.uniform(20, 120, 3)
        frame = rng.uniform(150, 255, 3) if rng.random() < 0.5 else rng.uniform(0, 80, 3)
        for y in range(int(rng.integers(0, cell_h // 2 + 1)), height, cell_h):
            for x in range(int(rng.integers(0, cell_w // 2 + 1)), width, cell_w):
                x1, y1 = x + int(cell_w * rng.uniform(0.5, 0.8)), y + int(cell_h * rng.uniform(0.5, 0.8))
                shade = np.linspace(1.2, 0.7, max(y1 - y, 1))[:, None, None]
                image[y:y1, x:x1] = (glass * rng.uniform(0.7, 1.3))[None, None, :] * shade[: image[y:y1].shape[0]]
                cv2.rectangle(image, (x, y), (x1, y1), tuple(float(c) for c in frame), int(rng.integers(1, 4)))
        for _ in range(int(rng.integers(0, 3))):  # blank boards and awnings
            y = int(rng.integers(0, height - 10))
            board_h = int(rng.integers(8, max(9, height // 6)))
            image[y : y + board_h, :] = rng.uniform(0, 255, 3)
        for _ in range(int(rng.integers(0, 3))):  # pipes, poles, cables
            x = int(rng.integers(0, width))
            cv2.line(
                image,
                (x, 0),
                (x + int(rng.integers(-20, 21)), height - 1),
                tuple(float(c) for c in rng.uniform(0, 255, 3)),
                int(rng.integers(1, 6)),
            )
        return image

    def _packaging(self, rng) -> np.ndarray:
        """Printed packaging: a bright base, slanted colour bands, logo-like discs, a barcode."""
        height, width = self.image_size
        image = np.empty((height, width, 3), np.float64)
        image[:] = rng.uniform(0, 255, 3)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        for _ in range(int(rng.integers(1, 4))):
            angle = rng.uniform(0, math.pi)
            u = xs * math.cos(angle) + ys * math.sin(angle)
            start = rng.uniform(u.min(), u.max())
            band = (u > start) & (u < start + rng.uniform(0.05, 0.3) * max(height, width))
            image[band] = rng.uniform(0, 255, 3)
        for _ in range(int(rng.integers(0, 3))):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(
                image,
                centre,
                int(rng.integers(8, max(9, min(height, width) // 4))),
                tuple(float(c) for c in rng.uniform(0, 255, 3)),
                -1,
                cv2.LINE_AA,
            )
        if rng.random() < 0.4:  # a barcode: thin dark bars, a common false positive
            bar_h = int(rng.integers(15, max(16, height // 4)))
            x, y = int(rng.integers(0, max(1, width - 60))), int(rng.integers(0, max(1, height - bar_h)))
            image[y : y + bar_h, x : x + 60] = 250
            for _ in range(25):
                bx = x + int(rng.integers(0, 58))
                image[y + 2 : y + bar_h - 2, bx : bx + int(rng.integers(1, 3))] = 10
        return image

    def _shape(self, rng, image, filled: bool):
        height, width = image.shape[:2]
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        thickness = -1 if filled else int(rng.integers(1, 4))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(4, min(height, width) // 20), max(8, min(height, width) // 3)))
        if kind == 0:
            cv2.rectangle(image, (x, y), (x + size, y + int(size * rng.uniform(0.3, 1.5))), colour, thickness)
        elif kind == 1:
            cv2.circle(image, (x, y), size // 2, colour, thickness, cv2.LINE_AA)
        else:
            end = (int(x + size * rng.uniform(-1.5, 1.5)), int(y + size * rng.uniform(-1.5, 1.5)))
            cv2.line(image, (x, y), end, colour, max(1, thickness), cv2.LINE_AA)

    def _distractor(self, rng, image):
        """An unlabelled non-text mark: a shape outline, a smooth stroke or a cluster of dots."""
        height, width = image.shape[:2]
        kind = rng.integers(3)
        if kind == 0:
            self._shape(rng, image, filled=False)
        elif kind == 1:
            t = np.linspace(0, 1, 40)
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            length, angle = rng.uniform(0.2, 0.6) * width, rng.uniform(0, 2 * math.pi)
            amplitude, freq = rng.uniform(5, 25), rng.uniform(0.5, 1.5)
            xs = x0 + t * length * math.cos(angle) - amplitude * np.sin(2 * math.pi * freq * t) * math.sin(angle)
            ys = y0 + t * length * math.sin(angle) + amplitude * np.sin(2 * math.pi * freq * t) * math.cos(angle)
            colour = tuple(float(c) for c in rng.uniform(0, 160, 3))
            cv2.polylines(
                image, [np.stack([xs, ys], 1).astype(np.int32)], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA
            )
        else:
            colour = tuple(float(c) for c in rng.uniform(0, 200, 3))
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            for _ in range(int(rng.integers(3, 12))):
                centre = (int(cx + rng.normal(0, 12)), int(cy + rng.normal(0, 12)))
                cv2.circle(image, centre, int(rng.integers(1, 3)), colour, -1, cv2.LINE_AA)

    def _clutter(self, rng, image):
        """An unlabelled object of a real scene: a pictogram, a patterned patch, a shelf of boxes or a logo."""
        height, width = image.shape[:2]
        size = int(rng.uniform(0.04, 0.22) * min(height, width)) + 6
        x0, y0 = int(rng.integers(0, max(1, width - size))), int(rng.integers(0, max(1, height - size)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        other = tuple(float(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(4)
        if kind == 0:  # pictogram: arrow, no-entry disc or stick figure, on a plate or not
            if rng.random() < 0.5:
                cv2.rectangle(image, (x0, y0), (x0 + size, y0 + size), other, -1)
            c, r = (x0 + size // 2, y0 + size // 2), size // 2
            shape = rng.integers(3)
            if shape == 0:
                angle = rng.uniform(0, 2 * math.pi)
                tip = (int(c[0] + 0.8 * r * math.cos(angle)), int(c[1] + 0.8 * r * math.sin(angle)))
                tail = (int(c[0] - 0.8 * r * math.cos(angle)), int(c[1] - 0.8 * r * math.sin(angle)))
                cv2.arrowedLine(image, tail, tip, colour, max(1, r // 4), cv2.LINE_AA, tipLength=0.4)
            elif shape == 1:
                cv2.circle(image, c, max(2, int(0.9 * r)), colour, max(1, r // 5), cv2.LINE_AA)
                cv2.line(image, (c[0] - r // 2, c[1]), (c[0] + r // 2, c[1]), colour, max(1, r // 4), cv2.LINE_AA)
            else:
                t = max(1, r // 6)
                cv2.circle(image, (c[0], c[1] - r // 2), max(1, r // 5), colour, -1, cv2.LINE_AA)
                for end in ((c[0] - r // 2, c[1] + 3 * r // 4), (c[0] + r // 2, c[1] + 3 * r // 4)):
                    cv2.line(image, (c[0], c[1] + r // 5), end, colour, t, cv2.LINE_AA)
                cv2.line(image, (c[0], c[1] - r // 4), (c[0], c[1] + r // 5), colour, t, cv2.LINE_AA)
                cv2.line(image, (c[0] - r // 2, c[1]), (c[0] + r // 2, c[1]), colour, t, cv2.LINE_AA)
        elif kind == 1:  # patterned patch: checkers, stripes or a grid of dots, about a word's height per cell
            w, h = int(size * rng.uniform(1.0, 3.0)), size
            cell = int(rng.integers(3, max(4, size // 3)))
            ys, xs = np.mgrid[0:h, 0:w]
            pattern = rng.integers(3)
            if pattern == 0:
                on = ((xs // cell + ys // cell) % 2).astype(bool)
            elif pattern == 1:
                on = ((xs + ys * rng.uniform(-1, 1)) // cell % 2).astype(bool)
            else:
                on = ((xs % cell - cell / 2) ** 2 + (ys % cell - cell / 2) ** 2) < (cell / 3) ** 2
            patch = image[y0 : y0 + h, x0 : x0 + w]
            patch[on[: patch.shape[0], : patch.shape[1]]] = np.array(colour, np.uint8)
        elif kind == 2:  # shelf: rows of small boxes in varied colours, like products or windows
            rows, cols = int(rng.integers(1, 4)), int(rng.integers(3, 9))
            box_w, box_h = max(2, size // cols), max(3, size // (2 * rows))
            for row in range(rows):
                for col in range(cols):
                    bx, by = x0 + col * (box_w + 1), y0 + row * (2 * box_h)
                    shade = tuple(float(v) for v in rng.uniform(0, 255, 3))
                    cv2.rectangle(image, (bx, by), (bx + box_w - 1, by + box_h), shade, -1)
        else:  # logo: a few overlapping filled shapes in two colours
            for _ in range(int(rng.integers(2, 5))):
                points = np.array([x0, y0]) + rng.uniform(0, size, (int(rng.integers(3, 7)), 2))
                cv2.fillPoly(image, [points.astype(np.int32)], colour if rng.random() < 0.5 else other, cv2.LINE_AA)

    # ----- photo-like ingredients (each draws from the random stream only when switched on)
    def _onto_scene(self, rng, scene, surface, ink, lines):
        """Warps the surface (with its words, ink and polygons) into a random quadrilateral inside the scene."""
        height, width = self.image_size
        jitter = self.params['surface_perspective']
        inset = rng.uniform(0.0, 0.25) * np.array([width, height])  # the surface fills 50-100% of each side
        corners = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], np.float64)
        shrunk = corners + np.sign(corners.mean(0) - corners) * inset
        target = shrunk + rng.uniform(-jitter, jitter, (4, 2)) * np.array([width, height])
        target = np.clip(target + rng.uniform(-1, 1, 2) * inset, 0, [width - 1, height - 1])
        homography = cv2.getPerspectiveTransform(corners.astype(np.float32), target.astype(np.float32))
        size = (width, height)
        warped = cv2.warpPerspective(surface, homography, size, flags=cv2.INTER_LINEAR)
        cover = cv2.warpPerspective(np.ones((height, width), np.float32), homography, size, flags=cv2.INTER_LINEAR)
        image = (scene * (1 - cover[:, :, None]) + warped * cover[:, :, None]).round().astype(np.uint8)
        ink = cv2.warpPerspective(ink, homography, size, flags=cv2.INTER_LINEAR)
        moved = []
        for line in lines:
            poly = cv2.perspectiveTransform(np.array(line['poly'], np.float64)[None], homography.astype(np.float64))
            moved.append({'poly': np.clip(poly[0], 0, [width - 1, height - 1]).tolist(), 'text': line['text']})
        return image, ink, moved

    def _photo_effects(self, rng, image):
        """Lighting (a smooth gain field and a colour cast) and a soft shadow."""
        p = self.params
        height, width = self.image_size
        if p['lighting'] <= 0 and p['shadow_prob'] <= 0:
            return image
        gain = np.ones((height, width), np.float32)
        if p['lighting'] > 0:
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
            angle = rng.uniform(0, 2 * math.pi)
            ramp = (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
            cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.3, 1.0) * max(height, width)
            spot = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
            gain += p['lighting'] * (rng.uniform(-1.5, 1.5) * ramp + rng.uniform(-0.8, 0.8) * spot)
        if p['shadow_prob'] > 0 and rng.random() < p['shadow_prob']:
            shade = np.zeros((height, width), np.float32)
            centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
            points = centre + rng.uniform(-0.7, 0.7, (int(rng.integers(3, 7)), 2)) * np.array([width, height])
            cv2.fillPoly(shade, [cv2.convexHull(points.astype(np.int32))], 1.0)
            shade = cv2.GaussianBlur(shade, (0, 0), float(rng.uniform(2, 12)))
            gain *= 1 - rng.uniform(0.25, 0.6) * shade
        cast = np.ones(3, np.float32)
        if p['lighting'] > 0:  # colour cast and exposure: real photos are often dim (indoor, dusk)
            cast = (rng.uniform(0.85, 1.15, 3) * rng.uniform(0.45, 1.1)).astype(np.float32)
        lit = image.astype(np.float32) * np.clip(gain, 0.15, 2.0)[:, :, None] * cast
        return np.clip(lit, 0, 255).astype(np.uint8)

    def _camera_blur(self, rng, image):
        """Defocus (a disk of radius 1-2.5 px) and motion blur (a line of 3-9 px)."""
        p = self.params
        if p['defocus_prob'] > 0 and rng.random() < p['defocus_prob']:
            radius = rng.uniform(1.0, 2.5)
            size = 2 * int(math.ceil(radius)) + 1
            kernel = np.zeros((size, size), np.float32)
            cv2.circle(kernel, (size // 2, size // 2), int(round(radius * 8)), 1.0, -1, cv2.LINE_AA, shift=3)
            image = cv2.filter2D(image, -1, kernel / kernel.sum())
        if p['motion_blur_prob'] > 0 and rng.random() < p['motion_blur_prob']:
            length = int(rng.integers(3, 10))
            angle = rng.uniform(0, math.pi)
            kernel = np.zeros((length, length), np.float32)
            half = (length - 1) / 2
            start = (half - half * math.cos(angle), half - half * math.sin(angle))
            end = (half + half * math.cos(angle), half + half * math.sin(angle))
            cv2.line(
                kernel,
                (int(round(start[0] * 8)), int(round(start[1] * 8))),
                (int(round(end[0] * 8)), int(round(end[1] * 8))),
                1.0,
                1,
                cv2.LINE_AA,
                shift=3,
            )
            image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
        return image

    def _low_resolution(self, rng, image):
        """The image shrunk by a factor of 1.5-3 (area average) and enlarged back (bilinear)."""
        if self.params['lowres_prob'] <= 0 or rng.random() >= self.params['lowres_prob']:
            return image
        height, width = image.shape[:2]
        factor = rng.uniform(1.5, 3.0)
        small = (max(1, round(width / factor)), max(1, round(height / factor)))
        shrunk = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        return cv2.resize(shrunk, (width, height), interpolation=cv2.INTER_LINEAR)

    # ----- words
    def _word_text(self, rng) -> str:
        kind = rng.random()
        if kind < 0.7:
            word = WORDS[rng.integers(len(WORDS))]
            style = rng.random()
            return word.upper() if style < 0.15 else word.capitalize() if style < 0.35 else word
        if kind < 0.85:
            return str(int(rng.integers(1, 100000))) if rng.random() < 0.6 else f'{rng.uniform(0, 500):.2f}'
        return ''.join(CHARSET[i] for i in rng.integers(0, len(CHARSET), int(rng.integers(2, 8))))

    def _x_height(self, font) -> float:
        """Ink height of 'x' at the reference size (Hershey scale 1, TrueType 100 px)."""
        if font not in self._x_heights:
            mask = self._draw_text('x', font, 1.0 if font[0] == 'hershey' else 100, 1, None, 0.0)[0]
            rows = np.nonzero(mask.max(1) > 127)[0]
            self._x_heights[font] = float(rows[-1] - rows[0] + 1) if rows.size else 1.0
        return self._x_heights[font]

    def _pil_font(self, path: str, size: int):
        key = (path, size)
        if key not in self._pil_fonts:
            try:
                self._pil_fonts[key] = ImageFont.truetype(path, size)
            except OSError as error:
                raise OSError(
                    f'SyntheticTextDataset: cannot load font {path} ({error}); remove it from fonts.'
                ) from error
        return self._pil_fonts[key]

    def _draw_text(self, text: str, font, size, thickness: int, rng, jitter: float):
        """Mask (uint8) of ``text`` drawn letter by letter; with ``jitter`` > 0 letters move, scale and
        change stroke width (handwriting). Returns (mask, x_height_px_estimate)."""
        kind, face = font
        if kind == 'hershey':
            cap = cv2.getTextSize('H', face, size, thickness)[0][1]
        else:
            pil = self._pil_font(face, max(4, int(round(size))))
            cap = pil.getbbox('H', anchor='ls')[3] - pil.getbbox('H', anchor='ls')[1]
        cap = max(int(cap), 4)
        margin = 2 * cap + 4 * thickness
        advance_total = 0.0
        advances = []
        for ch in text:
            if kind == 'hershey':
                advances.append(cv2.getTextSize(ch, face, size, thickness)[0][0])
            else:
                advances.append(pil.getlength(ch))
            advance_total += advances[-1]
        width = int(advance_total * (1.3 if jitter else 1.0)) + 2 * margin
        height = cap * 2 + 2 * margin
        canvas = Image.new('L', (width, height), 0) if kind == 'truetype' else np.zeros((height, width), np.uint8)
        draw = ImageDraw.Draw(canvas) if kind == 'truetype' else None
        x, baseline = float(margin), margin + cap * 1.4
        for ch, advance in zip(text, advances):
            dy = rng.normal(0, jitter * cap) if jitter else 0.0
            extra = int(rng.integers(-1, 2)) if jitter and thickness > 1 else 0
            if kind == 'hershey':
                cv2.putText(
                    canvas,
                    ch,
                    (int(round(x)), int(round(baseline + dy))),
                    face,
                    size,
                    255,
                    max(1, thickness + extra),
                    cv2.LINE_AA,
                )
            else:
                draw.text(
                    (x, baseline + dy),
                    ch,
                    font=pil,
                    fill=255,
                    anchor='ls',
                    stroke_width=max(0, thickness - 1 + extra),
                    stroke_fill=255,
                )
            x += advance * (1.0 + (rng.uniform(-0.05, 0.15) if jitter else 0.0))
        mask = np.asarray(canvas, dtype=np.uint8) if kind == 'truetype' else canvas
        return mask, cap

    def _render_word(self, rng, font, x_height: float, handwriting: bool):
        """The word's mask cropped to its padded ink box, its text and the baseline's row in the mask."""
        text = self._word_text(rng)
        ref = self._x_height(font)
        if font[0] == 'hershey':
            size = x_height / ref
            thickness = max(1, int(round(x_height / 7 * rng.uniform(0.7, 1.3))))
        else:
            size = 100.0 * x_height / ref
            thickness = 1 + int(rng.random() < 0.2) if x_height >= 16 else 1
        mask, cap = self._draw_text(text, font, size, thickness, rng, 0.06 if handwriting else 0.0)
        if handwriting or rng.random() < 0.15:
            slant = math.tan(math.radians(rng.uniform(-8, 20)))
            h, w = mask.shape
            shear = np.array([[1.0, -slant, slant * h / 2 + abs(slant) * h], [0.0, 1.0, 0.0]], np.float32)
            mask = cv2.warpAffine(mask, shear, (w + int(2 * abs(slant) * h) + 2, h), flags=cv2.INTER_LINEAR)
        rows, cols = np.nonzero(mask.max(1) > 0)[0], np.nonzero(mask.max(0) > 0)[0]
        if rows.size == 0:
            return None, text, 0.0
        pad = self._pad(x_height)
        top, bottom = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])
        left, right = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])
        baseline = (mask.shape[0] - 2 * cap) / 2 + cap * 1.4 - top  # _draw_text's baseline, in the cropped mask
        return np.ascontiguousarray(mask[top:bottom, left:right]), text, baseline

    @staticmethod
    def _word_geometry(rng, mask, bend_amount: float, angle: float, centre, perspective: float):
        """``(homography, polygon, bend)`` of a word mask centred at ``centre``: ``bend(u)`` curves the word's
        frame, the homography maps it into the image (rotation by ``angle``, corner jitter ``perspective``)."""
        h, w = mask.shape

        def bend(u):
            return bend_amount * (2.0 * u / w - 1.0) ** 2 - max(bend_amount, 0.0)

        bend_lo = min(bend_amount, 0.0) - max(bend_amount, 0.0)  # the smallest value of bend over [0, w]
        span = h + abs(bend_amount)
        cos, sin = math.cos(angle), math.sin(angle)
        affine = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1.0]]) @ np.array(
            [[1, 0, -w / 2], [0, 1, -(span / 2 + bend_lo)], [0, 0, 1.0]]
        )
        affine[:2, 2] += centre
        corners = np.array([[0, bend_lo], [w, bend_lo], [w, bend_lo + span], [0, bend_lo + span]], np.float32)
        mapped = cv2.perspectiveTransform(corners[None], affine)[0]
        if perspective > 0:
            jitter = rng.uniform(-1, 1, (4, 2)) * perspective * max(w, span)
            homography = cv2.getPerspectiveTransform(corners, (mapped + jitter).astype(np.float32)).astype(np.float64)
        else:
            homography = affine
        samples = 8 if bend_amount != 0 else 2
        us = np.linspace(0, w, samples)
        top = np.stack([us, bend(us)], 1)
        bottom = np.stack([us[::-1], h + bend(us[::-1])], 1)
        poly = cv2.perspectiveTransform(np.concatenate([top, bottom])[None].astype(np.float64), homography)[0]
        return homography, poly, bend

    @staticmethod
    def _pad(x_height: float) -> int:
        return max(2, int(round(0.2 * x_height)))  # margin of a word's polygon around its ink

    @staticmethod
    def _gap(x_height: float) -> int:
        return 2 * max(1, int(x_height // 6)) + 1  # keep words apart by about a third of the x-height

    def _claim(self, poly, x_height: float, occupied, clear_of=None) -> bool:
        """True (and the area marked in ``occupied``) when ``poly`` lies inside the image, clear of the words
        marked in ``clear_of`` (default: ``occupied``)."""
        height, width = self.image_size
        if (
            poly[:, 0].min() < 1
            or poly[:, 1].min() < 1
            or poly[:, 0].max() > width - 2
            or poly[:, 1].max() > height - 2
        ):
            return False
        gap = self._gap(x_height)
        bx0, by0 = np.maximum(np.floor(poly.min(0)).astype(int) - gap, 0)
        bx1, by1 = np.ceil(poly.max(0)).astype(int) + gap + 1
        region = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
        cv2.fillPoly(region, [np.round(poly - [bx0, by0]).astype(np.int32)], 1)
        region = cv2.dilate(region, np.ones((2 * gap + 1, 2 * gap + 1), np.uint8))
        region = region[: min(by1, height) - by0, : min(bx1, width) - bx0]
        if np.any(region & (occupied if clear_of is None else clear_of)[by0:by1, bx0:bx1]):
            return False
        occupied[by0:by1, bx0:bx1] |= region
        return True

    def _place_word(self, rng, image, ink, occupied):
        p = self.params
        height, width = self.image_size
        dont_care = rng.random() < p['dont_care_prob']
        handwriting = rng.random() < p['handwriting_prob']
        if handwriting:
            script = [f for f in self.fonts if f[0] == 'hershey' and f[1] in HERSHEY_SCRIPT]
            script += [
                f for f in self.fonts if f[0] == 'truetype' and ('oblique' in f[1].lower() or 'italic' in f[1].lower())
            ]
            font = script[rng.integers(len(script))]
        else:
            font = self.fonts[rng.integers(len(self.fonts))]
        x_height = rng.uniform(4, 7) if dont_care else rng.uniform(*p['x_height'])
        mask, text, _ = self._render_word(rng, font, x_height, handwriting)
        if mask is None:
            return None
        curved = rng.random() < p['curve_prob']
        bend_amount = rng.uniform(-1, 1) * p['curve_amount'] * mask.shape[0] if curved else 0.0
        angle = math.radians(rng.uniform(-p['rotation'], p['rotation']))
        for _ in range(20):
            centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
            homography, poly, bend = self._word_geometry(rng, mask, bend_amount, angle, centre, p['perspective'])
            if not self._claim(poly, x_height, occupied):
                continue
            if p['panel_prob'] > 0 and rng.random() < p['panel_prob']:
                self._panel(rng, image, poly, x_height)
            self._paint(rng, image, ink, mask, homography, bend, poly, dont_care)
            return {'poly': poly.tolist(), 'text': '###' if dont_care else text}
        return None

    def _place_block(self, rng, image, ink, occupied) -> list:
        """A paragraph: 2-4 left-aligned lines of 1-4 words in one font and size (with ``word_space``: 1-4 lines,
        words that gap apart, each its own polygon); returns their lines."""
        p = self.params
        height, width = self.image_size
        font = self.fonts[rng.integers(len(self.fonts))]
        low, high = p['x_height']
        x_height = rng.uniform(*(p['block_x_height'] or (low, (low + high) / 2)))
        angle = math.radians(rng.uniform(-p['rotation'], p['rotation']) / 2)
        along, down = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
        origin = np.array([rng.uniform(0, 0.7 * width), rng.uniform(0, 0.7 * height)])
        tight = p['word_space'] is not None
        pitch = rng.uniform(*((2.8, 3.8) if tight else (3.3, 4.0))) * x_height
        space = 2 * self._gap(x_height) + 2
        clear_of = occupied.copy() if tight else None  # a tight block's words may touch each other, not others
        lines = []
        for row in range(int(rng.integers(1 if tight else 2, 5))):
            x = 0.0
            for _ in range(int(rng.integers(1, 5))):
                mask, text, baseline = self._render_word(rng, font, x_height, False)
                if mask is None:
                    continue
                h, w = mask.shape
                centre = origin + along * (x + w / 2) + down * ((row + 1) * pitch - baseline + h / 2)
                if tight:  # the next word's ink starts word_space x-heights after this one's
                    space = rng.uniform(*p['word_space']) * x_height - 2 * self._pad(x_height)
                x += w + space
                homography, poly, bend = self._word_geometry(rng, mask, 0.0, angle, centre, 0.0)
                if self._claim(poly, x_height, occupied, clear_of):
                    self._paint(rng, image, ink, mask, homography, bend, poly, False)
                    lines.append({'poly': poly.tolist(), 'text': text})
        return lines

    def _panel(self, rng, image, poly, x_height: float):
        """A sign plate under a word: the polygon grown by less than the word gap, filled, with a border."""
        height, width = image.shape[:2]
        margin = max(1, int(0.8 * self._gap(x_height)))
        plate = np.zeros((height, width), np.uint8)
        cv2.fillPoly(plate, [np.round(poly).astype(np.int32)], 255)
        plate = cv2.dilate(plate, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1)))
        colour = rng.uniform(0, 255, 3)
        image[plate > 0] = colour.astype(np.uint8)
        if rng.random() < 0.5:
            edge = plate - cv2.erode(plate, np.ones((3, 3), np.uint8))
            image[edge > 0] = rng.uniform(0, 255, 3).astype(np.uint8)

    def _paint(self, rng, image, ink, mask, homography, bend, poly, faint: bool):
        height, width = self.image_size
        x0, y0 = np.floor(poly.min(0)).astype(int)
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
        local = cv2.perspectiveTransform(points[None], np.linalg.inv(homography))[0]
        map_x = local[:, 0].reshape(xs.shape).astype(np.float32)
        map_y = (local[:, 1] - bend(local[:, 0])).reshape(xs.shape).astype(np.float32)
        alpha = (
            cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(
                np.float32
            )
            / 255.0
        )
        if faint:
            alpha *= rng.uniform(0.35, 0.6)
        patch = image[y0:y1, x0:x1].astype(np.float32)
        luminance = float(patch.mean())
        contrast = self.params['min_contrast'] * (0.5 if faint else 1.0)
        if luminance >= 128:
            level = rng.uniform(0, max(luminance - contrast, 1))
        else:
            level = rng.uniform(min(luminance + contrast, 254), 255)
        colour = np.clip(level + rng.uniform(-25, 25, 3), 0, 255).astype(np.float32)
        image[y0:y1, x0:x1] = np.clip(patch * (1 - alpha[:, :, None]) + colour * alpha[:, :, None], 0, 255).astype(
            np.uint8
        )
        ink[y0:y1, x0:x1] = np.maximum(ink[y0:y1, x0:x1], alpha)


def write_db_layout(out: str, num: int, seed: int = 0, split: str = 'train', **dataset_args) -> str:
    """Write ``num`` samples in the DB layout under ``out`` (images as JPEG); returns the list file path.

    Ground-truth names follow the original's rule (train ``<name>.txt``, test ``gt_<stem>.txt``) so that
    ImageDataset's default reader reads them back.
    """
    if split not in ('train', 'test'):
        raise ValueError(f"write_db_layout: split must be 'train' or 'test', got {split!r}.")
    dataset = SyntheticTextDataset(num_samples=num, seed=seed, is_training=split == 'train', **dataset_args)
    images_dir, gts_dir = os.path.join(out, f'{split}_images'), os.path.join(out, f'{split}_gts')
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(gts_dir, exist_ok=True)
    list_path = os.path.join(out, f'{split}_list.txt')
    pattern = original_gt_pattern(split == 'train', list_path)
    names = []
    for index in range(num):
        sample = dataset.generate(index)
        name = sample['filename']
        cv2.imwrite(os.path.join(images_dir, name), sample['image'], [cv2.IMWRITE_JPEG_QUALITY, 95])
        with open(os.path.join(gts_dir, gt_relative_path(name, pattern)), 'w', encoding='utf-8') as handle:
            handle.write(''.join(format_db_line(line) + '\n' for line in sample['lines']))
        names.append(name)
    with open(list_path, 'w', encoding='utf-8') as handle:
        handle.write(''.join(name + '\n' for name in names))
    return list_path


def write_samples(
    out: str = 'assets/images',
    num: int = 3,
    seed: int = 2024,
    difficulty: str = 'medium',
    image_size=(320, 480),
    options: dict = None,
) -> list:
    """Write ``num`` demo images (JPEG, no ground truth) to ``out``; returns their paths.

    ``options`` override the ``difficulty`` preset's ingredients, as in :class:`SyntheticTextDataset`.
    """
    os.makedirs(out, exist_ok=True)
    dataset = SyntheticTextDataset(
        num_samples=num, seed=seed, image_size=image_size, difficulty=difficulty, options=options
    )
    paths = []
    for index in range(num):
        path = os.path.join(out, f'synthetic_{index + 1}.jpg')
        cv2.imwrite(path, dataset.generate(index)['image'], [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description='Write synthetic text images in the DB layout.')
    parser.add_argument('--out', help='output dataset folder')
    parser.add_argument('--num', type=int, default=1000, help='number of images')
    parser.add_argument('--seed', type=int, default=0, help='base seed (use another one for a held-out set)')
    parser.add_argument('--split', choices=('train', 'test'), default='train')
    parser.add_argument('--difficulty', choices=sorted(DIFFICULTIES), default='easy')
    parser.add_argument('--size', type=int, nargs=2, default=(320, 320), metavar=('H', 'W'))
    parser.add_argument('--fonts', choices=('all', 'hershey'), default='all')
    parser.add_argument(
        '--samples', metavar='DIR', help="write 3 demo images ('medium' preset, with any --option) to DIR instead"
    )
    parser.add_argument(
        '--option',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='an option of the generator over the --difficulty preset, the value in YAML (repeatable), e.g. '
        '--option extra_fonts=false --option "photos=[/data/backgrounds]"',
    )
    args = parser.parse_args(argv)
    options = {}
    for text in args.option:
        try:
            keys, value = parse_override(text)
        except ConfigError as error:
            parser.error(f'--option {text!r}: write KEY=VALUE, e.g. --option extra_fonts=false ({error})')
        options['.'.join(keys)] = value
    if args.samples:
        for path in write_samples(args.samples, options=options):
            print(path)
        return
    if not args.out:
        parser.error('--out is required (or --samples DIR)')
    list_path = write_db_layout(
        args.out,
        args.num,
        seed=args.seed,
        split=args.split,
        difficulty=args.difficulty,
        image_size=tuple(args.size),
        fonts=args.fonts,
        options=options,
    )
    print(f'wrote {args.num} {args.split} images; list: {list_path}')


if __name__ == '__main__':
    sys.exit(run_main(main))
