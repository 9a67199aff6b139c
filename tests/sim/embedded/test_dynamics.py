"""Closed-form checks of the vectorised bicycle models and the vehicle types."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim.embedded.dynamics import (
    MAX_REVERSE_SPEED_MPS,
    V_BLEND_LOW_MPS,
    BicycleFleet,
    ControlArrays,
    DynamicsModel,
)
from sim.embedded.vehicle_types import (
    GRAVITY_MPS2,
    VEHICLE_TYPES,
    VehicleType,
    get_vehicle_type,
)

DT = 0.05
MODELS = ["kinematic", "dynamic"]
CAR = VEHICLE_TYPES["car"]
# No drag and no rolling resistance: speed is kept exactly without input.
FRICTIONLESS_CAR = dataclasses.replace(CAR, drag_area_kg_per_m=0.0, rolling_resistance_coeff=0.0)


def run(fleet: BicycleFleet, controls: ControlArrays, steps: int) -> None:
    for _ in range(steps):
        fleet.step(controls, DT)


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares circle through points: centre (cx, cy) and radius."""
    a = np.column_stack([x, y, np.ones_like(x)])
    sol, *_ = np.linalg.lstsq(a, x * x + y * y, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    return cx, cy, math.sqrt(sol[2] + cx * cx + cy * cy)


# ---------------------------------------------------------------- vehicle types


@pytest.mark.parametrize("vtype", list(VEHICLE_TYPES.values()), ids=list(VEHICLE_TYPES))
def test_vehicle_type_parameters_are_positive_and_sane(vtype: VehicleType) -> None:
    numbers = [
        vtype.wheelbase_m,
        vtype.cg_to_front_axle_m,
        vtype.cg_to_rear_axle_m,
        vtype.mass_kg,
        vtype.yaw_inertia_kgm2,
        vtype.cornering_stiffness_front_n_per_rad,
        vtype.cornering_stiffness_rear_n_per_rad,
        vtype.max_steer_rad,
        vtype.max_steer_rate_rad_s,
        vtype.max_accel_mps2,
        vtype.max_power_w,
        vtype.max_brake_mps2,
        vtype.drag_area_kg_per_m,
        vtype.rolling_resistance_coeff,
        *vtype.extent_m,
    ]
    assert all(math.isfinite(v) and v > 0 for v in numbers)
    assert vtype.wheelbase_m < 2 * vtype.extent_m[0]  # axles fit inside the body
    assert 0.1 < vtype.max_steer_rad < 1.0
    assert vtype.max_accel_mps2 < vtype.max_brake_mps2 <= 1.0 * GRAVITY_MPS2
    assert vtype.rolling_resistance_coeff < 0.05
    assert vtype.understeer_gradient_rad_per_mps2 > 0  # stable at every forward speed
    assert vtype.number_of_wheels in (2, 4)
    assert vtype.blueprint_id.startswith("vehicle.")
    assert VEHICLE_TYPES[vtype.base_type] is vtype


def test_semantic_tags_follow_carla() -> None:
    tags = {name: t.semantic_tag for name, t in VEHICLE_TYPES.items()}
    assert tags == {"car": 14, "van": 14, "truck": 15, "bus": 16, "motorcycle": 18}
    assert VEHICLE_TYPES["motorcycle"].number_of_wheels == 2


def test_get_vehicle_type_by_base_type_and_blueprint() -> None:
    assert get_vehicle_type("car") is CAR
    assert get_vehicle_type("vehicle.lincoln.mkz_2020") is CAR
    assert get_vehicle_type("vehicle.mitsubishi.fusorosa").base_type == "bus"


def test_unknown_vehicle_type_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        get_vehicle_type("tank")
    message = str(err.value)
    assert "'tank'" in message
    for name in ("car", "van", "truck", "bus", "motorcycle", "vehicle.yamaha.yzf"):
        assert name in message


# ---------------------------------------------------------------- controls


def test_controls_are_clamped_to_carla_ranges() -> None:
    c = ControlArrays(
        throttle=[1.5, -0.2, 0.3],
        steer=[-3.0, 2.0, 0.1],
        brake=[-1.0, 7.0, 0.5],
        hand_brake=[0, 1, 0],
        reverse=[False, True, False],
    )
    np.testing.assert_array_equal(c.throttle, [1.0, 0.0, 0.3])
    np.testing.assert_array_equal(c.steer, [-1.0, 1.0, 0.1])
    np.testing.assert_array_equal(c.brake, [0.0, 1.0, 0.5])
    assert c.hand_brake.dtype == np.bool_ and c.hand_brake.tolist() == [False, True, False]
    assert c.reverse.tolist() == [False, True, False]
    assert c.n == 3


@pytest.mark.parametrize("field", ["throttle", "steer", "brake", "hand_brake", "reverse"])
def test_nan_control_raises_naming_the_field(field: str) -> None:
    values = {"throttle": [0.5, 0.5], "steer": [0.0, 0.0], "brake": [0.0, 0.0]}
    values |= {"hand_brake": [0.0, 0.0], "reverse": [0.0, 0.0]}
    values[field] = [0.0, float("nan")]
    with pytest.raises(ValueError, match=field):
        ControlArrays(**values)


def test_controls_with_mismatched_lengths_or_shape_raise() -> None:
    with pytest.raises(ValueError, match="brake"):
        ControlArrays([0.0, 0.0], [0.0, 0.0], [0.0], [False, False], [False, False])
    with pytest.raises(ValueError, match="1-D"):
        ControlArrays([[0.0]], [[0.0]], [[0.0]], [[False]], [[False]])


# ---------------------------------------------------------------- longitudinal


@pytest.mark.parametrize("model", MODELS)
def test_constant_speed_straight_line(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=20.0)
    fleet.add(FRICTIONLESS_CAR, 5.0, -3.0, math.radians(30), speed_mps=20.0)
    run(fleet, ControlArrays.full(2), 40)  # 2 s
    assert fleet.v_long_mps == pytest.approx([20.0, 20.0])
    assert fleet.x_m == pytest.approx([40.0, 5.0 + 40.0 * math.cos(math.radians(30))])
    assert fleet.y_m == pytest.approx([0.0, -3.0 + 40.0 * math.sin(math.radians(30))], abs=1e-9)
    assert fleet.yaw_rad[1] == pytest.approx(math.radians(30))
    np.testing.assert_allclose(fleet.velocity_world()[0], [20.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(fleet.acceleration_world(), 0.0, atol=1e-12)


@pytest.mark.parametrize("model", MODELS)
def test_resistances_slow_a_coasting_vehicle(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(CAR, 0.0, 0.0, 0.0, speed_mps=30.0)
    fleet.step(ControlArrays.full(1), DT)
    drag = CAR.drag_area_kg_per_m * 30.0**2 / CAR.mass_kg
    expected = drag + CAR.rolling_resistance_coeff * GRAVITY_MPS2
    assert fleet.accel_long_mps2[0] == pytest.approx(-expected)


@pytest.mark.parametrize("model", MODELS)
def test_vehicle_at_rest_without_throttle_stays_still(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(CAR, 1.0, 2.0, 0.3)
    run(fleet, ControlArrays.full(1, steer=0.7, brake=0.0), 100)
    assert fleet.x_m[0] == 1.0 and fleet.y_m[0] == 2.0 and fleet.yaw_rad[0] == 0.3
    assert fleet.v_long_mps[0] == 0.0
    assert fleet.steer_rad[0] == pytest.approx(0.7 * CAR.max_steer_rad)


@pytest.mark.parametrize("model", MODELS)
def test_full_throttle_from_rest_and_power_limit(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=0.0)
    fleet.add(FRICTIONLESS_CAR, 0.0, 10.0, 0.0, speed_mps=40.0)
    fleet.step(ControlArrays.full(2, throttle=1.0), DT)
    power_limited = CAR.max_power_w / (CAR.mass_kg * 40.0)
    assert power_limited < CAR.max_accel_mps2
    assert fleet.accel_long_mps2 == pytest.approx([CAR.max_accel_mps2, power_limited])
    # Constant acceleration from rest: x = a t^2 / 2 exactly.
    assert fleet.x_m[0] == pytest.approx(0.5 * CAR.max_accel_mps2 * DT**2)


@pytest.mark.parametrize("model", MODELS)
def test_braking_distance_and_braking_never_reverses(model: str) -> None:
    v0 = 17.0
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=v0)
    fleet.add(FRICTIONLESS_CAR, 0.0, 20.0, 0.0, speed_mps=-3.0)  # braking while reversing
    controls = ControlArrays.full(2, brake=1.0)
    speeds = []
    for _ in range(80):
        fleet.step(controls, DT)
        speeds.append(fleet.v_long_mps.copy())
    speeds_arr = np.array(speeds)
    assert (speeds_arr[:, 0] >= 0).all() and (speeds_arr[:, 1] <= 0).all()
    assert (np.diff(np.abs(speeds_arr), axis=0) <= 0).all()
    a = CAR.max_brake_mps2
    assert fleet.x_m[0] == pytest.approx(v0**2 / (2 * a), abs=a * DT**2)
    assert fleet.x_m[1] == pytest.approx(-(3.0**2) / (2 * a), abs=a * DT**2)
    assert fleet.v_long_mps.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("model", MODELS)
def test_hand_brake_decelerates_with_rear_axle_share(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=10.0)
    fleet.step(ControlArrays.full(1, hand_brake=True), DT)
    share = CAR.cg_to_front_axle_m / CAR.wheelbase_m
    assert fleet.accel_long_mps2[0] == pytest.approx(-CAR.max_brake_mps2 * share)
    assert CAR.hand_brake_decel_mps2 == pytest.approx(CAR.max_brake_mps2 * share)


@pytest.mark.parametrize("model", MODELS)
def test_reverse_drives_backwards_up_to_reverse_top_speed(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0)
    controls = ControlArrays.full(1, throttle=1.0, reverse=True)
    fleet.step(controls, DT)
    assert fleet.v_long_mps[0] == pytest.approx(-CAR.max_accel_mps2 * DT)
    run(fleet, controls, 200)
    assert fleet.x_m[0] < -50.0
    assert fleet.y_m[0] == pytest.approx(0.0, abs=1e-12)
    assert fleet.v_long_mps[0] == pytest.approx(-MAX_REVERSE_SPEED_MPS)


@pytest.mark.parametrize("model", MODELS)
def test_reverse_with_right_steer_turns_heading_left(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(CAR, 0.0, 0.0, 0.0)
    run(fleet, ControlArrays.full(1, throttle=0.5, steer=0.5, reverse=True), 20)
    assert fleet.v_long_mps[0] < 0 and fleet.yaw_rate_rad_s[0] < 0 and fleet.yaw_rad[0] < 0


# ---------------------------------------------------------------- steering and turns


@pytest.mark.parametrize("model", MODELS)
def test_steering_rate_limit(model: str) -> None:
    fleet = BicycleFleet(model)
    fleet.add(CAR, 0.0, 0.0, 0.0, speed_mps=5.0)
    step_max = CAR.max_steer_rate_rad_s * DT
    angles = []
    for _ in range(20):
        fleet.step(ControlArrays.full(1, steer=1.0), DT)
        angles.append(fleet.steer_rad[0])
    expected = np.minimum(step_max * np.arange(1, 21), CAR.max_steer_rad)
    np.testing.assert_allclose(angles, expected, rtol=1e-12)
    # Full opposite lock: again limited to step_max a step.
    fleet.step(ControlArrays.full(1, steer=-1.0), DT)
    assert fleet.steer_rad[0] == pytest.approx(CAR.max_steer_rad - step_max)


def kinematic_cg_radius(vtype: VehicleType, delta: float) -> float:
    lr, length = vtype.cg_to_rear_axle_m, vtype.wheelbase_m
    beta = math.atan(lr / length * math.tan(delta))
    radius = lr / math.sin(beta)
    assert radius == pytest.approx(math.hypot(lr, length / math.tan(delta)))
    return radius


@pytest.mark.parametrize(
    ("model", "speed"),
    [("kinematic", 5.0), ("kinematic", 15.0), ("dynamic", 0.9 * V_BLEND_LOW_MPS)],
)
def test_kinematic_constant_radius_turn(model: str, speed: float) -> None:
    steer = 0.5
    delta = steer * CAR.max_steer_rad
    fleet = BicycleFleet(model)
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=speed)
    controls = ControlArrays.full(1, steer=steer)
    run(fleet, controls, 10)  # steering settles
    xs, ys = [], []
    for _ in range(150):
        fleet.step(controls, DT)
        xs.append(fleet.x_m[0])
        ys.append(fleet.y_m[0])
    cx, cy, radius = fit_circle(np.array(xs), np.array(ys))
    expected = kinematic_cg_radius(CAR, delta)
    assert radius == pytest.approx(expected, rel=1e-6)
    residual = np.hypot(np.array(xs) - cx, np.array(ys) - cy) - radius
    assert np.abs(residual).max() < 1e-6
    # Positive steer turns right: yaw increases and the centre lies on the +y side.
    assert cy > 0 and fleet.yaw_rate_rad_s[0] > 0
    lr, length = CAR.cg_to_rear_axle_m, CAR.wheelbase_m
    assert fleet.yaw_rate_rad_s[0] == pytest.approx(speed * math.tan(delta) / length)
    assert fleet.v_lat_mps[0] == pytest.approx(speed * lr / length * math.tan(delta))
    # The world acceleration is centripetal: |a| = V^2 / R, pointing at the centre.
    accel = fleet.acceleration_world()[0]
    ground_speed = fleet.speed_mps()[0]
    assert np.linalg.norm(accel) == pytest.approx(ground_speed**2 / expected, rel=1e-3)
    to_centre = np.array([cx - fleet.x_m[0], cy - fleet.y_m[0]])
    assert accel @ to_centre / (np.linalg.norm(accel) * np.linalg.norm(to_centre)) > 0.999


@pytest.mark.parametrize("speed", [5.0, 15.0])
@pytest.mark.parametrize("vtype_name", ["car", "bus", "motorcycle"])
def test_dynamic_steady_turn_matches_understeer_formula(vtype_name: str, speed: float) -> None:
    vtype = dataclasses.replace(
        VEHICLE_TYPES[vtype_name], drag_area_kg_per_m=0.0, rolling_resistance_coeff=0.0
    )
    steer = 0.04
    delta = steer * vtype.max_steer_rad
    fleet = BicycleFleet(DynamicsModel.DYNAMIC)
    fleet.add(vtype, 0.0, 0.0, 0.0, speed_mps=speed)
    run(fleet, ControlArrays.full(1, steer=steer), 400)
    v, r = fleet.v_long_mps[0], fleet.yaw_rate_rad_s[0]
    assert v == pytest.approx(speed)
    k = vtype.understeer_gradient_rad_per_mps2
    # Linear bicycle steady state: delta = L / R + K a_lat with R = v / r, a_lat = v r.
    assert v / r == pytest.approx((vtype.wheelbase_m + k * speed**2) / delta, rel=1e-6)
    assert v / r > kinematic_cg_radius(vtype, delta)  # understeer widens the turn
    # At low lateral acceleration it approaches the kinematic radius.
    if speed == 5.0:
        assert speed * r < 0.5  # m/s^2
        assert v / r == pytest.approx(kinematic_cg_radius(vtype, delta), rel=0.05)


def test_dynamic_blends_smoothly_into_kinematic_at_low_speed() -> None:
    speeds = np.linspace(0.5, 8.0, 31)
    fleet = BicycleFleet("dynamic")
    for s in speeds:
        fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=float(s))
    run(fleet, ControlArrays.full(len(speeds), steer=0.1), 200)
    curvature = fleet.yaw_rate_rad_s / fleet.v_long_mps
    kinematic = math.tan(0.1 * CAR.max_steer_rad) / CAR.wheelbase_m
    low = speeds < V_BLEND_LOW_MPS
    np.testing.assert_allclose(curvature[low], kinematic, rtol=1e-9)
    assert (curvature[~low] <= kinematic * 1.001).all()
    assert (np.abs(np.diff(curvature)) < 0.02 * kinematic).all()  # no jumps


def test_dynamic_responds_to_a_steer_step_without_oscillating_away() -> None:
    fleet = BicycleFleet("dynamic")
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 0.0, speed_mps=25.0)
    rates = []
    for _ in range(100):
        fleet.step(ControlArrays.full(1, steer=0.05), DT)
        rates.append(fleet.yaw_rate_rad_s[0])
    rates_arr = np.array(rates)
    assert np.isfinite(rates_arr).all()
    assert rates_arr[-1] == pytest.approx(rates_arr[-2], rel=1e-6)  # settled
    assert rates_arr.max() < 1.5 * rates_arr[-1]


def test_yaw_stays_wrapped() -> None:
    fleet = BicycleFleet("kinematic")
    fleet.add(FRICTIONLESS_CAR, 0.0, 0.0, 3.0, speed_mps=10.0)
    for _ in range(400):
        fleet.step(ControlArrays.full(1, steer=1.0), DT)
        assert -math.pi <= fleet.yaw_rad[0] <= math.pi


# ---------------------------------------------------------------- fleet bookkeeping


@pytest.mark.parametrize("model", MODELS)
def test_vectorised_rows_do_not_interact(model: str) -> None:
    rng = np.random.default_rng(3)
    types = list(VEHICLE_TYPES.values())
    n = 10
    starts = [
        (types[i % 5], *rng.uniform(-50, 50, 2), rng.uniform(-3, 3), rng.uniform(0, 15))
        for i in range(n)
    ]
    controls = ControlArrays(
        rng.uniform(0, 1, n), rng.uniform(-1, 1, n), rng.uniform(0, 0.3, n),
        rng.uniform(size=n) < 0.3, rng.uniform(size=n) < 0.3,
    )  # fmt: skip
    together = BicycleFleet(model)
    for s in starts:
        together.add(*s)
    run(together, controls, 30)
    for i, s in enumerate(starts):
        alone = BicycleFleet(model)
        alone.add(*s)
        one = ControlArrays(
            controls.throttle[i : i + 1], controls.steer[i : i + 1], controls.brake[i : i + 1],
            controls.hand_brake[i : i + 1], controls.reverse[i : i + 1],
        )  # fmt: skip
        run(alone, one, 30)
        for name in ("x_m", "y_m", "yaw_rad", "v_long_mps", "v_lat_mps", "yaw_rate_rad_s"):
            assert getattr(alone, name)[0] == pytest.approx(getattr(together, name)[i], abs=1e-9)


def test_add_and_remove_keep_other_vehicles_state() -> None:
    fleet = BicycleFleet("dynamic")
    for i, vtype in enumerate(VEHICLE_TYPES.values()):
        assert fleet.add(vtype, 10.0 * i, 0.0, 0.1 * i, speed_mps=5.0 + i) == i
    run(fleet, ControlArrays.full(5, throttle=0.3, steer=0.2), 10)
    names = ("x_m", "y_m", "yaw_rad", "v_long_mps", "v_lat_mps", "yaw_rate_rad_s", "steer_rad")
    before = {name: getattr(fleet, name).copy() for name in names}
    ids_before = fleet.ids.copy()

    old_to_new = fleet.remove([1, 3])
    assert fleet.n == 3
    assert old_to_new.tolist() == [0, -1, 1, -1, 2]
    for name in names:
        np.testing.assert_array_equal(getattr(fleet, name), before[name][[0, 2, 4]])
    assert fleet.ids.tolist() == ids_before[[0, 2, 4]].tolist()
    assert [t.base_type for t in fleet.types] == ["car", "truck", "motorcycle"]
    np.testing.assert_array_equal(fleet.extent_m[1], VEHICLE_TYPES["truck"].extent_m)
    assert fleet.rows_of([ids_before[4], ids_before[0]]).tolist() == [2, 0]
    with pytest.raises(ValueError, match="not in the fleet"):
        fleet.rows_of([ids_before[1]])

    row = fleet.add(CAR, 0.0, 0.0, 0.0, vehicle_id=1000)
    assert row == 3 and fleet.rows_of(1000).tolist() == [3]
    for name in names:
        np.testing.assert_array_equal(getattr(fleet, name)[:3], before[name][[0, 2, 4]])
    with pytest.raises(ValueError, match="already"):
        fleet.add(CAR, 0.0, 0.0, 0.0, vehicle_id=1000)
    # The truck (row 1) drives on with its own parameters after compaction.
    fleet.step(ControlArrays.full(4, throttle=1.0), DT)
    assert fleet.accel_long_mps2[1] < VEHICLE_TYPES["truck"].max_accel_mps2


def test_set_state_teleports_and_sets_speed() -> None:
    fleet = BicycleFleet("kinematic")
    fleet.add(CAR, 0.0, 0.0, 0.0, speed_mps=3.0)
    fleet.add(CAR, 5.0, 5.0, 0.0, speed_mps=3.0)
    x_before = fleet.x_m
    fleet.set_state([1], x_m=100.0, y_m=-20.0, yaw_rad=3 * math.pi / 2, speed_mps=12.0)
    assert fleet.x_m.tolist() == [0.0, 100.0] and fleet.y_m.tolist() == [0.0, -20.0]
    assert x_before.tolist() == [0.0, 5.0]  # earlier reads are snapshots
    assert fleet.yaw_rad[1] == pytest.approx(-math.pi / 2)
    assert fleet.v_long_mps.tolist() == [3.0, 12.0]
    np.testing.assert_allclose(fleet.velocity_world()[1], [0.0, -12.0], atol=1e-12)
    fleet.set_state(np.array([0, 1]), speed_mps=np.array([1.0, 2.0]))
    assert fleet.v_long_mps.tolist() == [1.0, 2.0]


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="kinematic, dynamic"):
        BicycleFleet("magic")
    fleet = BicycleFleet()
    assert fleet.model is DynamicsModel.KINEMATIC
    with pytest.raises(ValueError, match="x_m"):
        fleet.add(CAR, float("nan"), 0.0, 0.0)
    fleet.add(CAR, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="2 rows"):
        fleet.step(ControlArrays.full(2), DT)
    for dt in (0.0, -0.05, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt_s"):
            fleet.step(ControlArrays.full(1), dt)
    with pytest.raises(ValueError, match="rows"):
        fleet.remove([5])
    with pytest.raises(ValueError, match="speed_mps"):
        fleet.set_state([0], speed_mps=float("inf"))


def test_empty_fleet_steps() -> None:
    fleet = BicycleFleet("dynamic")
    fleet.step(ControlArrays.full(0), DT)
    assert fleet.n == 0
    assert fleet.velocity_world().shape == (0, 2)
    assert fleet.acceleration_world().shape == (0, 2)
