"""TIoU: the tightness-aware IoU protocol (Liu et al., CVPR 2019, github Yuliang-Liu/TIoU-metric)."""

import shapely

from concern.protocols import polygons as P
from concern.protocols.iou import DetectionIoUEvaluator


def tightness_penalty(fraction):
    """The paper's f(x): 1 when x <= 0.01, else 1 - x."""
    return 1.0 if fraction <= 0.01 else 1.0 - fraction


class DetectionTIoUEvaluator(DetectionIoUEvaluator):
    """Tightness-aware IoU protocol (TIoU), on top of the IoU protocol's matching.

    Matching is the IoU protocol's (IoU > `iou_constraint`, greedy, don't care by
    `area_precision_constraint`). Each match is then credited, instead of 1:
      recall    += IoU * f(Ct / |G|), Ct = area of the ground truth G not covered by the detection D;
      precision += IoU * f(Ot / |D|), Ot = area of D covering other ground truth (outside G);
    with f(x) = 1 if x <= 0.01 else 1 - x. As in the official script the "other ground truth" includes
    don't-care regions. TIoU recall / precision = summed credits / care counts, micro-averaged.

    evaluate_image(gt, pred) -> the IoU protocol's dict with TIoU credits; each pair also carries
    'tiou_recall' and 'tiou_precision', and the dict adds 'iou_matched' (the plain match count).
    combine_results(results) -> {'precision', 'recall', 'fmeasure'} (TIoU) plus 'iou_precision',
    'iou_recall', 'iou_fmeasure' (the plain IoU protocol's numbers on the same matches).
    """

    def evaluate_image(self, gt, pred):
        s = self.prepare(gt, pred, exact=True)  # the credits use the intersection values themselves
        pairs = self.match(s['iou'], s['gt_dc'], s['det_dc'])
        matches, recall_credit, precision_credit = [], 0.0, 0.0
        for g, d in pairs:
            inter, gt_area, det_area = s['inter'][g, d], s['gt_areas'][g], s['det_areas'][d]
            union = gt_area + det_area - inter
            cut = (gt_area - inter) / gt_area if gt_area > 0 else 0.0
            outlier = self.outlier_area(s, g, d) / det_area if det_area > 0 else 0.0
            tiou_recall = inter * tightness_penalty(cut) / union
            tiou_precision = inter * tightness_penalty(outlier) / union
            recall_credit += tiou_recall
            precision_credit += tiou_precision
            matches.append(
                (
                    [g],
                    [d],
                    'one-to-one',
                    {
                        'iou': float(s['iou'][g, d]),
                        'tiou_recall': float(tiou_recall),
                        'tiou_precision': float(tiou_precision),
                    },
                )
            )
        result = P.image_result(
            matches,
            s['gt_kept'],
            s['det_kept'],
            s['gt_dc'],
            s['det_dc'],
            s['invalid_gt'],
            s['invalid_det'],
            recall_credit,
            precision_credit,
        )
        result['iou_matched'] = len(pairs)
        return result

    @staticmethod
    def outlier_area(s, g, d):
        """Area of detection d lying on ground truth other than g (and outside g)."""
        others = [s['gt_polygons'][i] for i in range(len(s['gt_polygons'])) if i != g and s['inter'][i, d] > 0]
        if not others:
            return 0.0
        detection = s['det_polygons'][d]
        covered = shapely.intersection(detection, shapely.union_all(others))
        area = shapely.area(shapely.difference(covered, s['gt_polygons'][g]))
        return float(area) if area > 1e-10 else 0.0

    def combine_results(self, results):
        combined = P.combine_image_results(results)
        iou_recall = P.safe_divide(sum(r['iou_matched'] for r in results), combined['num_gt'])
        iou_precision = P.safe_divide(sum(r['iou_matched'] for r in results), combined['num_det'])
        combined.update(
            iou_precision=iou_precision, iou_recall=iou_recall, iou_fmeasure=P.fmeasure(iou_precision, iou_recall)
        )
        return combined
