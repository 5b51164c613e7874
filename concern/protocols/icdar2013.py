"""ICDAR 2013 DetEval protocol (Wolf & Jolion), as in the RRC Challenge 2 script, for polygons."""

import numpy as np

from concern.protocols import polygons as P


class DetectionICDAR2013Evaluator:
    """ICDAR 2013 DetEval: area recall (inter / |G|) and area precision (inter / |D|) matrices, then
    one-to-one, one-to-many (split) and many-to-one (merged) matches.

    Arguments (the RRC defaults): area_recall_constraint=0.8, area_precision_constraint=0.4 (also the
    don't-care threshold: a detection covering a don't-care region by more than it of its own area is
    don't care), ev_param_ind_center_diff_thr=1 (a one-to-one match also needs the centre distance, divided
    by the mean of both bounding-box diagonals, below it), mtype_oo_o=1.0 (one-to-one credit),
    mtype_om_o=0.8 (a split ground truth: recall credit 0.8, precision credit 0.8 per detection),
    mtype_om_m=1.0 (merged ground truth: recall credit 1.0 per ground truth, precision credit 1.0).
    Thresholds are '>='; split / merge sums are rounded to 4 decimals. Invalid polygons are skipped as in
    the IoU protocol ('invalid_gt' / 'invalid_det').

    evaluate_image(gt, pred) -> per-image dict (`polygons.image_result`); combine_results -> micro average.
    """

    def __init__(
        self,
        area_recall_constraint=0.8,
        area_precision_constraint=0.4,
        ev_param_ind_center_diff_thr=1,
        mtype_oo_o=1.0,
        mtype_om_o=0.8,
        mtype_om_m=1.0,
    ):
        self.area_recall_constraint = area_recall_constraint
        self.area_precision_constraint = area_precision_constraint
        self.ev_param_ind_center_diff_thr = ev_param_ind_center_diff_thr
        self.mtype_oo_o = mtype_oo_o
        self.mtype_om_o = mtype_om_o
        self.mtype_om_m = mtype_om_m

    def evaluate_image(self, gt, pred):
        s = P.prepare_image(gt, pred, self.area_precision_constraint)
        gt_polygons, det_polygons, inter = s['gt_polygons'], s['det_polygons'], s['inter']
        gt_areas, det_areas, gt_dc, det_dc = s['gt_areas'], s['det_areas'], s['gt_dc'], s['det_dc']
        with np.errstate(divide='ignore', invalid='ignore'):
            g_area, d_area = gt_areas[:, None], det_areas[None, :]
            recall = np.where(g_area > 0, inter / np.where(g_area > 0, g_area, 1.0), 0.0)
            precision = np.where(d_area > 0, inter / np.where(d_area > 0, d_area, 1.0), 0.0)
        gt_points = [np.asarray(p.exterior.coords)[:-1] for p in gt_polygons]
        det_points = [np.asarray(p.exterior.coords)[:-1] for p in det_polygons]
        matches, recall_credit, precision_credit = self.match(recall, precision, gt_points, det_points, gt_dc, det_dc)
        matches = [(gts, dets, kind, {}) for gts, dets, kind in matches]
        return P.image_result(
            matches,
            s['gt_kept'],
            s['det_kept'],
            gt_dc,
            det_dc,
            s['invalid_gt'],
            s['invalid_det'],
            recall_credit,
            precision_credit,
        )

    def centres_close(self, gt_points, det_points):
        def diagonal(points):
            extent = points.max(axis=0) - points.min(axis=0)
            return float(np.hypot(extent[0], extent[1]))

        distance = float(np.hypot(*(gt_points.mean(axis=0) - det_points.mean(axis=0))))
        scale = diagonal(gt_points) + diagonal(det_points)
        normalised = 2.0 * distance / scale if scale > 0 else np.inf
        return normalised < self.ev_param_ind_center_diff_thr

    def match(self, recall, precision, gt_points, det_points, gt_dc, det_dc):
        """One-to-one, then one-to-many, then many-to-one, in index order; returns
        (matches [(gt_positions, det_positions, type)], recall_credit, precision_credit)."""
        num_gt, num_det = recall.shape
        gt_dc, det_dc = set(gt_dc), set(det_dc)
        gt_flag = np.zeros(num_gt, dtype=bool)
        det_flag = np.zeros(num_det, dtype=bool)
        matches, recall_credit, precision_credit = [], 0.0, 0.0
        both = (recall >= self.area_recall_constraint) & (precision >= self.area_precision_constraint)
        row_counts, column_counts = both.sum(axis=1), both.sum(axis=0)
        for g, d in zip(*np.nonzero(both)):  # row-major: the original's loop order
            g, d = int(g), int(d)
            if gt_flag[g] or det_flag[d] or g in gt_dc or d in det_dc or row_counts[g] != 1 or column_counts[d] != 1:
                continue
            if self.centres_close(gt_points[g], det_points[d]):
                gt_flag[g] = det_flag[d] = True
                recall_credit += self.mtype_oo_o
                precision_credit += self.mtype_oo_o
                matches.append(([g], [d], 'one-to-one'))
        care_det = np.array([d not in det_dc for d in range(num_det)], dtype=bool)
        care_gt = np.array([g not in gt_dc for g in range(num_gt)], dtype=bool)
        for g in range(num_gt):  # one-to-many
            if g in gt_dc or gt_flag[g]:
                continue
            dets = np.nonzero(~det_flag & care_det & (precision[g] >= self.area_precision_constraint))[0]
            if dets.size == 0 or round(float(np.sum(recall[g, dets])), 4) < self.area_recall_constraint:
                continue
            gt_flag[g] = True
            det_flag[dets] = True
            one = dets.size == 1
            recall_credit += self.mtype_oo_o if one else self.mtype_om_o
            precision_credit += self.mtype_oo_o if one else self.mtype_om_o * dets.size
            matches.append(([g], [int(d) for d in dets], 'one-to-one' if one else 'one-to-many'))
        for d in range(num_det):  # many-to-one
            if d in det_dc or det_flag[d]:
                continue
            gts = np.nonzero(~gt_flag & care_gt & (recall[:, d] >= self.area_recall_constraint))[0]
            if gts.size == 0 or round(float(np.sum(precision[gts, d])), 4) < self.area_precision_constraint:
                continue
            det_flag[d] = True
            gt_flag[gts] = True
            one = gts.size == 1
            recall_credit += self.mtype_oo_o if one else self.mtype_om_m * gts.size
            precision_credit += self.mtype_oo_o if one else self.mtype_om_m
            matches.append(([int(g) for g in gts], [d], 'one-to-one' if one else 'many-to-one'))
        return matches, recall_credit, precision_credit

    def combine_results(self, results):
        return P.combine_image_results(results)
