"""The shrunk text map (gt) and the training mask."""

import cv2
import numpy as np

from .data_process import DataProcess
from .geometry import offset_distance, offset_polygon, signed_area


class MakeSegDetectionData(DataProcess):
    """Draws the probability-map target: each text polygon shrunk by D = A (1 - r^2) / L.

    Reads ``image`` (H x W x C), ``polygons`` (list of (K, 2) float arrays), ``ignore_tags`` (N bools),
    ``is_training`` and ``filename``. Writes ``gt`` float32 (1, H, W) with 1 inside the shrunk
    polygons, ``mask`` float32 (H, W) with 0 over don't-care text, and the updated ``polygons`` and
    ``ignore_tags``.

    As in the original: in training the polygons are first clipped to the image, a polygon of
    |area| < 1 is marked don't care and the point order is normalised; a polygon whose bounding box
    is thinner than ``min_text_size``, or that vanishes when shrunk, is marked don't care and masked
    out. Only the first piece of a shrink that splits is drawn. Marking also happens in validation
    (the original's evaluation therefore treats text under ``min_text_size`` as don't care).
    Beyond the original: polygons with fewer than 3 points or no area are don't care instead of
    crashing, in validation too.
    """

    def __init__(self, min_text_size=8, shrink_ratio=0.4):
        self.min_text_size = min_text_size
        self.shrink_ratio = shrink_ratio

    def process(self, data):
        image = data['image']
        h, w = image.shape[:2]
        polygons = [np.asarray(polygon, dtype=np.float32).reshape(-1, 2) for polygon in data['polygons']]
        ignore_tags = np.array(data['ignore_tags'], dtype=bool).reshape(-1)
        if len(polygons) != len(ignore_tags):
            raise ValueError(
                f'MakeSegDetectionData: {len(polygons)} polygons but {len(ignore_tags)} '
                f"ignore_tags in sample '{data.get('filename', '')}'; they must match."
            )
        if data['is_training']:
            polygons, ignore_tags = self.validate_polygons(polygons, ignore_tags, h, w)

        gt = np.zeros((1, h, w), dtype=np.float32)
        mask = np.ones((h, w), dtype=np.float32)
        for i, polygon in enumerate(polygons):
            if ignore_tags[i] or not self.is_drawable(polygon):
                ignore_tags[i] = True
                self.mask_out(mask, polygon)
                continue
            distance = offset_distance(polygon, self.shrink_ratio)
            shrunk = offset_polygon(polygon, -distance) if distance > 0 else []
            if not shrunk:
                ignore_tags[i] = True
                self.mask_out(mask, polygon)
                continue
            cv2.fillPoly(gt[0], [shrunk[0].astype(np.int32)], 1)

        data.update(polygons=polygons, ignore_tags=ignore_tags, gt=gt, mask=mask, filename=data.get('filename') or '')
        return data

    def is_drawable(self, polygon):
        """A polygon gets a text target when it has 3+ points and is at least min_text_size across."""
        if polygon.shape[0] < 3:
            return False
        (x0, y0), (x1, y1) = polygon.min(axis=0).tolist(), polygon.max(axis=0).tolist()
        return min(x1 - x0, y1 - y0) >= self.min_text_size

    @staticmethod
    def mask_out(mask, polygon):
        if polygon.shape[0] > 0:
            cv2.fillPoly(mask, [polygon.astype(np.int32)], 0)

    @staticmethod
    def validate_polygons(polygons, ignore_tags, h, w):
        """Clips the polygons to the image, ignores |area| < 1, orders points as the original."""
        validated = []
        for i, polygon in enumerate(polygons):
            polygon = np.minimum(np.maximum(polygon, 0), np.array([w - 1, h - 1], dtype=polygon.dtype))
            area = signed_area(polygon) if polygon.shape[0] else 0.0
            if abs(area) < 1:
                ignore_tags[i] = True
            if area > 0:
                polygon = polygon[::-1].copy()
            validated.append(polygon)
        return validated, ignore_tags
