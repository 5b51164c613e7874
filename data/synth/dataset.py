"""``SyntheticTextDataset``: one sample from ``(seed, index)``: a background, distractors and clutter, words laid
out (single or in blocks, possibly on a surface), then the camera's effects, noise and JPEG."""

from __future__ import annotations

import cv2
import numpy as np
import torch.utils.data

from .backgrounds import BackgroundPainter
from .camera import CameraSimulator
from .layout import WordLayout
from .presets import (
    DIFFICULTIES,
    HERSHEY_EXTRA,
    HERSHEY_PRINTED,
    HERSHEY_SCRIPT,
    find_truetype_fonts,
    resolve_photo_sources,
)
from .words import WordRenderer

__all__ = ['SyntheticTextDataset']


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
        self.backgrounds = BackgroundPainter(self.image_size, resolve_photo_sources(self.params['photos']))
        self.layout = WordLayout(self.params, self.image_size, self.fonts, WordRenderer())
        self.camera = CameraSimulator(self.params, self.image_size)

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
        image = self.backgrounds.paint(rng, p['backgrounds'][rng.integers(len(p['backgrounds']))])
        for _ in range(rng.integers(p['distractors'][0], p['distractors'][1] + 1)):
            self.backgrounds.add_distractor(rng, image)
        if p['clutter'][1] > 0:  # its own random stream: the same words with and without clutter
            clutter_rng = np.random.default_rng([self.seed, int(index), 1])
            for _ in range(clutter_rng.integers(int(p['clutter'][0]), int(p['clutter'][1]) + 1)):
                self.backgrounds.add_clutter(clutter_rng, image)
        scene, surface = image, None
        if p['surface_prob'] > 0 and rng.random() < p['surface_prob']:
            surface = self.backgrounds.paint(rng, p['backgrounds'][rng.integers(len(p['backgrounds']))])
            image = surface
        ink = np.zeros((height, width), np.float32)
        occupied = np.zeros((height, width), np.uint8)
        lines = []
        for _ in range(rng.integers(p['num_words'][0], p['num_words'][1] + 1)):
            if p['multiline_prob'] > 0 and rng.random() < p['multiline_prob']:
                lines += self.layout.place_block(rng, image, ink, occupied)
                continue
            line = self.layout.place_word(rng, image, ink, occupied)
            if line is not None:
                lines.append(line)
        if surface is not None:
            image, ink, lines = self.camera.onto_scene(rng, scene, surface, ink, lines)
        image = self.camera.photo_effects(rng, image)
        if rng.random() < p['blur_prob']:
            image = cv2.GaussianBlur(image, (3, 3), 0)
        image = self.camera.camera_blur(rng, image)
        image = self.camera.low_resolution(rng, image)
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
