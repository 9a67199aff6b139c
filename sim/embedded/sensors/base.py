"""What every embedded sensor shares: the mount pose, the world pose, measurements, ``sensor_tick``.

Frames and rotations
--------------------
Poses use CARLA's frame (x forward, y right, z up; left-handed) and the
``carla.Rotation`` angles in radians: pitch (nose up > 0), yaw (x toward +y > 0)
and roll (right side down > 0). The rotation matrix of (pitch p, yaw y, roll r)
is Unreal's ``FRotationMatrix`` (and ``carla.Transform.get_matrix()``): its
columns are the body's forward, right and up axes in world coordinates,

    forward = ( cp cy,               cp sy,               sp    )
    right   = ( sr sp cy - cr sy,    sr sp sy + cr cy,   -sr cp )
    up      = (-cr sp cy - sr sy,   -cr sp sy + sr cy,    cr cp )

which, read as ordinary right-handed matrices on CARLA's numbers, is
``Rz(yaw) @ Ry(-pitch) @ Rx(-roll)``. A point ``p`` of the body frame lies at
``location + R @ p`` in the world; a world vector ``v`` reads ``R.T @ v`` in the
body frame. So a sensor mounted at x = 1 m on a parent with yaw +90 deg sits at
world y = +1 m.

Sensors attach rigidly to a parent actor with a :class:`SensorPose` relative
to the parent's origin (CARLA's ``spawn_actor(bp, transform, attach_to=parent)``).
Every measurement carries the frame number, the simulation time and the
sensor's world pose at that tick.

``sensor_tick``: 0 measures every tick; otherwise a sensor measures on a tick
only when at least ``sensor_tick`` seconds of simulation time have passed since
its last measurement (the first tick after spawning always measures), as
CARLA's sensors do. With ``sensor_tick = 0.5`` at ``dt = 0.05`` that is every
10th tick.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.api import WorldSnapshot

__all__ = [
    "Sensor", "SensorMeasurement", "SensorPose", "check_finite", "check_seed", "check_stddev",
    "rotation_from_matrix", "rotation_matrix", "sensor_world_pose",
]

# Tolerance on elapsed simulation time: timestamps are frame * dt and carry rounding errors.
_TICK_EPS_S = 1e-6


@dataclass(frozen=True)
class SensorPose:
    """A sensor's mount relative to its parent's origin: position [m] and rotation [rad], CARLA frame."""

    x_m: float = 0.0
    y_m: float = 0.0
    z_m: float = 0.0
    roll_rad: float = 0.0
    pitch_rad: float = 0.0
    yaw_rad: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x_m", "y_m", "z_m", "roll_rad", "pitch_rad", "yaw_rad"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"SensorPose.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def location(self) -> np.ndarray:
        """(x, y, z) [m] as an array of shape (3,)."""
        return np.array([self.x_m, self.y_m, self.z_m])

    @property
    def rotation(self) -> np.ndarray:
        """(pitch, yaw, roll) [rad] as an array of shape (3,), the order of ``WorldSnapshot.rotation_rad``."""
        return np.array([self.pitch_rad, self.yaw_rad, self.roll_rad])


def rotation_matrix(pitch_rad: float, yaw_rad: float, roll_rad: float) -> np.ndarray:
    """The (3, 3) rotation matrix of a CARLA rotation; columns: forward, right, up (module docstring)."""
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    return np.array([
        [cp * cy, sr * sp * cy - cr * sy, -cr * sp * cy - sr * sy],
        [cp * sy, sr * sp * sy + cr * cy, -cr * sp * sy + sr * cy],
        [sp, -sr * cp, cr * cp],
    ])


def rotation_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) [rad] of a rotation matrix built as :func:`rotation_matrix` does.

    Pitch is in [-pi/2, pi/2], yaw and roll in (-pi, pi]. At pitch +-pi/2
    (gimbal lock) roll is set to 0 and yaw absorbs the rest.
    """
    (m00, m01, _), (m10, m11, _), (m20, m21, m22) = np.asarray(matrix, dtype=float).tolist()
    pitch = math.asin(min(max(m20, -1.0), 1.0))
    if abs(m20) < 1.0 - 1e-12:
        yaw = math.atan2(m10, m00)
        roll = math.atan2(-m21, m22)
    else:
        yaw = math.atan2(-m01, m11)
        roll = 0.0
    return np.array([pitch, yaw, roll])


def sensor_world_pose(parent_location: np.ndarray, parent_rotation: np.ndarray,
                      relative: SensorPose) -> tuple[np.ndarray, np.ndarray]:
    """World (location (3,) [m], rotation (pitch, yaw, roll) (3,) [rad]) of a sensor mounted on a parent.

    ``parent_rotation`` is (pitch, yaw, roll) [rad] as in ``WorldSnapshot.rotation_rad``.
    """
    parent_location = np.asarray(parent_location, dtype=float)
    parent_rotation = np.asarray(parent_rotation, dtype=float)
    for name, value in (("parent_location", parent_location), ("parent_rotation", parent_rotation)):
        if value.shape != (3,) or not np.isfinite(value).all():
            raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    location, rotation, _ = _compose(parent_location, parent_rotation, relative.location, _mount_matrix(relative))
    return location, rotation


