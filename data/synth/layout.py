"""Where words go: each word's geometry (rotation, curve, perspective) and polygon, its place in the image clear of
the others (``word_gap`` apart), sign panels behind words, multi-line blocks, and the painting of its ink."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .presets import HERSHEY_SCRIPT
from .words import WordRenderer, word_margin

__all__ = ['WordLayout', 'word_gap']


def word_gap(x_height: float) -> int:
    """How far apart words are kept: about a third of the x-height, in pixels (odd)."""
    return 2 * max(1, int(x_height // 6)) + 1


class WordLayout:
    """Places words into an image: ``place_word(rng, image, ink, occupied)`` -> the word's line dict ({'poly', 'text'})
    or None when it found no free place, ``place_block`` -> the lines of a multi-line block. ``image`` (HxWx3 uint8)
    gets the painted words, ``ink`` (HxW float32) their coverage, ``occupied`` (HxW uint8) the claimed areas.
    ``params``: the preset; ``fonts``: the (kind, face) list; ``words``: the ``WordRenderer``."""

    def __init__(self, params: dict, image_size: tuple, fonts: list, words: WordRenderer):
        self.params = params
        self.image_size = image_size
        self.fonts = fonts
        self.words = words

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
        gap = word_gap(x_height)
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

    def place_word(self, rng, image, ink, occupied):
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
        mask, text, _ = self.words.render(rng, font, x_height, handwriting)
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

    def place_block(self, rng, image, ink, occupied) -> list:
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
        space = 2 * word_gap(x_height) + 2
        clear_of = occupied.copy() if tight else None  # a tight block's words may touch each other, not others
        lines = []
        for row in range(int(rng.integers(1 if tight else 2, 5))):
            x = 0.0
            for _ in range(int(rng.integers(1, 5))):
                mask, text, baseline = self.words.render(rng, font, x_height, False)
                if mask is None:
                    continue
                h, w = mask.shape
                centre = origin + along * (x + w / 2) + down * ((row + 1) * pitch - baseline + h / 2)
                if tight:  # the next word's ink starts word_space x-heights after this one's
                    space = rng.uniform(*p['word_space']) * x_height - 2 * word_margin(x_height)
                x += w + space
                homography, poly, bend = self._word_geometry(rng, mask, 0.0, angle, centre, 0.0)
                if self._claim(poly, x_height, occupied, clear_of):
                    self._paint(rng, image, ink, mask, homography, bend, poly, False)
                    lines.append({'poly': poly.tolist(), 'text': text})
        return lines

    def _panel(self, rng, image, poly, x_height: float):
        """A sign plate under a word: the polygon grown by less than the word gap, filled, with a border."""
        height, width = image.shape[:2]
        margin = max(1, int(0.8 * word_gap(x_height)))
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
