"""What sensors deliver, whatever simulates them: the measurement envelope and the data types of each sensor.

Layouts are CARLA's (``shared/CARLA_FACTS.md``): images HxWx3 uint8 RGB,
depth HxW float32 metres, semantic tags HxW uint8, LiDAR Nx4 float32 (x, y,
z, intensity) in the sensor frame, semantic LiDAR :data:`SEMANTIC_POINT_DTYPE`,
radar Nx4 float32 (velocity, azimuth, altitude, depth), GNSS (latitude,
longitude, altitude), IMU :class:`ImuData`, collisions :class:`CollisionData`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEMANTIC_POINT_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("CosAngle", "<f4"),
                                 ("ObjIdx", "<u4"), ("ObjTag", "<u4")])
"""CARLA's semantic LiDAR point: 24 bytes."""


def readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class SensorMeasurement:
    """One sensor reading: when (frame, simulation time [s]), which sensor, where it was, and its data.

    ``location_m`` (3,) and ``rotation_rad`` (pitch, yaw, roll) (3,) are the
    sensor's world pose at that tick (read-only arrays). ``data``'s layout is
    documented by each sensor class.
    """

    frame: int
    timestamp_s: float
    sensor_name: str
    blueprint_id: str
    location_m: np.ndarray
    rotation_rad: np.ndarray
    data: object


@dataclass(frozen=True, eq=False)
class ImuData:
    """One IMU reading in the sensor's frame (x forward, y right, z up).

    ``accelerometer_mps2`` (3,) specific force [m/s^2]; ``gyroscope_rad_s`` (3,)
    angular velocity [rad/s]; ``compass_rad`` heading from north (-y), clockwise, in [0, 2 pi).
    """

    accelerometer_mps2: np.ndarray
    gyroscope_rad_s: np.ndarray
    compass_rad: float


@dataclass(frozen=True, eq=False)
class CollisionData:
    """One collision of the parent, as CARLA's ``carla.CollisionEvent``.

    ``other_actor_id``: the actor hit, -1 for the static layout (kerbs,
    buildings); ``other_kind``: "vehicle", "walker" or "static";
    ``normal_impulse_ns`` (3,) [N s]: the impulse on the parent in the world
    frame (as CARLA's ``normal_impulse``, which is not rotated into the sensor frame).
    """

    other_actor_id: int
    other_kind: str
    normal_impulse_ns: np.ndarray
