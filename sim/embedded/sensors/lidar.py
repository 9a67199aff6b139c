"""Rotating LiDARs as CARLA's ``sensor.lidar.ray_cast`` and ``sensor.lidar.ray_cast_semantic``.

Scan pattern (CARLA's): ``channels`` lasers at elevations evenly spaced
from ``upper_fov`` down to ``lower_fov``; each tick of ``dt`` every laser
fires ``round(points_per_second * dt / channels)`` times over the next
``rotation_frequency * horizontal_fov * dt`` degrees of the rotation, which
then continues from there. With ``rotation_frequency`` equal to the tick
rate one tick is one full sweep.

``ray_cast`` data: (N, 4) float32 ``x, y, z, intensity`` in the sensor frame
(x forward, y right, z up), points within ``range``. ``intensity =
exp(-atmosphere_attenuation_rate * distance)``. Before tracing, a share
``dropoff_general_rate`` of the rays is dropped at random; after it, a point
whose intensity is below ``dropoff_intensity_limit`` is kept with probability
``alpha * intensity + beta`` where ``beta = 1 - dropoff_zero_intensity`` and
``alpha = dropoff_zero_intensity / dropoff_intensity_limit`` (CARLA's model);
``noise_stddev`` perturbs the distance along the ray. Randomness comes from
``noise_seed``.

``ray_cast_semantic`` data: a structured array of CARLA's 24-byte points
``x, y, z, CosAngle`` (float32), ``ObjIdx``, ``ObjTag`` (uint32): the cosine
of the angle between the ray and the surface normal, the hit actor's id (0
for the static world) and its semantic tag. No intensity, dropoff or noise.
"""

from __future__ import annotations

import math

import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.sensors.measurements import SEMANTIC_POINT_DTYPE
from sim.embedded.sensors.base import SensorMeasurement, check_finite, check_seed, check_stddev
from sim.embedded.sensors.raycast import RayPlan, RaycastSensor, check_range_and_rate, homogeneous



