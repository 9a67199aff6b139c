"""Contact with the static layout (kerbs, walls): reported once per contact, pushed out, and the car can drive away."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sim.api import CollisionEvent, Pose, VehicleControl
from sim.embedded.world import EmbeddedWorld
from sim.maps.geometry import AreaClass
from sim.rules.traffic import on_static, touches_static
from sim.transforms import box_corners
from tests.lane_picks import straight_lane as _straight_lane

CAR = "vehicle.lincoln.mkz_2020"


@pytest.fixture(scope="module")
def town01():
    return EmbeddedWorld(map="Town01", seed=0)


@pytest.fixture()
def world(town01):
    town01.reset(0)
    return town01


def _lane_pose(world, s_m: float = 40.0) -> tuple[float, float, float]:
    xyz, yaw = world.lanes.interpolate(np.array([_straight_lane(world)]), np.array([s_m]))
    return float(xyz[0, 0]), float(xyz[0, 1]), float(yaw[0])


def _static_hits(snapshot, actor_id: int) -> list[CollisionEvent]:
    return [e for e in snapshot.events if isinstance(e, CollisionEvent) and e.actor_id == actor_id
            and e.other_id == -1]


def _clear_of_kerb(world, snapshot, actor_id: int, margin_m: float = 0.2) -> bool:
    """Whether the car's box grown by ``margin_m`` touches no static ground: it has left the kerb."""
    row = snapshot.index_of(actor_id)
    half = snapshot.extent_m[row:row + 1, :2] + margin_m
    corners = box_corners(snapshot.location_m[row:row + 1, :2], snapshot.rotation_rad[row:row + 1, 1], half)
    return not bool(touches_static(world.kerb_raster.lookup(corners.reshape(-1, 2)).reshape(1, 4))[0])


def _drive(world, actor_id: int, control: VehicleControl, ticks: int) -> tuple[list, list]:
    world.apply_control(actor_id, control)
    snapshots, hits = [], []
    for _ in range(ticks):
        snapshot = world.tick()
        snapshots.append(snapshot)
        hits += _static_hits(snapshot, actor_id)
    return snapshots, hits


def _into_kerb(world) -> tuple[int, list]:
    """A car that drove at 25 degrees into the kerb on the right of a straight lane and keeps pushing into it."""
    x, y, yaw = _lane_pose(world)
    car = world.spawn_vehicle(CAR, Pose(x, y, 0.0, yaw + math.radians(25.0)), speed_mps=5.0)
    _, hits = _drive(world, car, VehicleControl(throttle=0.3), 80)
    assert len(hits) == 1, "the car must reach the kerb"
    return car, hits


def test_kerb_contact_is_one_event_per_episode_and_the_car_stays_out(world):
    car, hits = _into_kerb(world)
    hit = hits[0]
    assert hit.other_kind == "static"
    assert np.hypot(*hit.impulse_ns[:2]) > 1000.0  # ~1800 kg losing a few m/s into the kerb
    snapshots, more = _drive(world, car, VehicleControl(throttle=0.6), 100)  # keep pushing for 5 s: same contact
    assert more == []
    for snapshot in snapshots:  # pushed back out: no corner ever ends a tick on static ground
        row = snapshot.index_of(car)
        corners = box_corners(snapshot.location_m[row:row + 1, :2], snapshot.rotation_rad[row:row + 1, 1],
                              snapshot.extent_m[row:row + 1, :2])
        assert not on_static(world.kerb_raster.lookup(corners.reshape(-1, 2))).any()
    # Back off, then hit the kerb again: a new contact, a new event.
    _drive(world, car, VehicleControl(throttle=0.5, reverse=True), 40)
    _, again = _drive(world, car, VehicleControl(throttle=0.6), 120)
    assert len(again) == 1


def test_reversing_frees_the_car(world):
    car, _ = _into_kerb(world)
    start = world.snapshot().location_m[world.snapshot().index_of(car), :2].copy()
    snapshots, hits = _drive(world, car, VehicleControl(throttle=0.5, reverse=True), 40)  # two seconds
    last = snapshots[-1]
    row = last.index_of(car)
    assert hits == []
    assert np.hypot(*(last.location_m[row, :2] - start)) > 2.0 and last.speed_mps()[row] > 1.0
    assert _clear_of_kerb(world, last, car)


