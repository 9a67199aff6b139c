"""CarlaWorld's logic against an in-process stand-in for the CARLA client (tests/sim/carla_backend/fake_carla.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.api import CollisionEvent, Pose, TrafficLightState, VehicleControl
from sim.carla_backend.world import CarlaConnectionError, CarlaWorld
from sim.api import SpawnError

sys.path.insert(0, str(Path(__file__).parent))
from fake_carla import FakeClient, SpawnOnAutopilot  # noqa: E402


@pytest.fixture()
def client(monkeypatch):
    monkeypatch.setattr(CarlaWorld, "_spawn_on_autopilot", lambda self, bp, transform: SpawnOnAutopilot(bp, transform))
    return FakeClient("Town01")


def test_connects_sets_synchronous_mode_and_restores_it(client):
    with CarlaWorld(map="Town01", client=client, dt_s=0.05) as world:
        settings = client.world.get_settings()
        assert settings.synchronous_mode and settings.fixed_delta_seconds == pytest.approx(0.05)
        assert client.tm.synchronous and world.source.name == "Town01"
        assert world.signals.num_lights == len(client.world.lights)
    assert not client.world.settings.synchronous_mode and not client.tm.synchronous


def test_unreachable_server_is_named():
    with pytest.raises(CarlaConnectionError, match="localhost:2000"):
        CarlaWorld(client=FakeClient(reachable=False))


def test_spawn_control_and_snapshot_in_project_units(client):
    with CarlaWorld(map="Town01", client=client) as world:
        point = world.spawn_points[3]
        ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", point, role_name="hero")
        assert world.actors[ego].role_name == "hero"
        world.apply_control(ego, VehicleControl(throttle=1.0))
        for _ in range(40):
            snapshot = world.tick()
        row = snapshot.index_of(ego)
        embedded = client.world.embedded.snapshot()
        erow = embedded.index_of(ego)
        np.testing.assert_allclose(snapshot.location_m[row, :2], embedded.location_m[erow, :2], atol=1e-5)
        assert snapshot.rotation_rad[row, 1] == pytest.approx(embedded.rotation_rad[erow, 1], abs=1e-5)
        assert snapshot.speed_mps()[row] > 3.0 and not snapshot.autopilot[row]
        assert snapshot.semantic_tag[row] == 14 and snapshot.kind[row] == 0
        with pytest.raises(ValueError, match="no blueprint"):
            world.spawn_vehicle("vehicle.nope")
        with pytest.raises(SpawnError, match="occupied"):
            world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(*snapshot.location_m[row, :2], 0.3,
                                                                 snapshot.rotation_rad[row, 1]))


def test_traffic_batch_walkers_lights_and_cleanup(client):
    with CarlaWorld(map="Town01", client=client) as world:
        npcs = world.spawn_traffic(8)
        walkers = world.spawn_walkers(3)
        assert len(npcs) == 8 and len(walkers) == 3
        snapshot = world.tick()
        assert snapshot.autopilot[[snapshot.index_of(a) for a in npcs]].all()
        np.testing.assert_array_equal(snapshot.light_state, client.world.embedded.light_state)
        world.lights.force_state(0, TrafficLightState.GREEN)
        assert world.tick().light_state[0] == TrafficLightState.GREEN
        owned = list(world.owned_actor_ids)
    assert owned and not set(owned) & set(client.world.embedded.actors)  # every actor it spawned is gone


def test_collision_sensor_events_reach_the_snapshot(client):
    with CarlaWorld(map="Town01", client=client) as world:
        point = world.spawn_points[5].pose
        ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", point, role_name="hero")
        ahead = Pose(point.x_m + 9.0 * math.cos(point.yaw_rad), point.y_m + 9.0 * math.sin(point.yaw_rad), 0.3,
                     point.yaw_rad)
        parked = world.spawn_vehicle("vehicle.lincoln.mkz_2020", ahead)
        world.apply_control(ego, VehicleControl(throttle=1.0))
        events = []
        for _ in range(80):
            events += world.tick().events
        hits = [e for e in events if isinstance(e, CollisionEvent) and e.actor_id == ego]
        assert hits and hits[0].other_id == parked and hits[0].other_kind == "vehicle"


def test_env_runs_on_the_carla_backend(client, monkeypatch):
    """avsim/Driving-v0 with backend: carla passes the checkers and scores routes (through the stand-in)."""
    import sim.carla_backend.world as carla_world_module
    from gymnasium.utils.env_checker import check_env

    from sim.env.driving import DrivingEnv

    original = carla_world_module.CarlaWorld.__init__

    def with_fake(self, *args, **kwargs):
        original(self, *args, client=client, **kwargs)

    monkeypatch.setattr(carla_world_module.CarlaWorld, "__init__", with_fake)
    env = DrivingEnv(backend="carla", map="Town01", traffic={"vehicles": 4, "walkers": 2})
    try:
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and info["route_length_m"] > 100
        for _ in range(20):
            obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0]))
        assert np.isfinite(reward) and "route_completion" in info
    finally:
        env.close()
    assert not client.world.settings.synchronous_mode
