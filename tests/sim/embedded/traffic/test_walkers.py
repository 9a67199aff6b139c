"""Tests of the walker network and the vectorised pedestrians on CARLA towns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from sim.api import TrafficLightState
from sim.maps.lanes import LaneGraph, build_lane_graph
from sim.maps.loader import load_carla_map, resolve_map
from sim.embedded.traffic.lights import TrafficLights
from sim.maps.signals import SignalLayout, build_signal_layout
from sim.embedded.traffic.walker_graph import EdgeKind, WalkerNetwork, build_walker_network
from sim.embedded.traffic.walkers import WalkerParams, Walkers

DT_S = 0.05
TOWNS = ["Town01", "Town10HD"]


@dataclass
class Town:
    carla_map: object
    lanes: LaneGraph
    signals: SignalLayout
    network: WalkerNetwork


_CACHE: dict[str, Town] = {}


def _town(name: str) -> Town:
    if name not in _CACHE:
        source = resolve_map(name)
        carla_map = load_carla_map(source)
        lanes = build_lane_graph(carla_map, source.xodr_text)
        signals = build_signal_layout(carla_map, lanes)
        _CACHE[name] = Town(carla_map, lanes, signals, build_walker_network(carla_map, lanes, signals))
    return _CACHE[name]


@pytest.fixture(params=TOWNS)
def town(request) -> Town:
    return _town(request.param)


def _lane_clearance(lanes: LaneGraph, xy: np.ndarray) -> np.ndarray:
    """Distance [m] from each point to the nearest driving-lane centre sample, minus half that lane's width."""
    dist, rows = lanes.kdtree.query(xy)
    return dist - lanes.width_m[rows] / 2


# --------------------------------------------------------------------------- network


def test_network_has_every_edge_kind_and_one_main_component(town: Town) -> None:
    net = town.network
    kinds = np.bincount(net.edge_kind, minlength=4)
    assert kinds[EdgeKind.SIDEWALK] >= 20
    assert kinds[EdgeKind.CORNER] >= 4
    assert kinds[EdgeKind.CROSSWALK] >= 10
    assert kinds[EdgeKind.JAYWALK] >= 2
    assert net.node_in_main.mean() > 0.9
    assert np.array_equal(net.main_nodes, np.flatnonzero(net.node_in_main))
    # every main node reaches every other one without jaywalking
    main = net.main_nodes
    assert np.isfinite(net.distance_m[np.ix_(main, main)]).all()


def test_edges_are_consistent_polylines(town: Town) -> None:
    net = town.network
    first = net.points_xyz[net.edge_offset, :2]
    last = net.points_xyz[net.edge_offset + net.edge_count - 1, :2]
    np.testing.assert_allclose(first, net.node_xy[net.edge_nodes[:, 0]], atol=1e-6)
    np.testing.assert_allclose(last, net.node_xy[net.edge_nodes[:, 1]], atol=1e-6)
    assert np.all(net.edge_nodes[:, 0] != net.edge_nodes[:, 1])
    for e in range(net.num_edges):
        points = net.edge_points(e)
        arc = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1).sum()
        assert arc == pytest.approx(net.edge_length_m[e], rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(net.point_tangent_xy, axis=1), 1.0, atol=1e-6)
    # interpolate lands on the polyline at the given arc length
    edge = np.arange(net.num_edges)
    xyz, _ = net.interpolate(edge, net.edge_length_m)
    np.testing.assert_allclose(xyz[:, :2], last, atol=1e-6)


def test_next_hop_follows_shortest_paths(town: Town) -> None:
    net = town.network
    rng = np.random.default_rng(3)
    for a, b in rng.choice(net.main_nodes, size=(40, 2)):
        if a == b:
            assert net.next_hop[a, b] == -1
            continue
        node, walked = int(a), 0.0
        for _ in range(net.num_nodes):
            hop = int(net.next_hop[node, b])
            edge = int(net.edge_between[node, hop])
            assert edge >= 0 and net.edge_kind[edge] != EdgeKind.JAYWALK
            assert set(net.edge_nodes[edge]) == {node, hop}
            walked += net.edge_length_m[edge]
            node = hop
            if node == b:
                break
        assert node == b
        assert walked == pytest.approx(float(net.distance_m[a, b]), rel=1e-4)


