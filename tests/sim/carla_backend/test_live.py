"""Live tests against a CARLA 0.9.16 server (or ``avsim serve``): run only when CARLA_HOST is set.

    CARLA_HOST=127.0.0.1 CARLA_PORT=2000 .venv/bin/python -m pytest -q -m carla tests/sim/carla_backend
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sim.api import VehicleControl

pytestmark = pytest.mark.carla

HOST = os.environ.get("CARLA_HOST", "localhost")
PORT = int(os.environ.get("CARLA_PORT", "2000"))
TOWN = os.environ.get("CARLA_TOWN", "Town01")


@pytest.fixture()
def world():
    from sim.carla_backend.world import CarlaWorld

    with CarlaWorld(map=TOWN, host=HOST, port=PORT, timeout_s=20.0) as carla_world:
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


def test_autopilot_traffic_and_walkers(world):
    npcs = world.spawn_traffic(10)
    walkers = world.spawn_walkers(5)
    assert len(npcs) >= 5 and len(walkers) >= 1
    first = world.tick()
    for _ in range(60):
        snapshot = world.tick()
    rows = [snapshot.index_of(a) for a in npcs]
    assert snapshot.autopilot[rows].all()
    moved = np.hypot(*(snapshot.location_m[rows, :2] - first.location_m[[first.index_of(a) for a in npcs], :2]).T)
    assert (moved > 1.0).sum() >= len(npcs) // 2


def test_sensor_suite_returns_each_frames_data(world):
    from sim.carla_backend.sensors import CarlaSensorRig
    from sim.embedded.sensors.suite import load_suite

    world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
    rig = CarlaSensorRig(world, load_suite("configs/sensors/default.yaml"))
    try:
        for _ in range(5):
            snapshot = world.tick()
            data = rig.measure(snapshot)
            for name, measurement in data.items():
                if not isinstance(measurement, list):
                    assert measurement.frame == snapshot.frame, name
    finally:
        rig.close()


def test_cleanup_leaves_no_actors_and_restores_settings():
    import carla

    from sim.carla_backend.world import CarlaWorld

    client = carla.Client(HOST, PORT)
    client.set_timeout(20.0)
    before_settings = client.get_world().get_settings()
    with CarlaWorld(map=TOWN, host=HOST, port=PORT) as world:
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, role_name="hero")
        world.spawn_traffic(5)
        world.tick()
        mine = set(world._owned)
    after = client.get_world()
    assert not mine & {a.id for a in after.get_actors()}
    settings = after.get_settings()
    assert settings.synchronous_mode == before_settings.synchronous_mode
    assert settings.fixed_delta_seconds == before_settings.fixed_delta_seconds


def test_check_env_with_carla_backend():
    from gymnasium.utils.env_checker import check_env

    from sim.env.driving import DrivingEnv

    env = DrivingEnv(backend="carla", map=TOWN, carla={"host": HOST, "port": PORT}, traffic={"vehicles": 5,
                     "walkers": 0}, observation={"mode": "bev"})
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()