def test_steering_away_and_driving_forward_frees_the_car(world):
    car, _ = _into_kerb(world)
    _, _, lane_yaw = _lane_pose(world)
    snapshots, hits = _drive(world, car, VehicleControl(throttle=0.5, steer=-1.0), 40)  # kerb on the right
    last = snapshots[-1]
    row = last.index_of(car)
    assert hits == []
    heading = math.atan2(math.sin(last.rotation_rad[row, 1] - lane_yaw), math.cos(last.rotation_rad[row, 1] - lane_yaw))
    assert heading < 0.0, "the car turned away from the kerb"
    assert last.speed_mps()[row] > 2.0 and _clear_of_kerb(world, last, car)


def _ray_to_static(world, x: float, y: float, angle: float) -> float:
    """Distance from (x, y) along ``angle`` to the first static ground (within 30 m)."""
    d = np.arange(0.0, 30.0, 0.05)
    ray = np.stack([x + d * math.cos(angle), y + d * math.sin(angle)], axis=1)
    static = on_static(world.kerb_raster.lookup(ray))
    assert static.any()
    return float(d[int(np.argmax(static))])


@pytest.mark.parametrize("speed_mps", [10.0, 30.0])
def test_a_car_driven_straight_into_a_wall_stays_outside_it(world, speed_mps):
    x, y, yaw = _lane_pose(world)
    angle = yaw + math.pi / 2  # straight at the buildings on the right
    wall_m = _ray_to_static(world, x, y, angle)
    car = world.spawn_vehicle(CAR, Pose(x, y, 0.0, angle), speed_mps=speed_mps)
    half_length = world.snapshot().extent_m[world.snapshot().index_of(car), 0]
    snapshots, hits = _drive(world, car, VehicleControl(throttle=1.0), 100)
    assert len(hits) == 1
    reach = [float(np.dot(s.location_m[s.index_of(car), :2] - (x, y), (math.cos(angle), math.sin(angle))))
             + half_length for s in snapshots]
    assert max(reach) < wall_m + 0.3  # the front bumper never gets more than a raster cell into the wall
    assert snapshots[-1].speed_mps()[snapshots[-1].index_of(car)] < 1.0  # stopped against it


def test_a_thin_wall_is_not_tunnelled_through():
    """A fast car meets a 0.4 m wall across its lane: the swept check catches it between two ticks."""
    world = EmbeddedWorld(map="Town01", seed=0)
    x, y, yaw = _lane_pose(world, 20.0)
    raster = world.kerb_raster
    wall_at = 25.0
    along = np.array([math.cos(yaw), math.sin(yaw)])
    across = np.array([-math.sin(yaw), math.cos(yaw)])
    for a in np.arange(wall_at, wall_at + 0.4, 0.05):  # paint the wall into the raster
        for b in np.arange(-8.0, 8.0, 0.05):
            cell = (np.array([x, y]) + a * along + b * across - raster.origin_xy) / raster.resolution_m
            col, row = cell.astype(int)
            raster.classes[row, col] = AreaClass.OFFROAD
    car = world.spawn_vehicle(CAR, Pose(x, y, 0.0, yaw), speed_mps=35.0)  # 1.75 m per tick
    half_length = world.snapshot().extent_m[world.snapshot().index_of(car), 0]
    snapshots, hits = _drive(world, car, VehicleControl(throttle=1.0), 40)
    front = [float(np.dot(s.location_m[s.index_of(car), :2] - (x, y), along)) + half_length for s in snapshots]
    assert len(hits) == 1 and max(front) < wall_at + 0.3


