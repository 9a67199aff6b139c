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
"""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.env.config import StateSection
from sim.scenarios.routes import RoadOption, Route, RouteProgress

COMMANDS = (RoadOption.LEFT, RoadOption.RIGHT, RoadOption.STRAIGHT, RoadOption.LANEFOLLOW,
            RoadOption.CHANGELANELEFT, RoadOption.CHANGELANERIGHT)


def measurement_names(action_size: int) -> tuple[str, ...]:
    """Names of the measurement vector's entries, in order."""
    action = ("previous_acceleration", "previous_steer") if action_size == 2 else \
        ("previous_throttle", "previous_brake", "previous_steer")
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
        x0, y0 = snapshot.location_m[ego_row, :2]
        yaw = float(snapshot.rotation_rad[ego_row, 1])
        cos, sin = math.cos(yaw), math.sin(yaw)

        def to_ego(dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return dx * cos + dy * sin, -dx * sin + dy * cos

        # Route points ahead, every route_spacing_m from the ego's progress.
        s_ahead = progress.s_m + c.route_spacing_m * np.arange(1, c.route_points + 1)
        idx = np.minimum(np.searchsorted(route.s_m, s_ahead), route.s_m.shape[0] - 1)
        rx, ry = to_ego(route.points_xy[idx, 0] - x0, route.points_xy[idx, 1] - y0)
        route_part = np.stack([rx, ry], axis=1).ravel() / c.radius_m

        dx = snapshot.location_m[:, 0] - x0
        dy = snapshot.location_m[:, 1] - y0
        dist = np.hypot(dx, dy)
        ex, ey = to_ego(dx, dy)
        vx, vy = to_ego(snapshot.velocity_mps[:, 0], snapshot.velocity_mps[:, 1])
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
