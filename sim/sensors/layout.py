"""The array each sensor delivers per measurement, from its spec alone (no simulator needed).

Used to declare observation spaces and to pre-allocate buffers: cameras have
fixed shapes; LiDAR and radar give a varying number of rows per tick, bounded
by their blueprint attributes (``points_per_second``, ``channels``) and the
tick length, so their layout is the most rows they can give (``padded``).
Event sensors (collision, lane invasion) have no array layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.sensors.measurements import SEMANTIC_POINT_DTYPE
from sim.sensors.suite import EVENT_SENSORS, SensorSpec

_CAMERA_CHANNELS = {
    "sensor.camera.rgb": (3, np.uint8),
    "sensor.camera.instance_segmentation": (3, np.uint8),
    "sensor.camera.semantic_segmentation": (None, np.uint8),
    "sensor.camera.depth": (None, np.float32),
}
DEPTH_FAR_M = 1000.0
"""CARLA's depth cameras saturate at 1000 m."""


@dataclass(frozen=True)
class DataLayout:
    """Shape, dtype and value bounds of one sensor's array; ``padded``: rows vary, ``shape[0]`` is the most."""

    shape: tuple[int, ...]
    dtype: np.dtype
    low: float
    high: float
    padded: bool = False


def lidar_rows(points_per_second: float, channels: int, dt_s: float) -> int:
    """Most points a rotating LiDAR gives in one tick of ``dt_s`` (CARLA: points per laser rounded, times channels)."""
    per_laser = max(1, int(math.floor(points_per_second * dt_s / channels + 0.5)))
    return per_laser * channels


def radar_rows(points_per_second: float, dt_s: float) -> int:
    """Most detections a radar gives in one tick of ``dt_s``."""
    return max(1, int(math.floor(points_per_second * dt_s + 0.5)))


def data_layout(spec: SensorSpec, dt_s: float) -> DataLayout | None:
    """The layout of ``spec``'s measurement data at tick length ``dt_s`` [s]; None for event sensors.

    Cameras: (H, W, 3) uint8 (RGB, instance), (H, W) uint8 (semantic tags) or
    (H, W) float32 metres (depth). LiDAR (rows, 4) float32; semantic LiDAR
    (rows, 6) float32 (the structured points' fields as columns); radar
    (rows, 4) float32. GNSS (3,) float64 (latitude, longitude, altitude);
    IMU (7,) float32 (accelerometer, gyroscope, compass).
    """
    if not dt_s > 0 or not math.isfinite(dt_s):
        raise ValueError(f"dt_s must be a positive finite number, got {dt_s!r}")
    blueprint, attrs = spec.blueprint_id, spec.attributes
    if blueprint in EVENT_SENSORS:
        return None
    if blueprint in _CAMERA_CHANNELS:
        channels, dtype = _CAMERA_CHANNELS[blueprint]
        hw = (attrs.get_int("image_size_y"), attrs.get_int("image_size_x"))
        shape = hw if channels is None else (*hw, channels)
        if dtype == np.float32:
            return DataLayout(shape, np.dtype(np.float32), 0.0, DEPTH_FAR_M)
        return DataLayout(shape, np.dtype(np.uint8), 0, 255)
    if blueprint in ("sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic"):
        rows = lidar_rows(attrs.get_float("points_per_second"), attrs.get_int("channels"), dt_s)
        width = 4 if blueprint == "sensor.lidar.ray_cast" else len(SEMANTIC_POINT_DTYPE.names)
        return DataLayout((rows, width), np.dtype(np.float32), -np.inf, np.inf, padded=True)
    if blueprint == "sensor.other.radar":
        rows = radar_rows(attrs.get_float("points_per_second"), dt_s)
        return DataLayout((rows, 4), np.dtype(np.float32), -np.inf, np.inf, padded=True)
    if blueprint == "sensor.other.gnss":
        return DataLayout((3,), np.dtype(np.float64), -np.inf, np.inf)
    if blueprint == "sensor.other.imu":
        return DataLayout((7,), np.dtype(np.float32), -np.inf, np.inf)
    raise ValueError(f"no data layout for sensor blueprint {blueprint!r}")
