"""The control stages: lateral tracking of the plan's trajectory (pure pursuit or Stanley) with PID speed control.

Both are :class:`av_stack.stages.Controller` stages, registered as
``pure_pursuit`` and ``stanley`` (:mod:`av_stack.control`). ``reset(mission)``
picks the vehicle's parameters by ``mission.vehicle.blueprint_id``
(:func:`~av_stack.control.vehicles.vehicle_params`); ``step(plan, pose)``
returns CARLA's control: steer positive to the right (the world frame is
left-handed, yaw turns +x towards +y), normalised by the vehicle's maximum
road-wheel angle. A plan that carries a ``control`` gets it back unchanged.

- Pure pursuit: :class:`~av_stack.control.lateral.PurePursuit` from the rear
  axle, look-ahead ``clip(base + gain * v, min, max)``.
- Stanley: from the front axle, ``delta = psi + atan(k e / (v + v_soft))``
  with ``psi`` the heading error and ``e`` the cross-track error to the
  trajectory, plus an optional damping of the yaw rate against the path's
  (``yaw_rate_gain_s``, off by default).
"""

from __future__ import annotations

import math

from pydantic import ConfigDict, Field, model_validator

from av_stack.control.lateral import PurePursuit
from av_stack.control.longitudinal import SpeedConfig, SpeedController
from av_stack.control.path import clean_path, project
from av_stack.control.vehicles import GENERIC_CAR, VehicleParams, vehicle_params
from av_stack.messages import Mission, Plan, PoseEstimate, VehicleControl
from av_stack.registry import StageParams


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


class _TrackingConfig(StageParams):
    """Shared keys: the speed controller's section."""

    model_config = ConfigDict(allow_inf_nan=False)

    speed: SpeedConfig = SpeedConfig()


class _TrackingController:
    """Shared part of the two stages: vehicle parameters, the speed controller and the step."""

    def __init__(self, config: _TrackingConfig) -> None:
        self.config = config
        self.vehicle: VehicleParams = GENERIC_CAR
        self.speed = SpeedController(config.speed, self.vehicle)
        self._configure()

    def _configure(self) -> None:
        """(Re)build the lateral law for :attr:`vehicle` and forget the previous episode's state."""

    def _steer(self, xy, s, pose: PoseEstimate, v: float) -> float:
        raise NotImplementedError

    def reset(self, mission: Mission) -> None:
        """Read the vehicle's parameters from the mission and forget the previous episode."""
        self.vehicle = vehicle_params(mission.vehicle.blueprint_id)
        self.speed.reset(self.vehicle)
        self._configure()

    def step(self, plan: Plan, pose: PoseEstimate) -> VehicleControl:
        """This tick's control: steer to track ``plan.trajectory_xy``, pedals to track its speeds."""
        if plan.control is not None:
            return plan.control
        xy, _, s = clean_path(plan.trajectory_xy, plan.target_speed_mps)
        steer = self._steer(xy, s, pose, pose.forward_speed_mps)
        throttle, brake = self.speed.step(plan, pose)
        return VehicleControl(throttle=throttle, steer=steer, brake=brake)