@pytest.mark.parametrize("town", ["Town01", "Town02", "Town10HD", "procedural"])
def test_a_minute_of_traffic_pins_no_vehicle_at_a_kerb(town):
    """40 NPCs and a free car driving in circles for 60 s: nobody is held at a kerb for 10 s, traffic flows.

    The speed floor: free-flowing town traffic here averages 2.3-3.8 m/s over
    a minute (30 % under the limits, stops at lights and junctions); a town
    where vehicles are pinned or gridlocked falls well below 1.5 m/s.
    """
    kw = {"map": "procedural", "procedural": {"seed": 3}} if town == "procedural" else {"map": town}
    world = EmbeddedWorld(seed=0, **kw)
    npcs = world.spawn_traffic(40)
    free = world.spawn_vehicle(CAR)
    world.apply_control(free, VehicleControl(throttle=0.4, steer=0.5))  # circles into kerbs, pushed out each time
    held: dict[int, float] = {}
    worst, speeds = 0.0, []
    for _ in range(1200):
        snapshot = world.tick()
        rows = np.array([snapshot.index_of(a) for a in npcs + [free]])
        corners = box_corners(snapshot.location_m[rows, :2], snapshot.rotation_rad[rows, 1],
                              snapshot.extent_m[rows, :2] + 0.1)
        touching = touches_static(world.kerb_raster.lookup(corners.reshape(-1, 2)).reshape(-1, 4))
        speed = snapshot.speed_mps()[rows]
        speeds.append(float(speed[:-1].mean()))
        for actor, kerb, v in zip(npcs + [free], touching.tolist(), speed.tolist()):
            held[actor] = held.get(actor, 0.0) + snapshot.dt_s if kerb and v < 0.1 else 0.0
            worst = max(worst, held[actor])
    assert worst < 10.0
    assert np.mean(speeds) > 1.5


def _town01_route(world, index: int):
    from sim.scenarios.routes import load_route_file, plan_route

    spec = load_route_file("configs/routes/town01.yaml").routes[index]
    return plan_route(world.lanes, np.asarray(spec.waypoints_xy), spec.route_id)


@pytest.mark.parametrize("speed_mps", [4.0, 9.0])  # the braking lead car's and the red-light runner's speeds
def test_scenario_pursuit_keeps_off_kerbs_and_stops_at_its_path_end(world, speed_mps):
    from sim.scenarios.library import pursue, route_pose

    route = _town01_route(world, 3)  # a short route with turns at junctions
    assert np.ptp(np.unwrap(route.yaw_rad)) > 1.5
    car = world.spawn_vehicle(CAR, route_pose(route, 0.0), role_name="scenario")
    hits, snapshot = [], world.snapshot()
    for _ in range(int((route.length_m / speed_mps + 20.0) / world.dt_s)):
        world.apply_control(car, pursue(snapshot, car, route.points_xy, speed_mps))
        snapshot = world.tick()
        hits += _static_hits(snapshot, car)
    row = snapshot.index_of(car)
    assert hits == []
    assert np.hypot(*(snapshot.location_m[row, :2] - route.points_xy[-1])) < 5.0
    assert snapshot.speed_mps()[row] < 0.1  # parked at the end, not circling back to it


class _Watcher:
    """Wraps an agent; records each route's ego id and every tick's events of the world it drives in."""

    def __init__(self, agent) -> None:
        self.agent = agent
        self.routes: list[tuple[int, list]] = []

    def reset(self, env) -> None:
        self.agent.reset(env)
        self.routes.append((env.ego_id, []))

    def __call__(self, obs, env):
        self.routes[-1][1].extend(env.world.snapshot().events)
        return self.agent(obs, env)


@pytest.mark.slow
def test_expert_eval_on_the_town01_route_set_is_not_blocked_at_kerbs():
    """``avsim eval``'s loop with the expert on Town01's route set: no route ends blocked or timed out with the
    ego at a kerb, and no other vehicle (scenario actors) ever touches one."""
    from av_stack.bridge import expert_agent
    from sim.config import read_yaml
    from sim.env.driving import DrivingEnv
    from sim.env.evaluation import evaluate

    config = read_yaml("configs/env/leaderboard_town01.yaml")
    env = DrivingEnv(**{**config, "observation": {"mode": "state"}, "action": {"mode": "vehicle_control"}})
    agent = _Watcher(expert_agent())
    at_kerb: list[bool] = []
    result = evaluate(env, agent, on_route=lambda _: at_kerb.append(
        not _clear_of_kerb(env.world, env.world.snapshot(), env.ego_id)))
    assert result["episodes"] == len(at_kerb) == len(agent.routes) == 12
    for record, kerb, (ego, events) in zip(result["routes"], at_kerb, agent.routes):
        assert not (kerb and record["termination"] in ("blocked", "route_timeout")), record
        static = [e for e in events if isinstance(e, CollisionEvent) and e.other_id == -1]
        assert all(e.actor_id == ego for e in static), record


