"""DBNet post-processing: probability map -> text boxes / polygons with scores, in original image pixels.

The module needs only numpy, OpenCV, shapely and pyclipper (no torch), so the ONNX Runtime path can call
`SegDetectorRepresenter.represent_map` directly; `represent` accepts torch tensors by duck typing.
"""

import itertools

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
    'thresh', 'box_thresh' and 'dest' entries override the arguments).
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

    def __init__(
        self,
        thresh=0.3,
        box_thresh=0.7,
        max_candidates=100,
        dest='binary',
        min_size=3,
        unclip_ratio=1.5,
        polygon_unclip_ratio=2.0,
        score_mode='fast',
        use_dilation=False,
        epsilon_ratio=0.002,
        cmd=None,
    ):
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
        for key in ('thresh', 'box_thresh', 'dest'):
            if cmd is not None and key in cmd and cmd[key] is not None:
                setattr(self, key, cmd[key])

    # ------------------------------------------------------------------ entry points
    def represent(self, batch, pred, is_output_polygon=False):
        if isinstance(pred, dict):
            if self.dest not in pred:
                raise KeyError(
                    f"SegDetectorRepresenter: the prediction dict has no '{self.dest}' (dest); it has {sorted(pred)}."
                )
            pred = pred[self.dest]
        pred = _to_numpy(pred)
        if pred.ndim != 4 or pred.shape[1] != 1:
            raise ValueError(
                f'SegDetectorRepresenter: expected a probability map of shape (N, 1, H, W), got {tuple(pred.shape)}.'
            )
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
        return contours[: self.max_candidates]

    # ------------------------------------------------------------------ box mode
    def boxes_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        """Box mode: minAreaRect per contour, score, unclip, minAreaRect again, scale to the original size.

        The original's per-contour steps, with the per-box arithmetic (corner ordering, crop bounds,
        scaling) done for all boxes at once; the result is identical."""
        height, width = bitmap.shape
        contours = self.find_contours(bitmap)
        rects = [cv2.minAreaRect(contour) for contour in contours]
        large = [index for index, rect in enumerate(rects) if min(rect[1]) >= self.min_size]
        if not large:
            return [], []
        boxes = self.order_corners(np.stack([cv2.boxPoints(rects[index]) for index in large]))
        scores = self.region_scores(
            pred, boxes if self.score_mode == 'fast' else [self.contour_points(contours[index]) for index in large]
        )
        passed = [index for index, score in enumerate(scores) if not self.box_thresh > score]
        if not passed:
            return [], []
        candidates = boxes[passed]
        distances = self.unclip_distances(candidates, self.unclip_ratio)
        expanded_rects, kept = [], []
        for position, (points, distance) in enumerate(zip(candidates.tolist(), distances)):
            expanded = self.offset(points, distance)
            if len(expanded) == 0:
                continue
            rect = cv2.minAreaRect(np.asarray(expanded).reshape(-1, 1, 2))
            if min(rect[1]) < self.min_size + 2:
                continue
            expanded_rects.append(rect)
            kept.append(passed[position])
        if not kept:
            return [], []
        corners = self.order_corners(np.stack([cv2.boxPoints(rect) for rect in expanded_rects]))
        boxes = self.to_original(corners, width, height, dest_width, dest_height)
        return list(boxes), [scores[index] for index in kept]

    # ------------------------------------------------------------------ polygon mode
    def polygons_from_bitmap(self, pred, bitmap, dest_width, dest_height):
        """Polygon mode: approxPolyDP per contour (>= 4 points), score, unclip (a single polygon), min size."""
        height, width = bitmap.shape
        contours, candidates = [], []
        for contour in self.find_contours(bitmap):
            epsilon = self.epsilon_ratio * cv2.arcLength(contour, True)
            points = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2)
            if points.shape[0] >= 4:
                contours.append(contour)
                candidates.append(points)
        if not candidates:
            return [], []
        scores = self.region_scores(
            pred, candidates if self.score_mode == 'fast' else [self.contour_points(contour) for contour in contours]
        )
        passed = [index for index, score in enumerate(scores) if not self.box_thresh > score]
        if not passed:
            return [], []
        passed_points = [candidates[index] for index in passed]
        distances = self.unclip_distances(passed_points, self.polygon_unclip_ratio)
        polygons, kept = [], []
        # pyclipper reads Python lists far faster than numpy arrays (same integers)
        for index, points, distance in zip(passed, self.as_lists(passed_points), distances):
            expanded = self.offset(points, distance)
            if len(expanded) != 1:
                continue
            polygon = self.path_array(expanded[0])
            if min(cv2.minAreaRect(polygon.reshape(-1, 1, 2))[1]) < self.min_size + 2:
                continue
            polygons.append(polygon)
            kept.append(index)
        if not kept:
            return [], []
        counts = np.cumsum([len(polygon) for polygon in polygons])[:-1]
        scaled = self.to_original(np.concatenate(polygons).astype(np.float64), width, height, dest_width, dest_height)
        return np.split(scaled, counts), [scores[index] for index in kept]

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def to_original(points, width, height, dest_width, dest_height):
        """Scale map coordinates (..., 2) to the original image, round, clip to [0, w] x [0, h]; int32.

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

    @staticmethod
    def as_lists(point_arrays):
        """(K_i, 2) arrays -> nested Python lists of the same numbers (one tolist call for all)."""
        flat = np.concatenate(point_arrays).tolist()
        ends = np.cumsum([len(points) for points in point_arrays]).tolist()
        return [flat[start:end] for start, end in zip([0] + ends[:-1], ends)]

    @staticmethod
    def path_array(path):
        """One pyclipper path (list of [x, y] ints) as an int64 (K, 2) array (as np.array(path) gives)."""
        return np.fromiter(itertools.chain.from_iterable(path), dtype=np.int64, count=2 * len(path)).reshape(-1, 2)

    def unclip(self, points, unclip_ratio=1.5):
        """The original's unclip for one polygon: offset by area * unclip_ratio / perimeter."""
        return self.offset(points, float(self.unclip_distances([points], unclip_ratio)[0]))

    @staticmethod
    def order_corners(corners):
        """(N, 4, 2) boxPoints -> the same corners as top-left, top-right, bottom-right, bottom-left.

        The original's rule: a stable sort by x; of the two leftmost the one with the larger y is bottom-left
        (the first on a tie), likewise on the right."""
        by_x = np.take_along_axis(corners, np.argsort(corners[:, :, 0], axis=1, kind='stable')[:, :, None], axis=1)
        left_swap = ~(by_x[:, 1, 1] > by_x[:, 0, 1])[:, None]
        right_swap = ~(by_x[:, 3, 1] > by_x[:, 2, 1])[:, None]
        top_left = np.where(left_swap, by_x[:, 1], by_x[:, 0])
        bottom_left = np.where(left_swap, by_x[:, 0], by_x[:, 1])
        top_right = np.where(right_swap, by_x[:, 3], by_x[:, 2])
        bottom_right = np.where(right_swap, by_x[:, 2], by_x[:, 3])
        return np.stack([top_left, top_right, bottom_right, bottom_left], axis=1)

    @staticmethod
    def contour_points(contour):
        """An OpenCV contour as float32 (K, 2) points (the region of score_mode='slow')."""
        return np.asarray(contour).reshape(-1, 2).astype(np.float32)

    @staticmethod
    def region_scores(bitmap, regions):
        """Mean of `bitmap` inside each polygon of `regions` (filled at integer coordinates), over its
        bounding box clipped to the map: list of floats. regions: a (N, K, 2) array or a list of (K_i, 2)
        arrays; each is filled after shifting by its (floored, clipped) top-left corner in its own dtype
        and truncating to int32, as the original's box_score_fast does."""
        h, w = bitmap.shape[:2]
        if isinstance(regions, np.ndarray):
            lows, highs = np.floor(regions.min(axis=1)), np.ceil(regions.max(axis=1))
        else:  # one reduction over all points, split at each region's start
            starts = np.cumsum([0] + [len(region) for region in regions[:-1]])
            points = np.concatenate(regions)
            lows = np.floor(np.minimum.reduceat(points, starts, axis=0))
            highs = np.ceil(np.maximum.reduceat(points, starts, axis=0))
        low = np.clip(lows.astype(np.int64), 0, [w - 1, h - 1])
        high = np.clip(highs.astype(np.int64), 0, [w - 1, h - 1])
        scores = []
        for region, (xmin, ymin), (xmax, ymax) in zip(regions, low.tolist(), high.tolist()):
            mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
            shifted = region - np.array([xmin, ymin], dtype=region.dtype)
            cv2.fillPoly(mask, shifted.reshape(1, -1, 2).astype(np.int32), 1)
            scores.append(cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0])
        return scores