class PurePursuitController(_TrackingController):
    """Pure pursuit from the rear axle (:class:`~av_stack.control.lateral.PurePursuit`) and PID speed control.

    The look-ahead distances of the config are multiplied by the vehicle's ``lookahead_scale``.
    """

    class Config(_TrackingConfig):
        """Look-ahead ``clip(lookahead_base_m + lookahead_gain_s * speed, lookahead_min_m, lookahead_max_m)``."""

        lookahead_base_m: float = Field(2.0, ge=0.0)
        lookahead_gain_s: float = Field(0.45, ge=0.0)
        lookahead_min_m: float = Field(3.0, gt=0.0)
        lookahead_max_m: float = Field(12.0, gt=0.0)

        @model_validator(mode="after")
        def _ordered(self) -> PurePursuitController.Config:
            if self.lookahead_min_m > self.lookahead_max_m:
                raise ValueError(f"lookahead_min_m ({self.lookahead_min_m}) exceeds lookahead_max_m "
                                 f"({self.lookahead_max_m})")
            return self

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config or self.Config())

    def _configure(self) -> None:
        c, v = self.config, self.vehicle
        k = v.lookahead_scale
        self.law = PurePursuit(wheelbase_m=v.wheelbase_m, rear_axle_m=v.rear_axle_m, max_steer_rad=v.max_steer_rad,
                               lookahead_base_m=k * c.lookahead_base_m, lookahead_gain_s=k * c.lookahead_gain_s,
                               lookahead_min_m=k * c.lookahead_min_m, lookahead_max_m=k * c.lookahead_max_m)

    def _steer(self, xy, s, pose: PoseEstimate, v: float) -> float:
        x, y, yaw = pose.pose.x_m, pose.pose.y_m, pose.yaw_rad
        # pursue points from the ego's onwards (a plan may still hold points the car has passed)
        rx, ry = x - self.vehicle.rear_axle_m * math.cos(yaw), y - self.vehicle.rear_axle_m * math.sin(yaw)
        start = project(xy, s, (rx, ry), yaw).segment
        return self.law.steer(x, y, yaw, v, xy[start:])


class StanleyController(_TrackingController):
    """Stanley steering from the front axle and PID speed control."""

    class Config(_TrackingConfig):
        """``gain`` k [1/s] on the cross-track error, ``soft_speed_mps`` v_soft (keeps the law finite at
        rest), ``yaw_rate_gain_s``: damping of the yaw rate against the path's (0: off)."""

        gain: float = Field(2.0, gt=0.0)
        soft_speed_mps: float = Field(1.0, gt=0.0)
        yaw_rate_gain_s: float = Field(0.0, ge=0.0)

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config or self.Config())

    def _configure(self) -> None:
        self._last_yaw: tuple[float, float] | None = None  # (timestamp, yaw) of the previous step

    def _steer(self, xy, s, pose: PoseEstimate, v: float) -> float:
        c, vehicle = self.config, self.vehicle
        x, y, yaw = pose.pose.x_m, pose.pose.y_m, pose.yaw_rad
        fx, fy = x + vehicle.front_axle_m * math.cos(yaw), y + vehicle.front_axle_m * math.sin(yaw)
        foot = project(xy, s, (fx, fy), yaw)
        heading_error = _wrap(foot.heading_rad - yaw)
        cross_track = -foot.offset_m  # > 0: the path lies to the right of the front axle
        delta = heading_error + math.atan2(c.gain * cross_track, max(v, 0.0) + c.soft_speed_mps)
        if c.yaw_rate_gain_s > 0.0:
            delta -= c.yaw_rate_gain_s * (self._yaw_rate(pose) - max(v, 0.0) * self._curvature(xy, foot.segment))
        return max(-1.0, min(1.0, delta / vehicle.max_steer_rad))

    def _yaw_rate(self, pose: PoseEstimate) -> float:
        """The ego's yaw rate from the change of its heading since the previous step (0 on the first)."""
        now = (pose.timestamp_s, pose.yaw_rad)
        last, self._last_yaw = self._last_yaw, now
        if last is None or now[0] <= last[0]:
            return 0.0
        return _wrap(now[1] - last[1]) / (now[0] - last[0])

    @staticmethod
    def _curvature(xy, segment: int) -> float:
        """Signed curvature [1/m] of the path around ``segment`` (> 0: turning right)."""
        if xy.shape[0] < 3:
            return 0.0
        i = min(max(segment, 1), xy.shape[0] - 2)
        a, b = xy[i] - xy[i - 1], xy[i + 1] - xy[i]
        turn = _wrap(math.atan2(b[1], b[0]) - math.atan2(a[1], a[0]))
        return turn / max(0.5 * (math.hypot(*a) + math.hypot(*b)), 1e-3)
