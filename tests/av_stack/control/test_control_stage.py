"""The control stages without a simulator: registry, configs, vehicle parameters, steer convention, bad input."""

from __future__ import annotations

import math
import uuid
import warnings

import numpy as np
import pytest

from av_stack.control import CONTROL
from av_stack.control.lateral import PurePursuit
from av_stack.control.longitudinal import SpeedConfig, SpeedController
from av_stack.control.tracking import PurePursuitController, StanleyController
from av_stack.control.vehicles import GENERIC_CAR, VEHICLES, vehicle_params
from av_stack.messages import MessageError, Plan, PoseEstimate, VehicleControl
from av_stack.registry import StageConfigError
from av_stack.stages import Controller
from sim.api import Pose
from sim.embedded.vehicle_types import VEHICLE_TYPES
from tests.av_stack.control.closed_loop import mission_for

CONTROLLERS = [PurePursuitController, StanleyController]


def pose(x=0.0, y=0.0, yaw=0.0, speed=5.0, t=0.0) -> PoseEstimate:
    return PoseEstimate(0, t, Pose(x, y, 0.0, yaw), np.array([speed * math.cos(yaw), speed * math.sin(yaw), 0.0]))


def line_plan(y=0.0, speed=5.0, n=30, t=0.0) -> Plan:
    """Points along x (1 m apart) at lateral position ``y`` (> 0: right of an ego at the origin heading +x)."""
    s = np.arange(n, dtype=float)
    return Plan(0, t, np.stack([s, np.full(n, y)], axis=1), np.full(n, speed))


# ---------------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize(("name", "cls"), [("pure_pursuit", PurePursuitController), ("stanley", StanleyController)])
def test_registry_builds_by_name_with_config_keys(name, cls):
    key = {"pure_pursuit": "lookahead_min_m", "stanley": "gain"}[name]
    stage = CONTROL.build({"name": name, key: 4.0, "speed": {"kp": 2.0}})
    assert type(stage) is cls
    assert isinstance(stage, Controller)
    assert getattr(stage.config, key) == 4.0
    assert stage.config.speed.kp == 2.0


@pytest.mark.parametrize(("section", "named"), [
    ({"name": "stanley", "gian": 2.0}, "gian"),
    ({"name": "pure_pursuit", "speed": {"kpp": 1.0}}, "speed.kpp"),
    ({"name": "stanley", "gain": -1.0}, "gain"),
    ({"name": "stanley", "gain": float("nan")}, "gain"),
    ({"name": "pure_pursuit", "lookahead_min_m": 20.0}, "lookahead_min_m"),
])
def test_bad_config_key_is_one_error_naming_it(section, named):
    with pytest.raises(StageConfigError, match=named.replace(".", r"\.")):
        CONTROL.build(section)


def test_unknown_controller_lists_the_valid_ones():
    with pytest.raises(StageConfigError, match="pure_pursuit, stanley"):
        CONTROL.build({"name": "lqr"})


# ---------------------------------------------------------------------------------------------- vehicles
def test_vehicle_table_matches_the_datasheet_figures_the_simulator_uses():
    for vtype in VEHICLE_TYPES.values():
        p = VEHICLES[vtype.blueprint_id]
        assert (p.wheelbase_m, p.front_axle_m, p.rear_axle_m) == pytest.approx(
            (vtype.wheelbase_m, vtype.cg_to_front_axle_m, vtype.cg_to_rear_axle_m))
        assert (p.max_steer_rad, p.max_accel_mps2, p.max_brake_mps2) == (
            vtype.max_steer_rad, vtype.max_accel_mps2, vtype.max_brake_mps2)


