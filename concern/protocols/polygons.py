"""Polygon helpers shared by every evaluation protocol (written once, used by iou/deteval/icdar2013/tiou).

The protocols compare every ground-truth polygon with every detection. Testing each pair with shapely is
quadratic in Python calls; here the pairs whose bounding boxes do not overlap are discarded first (their
intersection is exactly 0, so the result is identical), and the remaining pairs are intersected with
shapely's vectorised functions in one call.
"""
import numpy as np
import shapely


def as_points(points):
    """Return `points` (any nested sequence / array of x, y pairs) as a float64 (K, 2) array.

    A flat sequence of 2K numbers is accepted too. Returns None when the input cannot be read as pairs.
    """
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim == 1 and array.size % 2 == 0:
        array = array.reshape(-1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        return None
    return array


def repair(polygon):
    """Return `polygon` made valid the way the Total-Text scripts do it (`buffer(0)`)."""
    return polygon if polygon.is_valid else polygon.buffer(0)


def areas(polygons):
    """Areas of a list of shapely polygons as a float64 array (empty list -> empty array)."""
    if len(polygons) == 0:
        return np.zeros(0, dtype=np.float64)
    return shapely.area(np.asarray(polygons, dtype=object)).astype(np.float64)


def candidate_pairs(polygons_a, polygons_b):
    """Index pairs (i, j) whose bounding boxes overlap (touching counts), found with a shapely STRtree.

    Returns two int arrays (rows into `polygons_a`, columns into `polygons_b`), sorted row-major. Every
    pair left out has an intersection of area exactly 0.
    """
    if len(polygons_a) == 0 or len(polygons_b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(np.asarray(polygons_b, dtype=object))
    # query with envelopes: bounding-box overlap only, no exact predicate (that is done by intersection).
    envelopes = shapely.envelope(np.asarray(polygons_a, dtype=object))
    rows, cols = tree.query(envelopes)
    order = np.lexsort((cols, rows))
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


def intersection_matrix(polygons_a, polygons_b):
    """Dense (len(a), len(b)) float64 matrix of intersection areas; 0 where the boxes do not overlap."""
    matrix = np.zeros((len(polygons_a), len(polygons_b)), dtype=np.float64)
    rows, cols = candidate_pairs(polygons_a, polygons_b)
    if rows.size:
        a = np.asarray(polygons_a, dtype=object)[rows]
        b = np.asarray(polygons_b, dtype=object)[cols]
        matrix[rows, cols] = shapely.area(shapely.intersection(a, b))
    return matrix


def iou_matrix(intersections, areas_a, areas_b):
    """IoU from intersection areas and both area vectors; 0 where the union is 0."""
    union = areas_a[:, None] + areas_b[None, :] - intersections
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = np.where(union > 0, intersections / np.where(union > 0, union, 1.0), 0.0)
    return iou


def safe_divide(numerator, denominator):
    """numerator / denominator, or 0.0 when the denominator is 0 (the protocols' convention)."""
    return float(numerator) / denominator if denominator else 0.0


def fmeasure(precision, recall):
    """Harmonic mean 2PR / (P + R); 0.0 when P + R is 0."""
    return 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def dont_care_detections(det_polygons, det_areas, gt_polygons, gt_dont_care, threshold, denominator_offset=0.0):
    """Indices of detections whose intersection with some don't-care ground truth exceeds `threshold`.

    The ratio is intersection / (detection area + denominator_offset); a detection of area 0 has ratio 0
    when the offset is 0 (the original's convention). `gt_dont_care` lists indices into `gt_polygons`.
    """
    if len(gt_dont_care) == 0 or len(det_polygons) == 0:
        return []
    dont_care_polygons = [gt_polygons[i] for i in gt_dont_care]
    inter = intersection_matrix(dont_care_polygons, det_polygons)  # (num_dont_care, num_det)
    denominator = det_areas + denominator_offset
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1.0), 0.0)
    return [int(j) for j in np.nonzero((ratio > threshold).any(axis=0))[0]]


def make_polygons(point_sets, require_valid=True, repair_invalid=False):
    """Build shapely Polygons for a list of point sets: returns (polygons, kept_indices, invalid_indices).

    Skipped (listed in invalid_indices): fewer than 3 points, non-finite (NaN / inf) coordinates, and -
    when `require_valid` - polygons that are not valid or not simple (self-intersecting), as the original
    IoU protocol skips them. With `require_valid=False` such polygons are kept as given.

    All rings are created in one shapely call (much cheaper than one Polygon object at a time);
    `repair_invalid` applies `repair` (buffer(0)) to the invalid ones that are kept.
    """
    arrays, kept, invalid = [], [], []
    for index, points in enumerate(point_sets):
        array = as_points(points)
        if array is None or array.shape[0] < 3 or not np.isfinite(array).all():
            invalid.append(index)
            continue
        arrays.append(array)
        kept.append(index)
    if not arrays:
        return [], [], invalid
    counts = [len(a) for a in arrays]
    rings = shapely.linearrings(np.concatenate(arrays), indices=np.repeat(np.arange(len(arrays)), counts))
    polygons = shapely.polygons(rings)
    valid = shapely.is_valid(polygons) & shapely.is_simple(polygons)
    if require_valid:
        dropped = [kept[i] for i in np.nonzero(~valid)[0]]
        kept = [kept[i] for i in np.nonzero(valid)[0]]
        polygons = polygons[valid]
        invalid = sorted(invalid + dropped)
    elif repair_invalid and not valid.all():
        polygons = polygons.copy()
        polygons[~valid] = shapely.buffer(polygons[~valid], 0)
    return list(polygons), kept, invalid


