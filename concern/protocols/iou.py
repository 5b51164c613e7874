"""The original DBNet IoU protocol (ICDAR 2015 style) for arbitrary polygons."""

import numpy as np

from concern.protocols import polygons as P


class DetectionIoUEvaluator:
    """IoU protocol of the original release, for quadrilaterals and arbitrary polygons.

    Rules (docs/reference.md, "Post-processing and evaluation"): ground truth and detections that are invalid
    or self-intersecting, have fewer than 3 points or non-finite coordinates are skipped (listed in
    'invalid_gt' / 'invalid_det', counted nowhere); a detection whose intersection with a don't-care ground
    truth exceeds `area_precision_constraint` of its own area is don't care; then ground truth (in index order) is
    matched greedily, one-to-one, to the first free detection (in index order) with IoU > `iou_constraint`.

    evaluate_image(gt, pred):
        gt: list of {'points': (K, 2) array-like, 'ignore': bool}; pred: list of {'points': (K, 2)}.
        Returns the dict of `polygons.image_result`: 'pairs' [{'gt': [i], 'det': [j], 'type':
        'one-to-one', 'iou'}], 'misses', 'false_positives', 'gt_dont_care', 'det_dont_care', 'invalid_gt',
        'invalid_det' (indices into the inputs), 'gt_care', 'det_care', 'matched', 'recall_credit' =
        'precision_credit' = number matched, and the image's 'precision', 'recall', 'fmeasure'.
    combine_results(results) -> micro-averaged {'precision', 'recall', 'fmeasure', counts..., 'empty_gt'}.
    """

    def __init__(self, iou_constraint=0.5, area_precision_constraint=0.5):
        self.iou_constraint = iou_constraint
        self.area_precision_constraint = area_precision_constraint

    def prepare(self, gt, pred, exact=False):
        """Read the inputs and compute what the matching needs (shared with the TIoU protocol).

        exact=False clips convex pairs with numpy (`polygons.prepare_image` with the IoU threshold): the
        decisions are shapely's, intersection values may differ from shapely's in the last digits;
        exact=True intersects every candidate pair with shapely."""
        s = P.prepare_image(
            gt, pred, self.area_precision_constraint, iou_threshold=None if exact else self.iou_constraint
        )
        s['iou'] = P.iou_matrix(s['inter'], s['gt_areas'], s['det_areas'])
        return s

    def evaluate_image(self, gt, pred):
        s = self.prepare(gt, pred)
        pairs = self.match(s['iou'], s['gt_dc'], s['det_dc'])
        matches = [([g], [d], 'one-to-one', {'iou': float(s['iou'][g, d])}) for g, d in pairs]
        return P.image_result(
            matches,
            s['gt_kept'],
            s['det_kept'],
            s['gt_dc'],
            s['det_dc'],
            s['invalid_gt'],
            s['invalid_det'],
            len(pairs),
            len(pairs),
        )

    def match(self, iou, gt_dont_care, det_dont_care):
        """Greedy one-to-one matching in index order; returns [(gt_position, det_position)]."""
        num_gt, num_det = iou.shape
        det_free = np.ones(num_det, dtype=bool)
        det_free[list(det_dont_care)] = False
        above = iou > self.iou_constraint
        above[list(gt_dont_care)] = False
        above &= det_free[None, :]
        rows, cols = np.nonzero(above)  # row-major: each row's candidates in index order
        pairs = []
        for g, d in zip(rows.tolist(), cols.tolist()):
            if det_free[d] and (not pairs or pairs[-1][0] != g):
                det_free[d] = False
                pairs.append((g, d))
        return pairs

    def combine_results(self, results):
        return P.combine_image_results(results)
