"""What raycast sensors (cameras, LiDARs, radar) share: plan rays, cast them all at once, turn hits into data.

A raycast sensor does its work in two steps so that a rig can cast the rays
of every sensor in one call to the scene (Open3D spreads one call over all
cores, and cameras with the same pose and intrinsics share their rays):

1. :meth:`RaycastSensor.plan` returns a :class:`RayPlan`: ray origins and
   unit directions in the world frame, a maximum range per ray, and a
   ``share_key`` (plans with equal keys and frames are cast once);
2. :meth:`RaycastSensor.finish` turns the hits of exactly those rays into the
   sensor's CARLA-layout data.

:meth:`RaycastSensor.measure` does both against ``world.scene`` on its own.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

from sim.api import WorldSnapshot
from sim.embedded.sensors.base import Sensor, SensorMeasurement, check_finite


@dataclass(eq=False)
class RayPlan:
    """Rays of one sensor for one tick.

    ``local_directions`` (N, 3) float32 unit vectors in the sensor frame,
    ``max_range_m`` (N,) float32. ``location`` (3,), ``rotation`` (3,) and
    ``matrix`` (3, 3) are the sensor's world pose (columns of ``matrix``:
    forward, right, up). ``share_key``: plans with equal keys in one tick are
    the same rays (None: never shared). ``extra``: sensor-specific
    bookkeeping for :meth:`RaycastSensor.finish`.

    The world rays are written by :meth:`write` straight into a caller's
    (N, 6) float32 ``[origin, direction]`` buffer (the layout the raycaster
    takes) as one product ``[d, 1] @ T`` with ``T`` (4, 6) holding the
    rotation and the origin, in row blocks small enough that OpenBLAS stays
    on one thread (its spinning worker threads slowed the raycast that
    follows by ~40% on two cores). ``local_homogeneous`` (N, 4) ``[d, 1]``
    is cached by sensors whose rays are fixed. ``origins`` and
    ``directions`` read the rays back (writing them into a buffer of the
    plan's own first if needed).
    """

    location: np.ndarray
    rotation: np.ndarray
    matrix: np.ndarray
    local_directions: np.ndarray
    max_range_m: np.ndarray
    share_key: Hashable | None = None
    extra: object = None
    local_homogeneous: np.ndarray | None = None  # (N, 4) float32 [local_directions, 1]
    rays: np.ndarray | None = field(default=None, repr=False)

    @property
    def num_rays(self) -> int:
        """Number of rays N."""
        return int(self.local_directions.shape[0])

    BLOCK_ROWS = 8192  # 8192 x 4 x 6 multiply-adds: below OpenBLAS's threshold for threading

    def write(self, out: np.ndarray) -> None:
        """Write the world rays into ``out`` (N, 6) float32 and keep it as this plan's rays."""
        local = self.local_homogeneous if self.local_homogeneous is not None else homogeneous(self.local_directions)
        transform = np.zeros((4, 6), dtype=np.float32)
        transform[:3, 3:] = self.matrix.T
        transform[3, :3] = self.location
        for start in range(0, local.shape[0], self.BLOCK_ROWS):
            stop = start + self.BLOCK_ROWS
            np.matmul(local[start:stop], transform, out=out[start:stop])
        self.rays = out

    def _world_rays(self) -> np.ndarray:
        if self.rays is None:
            self.write(np.empty((self.num_rays, 6), dtype=np.float32))
        return self.rays

    @property
    def origins(self) -> np.ndarray:
        """(N, 3) float32 ray origins, world frame."""
        return self._world_rays()[:, :3]

    @property
    def directions(self) -> np.ndarray:
        """(N, 3) float32 unit ray directions, world frame."""
        return self._world_rays()[:, 3:]


def homogeneous(directions: np.ndarray) -> np.ndarray:
    """(N, 3) directions as a contiguous (N, 4) float32 array ``[d, 1]``."""
    out = np.empty((directions.shape[0], 4), dtype=np.float32)
    out[:, :3] = directions
    out[:, 3] = 1.0
    return out


def check_range_and_rate(blueprint_id: str, range_m: object, points_per_second: object) -> tuple[float, float]:
    """A ray sensor's ``range`` (> 0 m) and ``points_per_second`` (>= 1) as floats; ``ValueError`` naming them."""
    checked_range = check_finite("range", range_m)
    if checked_range <= 0:
        raise ValueError(f"{blueprint_id}: range must be > 0 m, got {range_m}")
    rate = check_finite("points_per_second", points_per_second)
    if rate < 1:
        raise ValueError(f"{blueprint_id}: points_per_second must be >= 1, got {points_per_second}")
    return checked_range, rate


_SHARED_PLANS: dict[Hashable, tuple[int, RayPlan]] = {}
"""Plans by share key, kept for the frame they were made in (cameras with equal rays reuse one)."""


class RaycastSensor(Sensor):
    """A sensor whose data come from rays cast into the scene."""

    @abstractmethod
    def local_rays(self, snapshot: WorldSnapshot) -> tuple[np.ndarray, np.ndarray, Hashable | None, object]:
        """This tick's rays in the sensor frame: (directions (N, 3), max range (N,), share key, extra)."""

    @abstractmethod
    def finish(self, snapshot: WorldSnapshot, plan: RayPlan, hits) -> SensorMeasurement:
        """The measurement from the hits (a ``RayHits`` for exactly ``plan``'s rays)."""

    def actor_candidates(self, plan: RayPlan, corners: np.ndarray) -> np.ndarray | None:
        """Indices of this plan's rays that may hit an actor, given actor box corners (A, 8, 3).

        Must be conservative (never leave out a ray that hits an actor). None,
        the default, means all rays.
        """
        return None

    def local_homogeneous(self, local: np.ndarray) -> np.ndarray:
        """``[local, 1]`` as a contiguous (N, 4) float32 array (sensors with fixed rays cache it)."""
        return homogeneous(local)

    def plan(self, snapshot: WorldSnapshot) -> RayPlan | None:
        """This tick's rays in the world frame, or None when ``sensor_tick`` says not now."""
        if not self._due(snapshot.timestamp_s):
            return None
        row = self._parent_row(snapshot)
        location, rotation, matrix = self._world_pose(snapshot, row)
        local, max_range, key, extra = self.local_rays(snapshot)
        share = None if key is None else (key, tuple(np.round(location, 6)), tuple(np.round(rotation, 9)))
        cached = _SHARED_PLANS.get(share) if share is not None else None
        if cached is not None and cached[0] == snapshot.frame:
            return cached[1]  # another sensor already planned exactly these rays this tick
        plan = RayPlan(location, rotation, matrix, local, np.asarray(max_range, dtype=np.float32), share, extra,
                       self.local_homogeneous(local))
        if share is not None:
            if len(_SHARED_PLANS) > 64:
                _SHARED_PLANS.clear()
            _SHARED_PLANS[share] = (snapshot.frame, plan)
        return plan

    def measure(self, world, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """Plan, cast against ``world.scene`` and finish, for a sensor used on its own."""
        plan = self.plan(snapshot)
        if plan is None:
            return None
        hits = world.scene.cast_rays(plan.origins, plan.directions, plan.max_range_m)
        return self.finish(snapshot, plan, hits)