def test_sidewalks_and_corners_stay_off_the_road(town: Town) -> None:
    net = town.network
    edge_of_point = np.repeat(np.arange(net.num_edges), net.edge_count)
    kind = net.edge_kind[edge_of_point]
    clearance = _lane_clearance(town.lanes, net.points_xyz[:, :2])
    assert clearance[kind == EdgeKind.SIDEWALK].min() > 0.5
    assert clearance[kind == EdgeKind.CORNER].min() > 0.3
    # crossings do cross the road
    assert clearance[kind == EdgeKind.CROSSWALK].min() < 0.0


def test_crossings_record_the_lanes_they_cut(town: Town) -> None:
    net, lanes = town.network, town.lanes
    crossings = np.flatnonzero(net.edge_kind >= EdgeKind.CROSSWALK)
    signalled = 0
    for e in crossings:
        crossed = net.edge_crossed_lanes[e][net.edge_crossed_lanes[e] >= 0]
        signal = net.edge_signal_lanes[e][net.edge_signal_lanes[e] >= 0]
        assert crossed.size > 0
        assert set(signal) <= set(crossed)
        a, b = net.node_xy[net.edge_nodes[e]]
        for lane in signal:
            # the lanes whose lights govern a crosswalk end right before it
            end = lanes.lane_points(int(lane))[-1, :2]
            along = b - a
            t = np.clip(np.dot(end - a, along) / np.dot(along, along), 0.0, 1.0)
            assert np.linalg.norm(a + t * along - end) < 5.0
        signalled += int((town.signals.lane_light[signal] >= 0).any())
        if net.edge_kind[e] == EdgeKind.JAYWALK:
            assert signal.size == 0
    assert signalled >= 10


def test_map_without_sidewalks_is_rejected(town: Town) -> None:
    class NoTopology:
        def get_topology(self):
            return []

    with pytest.raises(ValueError, match="Sidewalk"):
        build_walker_network(NoTopology(), town.lanes, town.signals)
    wrong = dataclasses.replace(town.signals, lane_light=town.signals.lane_light[:-1])
    with pytest.raises(ValueError, match="same map"):
        build_walker_network(town.carla_map, town.lanes, wrong)


# --------------------------------------------------------------------------- walkers


def _walkers(town: Town, seed: int = 0, **params) -> Walkers:
    return Walkers(town.network, WalkerParams(**params), np.random.default_rng(seed))


def test_spawned_walkers_stand_on_sidewalks(town: Town) -> None:
    walkers = _walkers(town)
    walkers.spawn_random(60, np.arange(1000, 1060))
    assert walkers.count == 60
    assert np.all(town.network.edge_kind[walkers.edge] == EdgeKind.SIDEWALK)
    assert np.all(town.network.node_in_main[walkers.destination])
    assert np.all(_lane_clearance(town.lanes, walkers.location_xyz[:, :2]) > 0.5)
    # box centre: ground (the sidewalk height) + half the walker's height
    ground = town.network.points_xyz[cKDTree(town.network.points_xyz[:, :2]).query(walkers.location_xyz[:, :2])[1], 2]
    np.testing.assert_allclose(walkers.location_xyz[:, 2] - ground, 0.9, atol=0.05)
    assert not walkers.on_road.any() and not walkers.waiting.any()
    np.testing.assert_array_equal(walkers.velocity_xyz, 0.0)
    assert np.all((walkers.speed_mps >= 0.9) & (walkers.speed_mps <= 1.6))


def _simulate(town: Town, walkers: Walkers, seconds: float, record=None) -> None:
    lights = TrafficLights(town.signals, rng=np.random.default_rng(0))
    all_lanes = np.arange(town.lanes.num_lanes)
    for tick in range(int(round(seconds / DT_S))):
        lights.update(tick * DT_S)
        walkers.step(DT_S, lights.lane_states(all_lanes), np.zeros((0, 2)), np.zeros((0, 2)))
        if record is not None:
            record(walkers)


