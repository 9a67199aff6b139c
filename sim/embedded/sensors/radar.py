"""``sensor.other.radar`` as CARLA's: random rays in the field of view, radial velocity of what they hit.

Each tick casts ``round(points_per_second * dt)`` rays towards points drawn
uniformly in an ellipse that spans ``horizontal_fov`` x ``vertical_fov`` at
``range``, as CARLA does. Data: (N, 4) float32 rows of CARLA's
``RadarDetection``: ``velocity`` [m/s] (the hit's velocity relative to the
sensor along the ray; negative when the target approaches), ``azimuth`` and
``altitude`` [rad] of the hit in the sensor frame, and ``depth`` [m].
"""

from __future__ import annotations

import math

import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.embedded.sensors.base import SensorMeasurement, check_finite, check_seed
from sim.embedded.sensors.raycast import RayPlan, RaycastSensor, check_range_and_rate


class Radar(RaycastSensor):
    """``sensor.other.radar``: see the module docstring."""

    blueprint_id = "sensor.other.radar"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 horizontal_fov: float = 30.0, vertical_fov: float = 30.0, range: float = 100.0,  # noqa: A002
                 points_per_second: int = 1500, sensor_tick: float = 0.0, noise_seed: int = 0) -> None:
        super().__init__(parent_id, transform, name=name, sensor_tick=sensor_tick)
        bp = self.blueprint_id
        self.horizontal_fov = check_finite("horizontal_fov", horizontal_fov)
        self.vertical_fov = check_finite("vertical_fov", vertical_fov)
        for attr in ("horizontal_fov", "vertical_fov"):
            if not 0 < getattr(self, attr) < 180:
                raise ValueError(f"{bp}: {attr} must be in (0, 180) degrees, got {getattr(self, attr)}")
        self.range_m, self.points_per_second = check_range_and_rate(bp, range, points_per_second)
        self.rng = np.random.default_rng(check_seed("noise_seed", noise_seed))

    def local_rays(self, snapshot: WorldSnapshot):
        """Random rays in the elliptical field of view."""
        n = max(1, int(math.floor(self.points_per_second * snapshot.dt_s + 0.5)))
        radius = self.rng.random(n)
        angle = self.rng.uniform(0.0, 2.0 * math.pi, n)
        half_h = math.tan(math.radians(self.horizontal_fov) / 2.0)
        half_v = math.tan(math.radians(self.vertical_fov) / 2.0)
        directions = np.stack([np.ones(n), half_h * radius * np.cos(angle), half_v * radius * np.sin(angle)], axis=1)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return directions.astype(np.float32), np.full(n, self.range_m, np.float32), None, None

    def finish(self, snapshot: WorldSnapshot, plan: RayPlan, hits) -> SensorMeasurement:
        """Detections of the rays that hit something within range."""
        hit = hits.distance_m <= self.range_m
        local = plan.local_directions[hit]
        row = self._parent_row(snapshot)
        own_velocity = snapshot.velocity_mps[row] if row >= 0 else np.zeros(3, dtype=snapshot.velocity_mps.dtype)
        relative = hits.hit_velocity[hit] - own_velocity[None, :]
        detections = np.empty((local.shape[0], 4), dtype=np.float32)
        detections[:, 0] = np.einsum("ij,ij->i", relative, plan.directions[hit])
        detections[:, 1] = np.arctan2(local[:, 1], local[:, 0])
        detections[:, 2] = np.arctan2(local[:, 2], np.hypot(local[:, 0], local[:, 1]))
        detections[:, 3] = hits.distance_m[hit]
        return self._measurement(snapshot, plan.location.copy(), plan.rotation.copy(), detections)
