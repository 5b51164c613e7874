"""Polygon helpers shared by the label makers (MakeSegDetectionData, MakeBorderMap).

Polygons are (K, 2) float arrays of (x, y) in pixel coordinates, pixel centres at integers (the
convention of ``cv2.fillPoly``, with which the targets are rasterised).
"""

import math

import numpy as np
import pyclipper


def signed_area(polygon: np.ndarray) -> float:
    """Shoelace sum of the original (``sum (x[i+1] - x[i]) * (y[i+1] + y[i]) / 2``).

    Positive for polygons that run clockwise on screen (y down), i.e. the sign the original uses
    to decide whether to reverse the point order.
    """
    x, y = polygon[:, 0].tolist(), polygon[:, 1].tolist()
    x_next, y_next = x[1:] + x[:1], y[1:] + y[:1]
    return sum((x2 - x1) * (y2 + y1) for x1, y1, x2, y2 in zip(x, y, x_next, y_next)) / 2.0


def offset_distance(polygon: np.ndarray, shrink_ratio: float) -> float:
    """D = A (1 - r^2) / L, the shrink / dilation distance of the paper and the original.

    A is the absolute shoelace area and L the perimeter (what shapely's ``area`` and ``length``
    give for the ring, computed here without building a shapely object). Returns 0.0 for a
    polygon with no perimeter (fewer than 2 distinct points).
    """
    x, y = polygon[:, 0].tolist(), polygon[:, 1].tolist()
    x_next, y_next = x[1:] + x[:1], y[1:] + y[:1]
    area = abs(sum(x1 * y2 - x2 * y1 for x1, y1, x2, y2 in zip(x, y, x_next, y_next))) / 2.0
    length = sum(math.hypot(x2 - x1, y2 - y1) for x1, y1, x2, y2 in zip(x, y, x_next, y_next))
    if length <= 0:
        return 0.0
    return area * (1.0 - shrink_ratio**2) / length


def offset_polygon(polygon: np.ndarray, distance: float) -> list:
    """Offsets a closed polygon by ``distance`` (negative shrinks) with pyclipper, round joins.

    The coordinates are handed to pyclipper as floats, which it truncates to integers, exactly as
    the original did. Returns the list of resulting polygons as (M, 2) int64 arrays (empty when
    the polygon vanishes).
    """
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(polygon.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return [np.array(path, dtype=np.int64) for path in offset.Execute(distance)]