def test_walkers_roam_smoothly_within_the_network(town: Town) -> None:
    walkers = _walkers(town, seed=7)
    walkers.spawn_random(30, np.arange(30))
    start = walkers.location_xyz.copy()
    tree = cKDTree(town.network.points_xyz[:, :2])
    state = {"prev": start.copy(), "prev_edge": walkers.edge.copy(), "prev_forward": walkers.forward.copy(),
             "max_ratio": 0.0, "max_off": 0.0,
             "min_align": 1.0, "on_road": 0}
    limit = walkers.speed_mps * DT_S

    def record(w: Walkers) -> None:
        step = np.linalg.norm(w.location_xyz - state["prev"], axis=1)
        state["max_ratio"] = max(state["max_ratio"], float(np.max((step - 0.005) / limit)))
        state["prev"] = w.location_xyz.copy()
        state["max_off"] = max(state["max_off"], float(tree.query(w.location_xyz[:, :2])[0].max()))
        # (a walker turning back at a node moves both ways within one tick: skip edge changes)
        moving = ((np.linalg.norm(w.velocity_xyz[:, :2], axis=1) > 0.3) & (w.edge == state["prev_edge"])
                  & (w.forward == state["prev_forward"]))
        state["prev_edge"], state["prev_forward"] = w.edge.copy(), w.forward.copy()
        heading = np.stack([np.cos(w.yaw_rad), np.sin(w.yaw_rad)], axis=1)
        speed = np.maximum(np.linalg.norm(w.velocity_xyz[:, :2], axis=1), 1e-9)
        align = (heading * w.velocity_xyz[:, :2]).sum(axis=1) / speed
        if moving.any():
            state["min_align"] = min(state["min_align"], float(align[moving].min()))
        state["on_road"] += int(w.on_road.sum())
        assert np.all(w.on_road <= (town.network.edge_kind[w.edge] >= EdgeKind.CROSSWALK))

    _simulate(town, walkers, 120.0, record)
    displacement = np.linalg.norm(walkers.location_xyz - start, axis=1)
    assert displacement.mean() > 20.0
    assert state["max_ratio"] <= 1.25  # no teleporting: at most a little faster than walking speed on bends
    assert state["max_off"] <= 0.5 + 0.6  # lateral jitter + chord/resampling tolerance
    # heading follows the edge direction; the lateral offset fading in near nodes tilts the motion a little
    assert state["min_align"] > 0.85
    assert state["on_road"] > 0  # walkers do cross roads


def _signalled_crosswalk(town: Town) -> int:
    net = town.network
    for e in np.flatnonzero(net.edge_kind == EdgeKind.CROSSWALK):
        signal = net.edge_signal_lanes[e][net.edge_signal_lanes[e] >= 0]
        a, b = net.edge_nodes[e]
        if signal.size and (town.signals.lane_light[signal] >= 0).all() and net.edge_between[a, b] == e:
            return int(e)
    raise AssertionError("no signalled crosswalk")


def _unsignalled_crosswalk(town: Town) -> int:
    net = town.network
    for e in np.flatnonzero(net.edge_kind == EdgeKind.CROSSWALK):
        a, b = net.edge_nodes[e]
        if net.edge_between[a, b] == e:
            return int(e)
    raise AssertionError("no crosswalk")


def _walker_before(town: Town, crossing: int, **params) -> tuple[Walkers, int, int]:
    """One walker on the sidewalk next to ``crossing``'s start, heading for a node just past its far end."""
    net = town.network
    near, far = (int(v) for v in net.edge_nodes[crossing])
    beyond = [int(n) for n in np.flatnonzero(net.edge_between[far] >= 0)
              if n != near and net.edge_kind[net.edge_between[far, n]] < EdgeKind.CROSSWALK]
    walkers = _walkers(town, seed=1, **params)
    walkers.spawn_at(net.node_xy[near], actor_id=5, destination=beyond[0])
    return walkers, near, far


def _states(town: Town, state: TrafficLightState) -> np.ndarray:
    return np.where(town.signals.lane_light >= 0, int(state), -1).astype(np.int8)


def test_careful_walker_waits_for_red_at_signalled_crosswalk(town: Town) -> None:
    crossing = _signalled_crosswalk(town)
    walkers, near, far = _walker_before(town, crossing, careless_share=0.0)
    green, red = _states(town, TrafficLightState.GREEN), _states(town, TrafficLightState.RED)
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, green)
    assert walkers.edge[0] == crossing and walkers.waiting[0] and not walkers.on_road[0]
    np.testing.assert_allclose(walkers.location_xyz[0, :2], town.network.node_xy[near], atol=1e-6)
    np.testing.assert_array_equal(walkers.velocity_xyz[0], 0.0)
    yellow = _states(town, TrafficLightState.YELLOW)
    for _ in range(20):
        walkers.step(DT_S, yellow)
    assert walkers.waiting[0]
    for _ in range(10):
        walkers.step(DT_S, red)
    assert not walkers.waiting[0] and walkers.on_road[0]
    # once on the road it keeps going, whatever the lights do
    before = walkers.progress_m[0]
    for _ in range(20):
        walkers.step(DT_S, green)
    assert walkers.progress_m[0] > before + 0.5 and walkers.on_road[0]
    seconds = town.network.edge_length_m[crossing] / walkers.speed_mps[0] + 1.0
    for _ in range(int(seconds / DT_S)):
        walkers.step(DT_S, green)
        if walkers.edge[0] != crossing:
            break
    # it got across: off the road, at the far kerb
    assert walkers.edge[0] != crossing and not walkers.on_road[0]
    assert np.linalg.norm(walkers.location_xyz[0, :2] - town.network.node_xy[far]) < 0.5


