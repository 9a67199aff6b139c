"""Longitudinal control: a PID on speed with a stopping feed-forward, from a plan's speed profile.

The reference is the plan's target speed at the trajectory point nearest to
the ego. Where the profile comes down to (about) zero a distance ``s_stop``
ahead and the ego moves, the deceleration that stops exactly there,
``v^2 / (2 max(s_stop, 0.1))``, is commanded once it exceeds half of the
comfortable deceleration, so the car stops at a stop line instead of
creeping up to it or past it. With a reference of about zero the brake is
held firmly. The wanted acceleration ``a`` maps onto the pedals as
``throttle = a / max_accel`` and ``brake = -a / max_brake`` (the vehicle's
:class:`~av_stack.control.vehicles.VehicleParams`).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import ConfigDict, Field

from av_stack.control.path import clean_path, project
from av_stack.control.vehicles import GENERIC_CAR, VehicleParams
from av_stack.messages import Plan, PoseEstimate
from av_stack.registry import StageParams


class SpeedConfig(StageParams):
    """Gains and thresholds of :class:`SpeedController` (a controller's ``speed`` section).

    ``kp`` [1/s], ``ki`` [1/s^2], ``kd`` [-]: the PID gains on the speed error
    (the derivative acts on the measured speed); ``integral_limit_mps2``: the
    most the integral term may add or take; ``comfort_decel_mps2``: the
    comfortable deceleration (the stopping feed-forward starts at half of it);
    ``zero_speed_mps``: the profile has reached zero (the stop point) where it
    drops below this; ``stop_speed_mps``: a reference below this means stop
    (hold the brake); ``moving_mps``:
    the stopping feed-forward acts above this speed; ``hold_decel_mps2``: the
    least braking while the reference is a stop but the car still rolls.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    kp: float = Field(1.5, ge=0.0)
    ki: float = Field(0.1, ge=0.0)
    kd: float = Field(0.0, ge=0.0)
    integral_limit_mps2: float = Field(1.0, ge=0.0)
    comfort_decel_mps2: float = Field(4.0, gt=0.0)
    zero_speed_mps: float = Field(0.05, gt=0.0)
    stop_speed_mps: float = Field(0.3, gt=0.0)
    moving_mps: float = Field(0.5, ge=0.0)
    hold_decel_mps2: float = Field(2.0, ge=0.0)


def stop_distance(speed: np.ndarray, s: np.ndarray, start: int, s_ego: float, zero_speed_mps: float) -> float:
    """Distance from the ego (at arc length ``s_ego``) to where the speed profile reaches zero, searching from
    point ``start``; ``inf`` when it does not within the plan.

    The first point slower than ``zero_speed_mps`` bounds it; where the two
    points before it decelerate, the zero of ``v^2`` (linear in distance under
    constant deceleration) is extrapolated from them, so a profile sampled
    every metre still gives the exact stop point.
    """
    slow = np.flatnonzero(speed[start:] < zero_speed_mps)
    if slow.size == 0:
        return math.inf
    k = start + int(slow[0])
    s_stop = float(s[k])
    if k >= 2:
        v1, v2 = speed[k - 2] ** 2, speed[k - 1] ** 2
        ds = float(s[k - 1] - s[k - 2])
        if v2 < v1 and ds > 0:
            s_stop = float(np.clip(s[k - 1] + v2 * ds / (v1 - v2), s[k - 1], s[k]))
    return s_stop - s_ego


class SpeedController:
    """PID speed control with the stopping feed-forward (see the module docstring)."""

    def __init__(self, config: SpeedConfig | None = None, vehicle: VehicleParams = GENERIC_CAR) -> None:
        self.config = config or SpeedConfig()
        self.vehicle = vehicle
        self.reset()

    def reset(self, vehicle: VehicleParams | None = None) -> None:
        """Clear the integrator and the last measurement; switch to ``vehicle`` when given."""
        if vehicle is not None:
            self.vehicle = vehicle
        self._integral = 0.0
        self._last: tuple[float, float] | None = None  # (timestamp, speed) of the previous step

    def accel(self, plan: Plan, pose: PoseEstimate) -> float:
        """The acceleration [m/s^2] wanted now (negative: braking), within the vehicle's limits."""
        c, vehicle = self.config, self.vehicle
        xy, speed, s = clean_path(plan.trajectory_xy, plan.target_speed_mps)
        v = pose.forward_speed_mps
        if xy.shape[0] == 0:
            return -vehicle.max_brake_mps2
        foot = project(xy, s, (pose.pose.x_m, pose.pose.y_m), pose.yaw_rad)
        reference = float(speed[foot.nearest])
        stop_m = stop_distance(speed, s, foot.nearest, foot.s_m, c.zero_speed_mps)

        dt = 0.0
        derivative = 0.0
        if self._last is not None:
            dt = pose.timestamp_s - self._last[0]
            if dt > 0.0:
                derivative = -(v - self._last[1]) / dt
        self._last = (pose.timestamp_s, v)
        error = reference - v
        pid = c.kp * error + c.ki * self._integral + c.kd * derivative
        accel = pid
        if stop_m < math.inf and v > c.moving_mps:
            needed = v * v / (2.0 * max(stop_m, 0.1))
            if needed > 0.5 * c.comfort_decel_mps2:
                accel = min(accel, -needed)
        holding = reference < c.stop_speed_mps
        if holding:
            accel = -vehicle.max_brake_mps2 if v < 1.0 or stop_m < 1.0 else min(accel, -c.hold_decel_mps2)
        limited = min(max(accel, -vehicle.max_brake_mps2), vehicle.max_accel_mps2)

        if holding:
            self._integral = 0.0
        elif dt > 0.0 and c.ki > 0.0 and accel == pid:
            # anti-windup: integrate only while the PID is in charge and not pushing further into saturation
            saturated = (limited < pid and error > 0.0) or (limited > pid and error < 0.0)
            if not saturated:
                bound = c.integral_limit_mps2 / c.ki
                self._integral = min(max(self._integral + error * dt, -bound), bound)
        return limited

    def step(self, plan: Plan, pose: PoseEstimate) -> tuple[float, float]:
        """(throttle, brake) in [0, 1] for this tick."""
        a = self.accel(plan, pose)
        if a >= 0.0:
            return min(a / self.vehicle.max_accel_mps2, 1.0), 0.0
        return 0.0, min(-a / self.vehicle.max_brake_mps2, 1.0)
