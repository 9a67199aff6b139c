"""The policy's ``target`` action: a target speed and a lateral offset from the route, which the stack's
controller tracks, instead of pedals and steering.

An action ``(a0, a1)`` in [-1, 1]^2 means:

- target speed ``(a0 + 1) / 2 * max_speed_mps``; with a ``stop_band`` b, every ``a0 <= -1 + b`` means stop
  and the speeds spread over the rest, ``(a0 + 1 - b) / (2 - b) * max_speed_mps``: a policy unsure between
  "stop" and "roll slowly" then stops, where without the band it would creep into what it should wait for;
- the route ahead (``horizon_m``) shifted ``a1 * max_offset_m`` to the left (positive: left, as the expert's
  overtaking lane), the trajectory the controller follows.

:func:`target_plan` turns an action into that :class:`~av_stack.messages.Plan`; the stack's RL stage and
the training env (:class:`TargetDriver`, :class:`TargetActions`) build it the same way and hand it to the
same Stanley controller, so what the policy learned is what the stack drives. :func:`target_label` reads
the expert's plan back as such an action (the behaviour-cloning label): the lowest speed it plans over the
next ``anticipation_s`` of travel, and the offset of its path ``lookahead_m`` ahead.

With a target speed under the controller's stop threshold the controller brakes hard, so "stop" is one
action away; the policy learns from the expert when to give it.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from av_stack.bridge import mission_of, oracle_pose
from av_stack.control.path import clean_path, project
from av_stack.messages import Plan, PoseEstimate
from sim.env.actions import control_to_action
from sim.scenarios.routes import RoadOption, Route, RouteTracker

__all__ = ["TargetActions", "TargetDriver", "TargetSpec", "target_label", "target_plan"]


class TargetSpec(BaseModel):
    """The scale of the ``target`` action (stored with the policy; the stage reads it back)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_speed_mps: float = Field(10.0, gt=0.0, description="the speed of action a0 = +1")
    max_offset_m: float = Field(3.5, gt=0.0, description="the lateral offset of action a1 = +1 (left)")
    lookahead_m: float = Field(8.0, gt=0.0, description="where the expert path's offset is read for labels")
    anticipation_s: float = Field(0.7, ge=0.0, description=(
        "the speed label is the expert profile's lowest over the distance the ego covers in this time: "
        "the controller's speed PID lags a falling reference, the label makes up for it"))
    horizon_m: float = Field(30.0, gt=2.0, description="length of the trajectory handed to the controller")
    stop_band: float = Field(0.0, ge=0.0, lt=2.0, description=(
        "actions a0 <= -1 + stop_band mean stop (label -1); 0: the speed is linear over the whole range"))
    stop_below_mps: float = Field(0.3, ge=0.0, description=(
        "with a stop band, an expert speed under this is labelled stop (the controller's stop threshold)"))

    def speed_mps(self, a0: float) -> float:
        """The target speed of action component ``a0`` (clipped to [-1, 1])."""
        a0 = min(max(float(a0), -1.0), 1.0)
        return max(a0 + 1.0 - self.stop_band, 0.0) / (2.0 - self.stop_band) * self.max_speed_mps

    def speed_action(self, speed_mps: float) -> float:
        """The action component ``a0`` of a target speed (the label of an expert speed)."""
        if self.stop_band > 0.0 and speed_mps < self.stop_below_mps:
            return -1.0
        a0 = -1.0 + self.stop_band + (2.0 - self.stop_band) * speed_mps / self.max_speed_mps
        return min(max(a0, -1.0), 1.0)


def _left(yaw: np.ndarray) -> np.ndarray:
    """Unit vectors to the left of headings ``yaw`` in CARLA's frame (y to the right)."""
    return np.stack([np.sin(yaw), -np.cos(yaw)], axis=-1)


def target_plan(action: np.ndarray, route: Route, index: int, spec: TargetSpec, frame: int, timestamp_s: float,
                command: RoadOption) -> Plan:
    """The plan of ``action`` with the ego at route point ``index``: the route from there over
    ``spec.horizon_m``, shifted by the offset, at the target speed throughout."""
    action = np.asarray(action, dtype=np.float64).reshape(2)
    if not np.isfinite(action).all():
        raise ValueError(f"target action must be finite, got {action.tolist()}")
    a = np.clip(action, -1.0, 1.0)
    speed = spec.speed_mps(a[0])
    offset = a[1] * spec.max_offset_m
    s = route.s_m
    ahead = np.flatnonzero((s >= s[index]) & (s <= s[index] + spec.horizon_m))
    if ahead.size < 2:  # at the route's end: its last two points
        ahead = np.arange(max(len(s) - 2, 0), len(s))
    path = route.points_xy[ahead].astype(np.float64) + offset * _left(route.yaw_rad[ahead])
    return Plan(frame, timestamp_s, path, np.full(len(path), speed), command)


