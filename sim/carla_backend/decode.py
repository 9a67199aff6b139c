"""CARLA sensor data (raw byte buffers) to the layouts the embedded simulator's sensors produce.

Each function takes the bytes and sizes CARLA gives (``Image.raw_data``,
``LidarMeasurement.raw_data``, ...), so it can be tested with buffers built
by hand; :func:`decode_measurement` dispatches on a live ``carla.SensorData``.

- RGB camera: BGRA (H, W, 4) on the wire -> RGB (H, W, 3) uint8.
- Depth camera: ``(R + 256 G + 65536 B) / (2^24 - 1) * 1000`` -> (H, W) float32 metres.
- Semantic camera: tag in R -> (H, W) uint8.
- Instance camera: R tag, G and B the 16-bit instance id -> (H, W, 3) uint8 as R, G, B.
- LiDAR: float32 (N, 4) x, y, z, intensity. Semantic LiDAR: 24-byte points
  (``SEMANTIC_POINT_DTYPE``). Radar: float32 (N, 4) velocity, azimuth, altitude, depth.
- GNSS: (3,) float64 latitude, longitude, altitude. IMU: ``ImuData``.
"""

from __future__ import annotations

import numpy as np

from sim.sensors.measurements import SEMANTIC_POINT_DTYPE

DEPTH_SCALE_M = 1000.0 / (256**3 - 1)


class DecodeError(ValueError):
    """A buffer does not have the size its sensor's layout needs."""


def _image_bytes(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    pixels = np.frombuffer(raw, dtype=np.uint8)
    if pixels.size != width * height * 4:
        raise DecodeError(f"camera buffer has {pixels.size} bytes, {width}x{height} BGRA needs {width * height * 4}")
    return pixels.reshape(height, width, 4)


def decode_rgb(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """BGRA bytes -> (H, W, 3) uint8 RGB."""
    return np.ascontiguousarray(_image_bytes(raw, width, height)[:, :, 2::-1])


def decode_depth(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """CARLA's depth encoding -> (H, W) float32 metres along the optical axis."""
    bgra = _image_bytes(raw, width, height).astype(np.float64)
    code = bgra[:, :, 2] + 256.0 * bgra[:, :, 1] + 65536.0 * bgra[:, :, 0]
    return (code * DEPTH_SCALE_M).astype(np.float32)


def decode_semantic(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """Tag in the red channel -> (H, W) uint8."""
    return np.ascontiguousarray(_image_bytes(raw, width, height)[:, :, 2])


def decode_instance(raw: bytes | memoryview, width: int, height: int) -> np.ndarray:
    """BGRA with R tag, G/B instance id -> (H, W, 3) uint8 R, G, B (the embedded layout)."""
    return decode_rgb(raw, width, height)


def _float_rows(raw: bytes | memoryview, width: int, what: str) -> np.ndarray:
    values = np.frombuffer(raw, dtype=np.float32)
    if values.size % width:
        raise DecodeError(f"{what} buffer of {values.size * 4} bytes is not a whole number of {width * 4}-byte points")
    return values.reshape(-1, width).copy()


def decode_lidar(raw: bytes | memoryview) -> np.ndarray:
    """(N, 4) float32 x, y, z, intensity."""
    return _float_rows(raw, 4, "LiDAR")


def decode_radar(raw: bytes | memoryview) -> np.ndarray:
    """(N, 4) float32 velocity, azimuth, altitude, depth."""
    return _float_rows(raw, 4, "radar")


def decode_semantic_lidar(raw: bytes | memoryview) -> np.ndarray:
    """(N,) structured points x, y, z, CosAngle, ObjIdx, ObjTag."""
    data = bytes(raw)
    if len(data) % SEMANTIC_POINT_DTYPE.itemsize:
        raise DecodeError(f"semantic LiDAR buffer of {len(data)} bytes is not a whole number of "
                          f"{SEMANTIC_POINT_DTYPE.itemsize}-byte points")
    return np.frombuffer(data, dtype=SEMANTIC_POINT_DTYPE).copy()


def decode_measurement(blueprint_id: str, data) -> object:
    """The shared layout of one live ``carla.SensorData`` from a sensor of ``blueprint_id``."""
    if blueprint_id == "sensor.camera.rgb":
        return decode_rgb(data.raw_data, data.width, data.height)
    if blueprint_id == "sensor.camera.depth":
        return decode_depth(data.raw_data, data.width, data.height)
    if blueprint_id == "sensor.camera.semantic_segmentation":
        return decode_semantic(data.raw_data, data.width, data.height)
    if blueprint_id == "sensor.camera.instance_segmentation":
        return decode_instance(data.raw_data, data.width, data.height)
    if blueprint_id == "sensor.lidar.ray_cast":
        return decode_lidar(data.raw_data)
    if blueprint_id == "sensor.lidar.ray_cast_semantic":
        return decode_semantic_lidar(data.raw_data)
    if blueprint_id == "sensor.other.radar":
        return decode_radar(data.raw_data)
    if blueprint_id == "sensor.other.gnss":
        return np.array([data.latitude, data.longitude, data.altitude], dtype=np.float64)
    if blueprint_id == "sensor.other.imu":
        from sim.sensors.measurements import ImuData

        a, g = data.accelerometer, data.gyroscope
        return ImuData(np.array([a.x, a.y, a.z]), np.array([g.x, g.y, g.z]), float(data.compass))
    raise DecodeError(f"no decoder for {blueprint_id!r}")
