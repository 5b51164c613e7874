"""Hand-built cases pinning the evaluation protocols (IoU, Total-Text DetEval, ICDAR 2013, TIoU)."""

import itertools

import numpy as np
import pytest
from shapely.geometry import Polygon

from concern.protocols import (
    DetectionDetEvalEvaluator,
    DetectionICDAR2013Evaluator,
    DetectionIoUEvaluator,
    DetectionTIoUEvaluator,
    make_protocol,
)


def rect(x, y, w=10.0, h=10.0):
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def gts(*polygons, ignore=()):
    return [{'points': p, 'ignore': i in ignore} for i, p in enumerate(polygons)]


def dets(*polygons):
    return [{'points': p} for p in polygons]


ALL = ['iou', 'deteval', 'icdar2013', 'tiou']


@pytest.mark.parametrize('name', ALL)
def test_exact_match_is_perfect(name):
    protocol = make_protocol(name)
    result = protocol.evaluate_image(gts(rect(0, 0), rect(50, 0, 30, 12)), dets(rect(50, 0, 30, 12), rect(0, 0)))
    combined = protocol.combine_results([result])
    assert (combined['precision'], combined['recall'], combined['fmeasure']) == (1.0, 1.0, 1.0)
    assert sorted((p['gt'], p['det']) for p in result['pairs']) == [([0], [1]), ([1], [0])]
    assert result['misses'] == [] and result['false_positives'] == []


def test_iou_just_above_and_just_below_half():
    protocol = DetectionIoUEvaluator()
    # shifting a 10x10 square by s gives IoU (10 - s) / (10 + s): 0.5037 at s = 3.3, 0.4925 at s = 3.4
    above = protocol.evaluate_image(gts(rect(0, 0)), dets(rect(3.3, 0)))
    below = protocol.evaluate_image(gts(rect(0, 0)), dets(rect(3.4, 0)))
    assert above['matched'] == 1 and above['pairs'][0]['iou'] == pytest.approx(6.7 / 13.3)
    assert below['matched'] == 0 and below['misses'] == [0] and below['false_positives'] == [0]


def test_iou_greedy_in_index_order():
    protocol = DetectionIoUEvaluator()
    # det 0 overlaps gt 0 (IoU 0.6) and gt 1 (IoU 0.82); gt 0 comes first and takes it
    result = protocol.evaluate_image(gts(rect(0, 0), rect(1, 0)), dets(rect(1.5, 0)))
    assert [(p['gt'], p['det']) for p in result['pairs']] == [([0], [0])]
    assert result['misses'] == [1]


@pytest.mark.parametrize('name', ALL)
def test_dont_care(name):
    protocol = make_protocol(name)
    # det 1 lies on the don't-care gt 1 and disappears from the counts; gt 1 is not a miss
    result = protocol.evaluate_image(gts(rect(0, 0), rect(100, 100), ignore=(1,)), dets(rect(0, 0), rect(101, 101)))
    assert result['gt_care'] == 1 and result['det_care'] == 1
    assert result['gt_dont_care'] == [1] and result['det_dont_care'] == [1]
    assert protocol.combine_results([result])['fmeasure'] == 1.0


@pytest.mark.parametrize('name', ALL)
def test_empty_ground_truth_and_empty_detections(name):
    protocol = make_protocol(name)
    no_gt = protocol.evaluate_image([], dets(rect(0, 0)))
    assert no_gt['gt_care'] == 0 and no_gt['false_positives'] == [0] and no_gt['precision'] == 0.0
    combined = protocol.combine_results([no_gt])
    assert combined['empty_gt'] is True
    assert combined['recall'] == 0.0 and combined['precision'] == 0.0 and combined['fmeasure'] == 0.0
    no_det = protocol.evaluate_image(gts(rect(0, 0)), [])
    assert no_det['misses'] == [0]
    combined = protocol.combine_results([no_det])
    assert combined['recall'] == 0.0 and combined['precision'] == 0.0 and combined['empty_gt'] is False
    assert protocol.combine_results([])['empty_gt'] is True