def test_callable_light_states_work_like_arrays(town: Town) -> None:
    crossing = _signalled_crosswalk(town)
    lights = TrafficLights(town.signals)
    for light in range(town.signals.num_lights):
        lights.force_state(light, TrafficLightState.GREEN)
    lights.update(0.0)
    walkers, _near, _far = _walker_before(town, crossing, careless_share=0.0)
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, lights.lane_states)
    assert walkers.waiting[0]
    for light in range(town.signals.num_lights):
        lights.force_state(light, TrafficLightState.RED)
    lights.update(0.0)
    for _ in range(10):
        walkers.step(DT_S, lights.lane_states)
    assert walkers.on_road[0]


def test_careless_walker_crosses_on_green(town: Town) -> None:
    crossing = _signalled_crosswalk(town)
    walkers, _near, _far = _walker_before(town, crossing, careless_share=1.0, jaywalk_probability=0.0)
    green = _states(town, TrafficLightState.GREEN)
    crossed = False
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, green)
        assert not walkers.waiting[0]
        crossed |= bool(walkers.on_road[0] and walkers.edge[0] == crossing)
    assert crossed


def test_unsignalled_crossing_waits_for_approaching_vehicles(town: Town) -> None:
    crossing = _unsignalled_crosswalk(town)
    net = town.network
    walkers, near, far = _walker_before(town, crossing, careless_share=0.0)
    a, b = net.node_xy[near], net.node_xy[far]
    mid = 0.5 * (a + b)
    across = (b - a) / np.linalg.norm(b - a)
    along_road = np.array([-across[1], across[0]])
    car_xy = (mid - 10.0 * along_road)[None]
    approaching = (8.0 * along_road)[None]
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, None, car_xy, approaching)
    assert walkers.edge[0] == crossing and walkers.waiting[0]
    # a stopped car does not hold the walker back
    for _ in range(10):
        walkers.step(DT_S, None, car_xy, np.zeros((1, 2)))
    assert walkers.on_road[0]


def test_car_driving_away_does_not_block(town: Town) -> None:
    crossing = _unsignalled_crosswalk(town)
    net = town.network
    walkers, near, far = _walker_before(town, crossing, careless_share=0.0)
    a, b = net.node_xy[near], net.node_xy[far]
    mid = 0.5 * (a + b)
    across = (b - a) / np.linalg.norm(b - a)
    along_road = np.array([-across[1], across[0]])
    crossed = False
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, None, (mid + 5.0 * along_road)[None], (8.0 * along_road)[None])
        crossed |= bool(walkers.on_road[0])
    assert crossed


def test_only_careless_walkers_jaywalk(town: Town) -> None:
    net = town.network
    seen = {}
    for share in (0.0, 1.0):
        walkers = _walkers(town, seed=11, careless_share=share, jaywalk_probability=1.0)
        walkers.spawn_random(30, np.arange(30))
        count = {"jay": 0}

        def record(w: Walkers) -> None:
            count["jay"] += int((net.edge_kind[w.edge] == EdgeKind.JAYWALK).sum())

        _simulate(town, walkers, 120.0, record)
        seen[share] = count["jay"]
        if share == 1.0:
            assert walkers.careless.all() and not walkers.waiting.any()
    assert seen[0.0] == 0
    assert seen[1.0] > 0