def test_the_edge_of_a_bridge_is_a_kerb_and_the_road_under_it_is_not():
    """On tests/overpass_map.py's bridge the static layout is read on the bridge's level: its edge stops a car
    even where the road below passes under it; a car on that road drives under the bridge untouched."""
    from tests.overpass_map import BRIDGE_HEIGHT_M, LANE_WIDTH_M, SIDEWALK_WIDTH_M, overpass_source

    world = EmbeddedWorld(source=overpass_source(), seed=3)
    lanes = world.lanes
    for road_id, level_m in ((2, BRIDGE_HEIGHT_M), (1, 0.0)):
        lane = lanes.index[(road_id, 0, -1)]
        points = lanes.lane_points(lane)
        row = int(np.argmin(np.hypot(points[:, 0], points[:, 1])))  # nearest the crossing
        x, y, z = points[row]
        assert abs(z - level_m) < 0.5
        yaw = float(lanes.yaw_rad[int(lanes.offset[lane]) + row])
        world.reset(3)
        if road_id == 2:  # across the bridge, to its right edge, over the road below
            car = world.spawn_vehicle(CAR, Pose(x, y, z, yaw + math.pi / 2), speed_mps=6.0)
            snapshots, hits = _drive(world, car, VehicleControl(throttle=0.5), 80)
            edge_m = 1.5 * LANE_WIDTH_M + SIDEWALK_WIDTH_M  # from lane -1's centre to the bridge's right edge
            out = [float(np.dot(s.location_m[s.index_of(car), :2] - (x, y), (-math.sin(yaw), math.cos(yaw))))
                   for s in snapshots]
            assert len(hits) == 1 and max(out) < edge_m
        else:  # along the road below, under the bridge and 40 m on
            car = world.spawn_vehicle(CAR, Pose(x, y, z, yaw), speed_mps=8.0)
            _, hits = _drive(world, car, VehicleControl(throttle=0.3), 100)
            assert hits == []


def test_a_car_cutting_a_junction_corner_climbs_the_kerb_instead_of_hitting_a_wall(world):
    """Half-way along a turn through a junction, 1 m past the lane's edge, the lanes alone leave ground no lane
    covers (a wall before); the kerb raster has CARLA's sidewalk corner there, so a car that cuts across it
    meets no static layout."""
    lanes, half = world.lanes, np.array([[2.45, 1.06]])  # the mkz's box
    for lane, side in itertools.product(np.flatnonzero(lanes.is_junction), (-1.0, 1.0)):
        middle = int(lanes.offset[lane] + lanes.count[lane] // 2)
        xy, yaw, width = lanes.points_xyz[middle, :2], float(lanes.yaw_rad[middle]), float(lanes.width_m[middle])
        right = np.array([-math.sin(yaw), math.cos(yaw)])
        # From the lane, 60 degrees towards its edge; the box starts clear of the lanes-only static ground.
        start, heading = xy - side * 0.7 * right, yaw + side * math.radians(60.0)
        corners = box_corners(start[None], np.array([heading]), half).reshape(-1, 2)
        beyond = xy + side * right * (width / 2 + 1.0)
        if on_static(world.area_raster.lookup(beyond[None]))[0] and not on_static(
                world.area_raster.lookup(corners)).any():
            break
    else:
        pytest.fail("no junction corner in Town01")
    car = world.spawn_vehicle(CAR, Pose(float(start[0]), float(start[1]), 0.0, heading), speed_mps=2.0)
    snapshots, hits = _drive(world, car, VehicleControl(throttle=0.1), 20)  # 2 m: the box ends ~1.7 m past the edge
    reached = []
    for snapshot in snapshots:  # where the car went, the lanes alone would have had a wall
        row = snapshot.index_of(car)
        corners = box_corners(snapshot.location_m[row:row + 1, :2], snapshot.rotation_rad[row:row + 1, 1],
                              snapshot.extent_m[row:row + 1, :2])
        reached.append(on_static(world.area_raster.lookup(corners.reshape(-1, 2))).any())
    assert hits == []
    assert any(reached)
