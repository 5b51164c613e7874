"""Vectorised intersection areas of convex polygons (the fast path of the IoU protocol).

Most evaluated shapes are convex quadrilaterals (ICDAR boxes, box-mode detections). For two convex
polygons A and B the area of A n B follows from Green's theorem: the boundary of A n B is the part of
A's edges lying inside B plus the part of B's edges lying inside A, and a straight piece p(t) = a + t (b - a),
t in [t0, t1], contributes (t1 - t0) * cross(a, b) / 2 to the signed area. Inside a convex polygon the
piece is one interval, found by clipping the edge against each half-plane of the other polygon
(Cyrus-Beck). Every candidate pair is computed at once with numpy.

Edges lying exactly on an edge line of the other polygon are counted once: in A's pass when the two
interiors lie on the same side (the piece bounds A n B), never in B's pass. Coordinates are taken relative
to one vertex of each pair, so the rounding error scales with the polygons' size, not their position; each
result comes with a bound on its rounding error (`uncertainty`) so that callers can recompute with shapely
the pairs whose decision the rounding could change (see `polygons.refine_near`).

Only polygons that are clearly strictly convex and simple (every turn of the same sign, by a margin far
above rounding, and a total turn of one full circle) take this path; the rest are left to shapely.
"""

import numpy as np

# a turn counts as strict when |cross(e_i, e_i+1)| exceeds this fraction of |e_i| |e_i+1|
TURN_MARGIN = 1e-9
# rounding-error bound of an area: this factor times machine epsilon times the sum of |contributions|
ROUNDING_FACTOR = 1e3
# and at least this fraction of the two polygons' areas (how far apart shapely's and our results may be)
RELATIVE_TOLERANCE = 1e-9


def padded_rings(point_arrays):
    """Stack (K_i, 2) vertex arrays into (N, K, 2) float64, padding each with its last vertex; also counts (N,)."""
    counts = np.array([len(a) for a in point_arrays], dtype=np.int64)
    size = int(counts.max()) if counts.size else 0
    if counts.size and (counts == size).all():
        return np.asarray(point_arrays, dtype=np.float64).reshape(len(point_arrays), size, 2), counts
    vertices = np.empty((len(point_arrays), size, 2), dtype=np.float64)
    for index, array in enumerate(point_arrays):
        vertices[index, : len(array)] = array
        vertices[index, len(array) :] = array[-1]
    return vertices, counts


def _next_index(counts, size):
    """(N, K) index of the next real vertex of each position (wrapping at each polygon's own count)."""
    positions = np.arange(size)[None, :]
    following = positions + 1
    return np.where(following < counts[:, None], following, 0), positions < counts[:, None]


def convex_orientation(vertices, counts):
    """+1 / -1 for polygons that are clearly strictly convex and simple (counter-clockwise / clockwise in
    x-right y-up axes), 0 for the others (collinear or repeated vertices, reflex turns, self-overlap).

    vertices: (N, K, 2) padded rings without the closing point (`padded_rings`); counts: (N,).
    """
    if vertices.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    size = vertices.shape[1]
    following, real = _next_index(counts, size)
    rows = np.arange(vertices.shape[0])[:, None]
    edges = vertices[rows, following] - vertices  # edge i goes from vertex i to the next
    next_edges = edges[rows, following]
    cross = edges[..., 0] * next_edges[..., 1] - edges[..., 1] * next_edges[..., 0]
    dot = (edges * next_edges).sum(axis=-1)
    margin = TURN_MARGIN * np.hypot(edges[..., 0], edges[..., 1]) * np.hypot(next_edges[..., 0], next_edges[..., 1])
    left = np.where(real, cross > margin, True).all(axis=1)
    right = np.where(real, cross < -margin, True).all(axis=1)
    # all turns of one sign: the total turn is a whole number of circles, 1 exactly for a convex polygon
    turns = np.where(real, np.arctan2(cross, dot), 0.0).sum(axis=1)
    single_loop = np.abs(np.abs(turns) - 2.0 * np.pi) < 1e-6
    orientation = np.where(left, 1, np.where(right, -1, 0))
    return np.where(single_loop & (counts >= 3), orientation, 0).astype(np.int64)


