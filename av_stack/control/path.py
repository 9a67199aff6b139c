"""Geometry of a plan's trajectory that the controllers share: cleaning it and projecting a point onto it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_STEP_M = 1e-3
"""Points closer than this to the previous kept point are dropped (a repeated point has no heading)."""


def clean_path(xy: np.ndarray, speed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (K, 2), their speeds (K,), arc length (K,)) of a trajectory without repeated points."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    speed = np.asarray(speed, dtype=float).reshape(-1)
    if xy.shape[0] > 1 and np.hypot(*np.diff(xy, axis=0).T).min() < MIN_STEP_M:
        keep = [0]
        for i in range(1, xy.shape[0]):  # short plans (tens of points): a loop is cheap and exact
            if math.hypot(*(xy[i] - xy[keep[-1]])) >= MIN_STEP_M:
                keep.append(i)
        xy, speed = xy[keep], speed[keep]
    steps = np.hypot(*np.diff(xy, axis=0).T) if xy.shape[0] > 1 else np.zeros(0)
    return xy, speed, np.concatenate([[0.0], np.cumsum(steps)])


@dataclass(frozen=True)
class Projection:
    """The foot of a point on a path: ``segment`` (the index of the segment's first point), ``nearest``
    (the index of the path point nearest to the foot), ``s_m`` (arc length of the foot), ``heading_rad``
    (the segment's direction), ``offset_m`` (how far the point lies to the right of the segment's line;
    negative: to its left)."""

    segment: int
    nearest: int
    s_m: float
    heading_rad: float
    offset_m: float


def project(xy: np.ndarray, s: np.ndarray, point: tuple[float, float], fallback_heading_rad: float) -> Projection:
    """Project ``point`` onto the clean path ``xy`` (K, 2) with arc length ``s`` (K,), K >= 1.

    The nearest segment wins; before the first or past the last point the
    offset is measured from that segment's line. A one-point path has the
    heading ``fallback_heading_rad``.
    """
    px, py = point
    if xy.shape[0] == 1:
        heading = fallback_heading_rad
        dx, dy = px - xy[0, 0], py - xy[0, 1]
        return Projection(0, 0, 0.0, heading, -dx * math.sin(heading) + dy * math.cos(heading))
    start = xy[:-1]
    d = xy[1:] - start
    length2 = np.einsum("ij,ij->i", d, d)
    rel = np.array([px, py]) - start
    t = np.clip(np.einsum("ij,ij->i", rel, d) / length2, 0.0, 1.0)
    foot = start + t[:, None] * d
    i = int(np.argmin(np.hypot(px - foot[:, 0], py - foot[:, 1])))
    heading = math.atan2(float(d[i, 1]), float(d[i, 0]))
    # y is to the right of x (CARLA's frame), so the right-hand normal of (cos h, sin h) is (-sin h, cos h)
    offset = -float(rel[i, 0]) * math.sin(heading) + float(rel[i, 1]) * math.cos(heading)
    ti = float(t[i])
    length = math.sqrt(float(length2[i]))
    return Projection(i, i + 1 if ti > 0.5 else i, float(s[i]) + ti * length, heading, offset)