class _RotatingLidar(RaycastSensor):
    """Scan pattern shared by both LiDARs (see the module docstring)."""

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 channels: int = 32, range: float = 10.0, points_per_second: int = 56000,  # noqa: A002 (CARLA's name)
                 rotation_frequency: float = 10.0, upper_fov: float = 10.0, lower_fov: float = -30.0,
                 horizontal_fov: float = 360.0, sensor_tick: float = 0.0) -> None:
        super().__init__(parent_id, transform, name=name, sensor_tick=sensor_tick)
        bp = self.blueprint_id
        if isinstance(channels, bool) or int(channels) != channels or int(channels) < 1:
            raise ValueError(f"{bp}: channels must be an integer >= 1, got {channels!r}")
        self.channels = int(channels)
        self.range_m, self.points_per_second = check_range_and_rate(bp, range, points_per_second)
        self.rotation_frequency = check_finite("rotation_frequency", rotation_frequency)
        if self.rotation_frequency <= 0:
            raise ValueError(f"{bp}: rotation_frequency must be > 0 Hz, got {rotation_frequency}")
        self.upper_fov, self.lower_fov = check_finite("upper_fov", upper_fov), check_finite("lower_fov", lower_fov)
        if not self.upper_fov > self.lower_fov:
            raise ValueError(f"{bp}: upper_fov ({upper_fov}) must be greater than lower_fov ({lower_fov})")
        self.horizontal_fov = check_finite("horizontal_fov", horizontal_fov)
        if not 0 < self.horizontal_fov <= 360:
            raise ValueError(f"{bp}: horizontal_fov must be in (0, 360] degrees, got {horizontal_fov}")
        step = (self.upper_fov - self.lower_fov) / max(self.channels - 1, 1)
        self.elevations_deg = self.upper_fov - step * np.arange(self.channels)
        self.current_angle_deg = 0.0
        self._ray_cache: dict[tuple, tuple[np.ndarray, ...]] = {}  # sweep start -> (rays, [rays, 1], cos, sin)
        self._homogeneous = np.zeros((0, 4), dtype=np.float32)
        self._kept: np.ndarray | None = None  # rays of the full grid traced this tick (None: all)
        self._azimuth_cos = self._azimuth_sin = np.zeros(0)

    def local_rays(self, snapshot: WorldSnapshot):
        """This tick's slice of the rotation; advances the rotation."""
        dt = snapshot.dt_s
        per_laser = max(1, int(math.floor(self.points_per_second * dt / self.channels + 0.5)))
        sweep = self.rotation_frequency * self.horizontal_fov * dt
        key = (round(self.current_angle_deg, 9), per_laser, round(sweep, 9))
        cached = self._ray_cache.get(key)
        if cached is None:
            azimuth = self.current_angle_deg + sweep / per_laser * np.arange(per_laser)
            azimuth = np.mod(azimuth, self.horizontal_fov)
            if self.horizontal_fov < 360.0:
                azimuth -= self.horizontal_fov / 2.0
            el = np.radians(self.elevations_deg)[:, None]
            az = np.radians(azimuth)[None, :]
            shape = (el.shape[0], az.shape[1])
            directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az),
                                   np.broadcast_to(np.sin(el), shape)], axis=-1).reshape(-1, 3).astype(np.float32)
            azimuth_rad = np.radians(azimuth)
            cached = (directions, homogeneous(directions), np.cos(azimuth_rad), np.sin(azimuth_rad))
            if len(self._ray_cache) >= 64:  # a sweep that never repeats: keep the cache small
                self._ray_cache.clear()
            self._ray_cache[key] = cached
        self.current_angle_deg = float(np.mod(self.current_angle_deg + sweep, self.horizontal_fov))
        directions, rows, self._azimuth_cos, self._azimuth_sin = cached
        self._kept = self._keep_before_tracing(directions.shape[0])
        if self._kept is not None:
            directions, rows = directions[self._kept], rows[self._kept]
        self._homogeneous = rows
        return directions, np.full(directions.shape[0], self.range_m, np.float32), None, None

    def actor_candidates(self, plan: RayPlan, corners: np.ndarray) -> np.ndarray | None:
        """Rays of the (channel, azimuth) cells that bound the actors' boxes, seen from the sensor.

        Each box is bounded by a sphere around its centre: its azimuth lies
        within ``asin(r / d_xy)`` of the centre's (all azimuths when the sensor
        is above or inside it), and its elevation between the extreme corner
        heights over the nearest and farthest horizontal distances. Rays
        dropped before tracing are left out of the grid's cells.
        """
        if corners.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        local = (corners - plan.location) @ plan.matrix  # (A, 8, 3) sensor frame
        centre = local.mean(axis=1)
        radius = np.linalg.norm(local - centre[:, None, :], axis=2).max(axis=1) + 1e-3
        d_xy = np.hypot(centre[:, 0], centre[:, 1])
        z_min, z_max = local[..., 2].min(axis=1), local[..., 2].max(axis=1)
        near_r = np.maximum(d_xy - radius, 1e-9)  # the nearest point may lie inside a face: sphere bound
        far_r = np.hypot(local[..., 0], local[..., 1]).max(axis=1)  # the farthest is a corner
        el_max = np.where(z_max > 0, np.arctan2(z_max, near_r), np.arctan2(z_max, far_r))
        el_min = np.where(z_min < 0, np.arctan2(z_min, near_r), np.arctan2(z_min, far_r))
        around = d_xy <= radius
        half = np.where(around, np.pi, np.arcsin(np.minimum(radius / np.maximum(d_xy, 1e-9), 1.0)))
        slack = 1e-6
        elevation = np.radians(self.elevations_deg)
        channel = (elevation[None, :] >= el_min[:, None] - slack) & (elevation[None, :] <= el_max[:, None] + slack)
        # Only actors seen on some channel matter; their azimuth windows as (A', P) masks.
        seen = np.flatnonzero(channel.any(axis=1))
        if seen.size == 0:
            return np.zeros(0, dtype=np.int64)
        channel = channel[seen]
        # |azimuth - centre azimuth| <= half  <=>  cos(difference) >= cos(half), for half <= pi.
        heading = np.arctan2(centre[seen, 1], centre[seen, 0])
        cos_diff = (np.cos(heading)[:, None] * self._azimuth_cos[None, :]
                    + np.sin(heading)[:, None] * self._azimuth_sin[None, :])
        column = cos_diff >= np.cos(np.minimum(half[seen] + slack, np.pi))[:, None] - slack  # (A', P)
        # OR over actors, per channel, on packed bits: (C, A, words) -> (C, words).
        bits = np.packbits(column, axis=1)
        pad = (-bits.shape[1]) % 8
        words = np.pad(bits, ((0, 0), (0, pad))).view(np.uint64)  # 64 azimuth cells per word
        grid_words = np.bitwise_or.reduce(np.where(channel.T[:, :, None], words[None, :, :], np.uint64(0)), axis=1)
        grid = np.unpackbits(np.ascontiguousarray(grid_words).view(np.uint8), axis=1, count=column.shape[1])
        cells = grid.ravel().view(bool)
        return np.flatnonzero(cells if self._kept is None else cells[self._kept])

    def local_homogeneous(self, local: np.ndarray) -> np.ndarray:
        """This tick's homogeneous directions, from the cached sweep."""
        return self._homogeneous

    def _keep_before_tracing(self, n: int) -> np.ndarray | None:
        return None


