"""Observation builders: measurement vector, compact ``state`` vectors, and the sensor suite's arrays.

Measurements (every mode; names in :data:`MEASUREMENT_NAMES`, scaled to roughly [-1, 1])::

    speed / 10 m/s, speed limit / 10 m/s, previous action (2 or 3 values as applied),
    route command one-hot (LEFT, RIGHT, STRAIGHT, LANEFOLLOW, CHANGELANELEFT, CHANGELANERIGHT),
    distance to the next junction / 100 m (1 when none within 100 m),
    lateral offset from the route / 2 m, heading error / pi

``state`` appends, all in the ego frame (x forward, y right) and scaled by
``radius_m`` (positions), 10 m/s (velocities):

- the next ``route_points`` route points every ``route_spacing_m`` metres (x, y);
- the ``vehicles`` nearest vehicles within ``radius_m``: present, x, y, cos and
  sin of relative yaw, vx, vy (zeros with present = 0 when fewer);
- the ``walkers`` nearest pedestrians: present, x, y, vx, vy;
- the next traffic light on the route: one-hot red, yellow, green, none, and its
  distance / 100 m.

:class:`GroundTruth` is the privileged ground truth the env puts in
``info["ground_truth"]`` (``observation.ground_truth: true``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.env.config import StateSection
from sim.scenarios.routes import RoadOption, Route, RouteProgress
from sim.transforms import world_to_ego

COMMANDS = (RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT, RoadOption.LANEFOLLOW,
            RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT)


def measurement_names(action_size: int) -> tuple[str, ...]:
    """Names of the measurement vector's entries, in order."""
    action = {2: ("previous_acceleration", "previous_steer"),
              3: ("previous_throttle", "previous_brake", "previous_steer"),
              4: ("previous_throttle", "previous_steer", "previous_brake", "previous_reverse")}[action_size]
    return ("speed", "speed_limit", *action, *(f"command_{c.name.lower()}" for c in COMMANDS),
            "junction_distance", "lateral_offset", "heading_error")


MEASUREMENT_NAMES = measurement_names(2)
"""Measurement names for the default ``acc_steer`` actions."""


def measurements(speed_mps: float, speed_limit_mps: float, previous_action: np.ndarray,
                 progress: RouteProgress) -> np.ndarray:
    """The measurement vector (float32) described in the module docstring."""
    command = np.zeros(len(COMMANDS), dtype=np.float32)
    if progress.command in COMMANDS:
        command[COMMANDS.index(progress.command)] = 1.0
    junction = min(progress.junction_distance_m, 100.0) / 100.0
    return np.concatenate([
        [speed_mps / 10.0, speed_limit_mps / 10.0], previous_action, command,
        [junction, progress.lateral_m / 2.0, progress.heading_error_rad / math.pi]]).astype(np.float32)


def measurement_space(action_size: int) -> spaces.Box:
    """Box of the measurement vector."""
    n = len(measurement_names(action_size))
    return spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)


