"""The :class:`sim.api.World` contract, run against every backend.

One set of tests, parametrized by the ``world`` fixture over the embedded
simulator and :class:`~sim.carla_backend.world.CarlaWorld` connected to the
session's CARLA-protocol server (``avsim serve``, or CARLA_HOST/CARLA_PORT; see
tests/conftest.py). The CARLA half is marked ``carla``.

One world per backend is built for the module and reset (seed 0) before every
test, so tests use only actors they spawn themselves; :func:`test_close_is_idempotent`
closes a world of its own.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from sim.api import (ActorKind, Pose, RedLightEvent, SpawnError, TrafficLightState, VehicleControl, World,
                     WorldSnapshot)
from sim.maps.geometry import AreaClass, AreaRaster, MapGeometry
from sim.maps.lanes import build_lane_graph
from sim.maps.loader import load_carla_map, resolve_map
from sim.maps.signals import build_signal_layout
from tests.lane_picks import straight_lane as _straight_lane

TOWN = os.environ.get("CARLA_TOWN", "Town01")
CAR = "vehicle.lincoln.mkz_2020"
BACKENDS = ["embedded", pytest.param("carla", marks=pytest.mark.carla)]


def _open(backend: str, request, **kwargs) -> World:
    if backend == "embedded":
        from sim.embedded.world import EmbeddedWorld

        return EmbeddedWorld(map=TOWN, seed=0)
    from sim.carla_backend.world import CarlaWorld

    host, port, _ = request.getfixturevalue("carla_endpoint")
    return CarlaWorld(map=TOWN, seed=0, host=host, port=port, timeout_s=20.0, **kwargs)


@pytest.fixture(scope="module", params=BACKENDS)
def shared_world(request):
    """One world per backend for the module (tests get it through ``world``, reset)."""
    world = _open(request.param, request)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture()
def world(shared_world) -> World:
    """The module's world of this backend, reset: no actors, lights back on their cycle, seed 0."""
    shared_world.reset(seed=0)
    return shared_world


@pytest.fixture(scope="module")
def reference():
    """The map model the neutral core builds from the town's OpenDRIVE: (lanes, signals)."""
    source = resolve_map(TOWN)
    carla_map = load_carla_map(source)
    lanes = build_lane_graph(carla_map, source.xodr_text)
    return lanes, build_signal_layout(carla_map, lanes, generate_missing=False)


def _pose_on(world: World, lane: int, s_m: float, z_m: float = 0.5) -> Pose:
    """The pose on a lane's centre line at arc length ``s_m`` (lifted ``z_m``, like a spawn point)."""
    xyz, yaw = world.lanes.interpolate(np.array([lane]), np.array([s_m]))
    return Pose(float(xyz[0, 0]), float(xyz[0, 1]), float(xyz[0, 2]) + z_m, float(yaw[0]))


def _xy(snapshot: WorldSnapshot, actor_id: int) -> np.ndarray:
    return snapshot.location_m[snapshot.index_of(actor_id), :2].copy()


def _run(world: World, ticks: int) -> WorldSnapshot:
    for _ in range(ticks):
        snapshot = world.tick()
    return snapshot


# ---------------------------------------------------------------------- protocol and map model
def test_is_a_world(world):
    assert isinstance(world, World)
    assert world.dt_s == pytest.approx(0.05)


def test_map_model_is_the_towns(world, reference):
    lanes, signals = reference
    assert world.source.name == TOWN
    assert world.lanes.num_lanes == lanes.num_lanes
    np.testing.assert_allclose(world.lanes.length_m, lanes.length_m, atol=1e-6)
    np.testing.assert_array_equal(world.signals.light_id, signals.light_id)
    np.testing.assert_array_equal(world.signals.lane_light, signals.lane_light)
    np.testing.assert_array_equal(world.signals.stop_id, signals.stop_id)
    expected = [p.pose for p in lanes.spawn_points()]
    assert [p.pose for p in world.spawn_points] == expected and len(expected) > 10
    assert isinstance(world.geometry, MapGeometry) and isinstance(world.area_raster, AreaRaster)
    on_road = world.area_raster.lookup(np.array([[p.x_m, p.y_m] for p in expected]))
    assert set(on_road.tolist()) <= {int(AreaClass.DRIVING), int(AreaClass.JUNCTION)}
    snapshot = world.snapshot()
    np.testing.assert_array_equal(snapshot.light_id, signals.light_id)
    assert snapshot.light_state.shape == signals.light_id.shape