def _edge_contributions(subject, subject_sign, clip, clip_sign, on_line_same_side):
    """Twice the signed area contributed by the pieces of `subject`'s edges inside `clip` (per row).

    subject, clip: (P, K, 2) padded rings, already relative to a common origin; signs: (P,) orientations.
    `on_line_same_side` (P,) bool: whether an edge lying on a clip edge line, with both interiors on the
    same side, is counted (for A's edges, not for B's). Returns (contribution (P,), sum of |terms| (P,)).
    """
    direction = _following(subject) - subject  # padded edges have zero length: no contribution
    clip_edge = (_following(clip) - clip)[:, None, :, :]
    ex, ey = clip_edge[..., 0], clip_edge[..., 1]
    clip_real = (ex != 0) | (ey != 0)  # (P, 1, K): padding edges constrain nothing
    # f(t) = s * cross(e, a + t d - c) = n + t k must be >= 0 for every clip edge: (P, K subject, K clip)
    relative = subject[:, :, None, :] - clip[:, None, :, :]
    dx, dy = direction[:, :, None, 0], direction[:, :, None, 1]
    sign = clip_sign[:, None, None]
    n = sign * (ex * relative[..., 1] - ey * relative[..., 0])
    k = sign * (ex * dy - ey * dx)
    with np.errstate(divide='ignore', invalid='ignore'):
        bound = -n / k
    rising, falling = (k > 0) & clip_real, (k < 0) & clip_real
    t0 = np.maximum(np.where(rising, bound, -np.inf).max(axis=2), 0.0)
    t1 = np.minimum(np.where(falling, bound, np.inf).min(axis=2), 1.0)
    # parallel edges: outside when n < 0; on the line (n == 0) kept only with both interiors on one side
    same_side = on_line_same_side[:, None, None] & (sign * subject_sign[:, None, None] * (ex * dx + ey * dy) > 0)
    outside = ((k == 0) & clip_real & ((n < 0) | ((n == 0) & ~same_side))).any(axis=2)
    length = np.where(outside, 0.0, np.maximum(t1 - t0, 0.0))
    end = subject + direction
    terms = length * (subject[..., 0] * end[..., 1] - subject[..., 1] * end[..., 0]) * subject_sign[:, None]
    return terms.sum(axis=1), np.abs(terms).sum(axis=1)


def convex_intersection_areas(vertices_a, signs_a, vertices_b, signs_b):
    """Intersection areas of convex polygon pairs: (area (P,), uncertainty (P,)), float64.

    vertices_a, vertices_b: (P, Ka, 2) and (P, Kb, 2) padded rings of strictly convex polygons (pair p is
    vertices_a[p], vertices_b[p]); signs: (P,) their `convex_orientation` (+1 / -1). `uncertainty` bounds
    how far the result may lie from shapely's (rounding of both computations), in area units.
    """
    count = vertices_a.shape[0]
    if count == 0:
        return np.zeros(0), np.zeros(0)
    size = max(vertices_a.shape[1], vertices_b.shape[1])
    origin = vertices_a[:, :1, :]
    a = _pad_to(vertices_a - origin, size)
    b = _pad_to(vertices_b - origin, size)
    # both passes at once: rows [0, P) clip A's edges by B, rows [P, 2P) B's edges by A
    subject, clip = np.concatenate([a, b]), np.concatenate([b, a])
    subject_sign, clip_sign = np.concatenate([signs_a, signs_b]), np.concatenate([signs_b, signs_a])
    first_pass = np.arange(2 * count) < count
    part, size_terms = _edge_contributions(subject, subject_sign, clip, clip_sign, first_pass)
    area = np.maximum(0.5 * (part[:count] + part[count:]), 0.0)
    own = np.abs(_shoelace(subject))
    uncertainty = ROUNDING_FACTOR * np.finfo(np.float64).eps * 0.5 * (
        size_terms[:count] + size_terms[count:]
    ) + RELATIVE_TOLERANCE * (own[:count] + own[count:])
    return area, uncertainty


def _following(vertices):
    """The next vertex of each position of padded rings (N, K, 2) (the last one wraps to the first)."""
    return np.concatenate([vertices[:, 1:], vertices[:, :1]], axis=1)


def _pad_to(vertices, size):
    """Pad (P, K, 2) rings to (P, size, 2) by repeating their last vertex."""
    if vertices.shape[1] == size:
        return vertices
    padding = np.repeat(vertices[:, -1:, :], size - vertices.shape[1], axis=1)
    return np.concatenate([vertices, padding], axis=1)


def _shoelace(vertices):
    """Signed areas of padded rings (N, K, 2) (padding edges add nothing)."""
    following = _following(vertices)
    return 0.5 * (vertices[..., 0] * following[..., 1] - vertices[..., 1] * following[..., 0]).sum(axis=1)
