"""QuadMeasurer: evaluates representer output against the batch's ground truth with a protocol."""

import numpy as np

from concern.protocols import METRIC_KEYS, make_protocol


class QuadMeasurer:
    """Per-image evaluation of detections and the dataset-level P / R / F, as the original's QuadMeasurer.

    Arguments: protocol='iou' (the original's; or 'deteval' (Total-Text), 'icdar2013', 'tiou'),
    protocol_args=None (a dict of keyword arguments for the protocol, e.g. {'iou_constraint': 0.5}).

    validate_measure(batch, output, is_output_polygon=False, box_thresh=0.6) -> list of per-image dicts:
        batch['polygons'][i]: sequence of (K, 2) ground-truth polygons of image i (original pixels),
        batch['ignore_tags'][i]: sequence of bools (don't care); output = (boxes_batch, scores_batch) from
        SegDetectorRepresenter. As in the original, box mode keeps detections with score >= box_thresh and
        polygon mode keeps every polygon (the representer's own box_thresh already applied).
    gather_measure(raw_metrics, logger=None) -> {'precision', 'recall', 'fmeasure'} as plain Python floats
        (F = 2PR / (P + R), 0 when P + R = 0), micro-averaged over all images; raw_metrics is a list of
        validate_measure results (one list per batch) or a flat list of per-image dicts.
        `combine(raw_metrics)` returns the protocol's full dict (counts, 'empty_gt', ...).
    """

    def __init__(self, protocol='iou', protocol_args=None):
        self.protocol = protocol
        self.evaluator = make_protocol(protocol, **(protocol_args or {}))

    def measure(self, batch, output, is_output_polygon=False, box_thresh=0.6):
        for key in ('polygons', 'ignore_tags'):
            if key not in batch:
                raise KeyError(
                    f"QuadMeasurer: batch['{key}'] is missing; the validation data must provide "
                    f"'polygons' and 'ignore_tags' per image (MakeICDARData)."
                )
        boxes_batch, scores_batch = output[0], output[1]
        results = []
        for gt_polygons, ignore_tags, boxes, scores in zip(
            batch['polygons'], batch['ignore_tags'], boxes_batch, scores_batch
        ):
            gt = [
                {'points': np.asarray(gt_polygons[i]), 'ignore': bool(ignore_tags[i])} for i in range(len(gt_polygons))
            ]
            if is_output_polygon:
                pred = [{'points': box} for box in boxes]
            else:
                pred = [{'points': box} for box, score in zip(boxes, scores) if score >= box_thresh]
            results.append(self.evaluator.evaluate_image(gt, pred))
        return results

    def validate_measure(self, batch, output, is_output_polygon=False, box_thresh=0.6):
        return self.measure(batch, output, is_output_polygon, box_thresh)

    def evaluate_measure(self, batch, output, is_output_polygon=False, box_thresh=0.6):
        return self.measure(batch, output, is_output_polygon, box_thresh)

    @staticmethod
    def flatten(raw_metrics):
        flat = []
        for item in raw_metrics:
            if isinstance(item, dict):
                flat.append(item)
            else:
                flat.extend(item)
        return flat

    def combine(self, raw_metrics):
        return self.evaluator.combine_results(self.flatten(raw_metrics))

    def gather_measure(self, raw_metrics, logger=None):
        combined = self.combine(raw_metrics)
        if logger is not None and combined['empty_gt']:
            logger.info('QuadMeasurer: the evaluated images have no care ground truth; recall is reported as 0.')
        return {key: float(combined[key]) for key in METRIC_KEYS}
