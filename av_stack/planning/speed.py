"""Speed planning along a path: curvature-limited speeds and braking to stop points.

The planner works on a dense path (points about 1 m apart with their arc
length): the speed allowed at each point is ``sqrt(a_lat / |curvature|)``
(capped by the cruise speed), and the speed allowed *now* is the lowest
speed from which every point ahead (and every stop point) can still be met
braking at ``decel_mps2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def path_curvature(yaw_rad: np.ndarray, s_m: np.ndarray, window_m: float = 4.0) -> np.ndarray:
    """Signed curvature [1/m] per path point from the heading change, smoothed over ``window_m``."""
    yaw = np.asarray(yaw_rad, dtype=float)
    s = np.asarray(s_m, dtype=float)
    if yaw.shape != s.shape or yaw.ndim != 1:
        raise ValueError(f"yaw_rad and s_m must be 1-D of one length, got {yaw.shape} and {s.shape}")
    if yaw.size < 2:
        return np.zeros_like(yaw)
    dyaw = np.angle(np.exp(1j * np.diff(yaw)))
    ds = np.maximum(np.diff(s), 1e-3)
    per_segment = dyaw / ds
    curvature = np.concatenate([per_segment, per_segment[-1:]])
    step = float(np.median(ds))
    width = max(1, int(round(window_m / max(step, 1e-3))))
    if width > 1:
        kernel = np.ones(width) / width
        curvature = np.convolve(np.pad(curvature, (width // 2, width - 1 - width // 2), mode="edge"), kernel,
                                mode="valid")
    return curvature


@dataclass(frozen=True)
class SpeedPlanner:
    """Target speed from the curvature ahead and the distance to stop points.

    ``lateral_accel_mps2``: the cornering limit; ``decel_mps2``: the comfortable
    braking used to meet slower points ahead; ``stop_decel_mps2``: braking for
    stop points (lights, obstacles).
    """

    lateral_accel_mps2: float = 1.5
    decel_mps2: float = 2.5
    stop_decel_mps2: float = 4.0
    min_curve_speed_mps: float = 2.0

    def __post_init__(self) -> None:
        for name in ("lateral_accel_mps2", "decel_mps2", "stop_decel_mps2", "min_curve_speed_mps"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SpeedPlanner.{name} must be a positive number, got {value!r}")

    def curve_speed(self, curvature: np.ndarray, cruise_mps: float) -> np.ndarray:
        """Highest speed per point for the lateral-acceleration limit, at most ``cruise_mps``."""
        k = np.abs(np.asarray(curvature, dtype=float))
        limit = np.sqrt(self.lateral_accel_mps2 / np.maximum(k, 1e-9))
        return np.clip(limit, min(self.min_curve_speed_mps, cruise_mps), cruise_mps)

    def target_speed(self, ahead_m: np.ndarray, curvature: np.ndarray, cruise_mps: float,
                     stop_m: float = math.inf) -> float:
        """Speed to drive now: meets every curve point ``ahead_m`` away and stops within ``stop_m``.

        ``ahead_m`` (K,): distances of the path points ahead (>= 0) with their
        ``curvature`` (K,); ``stop_m``: distance left to a stop point (<= 0: stop now).
        """
        ahead = np.maximum(np.asarray(ahead_m, dtype=float), 0.0)
        speed = cruise_mps
        if ahead.size:
            reachable = np.sqrt(self.curve_speed(curvature, cruise_mps) ** 2 + 2.0 * self.decel_mps2 * ahead)
            speed = min(speed, float(reachable.min()))
        if stop_m < math.inf:
            speed = min(speed, math.sqrt(2.0 * self.stop_decel_mps2 * max(stop_m, 0.0)))
        return speed