# ---------------------------------------------------------------------- time
def test_tick_advances_one_frame_of_dt(world):
    before = world.snapshot()
    first = world.tick()
    second = world.tick()
    assert (first.frame, second.frame) == (before.frame + 1, before.frame + 2)
    assert first.timestamp_s == pytest.approx(before.timestamp_s + world.dt_s)
    assert second.timestamp_s == pytest.approx(first.timestamp_s + world.dt_s)
    assert second.dt_s == pytest.approx(world.dt_s)


def test_snapshot_does_not_advance(world):
    ticked = world.tick()
    again = world.snapshot()
    assert (again.frame, again.timestamp_s) == (ticked.frame, ticked.timestamp_s)
    assert world.snapshot().frame == ticked.frame


# ---------------------------------------------------------------------- actors
def test_spawn_vehicle_where_asked(world):
    pose = world.spawn_points[3].pose
    ego = world.spawn_vehicle(CAR, world.spawn_points[3], role_name="hero")
    assert world.actors[ego].role_name == "hero" and world.actors[ego].type_id == CAR
    snapshot = world.tick()
    row = snapshot.index_of(ego)
    assert snapshot.kind[row] == ActorKind.VEHICLE and snapshot.type_id[row] == CAR
    assert not snapshot.autopilot[row]
    np.testing.assert_allclose(snapshot.location_m[row, :2], [pose.x_m, pose.y_m], atol=0.1)
    assert math.remainder(snapshot.rotation_rad[row, 1] - pose.yaw_rad, math.tau) == pytest.approx(0.0, abs=0.01)
    other = world.spawn_vehicle(CAR, _pose_on(world, _straight_lane(world), 30.0))
    assert other != ego and other in world.actors and world.actors[other].role_name == ""


def test_spawn_on_an_occupied_spot_raises(world):
    point = world.spawn_points[5]
    world.spawn_vehicle(CAR, point)
    before = set(world.actors)
    with pytest.raises(SpawnError):
        world.spawn_vehicle(CAR, point)
    assert set(world.actors) == before


def test_destroy_removes_and_unknown_id_raises_naming_it(world):
    keep = world.spawn_vehicle(CAR, world.spawn_points[0])
    gone = world.spawn_vehicle(CAR, world.spawn_points[10])
    world.tick()
    with pytest.raises(KeyError, match="987654"):
        world.destroy([gone, 987654])
    assert gone in world.snapshot().actor_id, "nothing is destroyed when an id is unknown"
    world.destroy([gone])
    assert gone not in world.actors and keep in world.actors
    ids = world.tick().actor_id.tolist()
    assert keep in ids and gone not in ids


# ---------------------------------------------------------------------- control
def test_throttle_moves_along_the_heading_coasting_stops_pushing_and_brake_stops(world):
    lane = _straight_lane(world)
    pose = _pose_on(world, lane, 10.0)
    ego = world.spawn_vehicle(CAR, pose)
    start = _xy(world.tick(), ego)
    world.apply_control(ego, VehicleControl(throttle=0.8))
    moving = _run(world, 40)
    step = _xy(moving, ego) - start
    heading = np.array([math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)])
    along, across = float(step @ heading), float(step[0] * -heading[1] + step[1] * heading[0])
    assert along > 3.0 and abs(across) < 0.1 * along
    speed = moving.speed_mps()[moving.index_of(ego)]
    assert speed > 2.0
    world.apply_control(ego, VehicleControl())  # the default control replaces the held throttle
    coasting = _run(world, 20)
    assert 0.0 < coasting.speed_mps()[coasting.index_of(ego)] <= speed
    world.apply_control(ego, VehicleControl(brake=1.0))
    stopped = _run(world, 60)
    assert stopped.speed_mps()[stopped.index_of(ego)] < 0.1


def test_autopilot_drives_on_its_own(world):
    # Every light green: a CARLA server's clock goes on across resets, so the lights' phase depends on how many
    # ticks earlier tests ran, and a car that starts at a red light would rightly wait.
    lights = range(world.signals.num_lights)
    for light in lights:
        world.lights.force_state(light, TrafficLightState.GREEN)
    try:
        ego = world.spawn_vehicle(CAR, world.spawn_points[2])
        world.set_autopilot(ego, True)
        start = world.tick()
        end = _run(world, 60)
    finally:
        for light in lights:
            world.lights.force_state(light, None)
    assert end.autopilot[end.index_of(ego)]
    assert np.hypot(*(_xy(end, ego) - _xy(start, ego))) > 1.0


