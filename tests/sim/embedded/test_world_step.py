"""The embedded world's step can change between ticks (the CARLA server's fixed_delta_seconds) and sensors can be
fixed in the world (parent 0)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.api import Pose
from sim.embedded.sensors.base import WORLD_PARENT_ID
from sim.embedded.sensors.gnss import GnssSensor
from sim.embedded.sensors.imu import ImuSensor
from sim.embedded.world import EmbeddedWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddedWorld(map="Town01", seed=0)


def test_set_step_keeps_the_clock_going_and_continue_from_frame_restarts_time(world):
    world.reset(0)
    for _ in range(4):
        world.tick()
    assert world.time_s == pytest.approx(0.2)
    world.set_step(0.2)
    snapshot = world.tick()
    assert (snapshot.frame, snapshot.dt_s) == (5, 0.2) and snapshot.timestamp_s == pytest.approx(0.4)
    with pytest.raises(ValueError, match="dt_s"):
        world.set_step(0.0)
    world.set_step(0.05)
    fresh = EmbeddedWorld(map="Town01", seed=0)
    fresh.continue_from_frame(snapshot.frame)
    assert fresh.snapshot().frame == 5 and fresh.tick().timestamp_s == pytest.approx(0.05)


def test_substeps_integrate_the_dynamics_like_short_steps(world):
    def drive(dt: float, substep: float | None) -> tuple[float, float, float]:
        world.reset(0)
        world.set_step(dt)
        world.max_substep_s = substep
        actor = world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0])
        from sim.api import VehicleControl

        world.apply_control(actor, VehicleControl(throttle=1.0, steer=0.02))
        for _ in range(round(3.0 / dt)):
            snapshot = world.tick()
        row = snapshot.index_of(actor)
        world.max_substep_s = None
        world.set_step(0.05)
        return (*snapshot.location_m[row, :2].tolist(), float(snapshot.rotation_rad[row, 1]))

    fine = drive(0.05, None)
    substepped = drive(0.25, 0.05)
    start = world.spawn_points[0].pose
    assert math.dist(fine[:2], (start.x_m, start.y_m)) > 15.0  # it drove
    assert substepped == pytest.approx(fine, abs=0.3)


def test_sensors_fixed_in_the_world(world):
    world.reset(0)
    where = Pose(10.0, 20.0, 3.0, math.radians(90.0))
    gnss = GnssSensor(WORLD_PARENT_ID, where)
    imu = ImuSensor(WORLD_PARENT_ID, where)
    assert gnss.fixed_in_world and not GnssSensor(1, where).fixed_in_world
    snapshot = world.tick()
    fix = gnss.measure(world, snapshot)
    assert fix.location_m == pytest.approx([10.0, 20.0, 3.0]) and fix.rotation_rad[1] == pytest.approx(math.pi / 2)
    reading = imu.measure(world, snapshot)
    assert reading.data.accelerometer_mps2 == pytest.approx([0.0, 0.0, 9.81], abs=1e-6)  # at rest: gravity only
    assert np.all(reading.data.gyroscope_rad_s == 0.0)