def test_unknown_blueprint_falls_back_to_the_generic_car_with_one_warning():
    blueprint = f"vehicle.nobody.{uuid.uuid4().hex[:8]}"
    with pytest.warns(UserWarning, match=blueprint):
        params = vehicle_params(blueprint)
    assert params.blueprint_id == blueprint
    assert (params.wheelbase_m, params.max_steer_rad) == (GENERIC_CAR.wheelbase_m, GENERIC_CAR.max_steer_rad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vehicle_params(blueprint) == params  # warned once


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_reset_reads_the_vehicle_of_the_mission(cls):
    controller = cls()
    controller.reset(mission_for("vehicle.mitsubishi.fusorosa"))
    assert controller.vehicle == VEHICLES["vehicle.mitsubishi.fusorosa"]
    blueprint = f"vehicle.nobody.{uuid.uuid4().hex[:8]}"
    with pytest.warns(UserWarning, match=blueprint):
        controller.reset(mission_for(blueprint))
    assert controller.vehicle.wheelbase_m == GENERIC_CAR.wheelbase_m
    assert controller.step(line_plan(), pose()).steer == pytest.approx(0.0, abs=1e-9)


def test_pure_pursuit_stage_steers_as_the_lateral_law_configured_from_the_vehicle():
    controller = PurePursuitController()
    controller.reset(mission_for("vehicle.lincoln.mkz_2020"))
    plan = line_plan(y=1.5)
    law = PurePursuit(wheelbase_m=2.85, rear_axle_m=1.65, max_steer_rad=0.61)
    assert controller.step(plan, pose(speed=6.0)).steer == pytest.approx(
        law.steer(0.0, 0.0, 0.0, 6.0, plan.trajectory_xy))


# ---------------------------------------------------------------------------------------------- steering
@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_steer_follows_carla_convention(cls):
    # y is to the right of x: a path at y > 0 lies to the right of an ego heading +x, so steer right (> 0)
    right = cls().step(line_plan(y=1.0), pose()).steer
    left = cls().step(line_plan(y=-1.0), pose()).steer
    assert right > 0.05 and left == pytest.approx(-right)
    # heading 0.2 rad to the right of a path along +x: steer back left
    assert cls().step(line_plan(), pose(yaw=0.2)).steer < -0.05


def test_stanley_closed_form():
    # front axle 1.2 m ahead of the origin; path 0.5 m to its right; heading error 0.1 rad; v = 4 m/s
    yaw = -0.1
    fy = 1.2 * math.sin(yaw)
    xy = np.stack([np.arange(-5.0, 30.0), np.full(35, fy + 0.5)], axis=1)
    plan = Plan(0, 0.0, xy, np.full(35, 4.0))
    controller = StanleyController(StanleyController.Config(gain=2.0, soft_speed_mps=1.0))
    expected = (0.1 + math.atan(2.0 * 0.5 / (4.0 + 1.0))) / 0.61
    assert controller.step(plan, pose(yaw=yaw, speed=4.0)).steer == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_steer_is_clipped_to_the_max_steer(cls):
    plan = Plan(0, 0.0, [[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, 3.0]], [5.0] * 4)  # path at right angles
    assert cls().step(plan, pose()).steer == 1.0


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_one_point_trajectory_is_handled(cls):
    ahead = cls().step(Plan(0, 0.0, [[5.0, 1.0]], [3.0]), pose(speed=3.0))
    assert ahead.steer > 0.0 and math.isfinite(ahead.throttle)
    here = cls().step(Plan(0, 0.0, [[0.0, 0.0]], [0.0]), pose(speed=0.0))
    assert here.brake == 1.0 and here.throttle == 0.0


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_a_plan_with_a_control_gets_it_back(cls):
    control = VehicleControl(throttle=0.3, steer=-0.2, reverse=True)
    assert cls().step(Plan(0, 0.0, control=control), pose()) is control


# ---------------------------------------------------------------------------------------------- speed
def test_speed_pedals_from_the_wanted_acceleration():
    speed = SpeedController(SpeedConfig(ki=0.0))
    throttle, brake = speed.step(line_plan(speed=6.0), pose(speed=5.0))
    assert (throttle, brake) == pytest.approx((1.5 * 1.0 / 4.0, 0.0))
    throttle, brake = speed.step(line_plan(speed=4.0), pose(speed=5.0))
    assert (throttle, brake) == pytest.approx((0.0, 1.5 * 1.0 / 8.0))


def test_stopping_feed_forward_meets_the_stop_point():
    # profile reaching zero 10 m ahead at 4 m/s^2; at 10 m/s the car needs 5 m/s^2 > 2: commanded
    s = np.arange(30.0)
    plan = Plan(0, 0.0, np.stack([s, np.zeros(30)], axis=1), np.sqrt(2.0 * 4.0 * np.maximum(10.0 - s, 0.0)))
    assert SpeedController().accel(plan, pose(speed=10.0)) == pytest.approx(-10.0 ** 2 / (2.0 * 10.0))
    # far from needing it: the PID alone (reference sqrt(80) = 8.94 at the ego)
    assert SpeedController().accel(plan, pose(speed=5.0)) > 0.0


def test_stop_point_between_plan_points_is_found_exactly():
    s = np.arange(30.0)
    plan = Plan(0, 0.0, np.stack([s, np.zeros(30)], axis=1), np.sqrt(2.0 * 3.0 * np.maximum(12.4 - s, 0.0)))
    assert SpeedController().accel(plan, pose(speed=9.0)) == pytest.approx(-81.0 / (2.0 * 12.4))


def test_stop_reference_holds_the_brake():
    assert SpeedController().step(line_plan(speed=0.0), pose(speed=0.5)) == (0.0, 1.0)
    # a stop reference, still rolling, the stop point 5 m on: at least the hold deceleration
    s = np.arange(20.0)
    plan = Plan(0, 0.0, np.stack([s, np.zeros(20)], axis=1), np.where(s < 5.0, 0.2, 0.0))
    assert SpeedController(SpeedConfig(kp=0.5)).accel(plan, pose(speed=2.0)) == pytest.approx(-2.0)
    assert SpeedController(SpeedConfig(kp=2.0)).accel(plan, pose(speed=2.0)) == pytest.approx(-3.6)


def test_integrator_winds_up_no_further_than_its_limit_and_resets():
    config = SpeedConfig(kp=0.0, ki=1.0, integral_limit_mps2=0.5)
    speed = SpeedController(config)
    for k in range(200):  # 10 m/s short for 10 s
        a = speed.accel(line_plan(speed=10.0, t=0.05 * k), pose(speed=0.0, t=0.05 * k))
    assert a == pytest.approx(0.5)
    speed.reset()
    assert speed.accel(line_plan(speed=10.0, t=100.0), pose(speed=0.0, t=100.0)) == 0.0


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_reset_forgets_the_previous_episode(cls):
    used = cls()
    for k in range(100):
        used.step(line_plan(y=0.3, speed=9.0, t=0.05 * k), pose(speed=4.0, t=0.05 * k))
    used.reset(mission_for("vehicle.lincoln.mkz_2020"))
    fresh = cls()
    fresh.reset(mission_for("vehicle.lincoln.mkz_2020"))
    plan, now = line_plan(y=0.3, speed=9.0, t=10.0), pose(speed=4.0, t=10.0)
    assert used.step(plan, now) == fresh.step(plan, now)


# ---------------------------------------------------------------------------------------------- bad input
def test_nan_cannot_reach_the_controller():
    with pytest.raises(ValueError, match="x_m"):
        Pose(float("nan"), 0.0)
    with pytest.raises(MessageError, match="velocity_mps"):
        PoseEstimate(0, 0.0, Pose(), np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(MessageError, match="finite"):
        Plan(0, 0.0, [[0.0, 0.0], [np.nan, 1.0]], [1.0, 1.0])
    with pytest.raises(MessageError, match="finite"):
        Plan(0, 0.0, [[0.0, 0.0], [1.0, 0.0]], [1.0, np.inf])


@pytest.mark.parametrize("cls", CONTROLLERS, ids=lambda c: c.__name__)
def test_controls_stay_finite_and_in_range_on_odd_plans(cls):
    rng = np.random.default_rng(7)
    controller = cls(cls.Config(yaw_rate_gain_s=0.2)) if cls is StanleyController else cls()
    for k in range(300):
        n = int(rng.integers(1, 8))
        xy = rng.normal(scale=float(rng.choice([1e-4, 1.0, 50.0])), size=(n, 2))
        if k % 3 == 0:
            xy[:] = xy[0]  # every point the same
        plan = Plan(k, 0.05 * (k // 2), xy, rng.uniform(0.0, 30.0, n) * (k % 5 != 0))
        now = pose(*rng.normal(scale=20.0, size=2), yaw=float(rng.uniform(-4, 4)), speed=float(rng.normal(0, 10)),
                   t=0.05 * (k // 2))
        control = controller.step(plan, now)
        values = np.array([control.throttle, control.steer, control.brake])
        assert np.isfinite(values).all()
        assert 0.0 <= control.throttle <= 1.0 and 0.0 <= control.brake <= 1.0 and -1.0 <= control.steer <= 1.0
        assert control.throttle == 0.0 or control.brake == 0.0
