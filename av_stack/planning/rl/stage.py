"""The RL policy as the stack's planning stage (``planning: {name: rl}``): perception's BEV and the pose in,
a direct control out.

Each tick the stage builds the observation the policy was trained on in ``avsim/Driving-v0``:

- ``bev``: perception's BEV probabilities scaled to 0-255 and max-pooled by the factor that takes the
  stack's BEV grid to the policy's (192 -> 64 px by default): the env's BEV masks give exactly the
  training input;
- ``measurements``: :func:`sim.env.observations.measurements` from the pose's speed, the lane's speed
  limit, the stage's previous action and its own :class:`~sim.scenarios.routes.RouteTracker` on the
  mission's route (the env computes them the same way from the true pose).

A policy with ``control`` actions: the plan carries the control, and the route ahead as its trajectory (for
videos and logs). A policy with ``target`` actions (:mod:`av_stack.planning.rl.target`): the plan is the
route ahead shifted by the policy's offset at its target speed, and the stack's control stage tracks it
(the policy was trained with the Stanley controller: ``control: {name: stanley}``, the stack's default).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from av_stack.messages import Mission, PerceptionOutput, Plan, PoseEstimate, VehicleControl
from av_stack.planning.rl.observation import pool_to
from av_stack.planning.rl.target import target_plan
from av_stack.registry import StageParams
from av_stack.shipped import shipped_file
from sim.env.observations import measurements
from sim.scenarios.routes import RoadOption, RouteTracker

__all__ = ["DEFAULT_POLICY", "RLPlanner"]

DEFAULT_POLICY = "checkpoints/policy/target.zip"
TRAJECTORY_M = 30.0


class RLPlanner:
    """The trained SB3 policy (see the module docstring)."""

    class Config(StageParams):
        """Which policy, and whether it acts on its mean (deterministic) or samples."""

        checkpoint: str = Field(DEFAULT_POLICY, description="an SB3 zip written by `avsim train policy`")
        deterministic: bool = True
        threads: int = Field(1, ge=1, le=64, description=(
            "torch threads while the policy runs (set around each call and restored): the network is small, "
            "and more threads than free cores slow it down many times"))

    def __init__(self, config: Config | None = None) -> None:
        from av_stack.planning.rl.policy import load_policy, target_spec_of

        self.config = config or self.Config()
        self.model = load_policy(shipped_file(self.config.checkpoint))
        self.target = target_spec_of(self.model)
        """The policy's target-action scale; None when its actions are controls."""
        space = self.model.observation_space
        self._channels, self._size = space["bev"].shape[0], space["bev"].shape[1]
        self._mission: Mission | None = None
        self._previous = np.zeros(2, dtype=np.float32)
        self.last_observation: dict[str, np.ndarray] | None = None
        """The observation the policy acted on last (for logs and tests)."""

    def reset(self, mission: Mission) -> None:
        """Take the new route; forget the previous action."""
        self._mission = mission
        self._tracker = RouteTracker(mission.route)
        self._previous = np.zeros(2, dtype=np.float32)

    def observation(self, perception: PerceptionOutput, pose: PoseEstimate) -> dict[str, np.ndarray]:
        """The policy's observation of this tick (advances the route tracker)."""
        if self._mission is None:
            raise RuntimeError("RLPlanner.step before reset(mission)")
        if perception.bev is None:
            raise ValueError("planning 'rl' needs a BEV from perception; this perception stage predicts none")
        try:  # pool, then scale: the same as scaling first (rounding is monotonic), on a ninth of the pixels
            pooled = pool_to(perception.bev, (self._channels, self._size, self._size))
        except ValueError as exc:
            raise ValueError(f"planning 'rl' on perception's BEV: {exc}") from None
        route = self._mission.route
        progress = self._tracker.update(float(pose.pose.x_m), float(pose.pose.y_m), pose.yaw_rad)
        speed = float(np.hypot(*pose.velocity_mps[:2]))
        limit = float(self._mission.lanes.speed_limit_mps[route.lane[progress.index]])
        bev = np.rint(pooled * 255.0).astype(np.uint8)
        self._progress = progress
        return {"bev": bev,
                "measurements": measurements(speed, limit, self._previous, progress)}

    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        """This tick's plan from the policy: a control, or a target trajectory (see the module docstring)."""
        obs = self.last_observation = self.observation(perception, pose)
        before = torch.get_num_threads()
        torch.set_num_threads(self.config.threads)
        try:
            action, _ = self.model.predict(obs, deterministic=self.config.deterministic)
        finally:
            torch.set_num_threads(before)
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(2), -1.0, 1.0)
        if not np.isfinite(action).all():
            raise ValueError(f"planning 'rl': the policy returned a non-finite action {action.tolist()}")
        self._previous = action
        route, progress = self._mission.route, self._progress
        command = RoadOption(int(progress.command))
        if self.target is not None:
            return target_plan(action, route, progress.index, self.target, perception.frame,
                               perception.timestamp_s, command)
        acc, steer = float(action[0]), float(action[1])
        control = VehicleControl(throttle=max(acc, 0.0), brake=max(-acc, 0.0), steer=steer)
        ahead = np.flatnonzero((route.s_m >= progress.s_m) & (route.s_m <= progress.s_m + TRAJECTORY_M))
        path = route.points_xy[ahead] if ahead.size >= 2 else np.zeros((0, 2))
        speed = float(np.hypot(*pose.velocity_mps[:2]))
        return Plan(perception.frame, perception.timestamp_s, path, np.full(len(path), speed), command, control)
