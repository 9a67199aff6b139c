"""Synthetic drives for the filter tests: a kinematic bicycle's truth and the sensor frames it gives."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from av_stack.messages import EgoSignals, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE

DT = 0.05
REAR_AXLE_M = 1.65


def bicycle(seconds: float, yaw_rate: Callable[[float], float], start: tuple[float, float, float] = (0.0, 0.0, 0.0),
            speed: float = 8.0) -> np.ndarray:
    """(N, 5) truth rows (t, x, y, yaw, yaw rate) of a kinematic bicycle (side slip about the rear axle) at
    ``speed`` from ``start`` (x, y, yaw) turning at ``yaw_rate(t)``, integrated on a fine step."""
    rows, (x, y, yaw), sub = [], start, 10
    for k in range(int(seconds / DT)):
        t = k * DT
        rate = yaw_rate(t)
        rows.append((t, x, y, yaw, rate))
        h = DT / sub
        for _ in range(sub):
            x += (speed * math.cos(yaw) - rate * REAR_AXLE_M * math.sin(yaw)) * h
            y += (speed * math.sin(yaw) + rate * REAR_AXLE_M * math.cos(yaw)) * h
            yaw += rate * h
    return np.array(rows)


def frames(truth: np.ndarray, gnss_std: float = 2.0, gnss_bias: float | np.ndarray = 0.0,
           dropout: tuple[float, float] = (), speed: float = 8.0, seed: int = 0,
           sensors: Callable[[int, float, float, float, np.random.Generator], dict] | None = None,
           calibration: dict | None = None) -> list[SensorFrame]:
    """Sensor frames of ``truth``: wheel speed, gyroscope, compass, GNSS = position + ``gnss_bias`` (per axis
    or both) + white noise of ``gnss_std`` (NaN inside ``dropout``); ``sensors(k, x, y, yaw, rng)``: the
    frame's sensor data (drawn from the same generator, after the GNSS noise), with ``calibration``."""
    rng = np.random.default_rng(seed)
    out = []
    for k, (t, x, y, yaw, rate) in enumerate(truth):
        gx, gy = np.array([x, y]) + gnss_bias + gnss_std * rng.standard_normal(2)
        gnss = np.array([gy / METRES_PER_DEGREE, gx / METRES_PER_DEGREE, 0.0])
        if dropout and dropout[0] <= t < dropout[1]:
            gnss[:] = np.nan
        ego = EgoSignals(speed, np.zeros(3), np.array([0.0, 0.0, rate]), (yaw + math.pi / 2) % (2 * math.pi), gnss)
        if sensors is None:
            out.append(SensorFrame(k, float(t), ego))
        else:
            out.append(SensorFrame(k, float(t), ego, sensors(k, x, y, yaw, rng), calibration or {}))
    return out