class RayCastLidar(_RotatingLidar):
    """``sensor.lidar.ray_cast``: (N, 4) float32 x, y, z, intensity in the sensor frame."""

    blueprint_id = "sensor.lidar.ray_cast"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 atmosphere_attenuation_rate: float = 0.004, dropoff_general_rate: float = 0.45,
                 dropoff_intensity_limit: float = 0.8, dropoff_zero_intensity: float = 0.4,
                 noise_stddev: float = 0.0, noise_seed: int = 0, **scan) -> None:
        super().__init__(parent_id, transform, name=name, **scan)
        self.attenuation = check_stddev("atmosphere_attenuation_rate", atmosphere_attenuation_rate)
        self.dropoff_general_rate = check_finite("dropoff_general_rate", dropoff_general_rate)
        self.dropoff_intensity_limit = check_finite("dropoff_intensity_limit", dropoff_intensity_limit)
        self.dropoff_zero_intensity = check_finite("dropoff_zero_intensity", dropoff_zero_intensity)
        for attr in ("dropoff_general_rate", "dropoff_intensity_limit", "dropoff_zero_intensity"):
            if not 0.0 <= getattr(self, attr) <= 1.0:
                raise ValueError(f"{self.blueprint_id}: {attr} must be in [0, 1], got {getattr(self, attr)}")
        self.noise_stddev = check_stddev("noise_stddev", noise_stddev)
        self.rng = np.random.default_rng(check_seed("noise_seed", noise_seed))

    def _keep_before_tracing(self, n: int) -> np.ndarray | None:
        if self.dropoff_general_rate <= np.finfo(np.float32).eps:
            return None
        return self.rng.random(n) >= self.dropoff_general_rate

    def finish(self, snapshot: WorldSnapshot, plan: RayPlan, hits) -> SensorMeasurement:
        """Points within range with CARLA's intensity, intensity dropoff and noise."""
        distance = hits.distance_m
        hit = distance <= self.range_m
        distance = distance[hit]
        local = plan.local_directions[hit]
        if self.noise_stddev > 0:
            distance = distance + self.rng.normal(0.0, self.noise_stddev, distance.shape[0])
        intensity = np.exp(-self.attenuation * distance)
        beta = 1.0 - self.dropoff_zero_intensity
        if self.dropoff_intensity_limit > 0 and beta < 1.0:  # beta = 1: every point is kept
            alpha = self.dropoff_zero_intensity / self.dropoff_intensity_limit
            keep = (intensity > self.dropoff_intensity_limit) | (self.rng.random(intensity.shape[0]) < alpha * intensity + beta)
            distance, local, intensity = distance[keep], local[keep], intensity[keep]
        points = np.empty((distance.shape[0], 4), dtype=np.float32)
        points[:, :3] = local * distance[:, None]
        points[:, 3] = intensity
        return self._measurement(snapshot, plan.location.copy(), plan.rotation.copy(), points)


class SemanticLidar(_RotatingLidar):
    """``sensor.lidar.ray_cast_semantic``: structured points (:data:`SEMANTIC_POINT_DTYPE`)."""

    blueprint_id = "sensor.lidar.ray_cast_semantic"

    def finish(self, snapshot: WorldSnapshot, plan: RayPlan, hits) -> SensorMeasurement:
        """Points within range with incidence cosine, actor id and tag."""
        hit = hits.distance_m <= self.range_m
        distance = hits.distance_m[hit]
        local = plan.local_directions[hit]
        points = np.zeros(distance.shape[0], dtype=SEMANTIC_POINT_DTYPE)
        xyz = local * distance[:, None]
        points["x"], points["y"], points["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        points["CosAngle"] = np.abs(np.einsum("ij,ij->i", hits.normal[hit], plan.directions[hit]))
        points["ObjIdx"] = hits.instance[hit]
        points["ObjTag"] = hits.tag[hit]
        return self._measurement(snapshot, plan.location.copy(), plan.rotation.copy(), points)
