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
    nearby = _points_near(points[:, :2], centre[rows, :2], ground_radius_m)
    xy, z = points[nearby, :2], points[nearby, 2]
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


def _points_near(xy: np.ndarray, centres: np.ndarray, reach_m: float) -> np.ndarray:
    """Indices of the points within ``reach_m`` (and some more) of any centre, in x and y: one pass over the
    sweep through a coarse lookup grid of ``reach_m`` cells, so each centre then looks at a few hundred points,
    not the whole sweep."""
    origin = centres.min(axis=0) - reach_m
    top = centres.max(axis=0) + reach_m
    x, y = xy[:, 0], xy[:, 1]
    box = np.flatnonzero((x > origin[0]) & (x < top[0]) & (y > origin[1]) & (y < top[1]))
    marked = np.floor((centres - origin) / reach_m).astype(np.int64)
    lookup = np.zeros(marked.max(axis=0) + 3, bool)
    for i, j in marked:  # the cell of the centre and its neighbours cover reach_m around it
        lookup[i - 1:i + 2, j - 1:j + 2] = True
    cell = ((xy[box] - origin) / reach_m).astype(np.int64)  # non-negative inside the box: truncation is floor
    return box[lookup[cell[:, 0], cell[:, 1]]]