@pytest.mark.parametrize('name', ['iou', 'icdar2013', 'tiou'])
def test_invalid_polygons_are_skipped_not_crashing(name):
    protocol = make_protocol(name)
    bow_tie = [[0, 0], [10, 10], [10, 0], [0, 10]]
    result = protocol.evaluate_image(
        gts(rect(0, 0), bow_tie, [[0, 0], [1, 1]]),
        dets(rect(0, 0), [[0, 0], [5, 5]], [[np.nan, 0], [1, 0], [1, 1], [0, 1]], bow_tie, []),
    )
    assert result['invalid_gt'] == [1, 2]
    assert result['invalid_det'] == [1, 2, 3, 4]
    assert result['gt_care'] == 1 and result['det_care'] == 1 and result['matched'] == 1


def test_deteval_repairs_self_intersection_and_skips_degenerate():
    protocol = DetectionDetEvalEvaluator()
    result = protocol.evaluate_image(gts(rect(0, 0)), dets([[0, 0], [1, 1]], [[np.nan, 0], [1, 0], [1, 1]]))
    assert result['invalid_det'] == [0, 1] and result['det_care'] == 0 and result['misses'] == [0]


def test_deteval_split_detection_one_to_many():
    protocol = DetectionDetEvalEvaluator()
    # a 100x10 word found as two halves: sigma 0.5 each (sum 1.0 >= 0.7), tau 1.0 -> credit 0.8 / 2 * 0.8
    result = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 50, 10), rect(50, 0, 50, 10)))
    assert [(p['gt'], p['det'], p['type']) for p in result['pairs']] == [([0], [0, 1], 'one-to-many')]
    assert result['recall_credit'] == pytest.approx(0.8) and result['precision_credit'] == pytest.approx(1.6)
    combined = protocol.combine_results([result])
    assert combined['recall'] == pytest.approx(0.8) and combined['precision'] == pytest.approx(0.8)


def test_deteval_merged_detection_many_to_one():
    protocol = DetectionDetEvalEvaluator()
    # two words found as one box: tau 0.5 each (sum >= 0.6), sigma 1.0 -> recall 2 * 0.8, precision 0.8
    result = protocol.evaluate_image(gts(rect(0, 0, 50, 10), rect(50, 0, 50, 10)), dets(rect(0, 0, 100, 10)))
    assert [(p['gt'], p['det'], p['type']) for p in result['pairs']] == [([0, 1], [0], 'many-to-one')]
    combined = protocol.combine_results([result])
    assert combined['recall'] == pytest.approx(0.8) and combined['precision'] == pytest.approx(0.8)


def test_deteval_thresholds_strict_one_to_one():
    protocol = DetectionDetEvalEvaluator()
    # sigma = 0.7 exactly is not > tr: no one-to-one; a single overlap is no split either
    result = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 70, 10)))
    assert result['matched'] == 0
    result = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 71, 10)))
    assert result['matched'] == 1 and result['pairs'][0]['type'] == 'one-to-one'


def test_icdar2013_split_and_merge_and_center_rule():
    protocol = DetectionICDAR2013Evaluator()
    split = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 50, 10), rect(50, 0, 50, 10)))
    assert split['pairs'][0]['type'] == 'one-to-many'
    assert (split['recall_credit'], split['precision_credit']) == pytest.approx((0.8, 1.6))
    # two words in one box: each has area precision 0.5 >= 0.4, so (as the RRC script does) the split pass
    # matches the first word one-to-one and the second is missed
    two = protocol.evaluate_image(gts(rect(0, 0, 50, 10), rect(50, 0, 50, 10)), dets(rect(0, 0, 100, 10)))
    assert [(p['gt'], p['det'], p['type']) for p in two['pairs']] == [([0], [0], 'one-to-one')]
    # three words in one box (precision 1/3 each): a merge, recall credit 3 * 1.0, precision 1.0
    merged = protocol.evaluate_image(
        gts(rect(0, 0, 34, 10), rect(34, 0, 33, 10), rect(67, 0, 33, 10)), dets(rect(0, 0, 100, 10))
    )
    assert [(p['gt'], p['type']) for p in merged['pairs']] == [([0, 1, 2], 'many-to-one')]
    assert (merged['recall_credit'], merged['precision_credit']) == pytest.approx((3.0, 1.0))
    # area recall 0.8 and precision 0.4 are both '>=': a detection twice as tall (precision 0.5) matches
    loose = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 100, 20)))
    assert loose['matched'] == 1 and loose['pairs'][0]['type'] == 'one-to-one'
    covering = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 100, 26)))
    assert covering['matched'] == 0  # precision 10/26 < 0.4


