"""Live tests against a CARLA 0.9.16 server, or else against ``avsim serve`` started for the session.

With CARLA_HOST (and CARLA_PORT) set they use that server::

    CARLA_HOST=10.0.0.5 CARLA_PORT=2000 .venv/bin/python -m pytest -q -m carla tests/sim/carla_backend

Otherwise the ``carla_endpoint`` fixture (tests/conftest.py) serves the embedded
simulator over CARLA's protocol on a free loopback port, so these run in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sim.api import LaneInvasionEvent, VehicleControl

pytestmark = pytest.mark.carla

TOWN = os.environ.get("CARLA_TOWN", "Town01")
SUITE = Path(__file__).resolve().parents[3] / "configs" / "sensors" / "default.yaml"


@pytest.fixture()
def world(carla_endpoint):
    from sim.carla_backend.world import CarlaWorld

    host, port, _ = carla_endpoint
    with CarlaWorld(map=TOWN, host=host, port=port, timeout_s=20.0) as carla_world:
        yield carla_world


def test_spawn_tick_and_drive(world):
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
    start = world.tick()
    world.apply_control(ego, VehicleControl(throttle=0.8))
    for _ in range(40):
        snapshot = world.tick()
    row = snapshot.index_of(ego)
    assert snapshot.frame > start.frame and snapshot.dt_s == pytest.approx(0.05)
    moved = np.hypot(*(snapshot.location_m[row, :2] - start.location_m[start.index_of(ego), :2]))
    assert moved > 1.0 and snapshot.speed_mps()[row] > 0.5
    assert snapshot.light_state.shape == world.signals.light_id.shape


def test_autopilot_traffic(world):
    npcs = world.spawn_traffic(10)
    assert len(npcs) >= 5
    first = world.tick()
    for _ in range(60):
        snapshot = world.tick()
    rows = [snapshot.index_of(a) for a in npcs]
    assert snapshot.autopilot[rows].all()
    moved = np.hypot(*(snapshot.location_m[rows, :2] - first.location_m[[first.index_of(a) for a in npcs], :2]).T)
    assert (moved > 1.0).sum() >= len(npcs) // 2


def test_walkers_with_ai_controllers(world):
    walkers = world.spawn_walkers(5)
    assert len(walkers) >= 1
    first = world.tick()
    for _ in range(60):
        snapshot = world.tick()
    moved = [np.hypot(*(snapshot.location_m[snapshot.index_of(w), :2] - first.location_m[first.index_of(w), :2]))
             for w in walkers]
    assert max(moved) > 0.5


def test_lane_invasion_events_reach_the_snapshot(world):
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
    world.apply_control(ego, VehicleControl(throttle=0.5, steer=-0.4))  # swerve left across the markings
    events = []
    for _ in range(60):
        events += world.tick().events
    assert any(isinstance(e, LaneInvasionEvent) and e.actor_id == ego for e in events)


def test_sensor_suite_returns_each_frames_data(world):
    from sim.carla_backend.sensors import CarlaSensorRig
    from sim.sensors.suite import load_suite

    world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
    rig = CarlaSensorRig(world, load_suite(SUITE))
    try:
        for _ in range(5):
            snapshot = world.tick()
            data = rig.measure(snapshot)
            for name, measurement in data.items():
                if not isinstance(measurement, list):
                    assert measurement.frame == snapshot.frame, name
    finally:
        rig.close()


def test_cleanup_leaves_no_actors_and_restores_settings(carla_endpoint):
    import carla

    from sim.carla_backend.world import CarlaWorld

    host, port, _ = carla_endpoint
    client = carla.Client(host, port)
    client.set_timeout(20.0)
    before_settings = client.get_world().get_settings()
    with CarlaWorld(map=TOWN, host=host, port=port) as world:
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, role_name="hero")
        world.spawn_traffic(5)
        world.tick()
        mine = set(world.owned_actor_ids)
    after = client.get_world()
    assert not mine & {a.id for a in after.get_actors()}
    settings = after.get_settings()
    assert settings.synchronous_mode == before_settings.synchronous_mode
    assert settings.fixed_delta_seconds == before_settings.fixed_delta_seconds


def test_check_env_with_carla_backend(carla_endpoint):
    from gymnasium.utils.env_checker import check_env

    from sim.env.driving import DrivingEnv

    host, port, _ = carla_endpoint
    env = DrivingEnv(backend="carla", map=TOWN, carla={"host": host, "port": port}, traffic={"vehicles": 5,
                     "walkers": 0}, observation={"mode": "bev"})
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()
