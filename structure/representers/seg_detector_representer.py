"""DBNet post-processing: probability map -> text boxes / polygons with scores, in original image pixels.

The module needs only numpy, OpenCV, shapely and pyclipper (no torch), so the ONNX Runtime path can call
`SegDetectorRepresenter.represent_map` directly; `represent` accepts torch tensors by duck typing.
"""
import cv2
import numpy as np
import pyclipper
import shapely


def _to_numpy(value):
    """A torch tensor (any device) or array-like -> numpy array, without importing torch."""
    if hasattr(value, 'detach'):
        value = value.detach()
    if hasattr(value, 'cpu'):
        value = value.cpu()
    return np.asarray(value)


class SegDetectorRepresenter:
    """Turns DB probability maps into boxes (box mode) or polygons (polygon mode), as the original does.

    Arguments (names and defaults of the original): thresh=0.3 (binarisation of the probability map),
    box_thresh=0.7 (minimum score; the experiments pass it on the command line), max_candidates=100 (only
    the first max_candidates contours, in findContours order, are examined; the experiments use 1000),
    dest='binary' (key of the prediction dict to read), min_size=3 (boxes whose short side is below it are
    dropped before unclipping, below min_size + 2 after), cmd=None (the original's command-line dict: its
    'thresh', 'box_thresh', 'dest', 'debug' entries override the arguments).
    Extensions, whose defaults reproduce the original: unclip_ratio=1.5 (box mode), polygon_unclip_ratio=2.0
    (polygon mode), score_mode='fast' (mean probability over the box / polygon, the original) or 'slow'
    (mean over the contour itself, better for curved text), use_dilation=False (dilate the bitmap with a
    2x2 kernel before finding contours), epsilon_ratio=0.002 (approxPolyDP tolerance / perimeter, polygon
    mode).

    represent(batch, pred, is_output_polygon=False) -> (boxes_batch, scores_batch):
        pred: probability map (N, 1, H, W) tensor/array, or a dict holding `dest`;
        batch['shape'][i]: (h, w) of image i before resizing. For each image, boxes is a list of int32
        (K, 2) arrays (K = 4, clockwise from top-left, in box mode) in original-image pixels, rounded and
        clipped to [0, w] x [0, h]; scores a list of floats. Unlike the original, dropped candidates are
        not returned as zero rows (the original's measurer filtered those rows out by score anyway).
    represent_map(probability, original_size, is_output_polygon=False): the same for one (H, W) numpy map.
    """

    def __init__(self, thresh=0.3, box_thresh=0.7, max_candidates=100, dest='binary', min_size=3,
                 unclip_ratio=1.5, polygon_unclip_ratio=2.0, score_mode='fast', use_dilation=False,
                 epsilon_ratio=0.002, cmd=None):
        if score_mode not in ('fast', 'slow'):
            raise ValueError(f"SegDetectorRepresenter: score_mode must be 'fast' or 'slow', not {score_mode!r}.")
        self.thresh = thresh
        self.box_thresh = box_thresh
        self.max_candidates = max_candidates
        self.dest = dest
        self.min_size = min_size
        self.unclip_ratio = unclip_ratio
        self.polygon_unclip_ratio = polygon_unclip_ratio
        self.score_mode = score_mode
        self.use_dilation = use_dilation
        self.epsilon_ratio = epsilon_ratio
        self.debug = False
        for key in ('thresh', 'box_thresh', 'dest', 'debug'):
            if cmd is not None and key in cmd and cmd[key] is not None:
                setattr(self, key, cmd[key])

    # ------------------------------------------------------------------ entry points
    def represent(self, batch, pred, is_output_polygon=False):
        if isinstance(pred, dict):
            if self.dest not in pred:
                raise KeyError(f"SegDetectorRepresenter: the prediction dict has no '{self.dest}' "
                               f"(dest); it has {sorted(pred)}.")
            pred = pred[self.dest]
        pred = _to_numpy(pred)
        if pred.ndim != 4 or pred.shape[1] != 1:
            raise ValueError(f"SegDetectorRepresenter: expected a probability map of shape (N, 1, H, W), "
                             f"got {tuple(pred.shape)}.")
        if 'shape' not in batch:
            raise KeyError("SegDetectorRepresenter: batch['shape'] (each image's original (h, w)) is missing.")
        boxes_batch, scores_batch = [], []
        for index in range(pred.shape[0]):
            boxes, scores = self.represent_map(pred[index, 0], batch['shape'][index], is_output_polygon)
            boxes_batch.append(boxes)
            scores_batch.append(scores)
        return boxes_batch, scores_batch

    def represent_map(self, probability, original_size, is_output_polygon=False):
        """One (H, W) probability map and the original (h, w) -> (list of int32 (K, 2) arrays, list of floats)."""
        probability = np.asarray(probability, dtype=np.float32)
        dest_height, dest_width = (int(_to_numpy(v)) for v in original_size)
        bitmap = self.binarize(probability)
        if is_output_polygon:
            return self.polygons_from_bitmap(probability, bitmap, dest_width, dest_height)
        return self.boxes_from_bitmap(probability, bitmap, dest_width, dest_height)

    def binarize(self, probability):
        """(H, W) probability -> uint8 bitmap (1 where probability > thresh), dilated if use_dilation."""
        bitmap = (probability > self.thresh).astype(np.uint8)
        if self.use_dilation:
            bitmap = cv2.dilate(bitmap, np.ones((2, 2), dtype=np.uint8))
        return bitmap

    def find_contours(self, bitmap):
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        return contours[:self.max_candidates]

    # ------------------------------------------------------------------ box mode
    def boxes_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        """Box mode: minAreaRect per contour, score, unclip, minAreaRect again, scale to the original size."""
        height, width = bitmap.shape
        candidates, scores = [], []
        for contour in self.find_contours(bitmap):
            points, short_side = self.get_mini_boxes(contour)
            if short_side < self.min_size:
                continue
            score = self.score(pred, points, contour)
            if self.box_thresh > score:
                continue
            candidates.append(points)
            scores.append(score)
        if not candidates:
            return [], []
        # all unclip distances in one vectorised shapely call (same GEOS area / length as one by one)
        distances = self.unclip_distances(candidates, self.unclip_ratio)
        boxes, kept_scores = [], []
        for points, distance, score in zip(candidates, distances, scores):
            expanded = self.offset(points, distance)
            if len(expanded) == 0:
                continue
            box, short_side = self.get_mini_boxes(np.asarray(expanded).reshape(-1, 1, 2))
            if short_side < self.min_size + 2:
                continue
            boxes.append(self.to_original(box, width, height, dest_width, dest_height))
            kept_scores.append(score)
        return boxes, kept_scores

    # ------------------------------------------------------------------ polygon mode
    def polygons_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        """Polygon mode: approxPolyDP per contour (>= 4 points), score, unclip (a single polygon), min size."""
        height, width = bitmap.shape
        candidates, scores = [], []
        for contour in self.find_contours(bitmap):
            epsilon = self.epsilon_ratio * cv2.arcLength(contour, True)
            points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
            if points.shape[0] < 4:
                continue
            score = self.score(pred, points, contour)
            if self.box_thresh > score:
                continue
            candidates.append(points)
            scores.append(score)
        if not candidates:
            return [], []
        distances = self.unclip_distances(candidates, self.polygon_unclip_ratio)
        polygons, kept_scores = [], []
        for points, distance, score in zip(candidates, distances, scores):
            expanded = self.offset(points, distance)
            if len(expanded) != 1:
                continue
            polygon = np.asarray(expanded[0]).reshape(-1, 2)
            _, short_side = self.get_mini_boxes(polygon.reshape(-1, 1, 2))
            if short_side < self.min_size + 2:
                continue
            polygons.append(self.to_original(polygon.astype(np.float64), width, height, dest_width, dest_height))
            kept_scores.append(score)
        return polygons, kept_scores

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def to_original(points, width, height, dest_width, dest_height):
        """Scale map coordinates to the original image, round, clip to [0, w] x [0, h]; int32 (K, 2).

        The arithmetic stays in the points' dtype (float32 in box mode), as in the original."""
        dtype = points.dtype
        scaled = points / np.array([width, height], dtype=dtype) * np.array([dest_width, dest_height], dtype=dtype)
        return np.clip(np.round(scaled), 0, np.array([dest_width, dest_height], dtype=dtype)).astype(np.int32)

    @staticmethod
    def unclip_distances(point_sets, unclip_ratio):
        """Offset distance A * ratio / L of each polygon, computed for all of them in one shapely call."""
        counts = [len(p) for p in point_sets]
        coords = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in point_sets])
        rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(point_sets)), counts))
        polygons = shapely.polygons(rings)
        return shapely.area(polygons) * unclip_ratio / shapely.length(polygons)

    @staticmethod
    def offset(points, distance):
        """Grow a polygon by `distance` with pyclipper (JT_ROUND, closed polygon); list of paths."""
        offsetter = pyclipper.PyclipperOffset()
        offsetter.AddPath(points, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        return offsetter.Execute(distance)

    def unclip(self, points, unclip_ratio=1.5):
        """The original's unclip for one polygon: offset by area * unclip_ratio / perimeter."""
        return self.offset(points, float(self.unclip_distances([points], unclip_ratio)[0]))

    @staticmethod
    def get_mini_boxes(contour):
        """minAreaRect of a contour -> (float32 (4, 2) corners clockwise from top-left, short side)."""
        rect = cv2.minAreaRect(contour)
        points = cv2.boxPoints(rect)
        xs, ys = points[:, 0].tolist(), points[:, 1].tolist()
        order = sorted(range(4), key=xs.__getitem__)  # stable, as the original's sort by x
        top_left, bottom_left = (order[0], order[1]) if ys[order[1]] > ys[order[0]] else (order[1], order[0])
        top_right, bottom_right = (order[2], order[3]) if ys[order[3]] > ys[order[2]] else (order[3], order[2])
        box = points[[top_left, top_right, bottom_right, bottom_left]]
        return box, min(rect[1])

    def score(self, pred, points, contour):
        if self.score_mode == 'fast':
            return self.box_score_fast(pred, points)
        return self.box_score_slow(pred, contour)

    @staticmethod
    def box_score_fast(bitmap, box):
        """Mean of `bitmap` inside the polygon `box` (filled at integer coordinates) over its bounding box."""
        h, w = bitmap.shape[:2]
        box = np.asarray(box)
        low = np.floor(box.min(axis=0)).tolist()
        high = np.ceil(box.max(axis=0)).tolist()
        xmin, ymin = min(max(int(low[0]), 0), w - 1), min(max(int(low[1]), 0), h - 1)
        xmax, ymax = min(max(int(high[0]), 0), w - 1), min(max(int(high[1]), 0), h - 1)
        mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
        shifted = box - np.array([xmin, ymin], dtype=box.dtype)
        cv2.fillPoly(mask, shifted.reshape(1, -1, 2).astype(np.int32), 1)
        return cv2.mean(bitmap[ymin:ymax + 1, xmin:xmax + 1], mask)[0]

    @classmethod
    def box_score_slow(cls, bitmap, contour):
        """Mean of `bitmap` inside the contour itself (score_mode='slow')."""
        return cls.box_score_fast(bitmap, np.asarray(contour).reshape(-1, 2).astype(np.float32))
