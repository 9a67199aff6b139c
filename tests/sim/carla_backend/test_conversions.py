"""Offline checks of the CARLA backend's unit and frame conversions, with the real ``carla`` types."""

from __future__ import annotations

import math
import socket

import carla
import pytest

from sim.api import ActorKind, Pose, TrafficLightState, VehicleControl
from sim.carla_backend import conversions as cv
from sim.carla_backend.world import CarlaConnectionError, CarlaWorld


def test_pose_round_trips_through_carla_transform():
    pose = Pose(12.5, -3.25, 0.4, yaw_rad=2.0, pitch_rad=-0.1, roll_rad=0.05)
    transform = cv.pose_to_transform(pose)
    assert transform.rotation.yaw == pytest.approx(math.degrees(2.0), abs=1e-4)
    back = cv.transform_to_pose(transform)
    for name in ("x_m", "y_m", "z_m", "yaw_rad", "pitch_rad", "roll_rad"):
        assert getattr(back, name) == pytest.approx(getattr(pose, name), abs=1e-5)


def test_unnormalised_carla_angles_are_wrapped():
    pose = cv.transform_to_pose(carla.Transform(carla.Location(), carla.Rotation(pitch=361.5, yaw=-270.0, roll=0)))
    assert pose.pitch_rad == pytest.approx(math.radians(1.5), abs=1e-6)
    assert pose.yaw_rad == pytest.approx(math.pi / 2, abs=1e-6)


def test_frames_agree_positive_yaw_turns_x_toward_y():
    """carla.Transform's own rotation matches the project's convention (and vehicle_ground_xy)."""
    transform = cv.pose_to_transform(Pose(10.0, 20.0, 0.0, yaw_rad=math.pi / 2))
    moved = transform.transform(carla.Location(1.0, 0.0, 0.0))
    assert (moved.x, moved.y) == pytest.approx((10.0, 21.0), abs=1e-5)
    assert cv.vehicle_ground_xy(transform, carla.Location(1.0, 0.0, 0.7)) == pytest.approx((10.0, 21.0), abs=1e-5)


def test_controls_clamped_both_ways():
    ours = VehicleControl(throttle=0.7, steer=-0.3, brake=0.0, hand_brake=True)
    theirs = cv.control_to_carla(ours)
    assert (theirs.throttle, theirs.steer, theirs.brake, theirs.hand_brake) == pytest.approx((0.7, -0.3, 0.0, True))
    back = cv.control_from_carla(carla.VehicleControl(throttle=1.5, steer=-2.0, brake=0.2))
    assert (back.throttle, back.steer, back.brake) == (1.0, -1.0, pytest.approx(0.2))


def test_light_states_units_and_kinds():
    for state in TrafficLightState:
        assert cv.light_state(cv.light_state_to_carla(state)) == state
    assert cv.light_state(carla.TrafficLightState.Red) == TrafficLightState.RED
    assert cv.speed_limit_mps(36.0) == pytest.approx(10.0)
    assert cv.angular_velocity_rad_s(carla.Vector3D(0.0, 0.0, 180.0))[2] == pytest.approx(math.pi)
    assert cv.actor_kind("vehicle.tesla.model3") == ActorKind.VEHICLE
    assert cv.actor_kind("walker.pedestrian.0001") == ActorKind.WALKER
    with pytest.raises(ValueError, match="sensor.camera.rgb"):
        cv.actor_kind("sensor.camera.rgb")
    assert cv.semantic_tag("vehicle.carlamotors.carlacola", [], "truck") == 15
    assert cv.semantic_tag("walker.pedestrian.0002") == 12
    assert cv.semantic_tag("vehicle.x", [18]) == 18


def test_no_server_gives_one_clear_error_naming_host_and_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CarlaConnectionError, match=f"127.0.0.1:{port}"):
        CarlaWorld(host="127.0.0.1", port=port, timeout_s=0.5)


def test_env_with_carla_backend_and_no_server_says_so():
    from sim.env.driving import DrivingEnv

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CarlaConnectionError, match="no CARLA server answered"):
        DrivingEnv(backend="carla", carla={"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
                   observation={"mode": "state"})