def test_same_seed_same_walk(town: Town) -> None:
    runs = []
    for seed in (4, 4, 5):
        walkers = _walkers(town, seed=seed)
        walkers.spawn_random(20, np.arange(20))
        _simulate(town, walkers, 20.0)
        runs.append(walkers.location_xyz.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_remove_by_id_keeps_the_others(town: Town) -> None:
    walkers = _walkers(town, seed=2)
    walkers.spawn_random(10, np.arange(100, 110))
    _simulate(town, walkers, 5.0)
    before = {name: getattr(walkers, name).copy()
              for name in ("actor_id", "location_xyz", "yaw_rad", "velocity_xyz", "edge", "destination", "careless")}
    walkers.remove([103, 107, 100])
    keep = ~np.isin(before["actor_id"], [100, 103, 107])
    assert walkers.count == 7
    for name, values in before.items():
        np.testing.assert_array_equal(getattr(walkers, name), values[keep])
    _simulate(town, walkers, 5.0)
    assert walkers.location_xyz.shape == (7, 3)
    assert np.all(np.isfinite(walkers.location_xyz))
    with pytest.raises(ValueError, match="999"):
        walkers.remove([101, 999])
    walkers.remove(walkers.actor_id.copy())
    assert walkers.count == 0
    walkers.step(DT_S)  # no walkers: nothing to do


def test_spawn_at_and_set_destination(town: Town) -> None:
    net = town.network
    walkers = _walkers(town)
    target = net.node_xy[net.main_nodes[0]] + [0.3, -0.2]
    walkers.spawn_at(target, actor_id=42)
    assert walkers.actor_id.tolist() == [42]
    assert np.linalg.norm(walkers.location_xyz[0, :2] - target) < 3.0
    goal = int(net.main_nodes[-1])
    walkers.set_destination([42], [goal])
    assert walkers.destination[0] == goal
    with pytest.raises(ValueError, match="main component"):
        walkers.set_destination([42], [net.num_nodes + 5])
    with pytest.raises(ValueError, match="7"):
        walkers.set_destination([7], [goal])
    with pytest.raises(ValueError, match="new and unique"):
        walkers.spawn_at(target, actor_id=42)
    with pytest.raises(ValueError, match="finite"):
        walkers.spawn_at([np.nan, 0.0], actor_id=43)


@pytest.mark.parametrize("kwargs", [
    {"speed_min_mps": -0.5},
    {"speed_max_mps": -1.0},
    {"speed_min_mps": 2.0, "speed_max_mps": 1.0},
    {"careless_share": 1.5},
    {"careless_share": -0.1},
    {"jaywalk_probability": 2.0},
    {"lateral_jitter_m": float("nan")},
    {"extent_m": (0.25, -0.25, 0.9)},
])
def test_bad_params_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        WalkerParams(**kwargs)


def test_bad_calls_raise() -> None:
    town = _town("Town01")
    walkers = _walkers(town)
    with pytest.raises(ValueError, match="one actor id per walker"):
        walkers.spawn_random(3, np.arange(2))
    with pytest.raises(ValueError, match="unique"):
        walkers.spawn_random(2, np.array([1, 1]))
    walkers.spawn_random(2, np.array([1, 2]))
    with pytest.raises(ValueError, match="dt_s"):
        walkers.step(0.0)
    with pytest.raises(ValueError, match="velocities"):
        walkers.step(DT_S, None, np.zeros((2, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="vehicle_velocity"):
        walkers.step(DT_S, None, np.zeros((2, 2)))


def test_a_walker_held_by_a_standing_car_turns_back(town: Town) -> None:
    """A car stands across the middle of a crosswalk the walker is on: the walker waits before its box, then
    after GIVE_UP_S turns round and walks back towards the kerb it came from (no one waits for ever)."""
    from sim.embedded.traffic.walkers import GIVE_UP_S

    crossing = _unsignalled_crosswalk(town)
    net = town.network
    walkers, near, far = _walker_before(town, crossing, careless_share=0.0)
    a, b = net.node_xy[near], net.node_xy[far]
    across = (b - a) / np.linalg.norm(b - a)
    car_xy = (0.5 * (a + b))[None]
    car_yaw = np.array([math.atan2(-across[0], across[1])])  # along the road, its box across the crossing
    half = np.array([[2.45, 1.06]])
    still = np.zeros((1, 2))
    held_at, held_for, back_m = None, 0.0, 0.0
    for _ in range(int(30 / DT_S)):
        walkers.step(DT_S, None, car_xy, still, car_yaw, half)
        along = float(np.dot(walkers.location_xyz[0, :2] - a, across))
        assert along < float(np.dot(car_xy[0] - a, across)) - 1.06, "the walker never steps into the car's box"
        if walkers.on_road[0] and walkers.held_s[0] > 0:
            held_at = along if held_at is None else held_at
            held_for = max(held_for, float(walkers.held_s[0]))
        if held_at is not None:
            back_m = max(back_m, held_at - along)
    assert held_at is not None, "the walker should be held before the car"
    assert held_for >= GIVE_UP_S - DT_S  # it waited that long
    assert back_m > 1.5  # then walked back towards its kerb