def read_ground_truth(gt, require_valid=True, repair_invalid=False):
    """Turn the protocol input [{'points', 'ignore'}, ...] into kept polygons and bookkeeping.

    Returns (polygons, kept_indices, dont_care_positions, invalid_indices): `kept_indices[k]` is the input
    index of polygons[k]; `dont_care_positions` are positions k (into polygons) of don't-care entries.
    """
    polygons, kept, invalid = make_polygons([entry['points'] for entry in gt], require_valid, repair_invalid)
    dont_care = [k for k, index in enumerate(kept) if gt[index].get('ignore', False)]
    return polygons, kept, dont_care, invalid


def read_detections(pred, require_valid=True, repair_invalid=False):
    """Turn the protocol input [{'points'}, ...] into kept polygons: (polygons, kept_indices, invalid_indices)."""
    point_sets = [entry['points'] if isinstance(entry, dict) else entry for entry in pred]
    return make_polygons(point_sets, require_valid, repair_invalid)


def prepare_image(gt, pred, dont_care_threshold):
    """What the IoU-family protocols need for one image: kept polygons, indices, areas, don't-care lists
    (detections by intersection / own area > dont_care_threshold) and the intersection matrix."""
    gt_polygons, gt_kept, gt_dc, invalid_gt = read_ground_truth(gt)
    det_polygons, det_kept, invalid_det = read_detections(pred)
    gt_areas, det_areas = areas(gt_polygons), areas(det_polygons)
    det_dc = dont_care_detections(det_polygons, det_areas, gt_polygons, gt_dc, dont_care_threshold)
    return dict(gt_polygons=gt_polygons, det_polygons=det_polygons, gt_kept=gt_kept, det_kept=det_kept,
                gt_dc=gt_dc, det_dc=det_dc, invalid_gt=invalid_gt, invalid_det=invalid_det,
                gt_areas=gt_areas, det_areas=det_areas, inter=intersection_matrix(gt_polygons, det_polygons))


def image_summary(recall_credit, precision_credit, gt_care, det_care):
    """Per-image precision / recall / fmeasure with the ICDAR convention for an image without care gt:
    recall 1, precision 0 if it has care detections else 1."""
    if gt_care == 0:
        recall = 1.0
        precision = 0.0 if det_care > 0 else 1.0
    else:
        recall = float(recall_credit) / gt_care
        precision = safe_divide(precision_credit, det_care)
    return {'precision': precision, 'recall': recall, 'fmeasure': fmeasure(precision, recall)}


def image_result(matches, gt_kept, det_kept, gt_dont_care, det_dont_care, invalid_gt, invalid_det,
                 recall_credit, precision_credit):
    """Assemble the per-image dict every protocol returns.

    `matches` is a list of (gt_positions, det_positions, type, extra) with positions into the kept
    polygons; the dict maps them back to input indices: 'pairs' [{'gt': [..], 'det': [..], 'type', **extra}],
    'misses' (care gt left unmatched), 'false_positives' (care detections left unmatched), 'gt_dont_care',
    'det_dont_care', 'invalid_gt', 'invalid_det', the counts 'gt_care', 'det_care', 'matched' (number of
    matches), the credits, and the image's 'precision', 'recall', 'fmeasure'.
    """
    gt_care = len(gt_kept) - len(gt_dont_care)
    det_care = len(det_kept) - len(det_dont_care)
    skip_gt = set(gt_dont_care).union(*[set(m[0]) for m in matches])
    skip_det = set(det_dont_care).union(*[set(m[1]) for m in matches])
    result = {
        'gt_care': gt_care,
        'det_care': det_care,
        'matched': len(matches),
        'recall_credit': float(recall_credit),
        'precision_credit': float(precision_credit),
        'pairs': [dict({'gt': [gt_kept[g] for g in gts], 'det': [det_kept[d] for d in dets], 'type': kind}, **extra)
                  for gts, dets, kind, extra in matches],
        'misses': [gt_kept[g] for g in range(len(gt_kept)) if g not in skip_gt],
        'false_positives': [det_kept[d] for d in range(len(det_kept)) if d not in skip_det],
        'gt_dont_care': [gt_kept[g] for g in gt_dont_care],
        'det_dont_care': [det_kept[d] for d in det_dont_care],
        'invalid_gt': list(invalid_gt),
        'invalid_det': list(invalid_det),
    }
    result.update(image_summary(recall_credit, precision_credit, gt_care, det_care))
    return result


def combine_image_results(results):
    """Micro-average per-image results over a dataset.

    Each result carries 'gt_care', 'det_care', 'recall_credit' and 'precision_credit'. Returns plain
    floats 'precision', 'recall', 'fmeasure', the totals 'num_gt', 'num_det', 'recall_credit',
    'precision_credit', 'num_images', and 'empty_gt' (True when the dataset has no care ground truth: recall
    is then reported as 0.0, not divided by zero).
    """
    num_gt = sum(int(r['gt_care']) for r in results)
    num_det = sum(int(r['det_care']) for r in results)
    recall_credit = float(sum(r['recall_credit'] for r in results))
    precision_credit = float(sum(r['precision_credit'] for r in results))
    recall = safe_divide(recall_credit, num_gt)
    precision = safe_divide(precision_credit, num_det)
    return {
        'precision': precision,
        'recall': recall,
        'fmeasure': fmeasure(precision, recall),
        'num_gt': num_gt,
        'num_det': num_det,
        'recall_credit': recall_credit,
        'precision_credit': precision_credit,
        'num_images': len(results),
        'empty_gt': num_gt == 0,
    }
