"""Geometric / colour augmentation of an image and its text polygons (OpenCV + numpy)."""

import math

import cv2
import numpy as np

from .data_process import DataProcess


def _range(value, name):
    """A YAML scalar or [low, high] as a (low, high) float pair."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ValueError(f"augmenter_args: '{name}' must be a number or [low, high], not {value!r}.")


def apply_matrix(points, matrix):
    """(K, 2) points through the affine part of a 3 x 3 (or 2 x 3) matrix."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]


class Flip:
    """Mirrors along ``axis`` (1: left-right, 0: top-bottom) with probability ``p``; a point
    coordinate c on that axis goes to (size - 1) - c.

    Like every geometric augmenter: ``sample(h, w)`` makes the random draws and returns (3 x 3 matrix on
    pixel coordinates, (h, w) of the output); ``move(polygons, matrix)`` moves the polygons with it;
    calling it does both and transforms the image (what AugmentCropData composes into one warp).
    """

    axis = 1

    def __init__(self, p=1.0):
        self.p = float(p)

    def sample(self, h, w):
        matrix = np.eye(3)
        if np.random.random() < self.p:
            column = 1 - self.axis  # x is column 0 of a polygon and axis 1 of an image
            matrix[column, column] = -1.0
            matrix[column, 2] = (h, w)[self.axis] - 1
        return matrix, (h, w)

    def move(self, polygons, matrix):
        column = 1 - self.axis
        if matrix[column, column] == 1.0:
            return polygons
        flipped = []
        for polygon in polygons:
            polygon = polygon.copy()
            polygon[:, column] = matrix[column, 2] - polygon[:, column]
            flipped.append(polygon)
        return flipped

    def __call__(self, image, polygons):
        matrix, _ = self.sample(*image.shape[:2])
        if matrix[1 - self.axis, 1 - self.axis] == 1.0:
            return image, polygons
        return cv2.flip(image, self.axis), self.move(polygons, matrix)  # OpenCV's flip code = axis


class Fliplr(Flip):
    """Mirrors left-right with probability ``p``; a point x goes to (W - 1) - x."""

    axis = 1


class Flipud(Flip):
    """Mirrors top-bottom with probability ``p``; a point y goes to (H - 1) - y."""

    axis = 0


class Affine:
    """Rotates (degrees, clockwise on screen as imgaug) and scales about the image centre, same size.

    ``rotate`` and ``scale`` are numbers or [low, high] ranges drawn uniformly. Bilinear
    interpolation, zero border; the polygons go through the same matrix. ``sample`` / ``move``: see Flip.
    """

    def __init__(self, rotate=0.0, scale=1.0):
        self.rotate = _range(rotate, 'rotate')
        self.scale = _range(scale, 'scale')

    def sample(self, h, w):
        angle = np.random.uniform(*self.rotate)
        scale = np.random.uniform(*self.scale)
        matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), -angle, scale)
        return np.vstack([matrix, [0.0, 0.0, 1.0]]), (h, w)

    def move(self, polygons, matrix):
        return [apply_matrix(p, matrix) for p in polygons]

    def __call__(self, image, polygons):
        h, w = image.shape[:2]
        matrix, _ = self.sample(h, w)
        image = cv2.warpAffine(
            image, matrix[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        return image, self.move(polygons, matrix)


INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'linear': cv2.INTER_LINEAR,
    'area': cv2.INTER_AREA,
    'cubic': cv2.INTER_CUBIC,
}


class Resize:
    """Resizes the image: ``size`` is a factor, a [low, high] factor range (one factor for both
    sides) or {'width': W, 'height': H}. Polygons follow OpenCV's pixel-centre mapping
    x' = (x + 0.5) * W' / W - 0.5. ``interpolation`` (nearest, linear, area, cubic) defaults to cubic,
    imgaug's default. ``sample`` / ``move``: see Flip."""

    def __init__(self, size, interpolation='cubic'):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f'augmenter_args: Resize interpolation must be one of '
                f'{", ".join(INTERPOLATIONS)}, not {interpolation!r}.'
            )
        self.interpolation = INTERPOLATIONS[interpolation]
        if isinstance(size, dict):
            if set(size) != {'width', 'height'}:
                raise ValueError(
                    f"augmenter_args: Resize size dict needs exactly 'width' and 'height', got {sorted(size)}."
                )
            self.fixed = (int(size['width']), int(size['height']))
        else:
            self.fixed = None
            self.factor = _range(size, 'Resize size')

    def target_size(self, h, w):
        if self.fixed is not None:
            return self.fixed
        factor = np.random.uniform(*self.factor)
        return max(1, int(round(w * factor))), max(1, int(round(h * factor)))

    def sample(self, h, w):
        new_w, new_h = self.target_size(h, w)
        fx, fy = new_w / w, new_h / h
        matrix = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
        return matrix, (new_h, new_w)

    def move(self, polygons, matrix):
        factor = np.array([matrix[0, 0], matrix[1, 1]])
        return [(p + 0.5) * factor - 0.5 for p in polygons]

    def __call__(self, image, polygons):
        matrix, (new_h, new_w) = self.sample(*image.shape[:2])
        image = cv2.resize(image, (new_w, new_h), interpolation=self.interpolation)
        return image, self.move(polygons, matrix)


