"""``sensor.other.imu``: accelerometer, gyroscope and compass in the sensor's frame, with CARLA's noise.

Conventions (checked against CARLA's ``InertialMeasurementUnit.cpp``):

- **Accelerometer** [m/s^2]: the specific force ``R.T @ (a + (0, 0, 9.81))``,
  ``a`` the sensor's world acceleration and ``R`` its rotation matrix
  (:mod:`sim.embedded.sensors.base`). At rest, level, it reads (0, 0, +9.81);
  in a right turn (positive yaw rate) the centripetal acceleration is toward
  +y, so the lateral reading is ``+v^2 / R``. CARLA differentiates the
  sensor's position twice (with start-up artefacts on its first ticks); here
  ``a`` is the parent's acceleration from the snapshot plus the lever-arm
  terms ``alpha x r + omega x (omega x r)`` for a sensor mounted at ``r`` off the
  parent's origin (``alpha`` by finite difference between calls; the first call
  uses 0).
- **Gyroscope** [rad/s]: the parent's angular velocity in the sensor's frame,
  ``R.T @ omega``. ``omega`` is the snapshot's ``angular_velocity_rad_s`` (what
  ``carla.Actor.get_angular_velocity`` reports, in rad/s): the vector with
  ``velocity = omega x r`` by the ordinary cross-product formula on CARLA's
  coordinates, so ``omega_z`` = d(yaw)/dt (positive turning right, x toward
  +y), ``omega_y`` = -d(pitch)/dt, ``omega_x`` = -d(roll)/dt. CARLA's ROS bridge
  negates x and z to reach ROS. (CARLA itself rotates by the mount rotation
  instead of its inverse, which differs only for mounts that are pitched or
  rolled, or yawed with pitch/roll rates; the sensor-frame vector is used here.)
- **Compass** [rad]: heading of the sensor's forward axis from north
  (-y), clockwise: 0 north (-y), pi/2 east (+x), pi south (+y), 3 pi/2 west;
  in [0, 2 pi). Equal to ``yaw + pi/2`` wrapped. No noise, as in CARLA.

Noise as CARLA: accelerometer + N(0, noise_accel_stddev_*); gyroscope +
noise_gyro_bias_* + N(0, noise_gyro_stddev_*); one generator seeded by
``noise_seed``.
"""

from __future__ import annotations

import math

import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.sensors.measurements import ImuData
from sim.embedded.sensors.base import (
    Sensor,
    SensorMeasurement,
    check_finite,
    check_seed,
    check_stddev,
)

__all__ = ["GRAVITY_MPS2", "ImuData", "ImuSensor"]

GRAVITY_MPS2 = 9.81
"""CARLA's constant (``InertialMeasurementUnit.cpp``)."""

_TWO_PI = 2.0 * math.pi
_GRAVITY_UP = np.array([0.0, 0.0, GRAVITY_MPS2])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (``np.cross`` costs ~10x more on 3-vectors)."""
    ax, ay, az = a.tolist()
    bx, by, bz = b.tolist()
    return np.array([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])


class ImuSensor(Sensor):
    """An inertial measurement unit; parameters are CARLA's blueprint attributes and defaults.

    ``data`` of a measurement: :class:`ImuData` (see the module docstring for signs).
    """

    blueprint_id = "sensor.other.imu"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 sensor_tick: float = 0.0,
                 noise_accel_stddev_x: float = 0.0, noise_accel_stddev_y: float = 0.0,
                 noise_accel_stddev_z: float = 0.0,
                 noise_gyro_bias_x: float = 0.0, noise_gyro_bias_y: float = 0.0, noise_gyro_bias_z: float = 0.0,
                 noise_gyro_stddev_x: float = 0.0, noise_gyro_stddev_y: float = 0.0,
                 noise_gyro_stddev_z: float = 0.0, noise_seed: int = 0) -> None:
        super().__init__(parent_id, transform, name=name, sensor_tick=sensor_tick)
        self.noise_accel_stddev = np.array([check_stddev(f"noise_accel_stddev_{a}", v) for a, v in
                                            zip("xyz", (noise_accel_stddev_x, noise_accel_stddev_y,
                                                        noise_accel_stddev_z))])
        self.noise_gyro_bias = np.array([check_finite(f"noise_gyro_bias_{a}", v) for a, v in
                                         zip("xyz", (noise_gyro_bias_x, noise_gyro_bias_y, noise_gyro_bias_z))])
        self.noise_gyro_stddev = np.array([check_stddev(f"noise_gyro_stddev_{a}", v) for a, v in
                                           zip("xyz", (noise_gyro_stddev_x, noise_gyro_stddev_y,
                                                       noise_gyro_stddev_z))])
        self.noise_seed = check_seed("noise_seed", noise_seed)
        for array in (self.noise_accel_stddev, self.noise_gyro_bias, self.noise_gyro_stddev):
            array.flags.writeable = False
        self._stddev = np.concatenate([self.noise_accel_stddev, self.noise_gyro_stddev])
        self._noisy = bool(self._stddev.any())
        self._rng = np.random.default_rng(self.noise_seed)
        self._lever_arm = bool(self._rel_location.any())
        self._prev_omega: tuple[float, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the last measurement time and the last angular velocity."""
        super().reset()
        self._prev_omega = None

    def measure(self, world: object, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """The reading at this tick, or None when ``sensor_tick`` says wait (``world`` is not used)."""
        row = self._parent_row(snapshot)
        fixed = row < 0  # fixed in the world: at rest
        omega = np.zeros(3) if fixed else snapshot.angular_velocity_rad_s[row]
        lever_arm = self._lever_arm and not fixed
        alpha = None
        if lever_arm:
            # Angular acceleration needs the angular velocity of every tick, measured or not.
            previous, self._prev_omega = self._prev_omega, (snapshot.timestamp_s, omega)
            if previous is not None and snapshot.timestamp_s > previous[0]:
                alpha = (omega - previous[1]) / (snapshot.timestamp_s - previous[0])
        if not self._due(snapshot.timestamp_s):
            return None
        location, rotation, matrix = self._world_pose(snapshot, row)
        accel_world = (np.zeros(3) if fixed else snapshot.acceleration_mps2[row]) + _GRAVITY_UP
        if lever_arm:
            arm = location - snapshot.location_m[row]
            accel_world = accel_world + _cross(omega, _cross(omega, arm))
            if alpha is not None:
                accel_world = accel_world + _cross(alpha, arm)
        accel = accel_world @ matrix  # == matrix.T @ accel_world
        gyro = omega @ matrix
        if self._noisy:
            noise = self._stddev * self._rng.standard_normal(6)
            accel += noise[:3]
            gyro += self.noise_gyro_bias + noise[3:]
        else:
            gyro += self.noise_gyro_bias
        compass = (math.atan2(matrix[1, 0], matrix[0, 0]) + 0.5 * math.pi) % _TWO_PI
        if compass >= _TWO_PI:  # -tiny % 2pi rounds to 2pi
            compass = 0.0
        accel.flags.writeable = False
        gyro.flags.writeable = False
        return self._measurement(snapshot, location, rotation, ImuData(accel, gyro, compass))
