"""Total-Text DetEval protocol (the dataset's official Python script, cs-chan/Total-Text-Dataset)."""

import numpy as np

from concern.protocols import polygons as P


class DetectionDetEvalEvaluator:
    """Total-Text DetEval: area recall sigma / area precision tau with one-to-one, one-to-many and
    many-to-one matches, as the official Total-Text script (Deteval.py) computes them.

    Arguments (the official defaults): tr=0.7 (area recall), tp=0.6 (area precision), fsc_k=0.8 (the credit
    of a split / merged match), k=2 (how many overlaps make a split / merge candidate),
    dont_care_threshold=0.5 (a detection with intersection / (area + 1) above it against a don't-care
    region is removed, counted nowhere).

    Reproduced details of the official script: sigma = inter / |G| and tau = inter / |D| rounded to 2
    decimals; polygons are made valid with buffer(0) for intersections while areas use the polygon as
    given; the one-to-one test uses strict '>' and the split / merge tests '>='; the merge test selects
    ground truth by sigma >= tp (sic). Differences, where the script would crash: polygons with fewer than
    3 points or non-finite coordinates are skipped ('invalid_gt' / 'invalid_det'); a zero area gives 0
    instead of a division error.

    evaluate_image(gt, pred): gt [{'points', 'ignore'}], pred [{'points'}] -> per-image dict
    (`polygons.image_result`, pairs typed 'one-to-one' / 'one-to-many' / 'many-to-one').
    combine_results(results) -> micro-averaged {'precision', 'recall', 'fmeasure', ...}.
    """

    def __init__(self, tr=0.7, tp=0.6, fsc_k=0.8, k=2, dont_care_threshold=0.5):
        self.tr = tr
        self.tp = tp
        self.fsc_k = fsc_k
        self.k = k
        self.dont_care_threshold = dont_care_threshold

    def evaluate_image(self, gt, pred):
        gt_raw, gt_kept, gt_dc, invalid_gt = P.read_ground_truth(gt, require_valid=False)
        det_raw, det_kept, invalid_det = P.read_detections(pred, require_valid=False)
        gt_polygons = [P.repair(p) for p in gt_raw]
        det_polygons = [P.repair(p) for p in det_raw]
        gt_areas, det_areas = P.areas(gt_raw), P.areas(det_raw)
        det_dc = P.dont_care_detections(
            det_polygons, det_areas, gt_polygons, gt_dc, self.dont_care_threshold, denominator_offset=1.0
        )
        care_gt = [g for g in range(len(gt_polygons)) if g not in set(gt_dc)]
        care_det = [d for d in range(len(det_polygons)) if d not in set(det_dc)]
        inter = P.intersection_matrix([gt_polygons[g] for g in care_gt], [det_polygons[d] for d in care_det])
        with np.errstate(divide='ignore', invalid='ignore'):
            g_area = gt_areas[care_gt][:, None]
            d_area = det_areas[care_det][None, :]
            sigma = np.round(np.where(g_area > 0, inter / np.where(g_area > 0, g_area, 1.0), 0.0), 2)
            tau = np.round(np.where(d_area > 0, inter / np.where(d_area > 0, d_area, 1.0), 0.0), 2)
        matches, recall_credit, precision_credit = self.match(sigma, tau)
        matches = [([care_gt[g] for g in gts], [care_det[d] for d in dets], kind, {}) for gts, dets, kind in matches]
        return P.image_result(
            matches, gt_kept, det_kept, gt_dc, det_dc, invalid_gt, invalid_det, recall_credit, precision_credit
        )

    def match(self, sigma, tau):
        """The three passes of the official script on (num_gt, num_det) sigma / tau tables.

        Returns (matches [(gt_rows, det_cols, type)], recall_credit, precision_credit)."""
        tr, tp, k, fsc_k = self.tr, self.tp, self.k, self.fsc_k
        num_gt, num_det = sigma.shape
        gt_flag = np.zeros(num_gt, dtype=bool)
        det_flag = np.zeros(num_det, dtype=bool)
        matches, recall_credit, precision_credit = [], 0.0, 0.0
        sigma_hits, tau_hits = sigma > tr, tau > tp
        sigma_column_counts, tau_column_counts = sigma_hits.sum(axis=0), tau_hits.sum(axis=0)
        for g in range(num_gt):  # one-to-one
            sigma_candidates = np.nonzero(sigma_hits[g])[0]
            tau_candidates = np.nonzero(tau_hits[g])[0]
            if (
                sigma_candidates.size == 1
                and tau_candidates.size == 1
                and sigma_column_counts[sigma_candidates].sum() == 1
                and tau_column_counts[tau_candidates].sum() == 1
            ):
                recall_credit += 1.0
                precision_credit += 1.0
                gt_flag[g] = True
                det_flag[sigma_candidates] = True
                matches.append(([g], [int(sigma_candidates[0])], 'one-to-one'))
        for g in range(num_gt):  # one-to-many (a split ground truth)
            if gt_flag[g] or np.count_nonzero(sigma[g] > 0) < k:
                continue
            qualified = np.nonzero((tau[g] >= tp) & ~det_flag)[0]
            if qualified.size == 1:
                d = int(qualified[0])
                if tau[g, d] >= tp and sigma[g, d] >= tr:
                    recall_credit += 1.0
                    precision_credit += 1.0
                    gt_flag[g] = True
                    det_flag[d] = True
                    matches.append(([g], [d], 'one-to-one'))
            elif np.sum(sigma[g, qualified]) >= tr:
                gt_flag[g] = True
                det_flag[qualified] = True
                recall_credit += fsc_k
                precision_credit += qualified.size * fsc_k
                matches.append(([g], [int(d) for d in qualified], 'one-to-many'))
        for d in range(num_det):  # many-to-one (merged ground truth)
            if det_flag[d] or np.count_nonzero(tau[:, d] > 0) < k:
                continue
            qualified = np.nonzero((sigma[:, d] >= tp) & ~gt_flag)[0]
            if qualified.size == 1:
                g = int(qualified[0])
                if tau[g, d] >= tp and sigma[g, d] >= tr:
                    recall_credit += 1.0
                    precision_credit += 1.0
                    gt_flag[g] = True
                    det_flag[d] = True
                    matches.append(([g], [d], 'one-to-one'))
            elif np.sum(tau[qualified, d]) >= tp:
                det_flag[d] = True
                gt_flag[qualified] = True
                recall_credit += qualified.size * fsc_k
                precision_credit += fsc_k
                matches.append(([int(g) for g in qualified], [d], 'many-to-one'))
        return matches, recall_credit, precision_credit

    def combine_results(self, results):
        return P.combine_image_results(results)
