"""Polygon helpers shared by every evaluation protocol (written once, used by iou/deteval/icdar2013/tiou).

The protocols compare every ground-truth polygon with every detection. Testing each pair with shapely is
quadratic in Python calls; here the pairs whose bounding boxes do not overlap are discarded first (their
intersection is exactly 0, so the result is identical), and the remaining pairs are intersected with
shapely's vectorised functions in one call (`intersection_matrix`). The IoU protocol goes further
(`fast_intersection_matrix`): pairs of convex polygons are intersected by vectorised clipping
(`convex.py`), and the pairs whose decision their rounding could change are recomputed with shapely
(`refine`), so decisions are identical to shapely's.
"""

import numpy as np
import shapely

from concern.protocols import convex

# convex polygons with more vertices than this are intersected by shapely (bounds the clipping's memory)
MAX_CLIPPED_VERTICES = 16


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
    """Index pairs (i, j) whose bounding boxes overlap (touching counts).

    Returns two int arrays (rows into `polygons_a`, columns into `polygons_b`), sorted row-major. Every
    pair left out has an intersection of area exactly 0.
    """
    if len(polygons_a) == 0 or len(polygons_b) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bounds_a = shapely.bounds(np.asarray(polygons_a, dtype=object))
    bounds_b = shapely.bounds(np.asarray(polygons_b, dtype=object))
    rows, cols = [], []
    block = max(1, 4_000_000 // len(polygons_b))  # rows per block: bounds the boolean matrix's memory
    for first in range(0, len(polygons_a), block):
        a = bounds_a[first : first + block, None, :]
        overlap = (
            (a[..., 0] <= bounds_b[None, :, 2])
            & (bounds_b[None, :, 0] <= a[..., 2])
            & (a[..., 1] <= bounds_b[None, :, 3])
            & (bounds_b[None, :, 1] <= a[..., 3])
        )
        block_rows, block_cols = np.nonzero(overlap)
        rows.append(block_rows + first)
        cols.append(block_cols)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def intersection_matrix(polygons_a, polygons_b):
    """Dense (len(a), len(b)) float64 matrix of intersection areas; 0 where the boxes do not overlap."""
    matrix = np.zeros((len(polygons_a), len(polygons_b)), dtype=np.float64)
    rows, cols = candidate_pairs(polygons_a, polygons_b)
    if rows.size:
        matrix[rows, cols] = shapely_intersection_areas(polygons_a, polygons_b, rows, cols)
    return matrix


def shapely_intersection_areas(polygons_a, polygons_b, rows, cols):
    """shapely's intersection areas of the pairs (polygons_a[rows[p]], polygons_b[cols[p]]), float64 (P,)."""
    a = np.asarray(polygons_a, dtype=object)[rows]
    b = np.asarray(polygons_b, dtype=object)[cols]
    return shapely.area(shapely.intersection(a, b)).astype(np.float64)


def convex_rings(polygons):
    """Padded exterior rings (N, K, 2) of shapely polygons and their orientation (N,): +1 / -1 for clearly
    strictly convex polygons without holes (and at most MAX_CLIPPED_VERTICES vertices), 0 otherwise."""
    array = np.asarray(polygons, dtype=object)
    is_polygon = (shapely.get_type_id(array) == 3) & (shapely.get_num_interior_rings(array) == 0)
    is_polygon &= ~shapely.is_empty(array)
    coords, index = shapely.get_coordinates(
        shapely.get_exterior_ring(np.where(is_polygon, array, None)), return_index=True
    )
    closed = np.bincount(index, minlength=len(array))  # ring sizes with the closing point
    counts = np.maximum(closed - 1, 0)
    size = max(int(counts.max()) if counts.size else 0, 1)
    starts = np.cumsum(closed) - closed
    position = np.arange(len(index)) - starts[index]
    keep = position < counts[index]
    vertices = np.zeros((len(array), size, 2), dtype=np.float64)
    has = counts > 0
    vertices[has] = coords[starts[has] + counts[has] - 1][:, None, :]  # pad with the last vertex
    vertices[index[keep], position[keep]] = coords[keep]
    orientation = convex.convex_orientation(vertices, counts)
    orientation[(counts > MAX_CLIPPED_VERTICES) | ~is_polygon] = 0
    return vertices, orientation


def fast_intersection_matrix(polygons_a, polygons_b, rings_a=None, rings_b=None):
    """`intersection_matrix` with convex pairs clipped by numpy: returns (matrix, uncertainty), both dense
    (len(a), len(b)) float64. `uncertainty` bounds |matrix - shapely's value| per entry (0 where shapely
    computed it); pass the entries whose decision it could change to `refine`. rings_a / rings_b: the
    polygons' `convex_rings` when already known (from `make_polygons_and_rings`)."""
    matrix = np.zeros((len(polygons_a), len(polygons_b)), dtype=np.float64)
    uncertainty = np.zeros_like(matrix)
    rows, cols = candidate_pairs(polygons_a, polygons_b)
    if rows.size == 0:
        return matrix, uncertainty
    vertices_a, signs_a = convex_rings(polygons_a) if rings_a is None else rings_a
    vertices_b, signs_b = convex_rings(polygons_b) if rings_b is None else rings_b
    clipped = (signs_a[rows] != 0) & (signs_b[cols] != 0)
    r, c = rows[clipped], cols[clipped]
    matrix[r, c], uncertainty[r, c] = convex.convex_intersection_areas(
        vertices_a[r], signs_a[r], vertices_b[c], signs_b[c]
    )
    r, c = rows[~clipped], cols[~clipped]
    if r.size:
        matrix[r, c] = shapely_intersection_areas(polygons_a, polygons_b, r, c)
    return matrix, uncertainty


def refine(matrix, uncertainty, undecided, polygons_a, polygons_b):
    """Recompute with shapely, in place, the entries of a `fast_intersection_matrix` where `undecided`
    (a boolean matrix of the same shape) is True; their uncertainty becomes 0."""
    rows, cols = np.nonzero(undecided)
    if rows.size:
        matrix[rows, cols] = shapely_intersection_areas(polygons_a, polygons_b, rows, cols)
        uncertainty[rows, cols] = 0.0


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
    return dont_care_columns(inter, det_areas, threshold, denominator_offset)


def dont_care_columns(inter, det_areas, threshold, denominator_offset=0.0):
    """Columns j of an intersection matrix (don't-care rows x detections) with some
    inter / (det_areas[j] + denominator_offset) > threshold (ratio 0 where that denominator is 0)."""
    if inter.shape[0] == 0 or inter.shape[1] == 0:
        return []
    denominator = det_areas + denominator_offset
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(denominator > 0, inter / np.where(denominator > 0, denominator, 1.0), 0.0)
    return [int(j) for j in np.nonzero((ratio > threshold).any(axis=0))[0]]


def make_polygons(point_sets, require_valid=True, repair_invalid=False):
    """Build shapely Polygons for a list of point sets: returns (polygons, kept_indices, invalid_indices).

    Skipped (listed in invalid_indices): fewer than 3 points, non-finite (NaN / inf) coordinates, and -
    when `require_valid` - polygons that are not valid or not simple (self-intersecting), as the original
    IoU protocol skips them. With `require_valid=False` such polygons are kept as given.
    `repair_invalid` applies `repair` (buffer(0)) to the invalid ones that are kept.
    """
    polygons, kept, invalid, _ = make_polygons_and_rings(point_sets, require_valid, repair_invalid)
    return polygons, kept, invalid


def make_polygons_and_rings(point_sets, require_valid=True, repair_invalid=False):
    """`make_polygons` plus the kept polygons' rings for the convex fast path: returns (polygons,
    kept_indices, invalid_indices, (vertices (N, K, 2), orientation (N,))) as `convex_rings` gives them
    (the orientation is 0 for repaired polygons).

    All rings are created in one shapely call (much cheaper than one Polygon object at a time); point
    sets of one shape are read in one numpy call. Polygons that are clearly strictly convex (`convex.py`)
    are valid and simple, so shapely's validity check runs only on the others.
    """
    arrays, kept, invalid = read_point_sets(point_sets)
    if not arrays:
        return [], [], invalid, (np.zeros((0, 1, 2)), np.zeros(0, dtype=np.int64))
    vertices, counts = convex.padded_rings(arrays)
    flat = np.concatenate(arrays) if vertices.shape[1] * len(arrays) != counts.sum() else vertices.reshape(-1, 2)
    rings = shapely.linearrings(flat, indices=np.repeat(np.arange(len(arrays)), counts))
    polygons = shapely.polygons(rings)
    orientation = convex.convex_orientation(vertices, counts)
    valid = orientation != 0  # clearly convex: valid and simple
    orientation[counts > MAX_CLIPPED_VERTICES] = 0
    unsure = np.nonzero(~valid)[0]
    if unsure.size:
        valid[unsure] = shapely.is_valid(polygons[unsure]) & shapely.is_simple(polygons[unsure])
    if require_valid:
        dropped = [kept[i] for i in np.nonzero(~valid)[0]]
        kept = [kept[i] for i in np.nonzero(valid)[0]]
        polygons, vertices, orientation = polygons[valid], vertices[valid], orientation[valid]
        invalid = sorted(invalid + dropped)
    elif repair_invalid and not valid.all():
        polygons = polygons.copy()
        polygons[~valid] = shapely.buffer(polygons[~valid], 0)
        orientation[~valid] = 0
    return list(polygons), kept, invalid, (vertices, orientation)


def read_point_sets(point_sets):
    """(arrays, kept_indices, invalid_indices): float64 (K, 2) arrays of the point sets with at least 3
    points and finite coordinates (read with `as_points`; all at once when they share one shape)."""
    try:
        stacked = np.asarray(point_sets, dtype=np.float64) if len(point_sets) else None
    except (TypeError, ValueError):
        stacked = None
    if stacked is not None and stacked.ndim == 2 and stacked.shape[1] % 2 == 0:
        stacked = stacked.reshape(len(stacked), -1, 2)
    if stacked is not None and stacked.ndim == 3 and stacked.shape[2] == 2:
        good = np.isfinite(stacked).all(axis=(1, 2)) & (stacked.shape[1] >= 3)
        kept = [int(i) for i in np.nonzero(good)[0]]
        return list(stacked[good]), kept, [int(i) for i in np.nonzero(~good)[0]]
    arrays, kept, invalid = [], [], []
    for index, points in enumerate(point_sets):
        array = as_points(points)
        if array is None or array.shape[0] < 3 or not np.isfinite(array).all():
            invalid.append(index)
            continue
        arrays.append(array)
        kept.append(index)
    return arrays, kept, invalid


def read_ground_truth(gt, require_valid=True, repair_invalid=False):
    """Turn the protocol input [{'points', 'ignore'}, ...] into kept polygons and bookkeeping.

    Returns (polygons, kept_indices, dont_care_positions, invalid_indices): `kept_indices[k]` is the input
    index of polygons[k]; `dont_care_positions` are positions k (into polygons) of don't-care entries.
    """
    polygons, kept, dont_care, invalid, _ = read_ground_truth_and_rings(gt, require_valid, repair_invalid)
    return polygons, kept, dont_care, invalid


def read_ground_truth_and_rings(gt, require_valid=True, repair_invalid=False):
    """`read_ground_truth` plus the rings of `make_polygons_and_rings` as a fifth element."""
    polygons, kept, invalid, rings = make_polygons_and_rings(
        [entry['points'] for entry in gt], require_valid, repair_invalid
    )
    dont_care = [k for k, index in enumerate(kept) if gt[index].get('ignore', False)]
    return polygons, kept, dont_care, invalid, rings


def read_detections(pred, require_valid=True, repair_invalid=False):
    """Turn the protocol input [{'points'}, ...] into kept polygons: (polygons, kept_indices, invalid_indices)."""
    polygons, kept, invalid, _ = read_detections_and_rings(pred, require_valid, repair_invalid)
    return polygons, kept, invalid


def read_detections_and_rings(pred, require_valid=True, repair_invalid=False):
    """`read_detections` plus the rings of `make_polygons_and_rings` as a fourth element."""
    point_sets = [entry['points'] if isinstance(entry, dict) else entry for entry in pred]
    return make_polygons_and_rings(point_sets, require_valid, repair_invalid)


def prepare_image(gt, pred, dont_care_threshold, iou_threshold=None):
    """What the IoU-family protocols need for one image: kept polygons, indices, areas, don't-care lists
    (detections by intersection / own area > dont_care_threshold) and the intersection matrix.

    With `iou_threshold` (the IoU protocol's decisions: IoU > iou_threshold) the intersections come from
    `fast_intersection_matrix`, and every pair whose don't-care ratio or IoU lies within the clipping's
    rounding bound of its threshold is recomputed with shapely, so every decision is shapely's. The
    result then also holds 'uncertainty' (the remaining rounding bound of each intersection).
    """
    gt_polygons, gt_kept, gt_dc, invalid_gt, gt_rings = read_ground_truth_and_rings(gt)
    det_polygons, det_kept, invalid_det, det_rings = read_detections_and_rings(pred)
    gt_areas, det_areas = areas(gt_polygons), areas(det_polygons)
    result = dict(
        gt_polygons=gt_polygons,
        det_polygons=det_polygons,
        gt_kept=gt_kept,
        det_kept=det_kept,
        gt_dc=gt_dc,
        invalid_gt=invalid_gt,
        invalid_det=invalid_det,
        gt_areas=gt_areas,
        det_areas=det_areas,
    )
    if iou_threshold is None:
        inter = intersection_matrix(gt_polygons, det_polygons)
    else:
        inter, uncertainty = fast_intersection_matrix(gt_polygons, det_polygons, gt_rings, det_rings)
        # IoU > t  <=>  inter (1 + t) > t (|G| + |D|);  don't care: inter > dont_care_threshold |D|
        iou_margin = inter * (1.0 + iou_threshold) - iou_threshold * (gt_areas[:, None] + det_areas[None, :])
        undecided = np.abs(iou_margin) <= (1.0 + iou_threshold) * uncertainty
        undecided[gt_dc] |= np.abs(inter[gt_dc] - dont_care_threshold * det_areas[None, :]) <= uncertainty[gt_dc]
        refine(inter, uncertainty, undecided & (uncertainty > 0), gt_polygons, det_polygons)
        result['uncertainty'] = uncertainty
    result['inter'] = inter
    result['det_dc'] = dont_care_columns(inter[gt_dc], det_areas, dont_care_threshold)
    return result


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


def image_result(
    matches, gt_kept, det_kept, gt_dont_care, det_dont_care, invalid_gt, invalid_det, recall_credit, precision_credit
):
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
        'pairs': [
            dict({'gt': [gt_kept[g] for g in gts], 'det': [det_kept[d] for d in dets], 'type': kind}, **extra)
            for gts, dets, kind, extra in matches
        ],
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