def test_tiou_penalises_cut_ground_truth_and_outliers():
    protocol = DetectionTIoUEvaluator()
    # detection covers 80% of a 100x10 word: IoU 0.8, Ct = 0.2 -> recall credit 0.8 * 0.8; precision 0.8
    cut = protocol.evaluate_image(gts(rect(0, 0, 100, 10)), dets(rect(0, 0, 80, 10)))
    assert cut['pairs'][0]['tiou_recall'] == pytest.approx(0.64)
    assert cut['pairs'][0]['tiou_precision'] == pytest.approx(0.8)
    # detection 0..120 covers all of gt 0 (0..100) and half of gt 1 (110..130): Ot = 10 * 10 / 1200
    outlier = protocol.evaluate_image(gts(rect(0, 0, 100, 10), rect(110, 0, 20, 10)), dets(rect(0, 0, 120, 10)))
    iou = 1000 / 1200
    assert outlier['pairs'][0]['tiou_recall'] == pytest.approx(iou)
    assert outlier['pairs'][0]['tiou_precision'] == pytest.approx(iou * (1 - 100 / 1200))
    combined = protocol.combine_results([cut, outlier])
    assert combined['iou_recall'] == pytest.approx(2 / 3)
    assert combined['recall'] == pytest.approx((0.64 + iou) / 3)


def every_pair_iou_reference(gt, pred, threshold=0.5):
    """Slow oracle: the original's loops with shapely on every pair (valid polygons only)."""
    gp = [Polygon(g['points']) for g in gt]
    dp = [Polygon(d['points']) for d in pred]
    used_det, pairs = set(), []
    for g, d in itertools.product(range(len(gp)), range(len(dp))):
        if any(pg == g for pg, _ in pairs) or d in used_det:
            continue
        iou = gp[g].intersection(dp[d]).area / gp[g].union(dp[d]).area
        if iou > threshold:
            pairs.append((g, d))
            used_det.add(d)
    return pairs


def random_quads(rng, count, size=200):
    quads = []
    for _ in range(count):
        cx, cy = rng.uniform(0, size, 2)
        w, h, angle = rng.uniform(5, 30), rng.uniform(3, 10), rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        quads.append((corners @ np.array([[c, s], [-s, c]]) + [cx, cy]).tolist())
    return quads


def test_iou_prefiltered_equals_every_pair_reference():
    rng = np.random.default_rng(3)
    protocol = DetectionIoUEvaluator()
    for _ in range(5):
        gt_quads = random_quads(rng, 25)
        det_quads = [(np.asarray(q) + rng.normal(0, 2, (4, 2))).tolist() for q in gt_quads[:20]]
        det_quads += random_quads(rng, 5)
        det_quads = [q for q in det_quads if Polygon(q).is_valid]  # the reference has no invalid handling
        order = rng.permutation(len(det_quads))
        det_quads = [det_quads[i] for i in order]
        gt, pred = gts(*gt_quads), dets(*det_quads)
        result = protocol.evaluate_image(gt, pred)
        assert [(p['gt'][0], p['det'][0]) for p in result['pairs']] == every_pair_iou_reference(gt, pred)
