"""What every embedded sensor shares: the mount pose, the world pose, measurements, ``sensor_tick``.

Sensors attach rigidly to a parent actor with a :class:`Pose` relative
to the parent's origin (CARLA's ``spawn_actor(bp, transform, attach_to=parent)``).
A sensor whose parent is :data:`WORLD_PARENT_ID` (0) is fixed in the world and
its pose is a world pose (CARLA's ``spawn_actor(bp, transform)`` without a parent).
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
from typing import ClassVar

import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.sensors.measurements import SensorMeasurement, readonly
from sim.transforms import (compose_mount, mount_matrix, rotation_from_matrix, rotation_matrix,
                            sensor_world_pose)

__all__ = [
    "WORLD_PARENT_ID", "Sensor", "SensorMeasurement", "check_finite", "check_seed", "check_stddev",
    "rotation_from_matrix", "rotation_matrix", "sensor_world_pose",
]

WORLD_PARENT_ID = 0
"""``parent_id`` of a sensor fixed in the world (actor ids start at 1)."""

# Tolerance on elapsed simulation time: timestamps are frame * dt and carry rounding errors.
_TICK_EPS_S = 1e-6


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


class Sensor(ABC):
    """A sensor attached rigidly to a parent actor; see the module docstring.

    Subclasses set ``blueprint_id`` and implement :meth:`measure`, which the
    owner calls once after every world tick. Periodic sensors (GNSS, IMU)
    return a measurement on the ticks ``sensor_tick`` allows and None on the
    others; event sensors (collision, lane invasion) return one on ticks with
    events and None otherwise.
    """

    blueprint_id: ClassVar[str]

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 sensor_tick: float = 0.0) -> None:
        if isinstance(parent_id, bool) or not isinstance(parent_id, (int, np.integer)):
            raise ValueError(f"parent_id must be an actor id (int), got {parent_id!r}")
        transform = Pose() if transform is None else transform
        if not isinstance(transform, Pose):
            raise ValueError(f"transform must be a Pose, got {type(transform).__name__}")
        self.parent_id = int(parent_id)
        self.transform = transform
        self.name = self.blueprint_id if name is None else str(name)
        self.sensor_tick = check_stddev("sensor_tick", sensor_tick)
        self._rel_location = transform.location
        self._rel_matrix = mount_matrix(transform)
        self._last_measure_s: float | None = None
        self._row_cache: tuple[np.ndarray | None, int] = (None, -1)
        self._fixed_pose = (compose_mount(np.zeros(3), np.zeros(3), self._rel_location, self._rel_matrix)
                            if self.parent_id == WORLD_PARENT_ID else None)

    @property
    def fixed_in_world(self) -> bool:
        """Whether the sensor has no parent (its ``transform`` is its world pose)."""
        return self._fixed_pose is not None

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
        """Row of the parent in the snapshot's arrays (cached while the actor list is unchanged); -1 when the
        sensor is fixed in the world (it has no row: see :meth:`_world_pose`)."""
        if self._fixed_pose is not None:
            return -1
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
        if self._fixed_pose is not None:
            location, rotation, matrix = self._fixed_pose
            return location.copy(), rotation.copy(), matrix
        return compose_mount(snapshot.location_m[row], snapshot.rotation_rad[row], self._rel_location, self._rel_matrix)

    def _measurement(self, snapshot: WorldSnapshot, location: np.ndarray, rotation: np.ndarray,
                     data: object) -> SensorMeasurement:
        return SensorMeasurement(snapshot.frame, snapshot.timestamp_s, self.name, self.blueprint_id,
                                 readonly(location), readonly(rotation), data)