def test_spawn_traffic_and_walkers_return_that_many_ids(world):
    npcs = world.spawn_traffic(5)
    walkers = world.spawn_walkers(3)
    assert len(npcs) == 5 and len(walkers) == 3 and len(set(npcs + walkers)) == 8
    snapshot = world.tick()
    rows = [snapshot.index_of(a) for a in npcs]
    assert (snapshot.kind[rows] == ActorKind.VEHICLE).all() and snapshot.autopilot[rows].all()
    assert (snapshot.kind[[snapshot.index_of(w) for w in walkers]] == ActorKind.WALKER).all()
    assert set(npcs + walkers) <= set(world.actors)


def test_walker_control_walks_along_the_direction(world):
    walker = world.spawn_walker_at(world.spawn_points[4].pose)
    assert world.actors[walker].type_id.startswith("walker.pedestrian.")
    spawned = world.tick()
    assert spawned.kind[spawned.index_of(walker)] == ActorKind.WALKER
    standing = _run(world, 20)  # it waits for a control
    start = _xy(standing, walker)
    np.testing.assert_allclose(start, _xy(spawned, walker), atol=0.01)
    assert standing.speed_mps()[standing.index_of(walker)] < 0.01
    direction = np.array([0.6, 0.8])
    world.apply_walker_control(walker, (3.0, 4.0), 1.5)  # not unit length: only the direction counts
    end = _run(world, 40)
    step = _xy(end, walker) - start
    along, across = float(step @ direction), float(step[0] * -direction[1] + step[1] * direction[0])
    assert along == pytest.approx(1.5 * 40 * world.dt_s, rel=0.2) and abs(across) < 0.3
    world.apply_walker_control(walker, (1.0, 0.0), 0.0)
    still = _run(world, 10)
    assert still.speed_mps()[still.index_of(walker)] < 0.1


def test_teleport_moves_an_actor(world):
    ego = world.spawn_vehicle(CAR, world.spawn_points[0])
    world.tick()
    target = world.spawn_points[12].pose
    world.teleport(ego, target)
    snapshot = world.tick()
    np.testing.assert_allclose(_xy(snapshot, ego), [target.x_m, target.y_m], atol=0.2)
    assert math.remainder(snapshot.rotation_rad[snapshot.index_of(ego), 1] - target.yaw_rad, math.tau) \
        == pytest.approx(0.0, abs=0.01)


# ---------------------------------------------------------------------- lights and rules
def test_forced_light_state_is_reported(world):
    assert world.signals.num_lights > 0
    for state in (TrafficLightState.GREEN, TrafficLightState.RED, TrafficLightState.YELLOW):
        world.lights.force_state(0, state)
        for _ in range(3):  # held, not just set
            snapshot = world.tick()
            assert snapshot.light_state[0] == state
    world.lights.force_state(0, None)


def test_running_a_red_light_raises_the_event(world):
    lanes, signals = world.lanes, world.signals
    lane = max((k for k in range(lanes.num_lanes) if signals.lane_light[k] >= 0), key=lambda k: lanes.length_m[k])
    light = int(signals.lane_light[lane])
    world.lights.force_state(light, TrafficLightState.RED)
    ego = world.spawn_vehicle(CAR, _pose_on(world, lane, float(lanes.length_m[lane]) - 15.0), speed_mps=6.0)
    world.apply_control(ego, VehicleControl(throttle=0.4))
    red = []
    for _ in range(80):
        red += [e for e in world.tick().events if isinstance(e, RedLightEvent)]
    assert len(red) == 1 and red[0].actor_id == ego
    assert red[0].light_id == int(signals.light_id[light])


# ---------------------------------------------------------------------- lifetime
def test_reset_removes_every_actor_and_restarts_time(world):
    spawned = {world.spawn_vehicle(CAR, world.spawn_points[0], role_name="hero"), *world.spawn_traffic(3),
               *world.spawn_walkers(2), world.spawn_walker_at(world.spawn_points[6].pose)}
    _run(world, 5)
    snapshot = world.reset(seed=0)
    assert world.snapshot().frame == snapshot.frame
    assert not spawned & set(snapshot.actor_id.tolist())
    assert not spawned & set(world.actors)
    after = world.tick()
    assert not spawned & set(after.actor_id.tolist())
    assert after.frame == snapshot.frame + 1 and after.timestamp_s == pytest.approx(snapshot.timestamp_s + world.dt_s)


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_is_idempotent(backend, request):
    world = _open(backend, request, tm_port=8123)  # its own Traffic Manager: the shared world keeps its one
    world.spawn_vehicle(CAR, world.spawn_points[0])
    world.tick()
    world.close()
    world.close()
