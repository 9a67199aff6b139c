"""Closed-form tracking cases on the embedded simulator's vehicle model: a straight line, constant-radius arcs,
a speed step and a stop (the issue's controller tests).

Bounds (Lincoln MKZ, dynamic bicycle, 20 Hz), with the figures measured when
they were set:
- straight line, 1 m off and 10 degrees off at 8 m/s: within 0.1 m from 30 m
  on (pure pursuit 19.0 / 14.2 m heading away / towards, Stanley 13.8 /
  10.3 m), overshoot past the line under 0.2 m (0.13 / 0.15 m; Stanley 0);
- arcs R = 20 m at 5 m/s and R = 50 m at 10 m/s, second half of a half
  circle: the box centre within 0.25 m of the arc (dynamic model: pure
  pursuit 0.11 / 0.15 m outside, Stanley 0.13 m inside / 0.04 m outside;
  kinematic: 0.07 / 0.03 m outside, 0.18 / 0.09 m inside: the reference
  points are the rear and the front axle, not the box centre), steer within 0.01 of
  ``(atan(L / R) + K a_lat) / max_steer`` (K the understeer gradient, 0 on the
  kinematic model);
- speed step 0 -> 10 m/s: within 5 % after 3.0 s (bound 3.5 s), overshoot
  0.02 m/s (bound 10 %); stop from 10 m/s: 0.21 to 0.26 m past the stop point
  (bound 1 m).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.control.tracking import PurePursuitController, StanleyController
from sim.embedded.vehicle_types import get_vehicle_type
from tests.av_stack.control.closed_loop import Arc, Straight, drive

CONTROLLERS = [PurePursuitController, StanleyController]
CAR = get_vehicle_type("vehicle.lincoln.mkz_2020")


def constant(speed_mps: float):
    return lambda s: np.full(s.shape, speed_mps)


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("heading_deg", [-10.0, 10.0], ids=["heading-away", "heading-towards"])
def test_straight_line_converges_without_overshoot(cls, heading_deg):
    # 1 m to the left of the line (offset -1), heading 10 degrees further left (away) or right (towards)
    trace = drive(cls(), Straight(), constant(8.0), 8.0, offset_m=-1.0, heading_rad=math.radians(heading_deg),
                  speed_mps=8.0)
    after = trace.s >= 30.0
    assert trace.s[-1] > 50.0
    assert np.abs(trace.offset[after]).max() < 0.1
    assert trace.offset.max() < 0.2  # how far it overshoots to the line's other side
    assert abs(trace.offset[-1]) < 0.01


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("model", ["dynamic", "kinematic"])
@pytest.mark.parametrize(("radius_m", "speed_mps"), [(20.0, 5.0), (50.0, 10.0)])
def test_constant_radius_arc(cls, model, radius_m, speed_mps):
    trace = drive(cls(), Arc(radius_m), constant(speed_mps), math.pi * radius_m / speed_mps, speed_mps=speed_mps,
                  model=model)
    steady = slice(trace.t.shape[0] // 2, None)
    assert np.abs(trace.offset[steady]).max() < 0.25
    understeer = CAR.understeer_gradient_rad_per_mps2 * speed_mps ** 2 / radius_m if model == "dynamic" else 0.0
    expected = (math.atan(CAR.wheelbase_m / radius_m) + understeer) / CAR.max_steer_rad
    assert abs(float(np.mean(trace.steer[steady])) - expected) < 0.01
    assert float(np.std(trace.steer[steady])) < 0.005  # steady, no weaving


def test_arc_steer_includes_the_understeer_of_the_dynamic_model():
    trace = drive(PurePursuitController(), Arc(50.0), constant(10.0), math.pi * 50.0 / 10.0, speed_mps=10.0)
    steer = float(np.mean(trace.steer[trace.t.shape[0] // 2:]))
    kinematic = math.atan(CAR.wheelbase_m / 50.0) / CAR.max_steer_rad
    dynamic = kinematic + CAR.understeer_gradient_rad_per_mps2 * 2.0 / CAR.max_steer_rad  # a_lat = 2 m/s^2
    assert abs(steer - dynamic) < 0.2 * abs(steer - kinematic)


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_speed_step(cls):
    trace = drive(cls(), Straight(), constant(10.0), 8.0)
    outside = np.flatnonzero(np.abs(trace.speed - 10.0) > 0.5)
    settled_s = trace.t[outside[-1] + 1]
    assert settled_s <= 3.5
    assert trace.speed.max() < 11.0
    assert abs(trace.speed[-1] - 10.0) < 0.1
    assert np.abs(trace.offset).max() < 0.01


@pytest.mark.parametrize("profile", ["decel-3", "decel-4", "step"])
def test_stops_at_the_stop_point(profile):
    stop_m = 40.4  # between two plan points
    if profile == "step":
        speeds = lambda s: np.where(s < stop_m, 10.0, 0.0)  # noqa: E731
    else:
        decel = float(profile.split("-")[1])
        speeds = lambda s: np.minimum(10.0, np.sqrt(2.0 * decel * np.maximum(stop_m - s, 0.0)))  # noqa: E731
    trace = drive(StanleyController(), Straight(), speeds, 10.0, speed_mps=10.0)
    assert trace.speed[-1] == 0.0
    assert abs(trace.s[-1] - stop_m) < 1.0
    assert trace.speed.min() >= 0.0  # it never backs up
