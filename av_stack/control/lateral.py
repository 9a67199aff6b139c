"""Lateral control: pure pursuit on a path with a speed-dependent look-ahead, from the rear axle.

The rear axle of a bicycle that follows pure pursuit stays on a circular path
exactly (the pursued arc is the path's circle), so with a short look-ahead in
slow corners the car tracks the lane's centre line instead of cutting it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PurePursuit:
    """Steering in [-1, 1] (positive: right, CARLA's convention) that tracks a path.

    Look-ahead ``clip(base + gain * speed, min, max)`` [m]; ``rear_axle_m``: how
    far the rear axle sits behind the vehicle's reference point;
    ``max_steer_rad``: the road-wheel angle of steer = 1.
    """

    wheelbase_m: float = 2.85
    rear_axle_m: float = 1.4
    max_steer_rad: float = 0.61
    lookahead_base_m: float = 2.0
    lookahead_gain_s: float = 0.45
    lookahead_min_m: float = 3.0
    lookahead_max_m: float = 12.0

    def __post_init__(self) -> None:
        for name in ("wheelbase_m", "max_steer_rad", "lookahead_min_m", "lookahead_max_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PurePursuit.{name} must be a positive number, got {value!r}")
        if self.lookahead_min_m > self.lookahead_max_m:
            raise ValueError(f"PurePursuit.lookahead_min_m ({self.lookahead_min_m}) exceeds "
                             f"lookahead_max_m ({self.lookahead_max_m})")

    def lookahead_m(self, speed_mps: float) -> float:
        """Look-ahead distance at ``speed_mps``."""
        return float(np.clip(self.lookahead_base_m + self.lookahead_gain_s * abs(speed_mps),
                             self.lookahead_min_m, self.lookahead_max_m))

    def steer(self, x: float, y: float, yaw: float, speed_mps: float, path_xy: np.ndarray) -> float:
        """Steering towards the first point of ``path_xy`` (ahead of the car, in order) a look-ahead away."""
        path = np.asarray(path_xy, dtype=float)
        if path.ndim != 2 or path.shape[1] != 2 or path.shape[0] == 0:
            raise ValueError(f"path_xy must be a non-empty (K, 2) array, got shape {path.shape}")
        rx, ry = x - self.rear_axle_m * math.cos(yaw), y - self.rear_axle_m * math.sin(yaw)
        lookahead = self.lookahead_m(speed_mps)
        distance = np.hypot(path[:, 0] - rx, path[:, 1] - ry)
        beyond = np.flatnonzero(distance >= lookahead)
        k = int(beyond[0]) if beyond.size else path.shape[0] - 1
        tx, ty = path[k]
        alpha = math.atan2(ty - ry, tx - rx) - yaw
        alpha = math.atan2(math.sin(alpha), math.cos(alpha))
        reach = max(float(distance[k]), 1e-3)
        delta = math.atan2(2.0 * self.wheelbase_m * math.sin(alpha), reach)
        return float(np.clip(delta / self.max_steer_rad, -1.0, 1.0))
