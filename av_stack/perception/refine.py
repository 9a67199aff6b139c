"""Pedestrian centres refined on the LiDAR points around them.

A pedestrian covers about 0.5 m x 0.5 m, under two cells of the network's
0.4 m grid, so a centre regressed from the grid is off by about 0.13 m on
average, a quarter of the body, and the drawn box misses much of the truth.
The LiDAR hits the pedestrian itself with tens of points: their mean, above
the local ground, is the centre of the visible surface, which lies on the
sensor's side of the body; moving it ``surface_offset_m`` further along the
ray from the sensor gives the centre. On the Town02 test split this halves
the centre error (0.125 -> 0.06 m) and lifts the boxes' BEV IoU by about 0.08
(benchmarks/perception_results.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from av_stack.messages import Detections
from sim.api import ActorKind

__all__ = ["refine_centres"]


def refine_centres(detections: Detections, points_ego: np.ndarray, sensor_xy: tuple[float, float],
                   kind: ActorKind = ActorKind.WALKER, radius_m: float = 0.4, ground_radius_m: float = 1.5,
                   min_height_m: float = 0.3, surface_offset_m: float = 0.1, min_points: int = 2) -> Detections:
    """``detections`` with the centres of those of ``kind`` moved to the LiDAR points around them.

    ``points_ego`` (N, >=3): the sweep in the ego frame; ``sensor_xy``: the LiDAR's position in it. For each
    detection the points within ``radius_m`` (in x, y) that stand more than ``min_height_m`` above the lowest
    point within ``ground_radius_m`` (the local ground, so slopes do not matter) are averaged; with fewer than
    ``min_points`` of them the centre stays. Other detections, and z, are untouched."""
    rows = np.flatnonzero(detections.kind == int(kind))
    points = np.asarray(points_ego)
    if rows.size == 0 or points.shape[0] == 0:
        return detections
    centre = detections.center_m.copy()
    xy, z = points[:, :2], points[:, 2]
    sensor = np.asarray(sensor_xy, dtype=np.float64)
    for row in rows:
        offset = np.abs(xy - centre[row, :2])
        near = (offset[:, 0] < ground_radius_m) & (offset[:, 1] < ground_radius_m)
        if not near.any():
            continue
        local_xy, local_z = xy[near], z[near]
        ground = local_z.min()
        body = (np.hypot(*(local_xy - centre[row, :2]).T) < radius_m) & (local_z > ground + min_height_m)
        if np.count_nonzero(body) < min_points:
            continue
        surface = local_xy[body].mean(axis=0)
        ray = surface - sensor
        length = float(np.hypot(*ray))
        if length > 1e-6:
            centre[row, :2] = surface + surface_offset_m * ray / length
    return replace(detections, center_m=centre)