class ColorJitter:
    """Random brightness / contrast / saturation factors drawn from [1 - x, 1 + x]; no geometry.

    Not in the original (an option): add ``{'cls': 'ColorJitter', 'brightness': 0.2, ...}``.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0):
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, image, polygons):
        dtype = image.dtype
        out = image.astype(np.float32)
        if self.brightness:
            out *= np.random.uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            mean = out.mean()
            out = (out - mean) * np.random.uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation and out.ndim == 3 and out.shape[2] == 3:
            gray = out @ np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR luma
            out = (out - gray[..., None]) * np.random.uniform(1 - self.saturation, 1 + self.saturation) + gray[
                ..., None
            ]
        if np.issubdtype(dtype, np.integer):
            out = np.rint(out)
        return np.clip(out, 0, 255).astype(dtype), polygons  # 8-bit values, float32 images included


AUGMENTERS = {cls.__name__: cls for cls in (Fliplr, Flipud, Affine, Resize, ColorJitter)}


class OpenCVAugmenter:
    """A sequence of augmenters built from the original's ``augmenter_args`` list.

    Each entry is ``[Name, *args]`` or ``{'cls': Name, **kwargs}`` with Name one of Fliplr, Flipud,
    Affine, Resize (the imgaug names the original's YAML files use) or ColorJitter. Calling it with
    (image, list of (K, 2) float arrays) applies the entries in order and returns both transformed.
    """

    def __init__(self, augmenter_args):
        self.augmenters = [self.build(entry) for entry in augmenter_args]

    @staticmethod
    def build(entry):
        if isinstance(entry, dict):
            kwargs = dict(entry)
            name, args = kwargs.pop('cls', None), []
        elif isinstance(entry, (list, tuple)) and entry:
            name, args, kwargs = entry[0], list(entry[1:]), {}
        else:
            raise ValueError(f"augmenter_args: entry {entry!r} must be [Name, args...] or {{'cls': Name, ...}}.")
        if name not in AUGMENTERS:
            raise ValueError(f'augmenter_args: unknown augmenter {name!r}; available: {", ".join(AUGMENTERS)}.')
        try:
            return AUGMENTERS[name](*args, **kwargs)
        except TypeError as error:
            raise ValueError(f'augmenter_args: bad arguments for {name}: {error}.') from error

    def __call__(self, image, polygons):
        for augmenter in self.augmenters:
            image, polygons = augmenter(image, polygons)
        return image, polygons


class AugmentDetectionData(DataProcess):
    """Augments the image and moves the text polygons with it.

    Reads ``image`` (H x W x C, float32 from ``read_image``; another dtype is converted to float32 first, as
    the original's reader does) and ``lines`` (list of {'poly', 'text'}). Writes ``image`` (float32),
    ``polys`` (list of {'points': (K, 2) float array, 'ignore': text == '###', 'text'}), ``shape``
    (h, w) of the image before augmentation, ``filename`` and ``is_training`` (= not only_resize).

    Training (``only_resize=False``): ``augmenter_args`` as in the original (see OpenCVAugmenter),
    applied in order; the polygons follow every transform. Validation (``only_resize=True``): the
    image is resized by the first entry, ``['Resize', {'width': W, 'height': H}]``; with
    ``keep_ratio`` the height is H and the width W' = ceil(w * H / h / 32) * 32. As in the original,
    the polygons are then NOT moved: they stay in the original image's coordinates, which is what
    evaluation compares against (the predictions are mapped back with ``shape``).
    """

    def __init__(self, augmenter_args=[], keep_ratio=False, only_resize=False):
        self.augmenter_args = list(augmenter_args)
        self.keep_ratio = keep_ratio
        self.only_resize = only_resize
        self.augmenter = OpenCVAugmenter(self.augmenter_args)
        if only_resize:
            first = self.augmenter.augmenters[0] if self.augmenter.augmenters else None
            if not isinstance(first, Resize) or first.fixed is None:
                raise ValueError(
                    'AugmentDetectionData: only_resize needs augmenter_args to start with '
                    "['Resize', {'width': W, 'height': H}]."
                )

    def resize_shape(self, h, w):
        """(width, height) of the validation image."""
        width, height = self.augmenter.augmenters[0].fixed
        if self.keep_ratio:
            width = int(math.ceil(w * height / h / 32) * 32)
        return width, height

    def process(self, data):
        image = np.asarray(data['image'], dtype=np.float32)  # as the original: every resize on the float image
        polygons = self.polygons(data['lines'])
        if self.only_resize:
            data['image'] = cv2.resize(image, self.resize_shape(*image.shape[:2]))
        elif self.augmenter.augmenters:
            data['image'], polygons = self.augmenter(image, polygons)
        return self.annotate(data, polygons, image.shape[:2], is_training=not self.only_resize)

    @staticmethod
    def polygons(lines):
        """The (K, 2) float64 points of every annotation line."""
        return [np.asarray(line['poly'], dtype=np.float64).reshape(-1, 2) for line in lines]

    @staticmethod
    def annotate(data, polygons, shape, is_training):
        """Writes ``polys`` (the moved ``polygons`` with the lines' texts), ``filename``, ``shape`` (h, w of the
        image before augmentation) and ``is_training`` into ``data``; returns it."""
        data['polys'] = [
            {'points': points, 'ignore': line['text'] == '###', 'text': line['text']}
            for points, line in zip(polygons, data['lines'])
        ]
        data['filename'] = data.get('filename', data.get('data_id', ''))
        data['shape'] = tuple(shape)
        data['is_training'] = is_training
        return data
