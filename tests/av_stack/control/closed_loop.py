"""Closed-loop harness for the controller tests: a controller drives the embedded simulator's vehicle model.

The cheapest loop that still uses the real vehicle: one
:class:`sim.embedded.dynamics.BicycleFleet` (dynamic bicycle by default, as
the embedded world uses; the fleet's position is the box centre, the
vehicle's origin), no map. Every tick the "planner" hands out the reference
path from the ego's foot onwards, points 1 m apart, with the reference speed
profile, and the controller's control is applied as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from av_stack.messages import Mission, Plan, PoseEstimate, VehicleControl, VehicleGeometry
from sim.api import Pose
from sim.embedded.dynamics import BicycleFleet, ControlArrays
from sim.embedded.vehicle_types import get_vehicle_type

DT_S = 0.05
PLAN_POINTS = 40


@dataclass(frozen=True)
class Straight:
    """The +x axis: arc length is x, the offset (to the right of the path, + y) is y."""

    def points(self, s: np.ndarray) -> np.ndarray:
        return np.stack([s, np.zeros_like(s)], axis=1)

    def locate(self, x: float, y: float) -> tuple[float, float]:
        """(arc length, offset to the right of the path) of a point."""
        return x, y


@dataclass(frozen=True)
class Arc:
    """A right turn of ``radius_m`` from the origin heading +x (centre at (0, R)); offset > 0 towards the centre."""

    radius_m: float

    def points(self, s: np.ndarray) -> np.ndarray:
        r = self.radius_m
        return np.stack([r * np.sin(s / r), r - r * np.cos(s / r)], axis=1)

    def locate(self, x: float, y: float) -> tuple[float, float]:
        r = self.radius_m
        return r * math.atan2(x, r - y), r - math.hypot(x, y - r)


@dataclass
class Trace:
    """One run, one row per tick: time, along-path position ``s``, ``offset`` from the path (m, + right),
    forward ``speed``, the commanded ``steer`` and the actual road-wheel angle ``wheel_rad``, ``x``, ``y``."""

    t: np.ndarray
    s: np.ndarray
    offset: np.ndarray
    speed: np.ndarray
    steer: np.ndarray
    wheel_rad: np.ndarray
    x: np.ndarray
    y: np.ndarray


def mission_for(blueprint_id: str) -> Mission:
    """A mission with only the vehicle filled in (the controllers read nothing else of it)."""
    return Mission(route=None, lanes=None, signals=None,  # type: ignore[arg-type]
                   vehicle=VehicleGeometry(blueprint_id, (2.45, 1.06, 0.76)))


def pose_of(fleet: BicycleFleet, frame: int) -> PoseEstimate:
    """Ground-truth pose estimate of the fleet's first vehicle."""
    vx, vy = fleet.velocity_world()[0]
    return PoseEstimate(frame, frame * DT_S, Pose(float(fleet.x_m[0]), float(fleet.y_m[0]), 0.0,
                                                  float(fleet.yaw_rad[0])), np.array([vx, vy, 0.0]))


def drive(controller, path, speed_profile: Callable[[np.ndarray], np.ndarray], seconds: float, *,
          offset_m: float = 0.0, heading_rad: float = 0.0, speed_mps: float = 0.0,
          blueprint_id: str = "vehicle.lincoln.mkz_2020", model: str = "dynamic") -> Trace:
    """Drive ``seconds`` from the path's start, ``offset_m`` to its right and ``heading_rad`` off its heading."""
    vtype = get_vehicle_type(blueprint_id)
    fleet = BicycleFleet(model)
    start = path.points(np.array([0.0]))[0]
    fleet.add(vtype, float(start[0]), float(start[1]) + offset_m, heading_rad, speed_mps)
    controller.reset(mission_for(blueprint_id))
    rows: list[tuple[float, ...]] = []
    for frame in range(int(round(seconds / DT_S))):
        pose = pose_of(fleet, frame)
        s, offset = path.locate(pose.pose.x_m, pose.pose.y_m)
        ahead = s + np.arange(PLAN_POINTS, dtype=float)
        plan = Plan(frame, frame * DT_S, path.points(ahead), speed_profile(ahead))
        control: VehicleControl = controller.step(plan, pose)
        rows.append((frame * DT_S, s, offset, pose.forward_speed_mps, control.steer, float(fleet.steer_rad[0]),
                     pose.pose.x_m, pose.pose.y_m))
        fleet.step(ControlArrays.full(1, control.throttle, control.steer, control.brake), DT_S)
    return Trace(*(np.array(col) for col in zip(*rows)))
