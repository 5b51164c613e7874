"""Turns the augmented annotations into the polygons / ignore_tags arrays the label makers read."""

import cv2
import numpy as np

from .data_process import DataProcess


class MakeICDARData(DataProcess):
    """Collects the text polygons and don't-care flags of a sample.

    Reads ``polys`` (list of {'points', 'ignore', 'text'}, written by AugmentDetectionData and
    RandomCropData) or, when no augmentation ran, ``lines`` (list of {'poly', 'text'}; '###' is
    don't care). Returns a new dict with exactly the original's keys: ``image``, ``polygons``
    (list of float32 (K, 2) arrays), ``ignore_tags`` (bool array), ``shape`` (int array (h, w);
    the image's own shape when AugmentDetectionData did not set it), ``filename`` and
    ``is_training``; any other key (``lines`` included) is dropped, as in the original, so that the
    default collate can batch what remains. ``debug=True`` draws the polygons
    on the image (red: cared for, blue: don't care). ``shrink_ratio`` is accepted for the original's
    YAML files and not used.
    """

    def __init__(self, shrink_ratio=0.4, debug=False):
        self.shrink_ratio = shrink_ratio
        self.debug = debug

    def process(self, data):
        if 'polys' in data:
            annotations = [(line['points'], line['ignore']) for line in data['polys']]
        else:
            annotations = [(line['poly'], line['text'] == '###') for line in data['lines']]
        polygons = [np.asarray(points, dtype=np.float32).reshape(-1, 2) for points, _ in annotations]
        ignore_tags = np.array([ignore for _, ignore in annotations], dtype=bool)
        if self.debug:
            self.draw_polygons(data['image'], polygons, ignore_tags)
        shape = data['shape'] if 'shape' in data else data['image'].shape[:2]
        return dict(
            image=data['image'],
            polygons=polygons,
            ignore_tags=ignore_tags,
            shape=np.array(shape),
            filename=data.get('filename', data.get('data_id', '')),
            is_training=data['is_training'],
        )

    @staticmethod
    def draw_polygons(image, polygons, ignore_tags):
        for polygon, ignore in zip(polygons, ignore_tags):
            color = (255, 0, 0) if ignore else (0, 0, 255)
            cv2.polylines(image, [polygon.astype(np.int32)], True, color, 1)