LABEL_WINDOW_BEHIND_M = 10.0
"""With a ``route_index``, :func:`target_label` measures the offset against the route from this far behind the
ego to ``lookahead_m + LABEL_WINDOW_AHEAD_M`` ahead of it (a route that passes near itself stays out)."""
LABEL_WINDOW_AHEAD_M = 20.0


def target_label(plan: Plan, route: Route, pose: PoseEstimate, spec: TargetSpec,
                 route_index: int | None = None) -> np.ndarray | None:
    """The ``target`` action that stands for the expert's ``plan`` (None where the plan is a direct control,
    e.g. backing off a kerb): its lowest speed from the point nearest the ego over the distance the ego covers
    in ``spec.anticipation_s``, and its path's signed offset from the route ``spec.lookahead_m`` ahead of that
    point, both scaled to [-1, 1]. ``route_index``: the ego's progress on the route (a
    :class:`RouteTracker`'s), which keeps the offset's reference to the stretch of route around the ego;
    without it the nearest point of the whole route is the reference."""
    if plan.control is not None or plan.trajectory_xy.shape[0] == 0:
        return None
    xy, speed, s = clean_path(plan.trajectory_xy, plan.target_speed_mps)
    if xy.shape[0] == 0:
        return None
    foot = project(xy, s, (pose.pose.x_m, pose.pose.y_m), pose.yaw_rad)
    reach = s[foot.nearest] + max(pose.forward_speed_mps, 0.0) * spec.anticipation_s
    reference = float(speed[foot.nearest:max(int(np.searchsorted(s, reach, side="right")), foot.nearest + 1)].min())
    k = int(np.searchsorted(s, s[foot.nearest] + spec.lookahead_m))
    point = xy[min(k, len(xy) - 1)]
    lo, hi = 0, len(route.points_xy)
    if route_index is not None:
        here = route.s_m[int(np.clip(route_index, 0, hi - 1))]
        lo = int(np.searchsorted(route.s_m, here - LABEL_WINDOW_BEHIND_M))
        hi = max(int(np.searchsorted(route.s_m, here + spec.lookahead_m + LABEL_WINDOW_AHEAD_M, side="right")),
                 lo + 1)
    near = lo + int(np.argmin(np.sum((route.points_xy[lo:hi] - point) ** 2, axis=1)))
    offset = float(np.dot(point - route.points_xy[near], _left(np.asarray(route.yaw_rad[near]))))
    return np.array([spec.speed_action(reference), np.clip(offset / spec.max_offset_m, -1.0, 1.0)],
                    dtype=np.float32)


class TargetDriver:
    """Turns ``target`` actions into the env's control in a training env: the true pose, the route tracked
    as the RL stage tracks it, :func:`target_plan`, and the stack's Stanley controller."""

    def __init__(self, spec: TargetSpec) -> None:
        from av_stack.control.tracking import StanleyController

        self.spec = spec
        self.controller = StanleyController()
        self._tracker: RouteTracker | None = None

    def reset(self, env) -> None:
        """A new episode of ``env`` (a ``DrivingEnv``)."""
        self.controller.reset(mission_of(env))
        self._tracker = RouteTracker(env.route)

    def plan(self, action: np.ndarray, env) -> tuple[Plan, PoseEstimate]:
        """The plan of ``action`` at the ego's current pose, and that pose."""
        if self._tracker is None:
            raise RuntimeError("TargetDriver used before reset(env)")
        pose = oracle_pose(env)
        progress = self._tracker.update(pose.pose.x_m, pose.pose.y_m, pose.yaw_rad)
        plan = target_plan(action, env.route, progress.index, self.spec, pose.frame, pose.timestamp_s,
                           RoadOption(int(progress.command)))
        return plan, pose

    def __call__(self, action: np.ndarray, env) -> np.ndarray:
        """The env action (in the env's action mode) that the controller gives for ``action``."""
        plan, pose = self.plan(action, env)
        return control_to_action(self.controller.step(plan, pose), env.config.action.mode)


class TargetActions(gymnasium.Wrapper):
    """A driving env (or a wrapper of one) that takes ``target`` actions in [-1, 1]^2 (see the module
    docstring) and drives them with :class:`TargetDriver`."""

    def __init__(self, env: gymnasium.Env, spec: TargetSpec) -> None:
        super().__init__(env)
        self.driver = TargetDriver(spec)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def reset(self, **kwargs):
        """Reset the env, then the driver's route and controller."""
        out = self.env.reset(**kwargs)
        self.driver.reset(self.env.unwrapped)
        return out

    def step(self, action):
        """One env step with the control of target ``action``."""
        return self.env.step(self.driver(np.asarray(action, dtype=np.float32), self.env.unwrapped))
