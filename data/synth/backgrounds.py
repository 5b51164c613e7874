"""Backgrounds and what lies on them: paper, ruled paper, gradients, photos, textures, façades, packaging, and the
unlabelled distractor shapes and clutter drawn over them."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .presets import BACKGROUNDS, SKIMAGE_PHOTOS

__all__ = ['BackgroundPainter']


class BackgroundPainter:
    """Paints an ``image_size`` (height, width) background of a kind of ``BACKGROUNDS``: ``paint(rng, kind)`` ->
    HxWx3 uint8 BGR; ``add_distractor`` / ``add_clutter`` draw unlabelled shapes and marks onto an image in place.
    ``photo_sources``: ``resolve_photo_sources``'s list for the 'photo' kind (photos are read once and kept)."""

    def __init__(self, image_size: tuple, photo_sources: list):
        self.image_size = image_size
        self._photo_sources = photo_sources
        self._photos = {}

    # ----- backgrounds and distractors
    def paint(self, rng, kind: str) -> np.ndarray:
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

    def add_distractor(self, rng, image):
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

    def add_clutter(self, rng, image):
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
