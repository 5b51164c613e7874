"""Random crop that avoids cutting text, resized into a fixed-size padded canvas."""

import cv2
import numpy as np

from .data_process import DataProcess


class RandomCropData(DataProcess):
    """Crops a random region that cuts no cared-for text where possible, then fits it into ``size``.

    Reads ``image`` (H x W x C) and ``polys`` (list of {'points', 'ignore', 'text'}, from
    AugmentDetectionData). Writes ``image`` (size[1] x size[0] x C: the crop resized keeping its
    aspect ratio, placed at the top left, zero padded), ``polys`` moved into the new image (those
    wholly outside it dropped), ``scale_w`` / ``scale_h`` (the resize factor) and keeps ``lines``.

    The crop's sides are drawn (``max_tries`` times) among image columns / rows that no cared-for
    text box covers, from two different gaps when there are several; a crop must be at least
    ``min_crop_side_ratio`` of the image on each side and contain some text, else the whole image is
    used. ``size`` is (width, height). ``require_original_image=True`` keeps the uncropped image.
    Randomness comes from ``numpy.random`` (seeded per DataLoader worker by PyTorch).
    Beyond the original: text boxes reaching outside the image are clipped before marking the
    covered columns (the original's negative slice indices left them unmarked), and the polygons
    follow the resize with OpenCV's pixel-centre mapping.
    """

    def __init__(self, size=(640, 640), max_tries=50, min_crop_side_ratio=0.1, require_original_image=False):
        self.size = tuple(size)
        self.max_tries = max_tries
        self.min_crop_side_ratio = min_crop_side_ratio
        self.require_original_image = require_original_image

    def process(self, data):
        image = data['image']
        crop = self.crop_area(image.shape[:2], self.care_polygons(data['polys']))
        crop_x, crop_y, crop_w, crop_h = crop
        scale, w, h = self.fit(crop_w, crop_h)
        canvas = np.zeros((self.size[1], self.size[0]) + image.shape[2:], image.dtype)
        canvas[:h, :w] = cv2.resize(image[crop_y : crop_y + crop_h, crop_x : crop_x + crop_w], (w, h))
        data['polys'] = self.move_polys(data['polys'], crop)
        if not self.require_original_image:
            data['image'] = canvas
        data['scale_w'] = scale
        data['scale_h'] = scale
        return data

    @staticmethod
    def care_polygons(polys):
        """The (K, 2) float64 points of the cared-for ('ignore' False) entries of ``polys``."""
        return [np.asarray(line['points'], dtype=np.float64).reshape(-1, 2) for line in polys if not line['ignore']]

    def fit(self, crop_w, crop_h):
        """(scale, w, h): the crop is resized by ``scale`` (keeping its ratio) to w x h, inside ``size``."""
        scale = min(self.size[0] / crop_w, self.size[1] / crop_h)
        return scale, max(1, int(crop_w * scale)), max(1, int(crop_h * scale))

    def crop_matrix(self, crop):
        """3 x 3 matrix taking a pixel coordinate of the uncropped image into the canvas (what ``move_polys``
        does to the points): x' = (x - crop_x + 0.5) * w / crop_w - 0.5."""
        crop_x, crop_y, crop_w, crop_h = crop
        _, w, h = self.fit(crop_w, crop_h)
        fx, fy = w / crop_w, h / crop_h
        return np.array([[fx, 0.0, (0.5 - crop_x) * fx - 0.5], [0.0, fy, (0.5 - crop_y) * fy - 0.5], [0, 0, 1.0]])

    def move_polys(self, polys, crop):
        """``polys`` moved into the canvas for ``crop`` (x, y, width, height); those wholly outside it dropped."""
        crop_x, crop_y, crop_w, crop_h = crop
        _, w, h = self.fit(crop_w, crop_h)
        factor = np.array([w / crop_w, h / crop_h])
        lines = []
        for line in polys:
            points = np.asarray(line['points'], dtype=np.float64).reshape(-1, 2)
            points = (points - (crop_x, crop_y) + 0.5) * factor - 0.5
            if points.shape[0] and not self.is_poly_outside_rect(points, 0, 0, w, h):
                lines.append({**line, 'points': points})
        return lines

    @staticmethod
    def is_poly_outside_rect(poly, x, y, w, h):
        if poly[:, 0].max() < x or poly[:, 0].min() > x + w:
            return True
        return poly[:, 1].max() < y or poly[:, 1].min() > y + h

    @staticmethod
    def split_regions(axis):
        """Splits a sorted index array into runs of consecutive values (the last run is dropped,
        as in the original)."""
        breaks = np.nonzero(np.diff(axis) != 1)[0] + 1
        return np.split(axis, breaks)[:-1]

    @staticmethod
    def random_select(axis, max_size):
        values = np.random.choice(axis, size=2)
        low, high = np.clip(values.min(), 0, max_size - 1), np.clip(values.max(), 0, max_size - 1)
        return int(low), int(high)

    @staticmethod
    def region_wise_random_select(regions):
        picked = [int(np.random.choice(regions[index])) for index in np.random.choice(len(regions), 2)]
        return min(picked), max(picked)

    def crop_area(self, shape, polys):
        """(x, y, width, height) of the crop of an image of ``shape`` (h, w) holding the cared-for ``polys``
        (a list of (K, 2) arrays): the random draws need only the polygons and the size, no pixels."""
        h, w = shape
        covered_rows = np.zeros(h, dtype=bool)
        covered_cols = np.zeros(w, dtype=bool)
        for points in polys:
            if points.shape[0] == 0:
                continue
            points = np.round(points).astype(np.int64)
            minx, maxx = np.clip([points[:, 0].min(), points[:, 0].max()], 0, w)
            miny, maxy = np.clip([points[:, 1].min(), points[:, 1].max()], 0, h)
            covered_cols[minx:maxx] = True
            covered_rows[miny:maxy] = True
        h_axis = np.nonzero(~covered_rows)[0]
        w_axis = np.nonzero(~covered_cols)[0]
        if len(h_axis) == 0 or len(w_axis) == 0:
            return 0, 0, w, h

        h_regions = self.split_regions(h_axis)
        w_regions = self.split_regions(w_axis)
        for _ in range(self.max_tries):
            if len(w_regions) > 1:
                xmin, xmax = self.region_wise_random_select(w_regions)
            else:
                xmin, xmax = self.random_select(w_axis, w)
            if len(h_regions) > 1:
                ymin, ymax = self.region_wise_random_select(h_regions)
            else:
                ymin, ymax = self.random_select(h_axis, h)
            if xmax - xmin < self.min_crop_side_ratio * w or ymax - ymin < self.min_crop_side_ratio * h:
                continue
            if any(
                not self.is_poly_outside_rect(poly, xmin, ymin, xmax - xmin, ymax - ymin)
                for poly in polys
                if poly.shape[0]
            ):
                return xmin, ymin, xmax - xmin, ymax - ymin
        return 0, 0, w, h