def _mount_matrix(relative: SensorPose) -> np.ndarray | None:
    """The mount's rotation matrix, or None for an unrotated mount (the common case, composed faster)."""
    if relative.pitch_rad == relative.yaw_rad == relative.roll_rad == 0.0:
        return None
    return rotation_matrix(relative.pitch_rad, relative.yaw_rad, relative.roll_rad)


def _compose(parent_location: np.ndarray, parent_rotation: np.ndarray, rel_location: np.ndarray,
             rel_matrix: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor world location, rotation and rotation matrix from the parent's pose and the mount."""
    pitch, yaw, roll = parent_rotation.tolist()
    parent_matrix = rotation_matrix(pitch, yaw, roll)
    location = parent_location + parent_matrix @ rel_location
    if rel_matrix is None:
        return location, np.array([pitch, yaw, roll]), parent_matrix
    matrix = parent_matrix @ rel_matrix
    return location, rotation_from_matrix(matrix), matrix


def check_stddev(name: str, value: object) -> float:
    """A standard deviation attribute as a float; ``ValueError`` naming it unless finite and >= 0."""
    number = check_finite(name, value)
    if number < 0.0:
        raise ValueError(f"{name} must be >= 0 (a standard deviation), got {number!r}")
    return number


def check_finite(name: str, value: object) -> float:
    """A numeric attribute as a float; ``ValueError`` naming it unless a finite number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def check_seed(name: str, value: object) -> int:
    """A seed attribute as an int; ``ValueError`` naming it unless a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _readonly(array: np.ndarray) -> np.ndarray:
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


class Sensor(ABC):
    """A sensor attached rigidly to a parent actor; see the module docstring.

    Subclasses set ``blueprint_id`` and implement :meth:`measure`, which the
    owner calls once after every world tick. Periodic sensors (GNSS, IMU)
    return a measurement on the ticks ``sensor_tick`` allows and None on the
    others; event sensors (collision, lane invasion) return one on ticks with
    events and None otherwise.
    """

    blueprint_id: ClassVar[str]

    def __init__(self, parent_id: int, transform: SensorPose | None = None, *, name: str | None = None,
                 sensor_tick: float = 0.0) -> None:
        if isinstance(parent_id, bool) or not isinstance(parent_id, (int, np.integer)):
            raise ValueError(f"parent_id must be an actor id (int), got {parent_id!r}")
        transform = SensorPose() if transform is None else transform
        if not isinstance(transform, SensorPose):
            raise ValueError(f"transform must be a SensorPose, got {type(transform).__name__}")
        self.parent_id = int(parent_id)
        self.transform = transform
        self.name = self.blueprint_id if name is None else str(name)
        self.sensor_tick = check_stddev("sensor_tick", sensor_tick)
        self._rel_location = transform.location
        self._rel_matrix = _mount_matrix(transform)
        self._last_measure_s: float | None = None
        self._row_cache: tuple[np.ndarray | None, int] = (None, -1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, parent_id={self.parent_id}, transform={self.transform})"

    @abstractmethod
    def measure(self, world: object, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """This tick's measurement, or None (not due under ``sensor_tick``, or no event)."""

    def reset(self) -> None:
        """Forget the time of the last measurement (the next tick measures)."""
        self._last_measure_s = None

    def _due(self, timestamp_s: float) -> bool:
        """Whether a periodic sensor measures at ``timestamp_s``; records the time when it does."""
        last = self._last_measure_s
        if last is not None and self.sensor_tick > 0.0 and last <= timestamp_s \
                and timestamp_s - last < self.sensor_tick - _TICK_EPS_S:
            return False
        self._last_measure_s = timestamp_s
        return True

    def _parent_row(self, snapshot: WorldSnapshot) -> int:
        """Row of the parent in the snapshot's arrays (cached while the actor list is unchanged)."""
        ids, row = self._row_cache
        if ids is snapshot.actor_id:
            return row
        rows = np.flatnonzero(snapshot.actor_id == self.parent_id)
        if rows.size == 0:
            raise KeyError(f"sensor {self.name!r} ({self.blueprint_id}): parent actor {self.parent_id} is not in "
                           f"the snapshot of frame {snapshot.frame} (destroyed?)")
        row = int(rows[0])
        self._row_cache = (snapshot.actor_id, row)
        return row

    def _world_pose(self, snapshot: WorldSnapshot, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sensor's world location (3,), rotation (3,) and rotation matrix (3, 3) at this snapshot."""
        return _compose(snapshot.location_m[row], snapshot.rotation_rad[row], self._rel_location, self._rel_matrix)

    def _measurement(self, snapshot: WorldSnapshot, location: np.ndarray, rotation: np.ndarray,
                     data: object) -> SensorMeasurement:
        return SensorMeasurement(snapshot.frame, snapshot.timestamp_s, self.name, self.blueprint_id,
                                 _readonly(location), _readonly(rotation), data)
