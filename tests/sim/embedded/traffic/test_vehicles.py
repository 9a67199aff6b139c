"""NPC traffic rules: queues at red lights, junction yielding, no NPC-NPC collisions, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import CollisionEvent, Pose, TrafficLightState
from sim.maps.lanes import SpawnPoint
from sim.embedded.world import EmbeddedWorld


def _point(world: EmbeddedWorld, lane: int, s_m: float) -> SpawnPoint:
    xyz, yaw = world.lanes.interpolate(np.array([lane]), np.array([s_m]))
    return SpawnPoint(lane, s_m, Pose(float(xyz[0, 0]), float(xyz[0, 1]), float(xyz[0, 2]), float(yaw[0])))


def _long_signalled_lane(world: EmbeddedWorld) -> int:
    lanes, signals = world.lanes, world.signals
    candidates = [k for k in range(lanes.num_lanes) if signals.lane_light[k] >= 0 and lanes.length_m[k] > 60]
    return max(candidates, key=lambda k: lanes.length_m[k])


def test_queue_stops_at_red_and_leaves_on_green():
    world = EmbeddedWorld(map="Town01", seed=3)
    lane = _long_signalled_lane(world)
    light = int(world.signals.lane_light[lane])
    world.lights.force_state(light, TrafficLightState.RED)
    length = world.lanes.length_m[lane]
    ids = [world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, lane, s), autopilot=True, speed_mps=5.0)
           for s in (length - 45, length - 30, length - 15)]
    for _ in range(int(30 / world.dt_s)):
        snap = world.tick()
    rows = [world.traffic.row_of(a) for a in ids]
    assert all(world.traffic.lane[r] == lane for r in rows), "a vehicle ran the red light"
    assert all(world.traffic.speed_mps[r] < 0.05 for r in rows)
    s = world.traffic.s_m[rows]
    assert s[2] < length and s[2] > length - 8, "the first vehicle waits close to the stop line"
    assert s[0] < s[1] < s[2]
    gaps = np.diff(s) - 2 * world.traffic.half_length_m[rows][1:]
    assert (gaps > 1.0).all() and (gaps < 4.0).all(), "queued with IDM's standstill gap"
    assert not [e for e in snap.events if isinstance(e, CollisionEvent)]
    world.lights.force_state(light, TrafficLightState.GREEN)
    for _ in range(int(30 / world.dt_s)):
        world.tick()
    assert all(world.traffic.lane[world.traffic.row_of(a)] != lane for a in ids), "queue did not leave on green"


def test_yellow_light_stops_vehicles_that_can_stop():
    world = EmbeddedWorld(map="Town01", seed=4)
    lane = _long_signalled_lane(world)
    light = int(world.signals.lane_light[lane])
    world.lights.force_state(light, TrafficLightState.YELLOW)
    length = world.lanes.length_m[lane]
    car = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, lane, length - 50), autopilot=True,
                              speed_mps=5.0)
    for _ in range(int(20 / world.dt_s)):
        world.tick()
    assert world.traffic.lane[world.traffic.row_of(car)] == lane


@pytest.mark.parametrize("town, vehicles, minutes", [
    ("Town01", 100, 1),
    pytest.param("Town01", 100, 5, marks=pytest.mark.slow),
    pytest.param("Town10HD", 80, 5, marks=pytest.mark.slow),
])
def test_no_npc_collisions_in_dense_traffic(town, vehicles, minutes):
    world = EmbeddedWorld(map=town, seed=11)
    world.spawn_traffic(vehicles)
    start = world.traffic.location_xyz.copy()
    collisions = 0
    for _ in range(int(60 * minutes / world.dt_s)):
        snap = world.tick()
        collisions += sum(isinstance(e, CollisionEvent) and e.other_kind == "vehicle" for e in snap.events)
    assert collisions == 0
    moved = np.linalg.norm(world.traffic.location_xyz - start, axis=1)
    assert np.median(moved) > 4.0 * minutes, "traffic must flow, not stand"


def test_same_seed_same_traffic():
    def run(seed):
        world = EmbeddedWorld(map="Town02", seed=seed)
        world.spawn_traffic(30)
        world.spawn_walkers(10)
        for _ in range(400):
            snap = world.tick()
        return snap

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a.actor_id, b.actor_id)
    np.testing.assert_array_equal(a.location_m, b.location_m)
    np.testing.assert_array_equal(a.velocity_mps, b.velocity_mps)
    np.testing.assert_array_equal(a.light_state, b.light_state)
    assert not np.array_equal(a.location_m, c.location_m)


def test_routed_vehicle_takes_the_given_lanes():
    world = EmbeddedWorld(map="Town01", seed=0)
    lanes = world.lanes
    start = next(k for k in range(lanes.num_lanes) if not lanes.is_junction[k] and lanes.length_m[k] > 30)
    goal_route = lanes.shortest_route(start, int(np.flatnonzero(~lanes.is_junction)[-1]))
    car = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, start, 5.0), autopilot=True)
    world.route_vehicle(car, goal_route)
    visited = [start]
    for _ in range(int(240 / world.dt_s)):
        world.tick()
        lane = int(world.traffic.lane[world.traffic.row_of(car)])
        if lane != visited[-1]:
            visited.append(lane)
        if lane == goal_route[-1]:
            break
    assert visited == goal_route[: len(visited)]
    assert visited[-1] == goal_route[-1]


def test_npcs_brake_for_a_stopped_ego_ahead():
    world = EmbeddedWorld(map="Town01", seed=0)
    lane = _long_signalled_lane(world)
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, lane, 40.0), role_name="hero")
    npc = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, lane, 5.0), autopilot=True, speed_mps=8.0)
    for _ in range(int(15 / world.dt_s)):
        snap = world.tick()
        assert not [e for e in snap.events if isinstance(e, CollisionEvent)]
    row = world.traffic.row_of(npc)
    assert world.traffic.speed_mps[row] < 0.05
    gap = snap.location_m[snap.index_of(ego), :2] - world.traffic.location_xyz[row, :2]
    assert 5.0 < np.hypot(*gap) < 10.0


@pytest.mark.parametrize("town, minutes", [
    ("Town10HD", 1),
    pytest.param("Town01", 5, marks=pytest.mark.slow),
    pytest.param("Town10HD", 5, marks=pytest.mark.slow),
])
def test_no_collisions_at_all_with_pedestrians(town, minutes):
    world = EmbeddedWorld(map=town, seed=21)
    world.spawn_traffic(50)
    world.spawn_walkers(40)
    crossed = set()
    collisions = []
    for _ in range(int(60 * minutes / world.dt_s)):
        snap = world.tick()
        collisions += [e for e in snap.events if isinstance(e, CollisionEvent)]
        crossed |= set(world.walkers.actor_id[world.walkers.on_road].tolist())
    assert collisions == []
    assert len(crossed) >= minutes, "pedestrians must actually cross roads during the run"


def test_npcs_wait_for_a_pedestrian_on_their_crossing():
    world = EmbeddedWorld(map="Town01", seed=2)
    world.spawn_walkers(1)
    crossed, where = world.crossing_obstacles
    lanes = world.lanes
    edge, col = next((int(e), int(c)) for e, c in zip(*np.nonzero(crossed >= 0))
                     if not lanes.is_junction[crossed[e, c]] and where[e, c] > 40.0)
    lane, s_cross = int(crossed[edge, col]), float(where[edge, col])
    car = world.spawn_vehicle("vehicle.lincoln.mkz_2020", _point(world, lane, s_cross - 35.0), autopilot=True,
                              speed_mps=6.0)
    # Hold the pedestrian in the middle of that crossing.
    world.walkers.edge[:] = edge
    world.walkers.on_road[:] = True
    from sim.embedded.traffic.vehicles import Obstacles
    for _ in range(int(15 / world.dt_s)):
        world.traffic.step(world.dt_s, world.light_state,
                           Obstacles(*(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0),
                                       np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2)), np.zeros((0, 2))),
                                     np.array([lane]), np.array([s_cross])))
    row = world.traffic.row_of(car)
    assert world.traffic.lane[row] == lane
    assert world.traffic.speed_mps[row] < 0.05
    front = world.traffic.s_m[row] + world.traffic.half_length_m[row]
    assert s_cross - 6.0 < front < s_cross


def test_mobil_lane_changes_happen_without_collisions(tmp_path):
    from sim.config import TrafficConfig, WorldConfig
    from sim.maps.procedural import ProceduralTownConfig, write_town

    path = write_town(ProceduralTownConfig(seed=1, grid_rows=2, grid_cols=3, lanes_per_direction=2,
                                           block_length_m=120), tmp_path / "two_lanes.xodr")
    world = EmbeddedWorld(WorldConfig(map=str(path), seed=5, traffic=TrafficConfig(lane_changes=True)))
    world.spawn_traffic(40)
    collisions = 0
    for _ in range(int(180 / world.dt_s)):
        snap = world.tick()
        collisions += sum(isinstance(e, CollisionEvent) for e in snap.events)
    assert collisions == 0
    assert world.traffic.lane_changes_done >= 20
    assert (world.traffic.lateral_offset_m == 0).mean() > 0.7  # transitions finish


def test_lane_changes_off_by_default():
    world = EmbeddedWorld(map="Town10HD", seed=5)
    world.spawn_traffic(30)
    for _ in range(400):
        world.tick()
    assert getattr(world.traffic, "lane_changes_done", 0) == 0
    assert (world.traffic.lateral_offset_m == 0).all()
