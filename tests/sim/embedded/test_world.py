"""The embedded world: spawning, control, autopilot hand-over, events, snapshots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.api import (ActorKind, CollisionEvent, LaneInvasionEvent, OffRoadEvent, Pose, RedLightEvent,
                     TrafficLightState, VehicleControl, WorldSnapshot)
from sim.config import ConfigError, WorldConfig, load_yaml_config
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld
from sim.rules.traffic import project_to_lanes
from tests.lane_picks import straight_lane as _straight_lane


@pytest.fixture()
def world():
    return EmbeddedWorld(map="Town01", seed=0)


def _pose_on(world, lane, s_m, lateral_m=0.0):
    xyz, yaw = world.lanes.interpolate(np.array([lane]), np.array([s_m]))
    y = float(yaw[0])
    return Pose(float(xyz[0, 0]) - math.sin(y) * lateral_m, float(xyz[0, 1]) + math.cos(y) * lateral_m, 0.0, y)


def test_snapshot_layout(world):
    world.spawn_traffic(5)
    world.spawn_walkers(3)
    snap = world.tick()
    assert isinstance(snap, WorldSnapshot) and snap.frame == 1 and snap.timestamp_s == pytest.approx(0.05)
    assert snap.num_actors == 8
    assert (snap.kind == ActorKind.WALKER).sum() == 3
    assert set(snap.semantic_tag[snap.kind == ActorKind.WALKER].tolist()) == {12}
    for name in ("location_m", "rotation_rad", "velocity_mps", "acceleration_mps2", "extent_m"):
        assert getattr(snap, name).shape == (8, 3)
    assert not snap.location_m.flags.writeable
    assert snap.light_state.shape == snap.light_id.shape and snap.light_id.size == 36
    assert (np.abs(snap.rotation_rad[:, 1]) <= math.pi + 1e-9).all()


def test_free_vehicle_follows_control_and_autopilot_handover(world):
    lane = _straight_lane(world)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 10.0), role_name="hero")
    world.apply_control(ego, VehicleControl(throttle=1.0))
    for _ in range(40):
        snap = world.tick()
    speed = snap.speed_mps()[snap.index_of(ego)]
    assert speed > 3.0
    assert not snap.autopilot[snap.index_of(ego)]
    world.set_autopilot(ego, True)
    snap = world.tick()
    assert snap.autopilot[snap.index_of(ego)]
    assert snap.speed_mps()[snap.index_of(ego)] == pytest.approx(speed, abs=1.0)
    world.set_autopilot(ego, False)
    assert not world.is_autopilot(ego)


def test_bad_inputs_give_clear_errors(world):
    with pytest.raises(ValueError, match="unknown vehicle type 'vehicle.nope'"):
        world.spawn_vehicle("vehicle.nope")
    with pytest.raises(ValueError, match="throttle must be finite"):
        VehicleControl(throttle=float("nan"))
    with pytest.raises(KeyError, match="unknown actor ids: \\[999\\]"):
        world.destroy([999])
    with pytest.raises(SpawnError, match="not on a driving lane"):
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(5000.0, 5000.0), autopilot=True)
    with pytest.raises(ValueError):
        WorldConfig(dt_s=0)
    with pytest.raises(ValueError, match="extra"):
        WorldConfig.model_validate({"mapp": "Town01"})


def test_occupied_spawn_refused_and_nothing_changed(world):
    point = world.spawn_points[0]
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", point)
    before = set(world.actors)
    with pytest.raises(SpawnError, match="occupied"):
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", point)
    assert set(world.actors) == before


def test_out_of_range_control_is_clamped():
    control = VehicleControl(throttle=3.0, steer=-2.0, brake=-1.0)
    assert (control.throttle, control.steer, control.brake) == (1.0, -1.0, 0.0)


def test_destroy_keeps_others(world):
    ids = world.spawn_traffic(6)
    walkers = world.spawn_walkers(3)
    world.tick()
    world.destroy([ids[2], walkers[0]])
    snap = world.tick()
    assert set(snap.actor_id.tolist()) == set(ids + walkers) - {ids[2], walkers[0]}


def test_collision_between_free_vehicles_reports_both_with_impulse(world):
    lane = _straight_lane(world)
    a = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 10.0), speed_mps=10.0)
    b = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 30.0))
    world.apply_control(b, VehicleControl(brake=1.0))
    hits = []
    for _ in range(60):
        hits += [e for e in world.tick().events if isinstance(e, CollisionEvent)]
        if hits:
            break
    assert {e.actor_id for e in hits} == {a, b}
    first = next(e for e in hits if e.actor_id == a)
    assert first.other_id == b and first.other_kind == "vehicle"
    assert np.hypot(*first.impulse_ns[:2]) > 1000.0  # ~ reduced mass 900 kg x closing speed ~10 m/s


def test_static_layout_collision_and_off_road(world):
    lane = _straight_lane(world)
    pose = _pose_on(world, lane, 20.0)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", pose)
    # Full throttle, full right steer: leaves the road into the kerb/buildings.
    world.apply_control(ego, VehicleControl(throttle=1.0, steer=1.0))
    events = []
    for _ in range(200):
        events += world.tick().events
    kinds = {type(e) for e in events}
    assert OffRoadEvent in kinds
    static = [e for e in events if isinstance(e, CollisionEvent) and e.other_kind == "static"]
    assert static and static[0].other_id == -1


def test_lane_invasion_names_the_marking(world):
    lane = _straight_lane(world)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 10.0), speed_mps=6.0)
    world.apply_control(ego, VehicleControl(throttle=0.3, steer=-0.08))
    invasions = []
    for _ in range(60):
        invasions += [e for e in world.tick().events if isinstance(e, LaneInvasionEvent)]
    assert invasions, "steering left across the centre line must raise a lane invasion"
    assert invasions[0].marking_types and all(isinstance(m, str) for m in invasions[0].marking_types)


def test_red_light_run_is_reported(world):
    lanes, signals = world.lanes, world.signals
    lane = max((k for k in range(lanes.num_lanes) if signals.lane_light[k] >= 0), key=lambda k: lanes.length_m[k])
    world.lights.force_state(int(signals.lane_light[lane]), TrafficLightState.RED)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, lanes.length_m[lane] - 15.0),
                              speed_mps=6.0)
    world.apply_control(ego, VehicleControl(throttle=0.4))
    red = []
    for _ in range(80):
        red += [e for e in world.tick().events if isinstance(e, RedLightEvent)]
    assert len(red) == 1 and red[0].actor_id == ego
    assert red[0].light_id == int(signals.light_id[signals.lane_light[lane]])


def test_world_protocol_and_context_manager():
    from sim.api import World

    with EmbeddedWorld(WorldConfig(map="Town02", seed=1)) as world:
        assert isinstance(world, World)
        ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0])
        walker = world.spawn_walker_at(world.spawn_points[5].pose)
        world.apply_control(ego, VehicleControl(throttle=0.5))
        snap = world.tick()
        assert {ego, walker} <= set(snap.actor_id.tolist())
        world.destroy([walker])
        assert walker not in world.tick().actor_id
    with pytest.raises(RuntimeError, match="closed"):
        world.tick()


def test_yaml_config_errors_name_file_and_key(tmp_path):
    good = load_yaml_config("configs/world/default.yaml", WorldConfig)
    assert good.map == "Town10HD"
    bad = tmp_path / "bad.yaml"
    bad.write_text("map: Town01\nsed: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml.*sed"):
        load_yaml_config(bad, WorldConfig)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_config(tmp_path / "missing.yaml", WorldConfig)


@pytest.mark.parametrize("stop_first", [False, True])
def test_stop_sign_run_only_without_stopping(stop_first):
    from sim.api import StopSignEvent

    world = EmbeddedWorld(map="Town10HD", seed=0)
    lanes, signals = world.lanes, world.signals
    lane = int(np.flatnonzero(signals.lane_stop >= 0)[0])
    start = lanes.length_m[lane] - (5.0 if stop_first else 12.0)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, start),
                              speed_mps=0.0 if stop_first else 6.0)
    events = []
    for i in range(160):
        world.apply_control(ego, VehicleControl(brake=1.0) if stop_first and i < 20 else VehicleControl(throttle=0.35))
        events += [e for e in world.tick().events if isinstance(e, StopSignEvent)]
    snap = world.snapshot()
    row = snap.index_of(ego)
    now_lane, _ = project_to_lanes(lanes, snap.location_m[row:row + 1, :2], snap.rotation_rad[row:row + 1, 1])
    assert int(now_lane[0]) != lane, "the vehicle must have left the stop lane"
    if stop_first:
        assert events == []
    else:
        assert len(events) >= 1 and events[0].actor_id == ego
        assert events[0].stop_id == int(signals.stop_id[signals.lane_stop[lane]])


def test_walker_spawned_at_a_pose_lands_on_the_network(world):
    point = world.spawn_points[3].pose
    walker = world.spawn_walker_at(Pose(point.x_m + 6.0, point.y_m))
    snap = world.tick()
    row = snap.index_of(walker)
    assert snap.kind[row] == ActorKind.WALKER and snap.semantic_tag[row] == 12
    distance = np.hypot(snap.location_m[row, 0] - point.x_m - 6.0, snap.location_m[row, 1] - point.y_m)
    assert distance < 12.0
    with pytest.raises(ValueError, match="Pose.x_m must be a finite number"):
        world.spawn_walker_at(Pose(float("nan"), 0.0))


def test_procedural_map_by_config_is_deterministic():
    from sim.maps.procedural import ProceduralTownConfig

    config = WorldConfig(map="procedural", seed=1, procedural=ProceduralTownConfig(seed=4, grid_rows=2, grid_cols=2))
    a, b = EmbeddedWorld(config), EmbeddedWorld(config)
    assert a.source.xodr_text == b.source.xodr_text and a.source.name == "procedural_2x2_seed4"
    for world in (a, b):
        world.spawn_traffic(8)
        world.spawn_walkers(4)
        for _ in range(200):
            snap = world.tick()
        world.final = snap
    np.testing.assert_array_equal(a.final.location_m, b.final.location_m)
    assert not [e for e in a.final.events if isinstance(e, CollisionEvent)]


def test_gridlock_relief_moves_stuck_npcs_but_never_the_hero():
    config = WorldConfig(map="Town01", seed=3, traffic={"stuck_timeout_s": 5.0})
    world = EmbeddedWorld(config)
    lane = _straight_lane(world)
    hero = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 30.0), autopilot=True,
                               role_name="hero")
    npc = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 15.0), autopilot=True)
    blocker = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _pose_on(world, lane, 45.0))  # parked, free
    world.apply_control(blocker, VehicleControl(brake=1.0))
    for _ in range(int(15 / world.dt_s)):
        snap = world.tick()
    assert world.relocations >= 1
    npc_xy = snap.location_m[snap.index_of(npc), :2]
    hero_xy = snap.location_m[snap.index_of(hero), :2]
    assert np.hypot(*(npc_xy - hero_xy)) > 30.0, "the stuck NPC was moved away"
    assert world.traffic.stuck_s[world.traffic.row_of(hero)] > 5.0, "the hero stays, stuck or not"


def test_reset_with_a_seed_replays_a_new_world_built_with_it():
    """reset(seed) drops every actor and gives exactly the ticks a fresh world with that seed gives."""
    def drive(world: EmbeddedWorld) -> np.ndarray:
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
        world.spawn_traffic(10)
        world.spawn_walkers(5)
        for _ in range(40):
            snap = world.tick()
        return np.concatenate([snap.location_m.ravel(), snap.light_state.astype(float)])

    reused = EmbeddedWorld(map="Town01", seed=3)
    drive(reused)
    reused.reset(seed=7)
    assert reused.snapshot().num_actors == 0 and reused.frame == 0
    replay = drive(reused)
    fresh = drive(EmbeddedWorld(map="Town01", seed=7))
    np.testing.assert_array_equal(replay, fresh)


def test_walker_control_walks_straight_at_the_given_speed():
    world = EmbeddedWorld(map="Town01", seed=0)
    walker = world.spawn_walkers(1)[0]
    start = world.tick().location_m[0].copy()
    world.apply_walker_control(walker, (0.0, 2.0), 1.5)  # +y, normalised
    for _ in range(20):
        snap = world.tick()
    row = snap.index_of(walker)
    np.testing.assert_allclose(snap.location_m[row, :2], start[:2] + [0.0, 1.5 * 20 * world.dt_s], atol=1e-9)
    np.testing.assert_allclose(snap.velocity_mps[row, :2], [0.0, 1.5])
    assert snap.rotation_rad[row, 1] == pytest.approx(math.pi / 2)
    with pytest.raises(ValueError, match="not a walker"):
        world.apply_walker_control(12345, (1.0, 0.0), 1.0)
    with pytest.raises(ValueError, match="finite"):
        world.apply_walker_control(walker, (float("nan"), 0.0), 1.0)


def test_teleporting_a_walker_sets_its_state_and_it_walks_on_along_its_heading():
    """CARLA's ApplyWalkerState: box centre, heading and speed; the walker then leaves the pedestrian network."""
    world = EmbeddedWorld(map="Town01", seed=0)
    walker = world.spawn_walkers(1)[0]
    world.tick()
    world.teleport(walker, Pose(100.0, 50.0, 0.9, math.pi), 1.2)
    snap = world.tick()
    row = snap.index_of(walker)
    np.testing.assert_allclose(snap.location_m[row], [100.0 - 1.2 * world.dt_s, 50.0, 0.9])
    np.testing.assert_allclose(snap.velocity_mps[row, :2], [-1.2, 0.0], atol=1e-12)
    assert snap.rotation_rad[row, 1] == pytest.approx(math.pi)
    for _ in range(9):
        snap = world.tick()
    np.testing.assert_allclose(snap.location_m[snap.index_of(walker)], [100.0 - 1.2 * 10 * world.dt_s, 50.0, 0.9])
    with pytest.raises(ValueError, match="finite"):
        world.teleport(walker, Pose(float("nan"), 50.0, 0.9), 1.0)
    with pytest.raises(ValueError, match="not a free"):
        world.teleport(12345, Pose(0.0, 0.0), 1.0)
