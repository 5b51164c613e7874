"""Words as ink masks: the text (from the word list, or random characters), the font (Hershey or TrueType) and its
size for a wanted x-height, handwriting jitter, and the mask with its margin (``word_margin``)."""

from __future__ import annotations

import math

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .presets import CHARSET, WORDS

__all__ = ['WordRenderer', 'word_margin']


def word_margin(x_height: float) -> int:
    """The margin of a word's polygon around its ink, in pixels."""
    return max(2, int(round(0.2 * x_height)))


class WordRenderer:
    """Renders one word: ``render(rng, font, x_height, handwriting)`` -> (uint8 ink mask in the word's own frame, its
    text, its baseline). ``font`` is ``('hershey', face)`` or ``('truetype', path)``; the fonts' x-heights and loaded
    TrueType faces are kept."""

    def __init__(self):
        self._pil_fonts = {}
        self._x_heights = {}

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

    def render(self, rng, font, x_height: float, handwriting: bool):
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
        pad = word_margin(x_height)
        top, bottom = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])
        left, right = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])
        baseline = (mask.shape[0] - 2 * cap) / 2 + cap * 1.4 - top  # _draw_text's baseline, in the cropped mask
        return np.ascontiguousarray(mask[top:bottom, left:right]), text, baseline
