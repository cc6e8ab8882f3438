"""The knee of a Pareto front, as pure geometry on its points."""

from __future__ import annotations

import math
from collections.abc import Sequence


def scale(columns_in: Sequence[Sequence[float]], directions: Sequence[str]) -> list[list[float]]:
    """Each objective (a column of values, one per point) scaled to [0, 1] over the points, 0
    being the best value; the points as rows."""
    columns = []
    for values_in, d in zip(columns_in, directions, strict=True):
        sign = -1.0 if d == "maximize" else 1.0
        values = [sign * v for v in values_in]
        lo, hi = min(values), max(values)
        span = hi - lo
        columns.append([(v - lo) / span if span > 0 else 0.0 for v in values])
    return [list(p) for p in zip(*columns, strict=True)]


def knee_index(points: list[list[float]], tiebreak: list[tuple[float, int]]) -> tuple[int, str]:
    """The knee of the scaled points (see :func:`autoopt.study.selection.knee`), and how it
    was found; ties go to the smallest ``tiebreak``."""

    def tie(i: int) -> tuple[float, int]:
        return tiebreak[i]

    if len(points) >= 3 and len(points[0]) == 2:
        a = min(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
        b = min(range(len(points)), key=lambda i: (points[i][1], points[i][0]))
        (x1, y1), (x2, y2) = points[a], points[b]
        dx, dy = x2 - x1, y2 - y1
        norm = math.hypot(dx, dy)
        if norm > 0:
            # Signed distance; positive on the side of the ideal corner (0, 0).
            sign = 1.0 if (dx * (0 - y1) - dy * (0 - x1)) > 0 else -1.0
            dist = [sign * (dx * (p[1] - y1) - dy * (p[0] - x1)) / norm for p in points]
            best = min(range(len(points)), key=lambda i: (-round(dist[i], 12), tie(i)))
            if dist[best] > 1e-12:
                return best, "farthest from the line joining its extremes"
    dist = [math.hypot(*p) for p in points]
    best = min(range(len(points)), key=lambda i: (round(dist[i], 12), tie(i)))
    ties = sum(round(d, 12) == round(dist[best], 12) for d in dist)
    return best, "nearest the ideal point" + (
        f" (a tie of {ties}: the fastest)" if ties > 1 else ""
    )