class StateObserver:
    """Builds the ``state`` vector (see the module docstring)."""

    def __init__(self, config: StateSection, action_size: int) -> None:
        self.config = config
        self.action_size = action_size
        c = config
        self.size = (len(measurement_names(action_size)) + 2 * c.route_points + 7 * c.vehicles + 5 * c.walkers + 5)
        self.space = spaces.Box(-np.inf, np.inf, shape=(self.size,), dtype=np.float32)

    def observe(self, snapshot: WorldSnapshot, ego_row: int, route: Route, progress: RouteProgress,
                measurement: np.ndarray, light_state: int | None, light_distance_m: float) -> np.ndarray:
        """The state vector for the ego at ``ego_row``."""
        c = self.config
        ego_xy = snapshot.location_m[ego_row, :2]
        yaw = float(snapshot.rotation_rad[ego_row, 1])

        # Route points ahead, every route_spacing_m from the ego's progress.
        s_ahead = progress.s_m + c.route_spacing_m * np.arange(1, c.route_points + 1)
        idx = np.minimum(np.searchsorted(route.s_m, s_ahead), route.s_m.shape[0] - 1)
        route_part = world_to_ego(route.points_xy[idx], ego_xy, yaw).ravel() / c.radius_m

        dist = np.hypot(snapshot.location_m[:, 0] - ego_xy[0], snapshot.location_m[:, 1] - ego_xy[1])
        ex, ey = world_to_ego(snapshot.location_m[:, :2], ego_xy, yaw).T
        vx, vy = world_to_ego(snapshot.velocity_mps[:, :2], (0.0, 0.0), yaw).T
        near = (dist <= c.radius_m) & (np.arange(dist.shape[0]) != ego_row)
        parts = [measurement, route_part]
        for kind, k, width in ((ActorKind.VEHICLE, c.vehicles, 7), (ActorKind.WALKER, c.walkers, 5)):
            block = np.zeros((k, width), dtype=np.float32)
            rows = np.flatnonzero(near & (snapshot.kind == kind))
            rows = rows[np.argsort(dist[rows], kind="stable")][:k]
            if rows.size:
                block[: rows.size, 0] = 1.0
                block[: rows.size, 1] = ex[rows] / c.radius_m
                block[: rows.size, 2] = ey[rows] / c.radius_m
                if kind == ActorKind.VEHICLE:
                    relative = snapshot.rotation_rad[rows, 1] - yaw
                    block[: rows.size, 3] = np.cos(relative)
                    block[: rows.size, 4] = np.sin(relative)
                block[: rows.size, width - 2] = vx[rows] / 10.0
                block[: rows.size, width - 1] = vy[rows] / 10.0
            parts.append(block.ravel())
        light = np.zeros(5, dtype=np.float32)
        slot = {TrafficLightState.RED: 0, TrafficLightState.YELLOW: 1, TrafficLightState.GREEN: 2}.get(light_state, 3)
        light[slot] = 1.0
        light[4] = min(light_distance_m, 100.0) / 100.0
        parts.append(light)
        return np.concatenate(parts).astype(np.float32)


def sensor_space(specs, dt_s: float) -> tuple[spaces.Dict, dict[str, int]]:
    """The Dict space of a suite's arrays, and the padded row count of variable-size sensors.

    Shapes come from :func:`sim.sensors.layout.data_layout`. LiDAR and radar
    give a varying number of points per tick: their arrays are padded with
    zeros to the most they can give, and ``<name>_count`` holds the number of
    real rows. Event sensors (collision, lane invasion) report in ``info``.
    """
    from sim.sensors.layout import data_layout

    entries: dict[str, spaces.Space] = {}
    padded: dict[str, int] = {}
    for spec in specs:
        layout = data_layout(spec, dt_s)
        if layout is None:
            continue
        entries[spec.name] = spaces.Box(layout.low, layout.high, shape=layout.shape, dtype=layout.dtype)
        if layout.padded:
            rows = layout.shape[0]
            padded[spec.name] = rows
            entries[f"{spec.name}_count"] = spaces.Box(0, rows, shape=(1,), dtype=np.int64)
    return spaces.Dict(entries), padded


def sensor_arrays(data: dict, space: spaces.Dict, padded: dict[str, int]) -> dict[str, np.ndarray]:
    """The observation dict from a rig's measurements (zeros for sensors with nothing this tick)."""
    out: dict[str, np.ndarray] = {}
    for name, box in space.spaces.items():
        if name.endswith("_count") and name[:-6] in padded:
            continue
        measurement = data.get(name)
        if name in padded:
            rows = np.zeros(box.shape, dtype=np.float32)
            count = 0
            if measurement is not None:
                values = measurement.data
                if values.dtype.names:  # semantic LiDAR: structured points -> float columns
                    values = np.stack([values[f].astype(np.float32) for f in values.dtype.names], axis=1)
                count = min(values.shape[0], box.shape[0])
                rows[:count] = values[:count]
            out[name] = rows
            out[f"{name}_count"] = np.array([count], dtype=np.int64)
        elif measurement is None:
            out[name] = np.zeros(box.shape, dtype=box.dtype)
        elif hasattr(measurement.data, "accelerometer_mps2"):  # IMU
            m = measurement.data
            out[name] = np.concatenate([m.accelerometer_mps2, m.gyroscope_rad_s, [m.compass_rad]]).astype(np.float32)
        else:
            out[name] = np.asarray(measurement.data, dtype=box.dtype).reshape(box.shape)
    return out


@dataclass(frozen=True)
class EgoGroundTruth:
    """The ego's pose (world frame, CARLA's axes), horizontal speed and velocity (world frame) [m/s]."""

    actor_id: int
    x_m: float
    y_m: float
    z_m: float
    pitch_rad: float
    yaw_rad: float
    roll_rad: float
    speed_mps: float
    velocity_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class ActorBoxes:
    """Oriented boxes of the actors near the ego (the ego excluded), nearest first, in the ego frame.

    The ego frame is the ego's origin with x forward, y right, z up (CARLA's
    axes); the ego's pitch and roll are ignored. Per actor (``N`` rows):
    ``actor_id`` (N,) int64; ``kind`` (N,) int8 (:class:`~sim.api.ActorKind`);
    ``center_m`` (N, 3) the box centre (a vehicle's origin is under its box,
    so its centre is one half height above it); ``extent_m`` (N, 3) half
    length, width, height; ``yaw_rad`` (N,) the actor's yaw minus the ego's,
    wrapped to (-pi, pi]; ``velocity_mps`` (N, 3).
    """

    actor_id: np.ndarray
    kind: np.ndarray
    center_m: np.ndarray
    extent_m: np.ndarray
    yaw_rad: np.ndarray
    velocity_mps: np.ndarray

    def __len__(self) -> int:
        return int(self.actor_id.shape[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorBoxes):
            return NotImplemented
        return all(np.array_equal(getattr(self, name), getattr(other, name))
                   for name in ("actor_id", "kind", "center_m", "extent_m", "yaw_rad", "velocity_mps"))

    __hash__ = None  # type: ignore[assignment]  (holds arrays)


@dataclass(frozen=True)
class LightGroundTruth:
    """The traffic light that governs the ego on its route: the next one ahead.

    ``index`` into the world's ``signals`` (-1: none ahead), its ``state``
    (None when none) and the distance along the route to its stop line [m]
    (inf when none).
    """

    index: int
    state: TrafficLightState | None
    distance_m: float


@dataclass(frozen=True)
class GroundTruth:
    """Privileged ground truth of one tick (``info["ground_truth"]``); arrays are read-only."""

    frame: int
    timestamp_s: float
    ego: EgoGroundTruth
    actors: ActorBoxes
    light: LightGroundTruth


def ground_truth(snapshot: WorldSnapshot, ego_row: int, radius_m: float, light: LightGroundTruth) -> GroundTruth:
    """The :class:`GroundTruth` of ``snapshot`` for the ego at ``ego_row``, with actors within ``radius_m``."""
    ego_xy = snapshot.location_m[ego_row, :2]
    pitch, yaw, roll = (float(v) for v in snapshot.rotation_rad[ego_row])
    x, y, z = (float(v) for v in snapshot.location_m[ego_row])
    ego = EgoGroundTruth(int(snapshot.actor_id[ego_row]), x, y, z, pitch, yaw, roll,
                         float(np.hypot(*snapshot.velocity_mps[ego_row, :2])),
                         tuple(float(v) for v in snapshot.velocity_mps[ego_row]))
    dist = np.hypot(snapshot.location_m[:, 0] - ego_xy[0], snapshot.location_m[:, 1] - ego_xy[1])
    rows = np.flatnonzero((dist <= radius_m) & (np.arange(dist.shape[0]) != ego_row))
    rows = rows[np.argsort(dist[rows], kind="stable")]
    extent = np.array(snapshot.extent_m[rows], dtype=np.float64)
    center = np.empty((rows.size, 3))
    center[:, :2] = world_to_ego(snapshot.location_m[rows, :2], ego_xy, yaw)
    vehicle = snapshot.kind[rows] == ActorKind.VEHICLE
    center[:, 2] = snapshot.location_m[rows, 2] - z + np.where(vehicle, extent[:, 2], 0.0)
    velocity = np.empty((rows.size, 3))
    velocity[:, :2] = world_to_ego(snapshot.velocity_mps[rows, :2], (0.0, 0.0), yaw)
    velocity[:, 2] = snapshot.velocity_mps[rows, 2]
    relative_yaw = np.angle(np.exp(1j * (snapshot.rotation_rad[rows, 1] - yaw)))
    arrays = (np.array(snapshot.actor_id[rows], dtype=np.int64), np.array(snapshot.kind[rows], dtype=np.int8),
              center, extent, relative_yaw, velocity)
    for array in arrays:
        array.flags.writeable = False
    return GroundTruth(int(snapshot.frame), float(snapshot.timestamp_s), ego, ActorBoxes(*arrays), light)
