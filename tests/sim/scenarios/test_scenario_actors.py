"""Scenario actors never end up blocking traffic for good: parked clear of junctions, off the road, lights released."""

from __future__ import annotations

import numpy as np

from sim.api import TrafficLightState
from sim.rules.traffic import off_road
from sim.scenarios.library import YELLOW_S, clear_of_junctions
from sim.scenarios.routes import load_route_file, plan_route
from tests.sim.scenarios.helpers import drive, make_env, runner_env


def test_clear_of_junctions_moves_an_anchor_out_of_and_away_from_junctions():
    env = make_env()
    spec = load_route_file("configs/routes/town01.yaml").routes[4]
    route = plan_route(env.world.lanes, np.asarray(spec.waypoints_xy), spec.route_id)
    junction_s = route.s_m[route.in_junction]
    assert junction_s.size
    for s in np.linspace(20.0, route.length_m - 60.0, 15):
        moved = clear_of_junctions(route, float(s))
        assert moved >= s
        assert np.min(np.abs(junction_s - moved)) > 12.0
        window = np.abs(route.s_m - moved) <= 10.0  # and on a straight: a car parked beside the lane stays
        assert np.ptp(np.unwrap(route.yaw_rad)[window]) < 0.2  # beside it (on a bend it sticks into the lane)
    inside = float(junction_s[0])
    assert clear_of_junctions(route, inside) > inside


def test_scenario_vehicles_stand_clear_of_junctions():
    env = make_env("leading_vehicle_brake", "pedestrian_crossing_occluded", "parked_car_blocking")
    lanes = env.world.lanes
    for seed in range(4):
        env.reset(seed=seed)
        snapshot = env.world.snapshot()
        vehicles = [a for s in env.scenarios for a in s.actors[:1]]
        assert vehicles
        rows = [snapshot.index_of(a) for a in vehicles]
        xy, yaw = snapshot.location_m[rows, :2], snapshot.rotation_rad[rows, 1]
        lane, _, _ = lanes.project(xy, yaw)
        assert not lanes.is_junction[lane].any()


def test_the_occluded_pedestrian_ends_off_the_road():
    env = make_env("pedestrian_crossing_occluded")
    env.reset(seed=1)
    scenario = env.scenarios[0]
    for snapshot, _ in drive(env, 700):
        pass
    assert scenario.across_done
    xy = snapshot.location_m[snapshot.index_of(scenario.walker), :2][None, :]
    assert off_road(env.world.area_raster.lookup(xy))[0]


def test_the_red_light_runner_gives_the_lights_back_and_joins_traffic():
    env, scenario = runner_env()
    runner = scenario.runner
    forced_seen = False
    for snapshot, _ in drive(env, 1500):
        forced_seen |= bool(scenario.forced)
        if forced_seen and not scenario.forced and scenario.runner is None:
            break
    assert forced_seen and scenario.forced == []
    for _ in range(400):  # the ego's route may end first: the scenario goes on with the world
        if scenario.runner is None:
            break
        snapshot = env.world.tick()
        scenario.tick(snapshot, env.route.length_m)
    # At the end of its run it joins traffic instead of parking in a lane.
    snapshot = env.world.snapshot()
    assert scenario.runner is None and snapshot.autopilot[snapshot.index_of(runner)]


def test_a_scenario_car_stops_behind_what_stands_in_its_way():
    """pursue keeps a gap: a car stands 20 m ahead on the path; the scenario car following the path at 8 m/s
    stops at least MIN_GAP_M short of it instead of rear-ending it."""
    from sim.api import Pose, VehicleControl
    from sim.scenarios.library import MIN_GAP_M, gap_ahead, pursue, route_pose

    env = make_env()
    env.reset(seed=2)
    route, world = env.route, env.world
    follower = world.spawn_vehicle("vehicle.lincoln.mkz_2020", route_pose(route, 30.0), role_name="scenario")
    standing = world.spawn_vehicle("vehicle.lincoln.mkz_2020", route_pose(route, 55.0), role_name="scenario")
    far = route_pose(route, route.length_m - 5.0)
    world.teleport(env.ego_id, Pose(far.x_m, far.y_m, 0.3, far.yaw_rad))  # out of the way
    snapshot = world.snapshot()
    for _ in range(400):
        world.apply_control(follower, pursue(snapshot, follower, route.points_xy, 8.0))
        world.apply_control(standing, VehicleControl(brake=1.0))
        snapshot = world.tick()
    row = snapshot.index_of(follower)
    assert float(np.hypot(*snapshot.velocity_mps[row, :2])) < 0.1
    gap = gap_ahead(snapshot, row)
    assert MIN_GAP_M - 1.0 < gap < MIN_GAP_M + 3.0
    assert not any(getattr(e, "other_id", None) == standing for e in snapshot.events_of(follower))


def test_the_red_light_runner_waits_only_at_signalised_junctions_off_the_egos_earlier_path():
    env = make_env("red_light_runner")
    signals = env.world.signals
    placed = 0
    for seed in range(8):
        env.reset(seed=seed)
        scenario = env.scenarios[0]
        if scenario.runner is None:
            continue
        placed += 1
        route = env.route
        entry = int(np.searchsorted(route.s_m, scenario.entry_s))
        assert signals.lane_light[int(route.lane[entry - 1])] >= 0  # the ego's approach has a light
        snapshot = env.world.snapshot()
        xy = snapshot.location_m[snapshot.index_of(scenario.runner), :2]
        assert np.hypot(*(route.points_xy[:entry] - xy).T).min() >= 6.0  # not on the ego's way to it
    assert placed >= 2


def test_traffic_passes_the_van_parked_at_the_kerb():
    """The occluded-pedestrian van stands beside the lane, not in it: an NPC coming up the lane drives past it
    (it used to take the van for its leader and wait behind it for ever)."""
    env = make_env("pedestrian_crossing_occluded")
    env.reset(seed=1)
    scenario, world, route = env.scenarios[0], env.world, env.route
    van_s = scenario.anchor_s
    start = int(np.searchsorted(route.s_m, van_s - 25.0))
    lane = int(route.lane[start])
    from sim.scenarios.library import route_pose

    npc = world.spawn_vehicle("vehicle.lincoln.mkz_2020", route_pose(route, van_s - 25.0), autopilot=True,
                              speed_mps=5.0)
    first = world.snapshot().location_m[world.snapshot().index_of(npc), :2].copy()
    for _ in range(int(12.0 / world.dt_s)):
        snapshot = world.tick()
    moved = float(np.hypot(*(snapshot.location_m[snapshot.index_of(npc), :2] - first)))
    assert moved > 35.0, f"the NPC in lane {lane} moved only {moved:.1f} m: held behind the van"


def test_the_red_light_runner_releases_the_lights_even_after_joining_traffic():
    """Lights forced for the run are given back once the ego is through or 20 s have passed, also when the
    runner has already been handed to traffic (they stayed forced for good and held routes that came back)."""
    env, scenario = runner_env()
    snapshot = env.world.snapshot()
    scenario.tick(snapshot, scenario.entry_s - 20.0)  # the ego arrives: the run starts, lights forced
    assert scenario.forced
    scenario.runner = None  # as if its run were over and traffic had taken it on
    for _ in range(int(21.0 / env.world.dt_s)):
        snapshot = env.world.tick()
        scenario.tick(snapshot, scenario.entry_s - 20.0)  # the ego never gets through
    # The runner's red is given back; the ego's green ends through yellow (back in its cycle the light may be
    # red, and a green turning red at once leaves an ego near its line no way to stop).
    assert scenario.forced == [scenario.ego_light]
    snapshot = env.world.tick()
    assert snapshot.light_state[scenario.ego_light] == TrafficLightState.YELLOW
    for _ in range(int((YELLOW_S + 0.2) / env.world.dt_s)):
        snapshot = env.world.tick()
        scenario.tick(snapshot, scenario.entry_s - 20.0)
    assert scenario.forced == []


def test_the_red_light_runner_gives_the_egos_light_back_at_once_when_the_ego_is_through():
    env, scenario = runner_env()
    snapshot = env.world.snapshot()
    scenario.tick(snapshot, scenario.entry_s - 20.0)
    assert scenario.forced
    snapshot = env.world.tick()
    scenario.tick(snapshot, scenario.entry_s + 11.0)
    assert scenario.forced == []


def test_the_occluded_pedestrian_waits_for_a_car_standing_in_its_way():
    """Once it has stepped out, the scenario's pedestrian does not walk into the side of a car that stands
    right in its way: it waits there (and goes on when the car has gone)."""
    from sim.api import Pose

    env = make_env("pedestrian_crossing_occluded")
    env.reset(seed=1)
    scenario, world = env.scenarios[0], env.world
    snapshot = world.snapshot()
    scenario.tick(snapshot, scenario.anchor_s - 10.0)  # the ego is close: it steps out
    at = snapshot.location_m[snapshot.index_of(scenario.walker), :2] + 4.5 * np.asarray(scenario.across)
    yaw = float(np.arctan2(scenario.across[1], scenario.across[0])) + np.pi / 2  # across its way
    car = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(float(at[0]), float(at[1]), 0.3, yaw))
    for _ in range(60):  # 3 s
        snapshot = world.tick()
        scenario.tick(snapshot, scenario.anchor_s - 10.0)
        assert not any(getattr(e, "other_id", None) == car for e in snapshot.events_of(scenario.walker))
    assert float(np.hypot(*snapshot.velocity_mps[snapshot.index_of(scenario.walker), :2])) < 0.1
    world.destroy([car])
    for _ in range(20):
        snapshot = world.tick()
        scenario.tick(snapshot, scenario.anchor_s - 10.0)
    assert float(np.hypot(*snapshot.velocity_mps[snapshot.index_of(scenario.walker), :2])) > 1.0


def test_the_leading_car_drives_off_when_traffic_queues_behind_it():
    """The leading car waits for the ego, but not while another car stands in the queue behind it (the ego
    far away): it starts, so the queue it would hold never deadlocks."""
    from sim.api import VehicleControl
    from sim.scenarios.library import route_pose

    env = make_env("leading_vehicle_brake")
    env.reset(seed=0)
    scenario, world, route = env.scenarios[0], env.world, env.route
    snapshot = world.snapshot()
    lead_xy = snapshot.location_m[snapshot.index_of(scenario.lead), :2]
    lead_s = float(route.s_m[int(np.argmin(np.hypot(*(route.points_xy - lead_xy).T)))])
    queued = world.spawn_vehicle("vehicle.lincoln.mkz_2020", route_pose(route, lead_s - 8.0))
    far_behind = lead_s - 100.0  # the ego's progress: far from the lead
    for _ in range(10):
        world.apply_control(queued, VehicleControl(brake=1.0))
        snapshot = world.tick()
        scenario.tick(snapshot, far_behind)
    assert scenario.started
    world.destroy([queued])
    env.reset(seed=0)  # without the queue it keeps waiting for the ego
    scenario = env.scenarios[0]
    for _ in range(10):
        snapshot = world.tick()
        scenario.tick(snapshot, far_behind)
    assert not scenario.started


def test_a_red_light_runner_blocked_after_it_set_off_is_removed():
    """A car stands in the runner's path (as a car turning in the junction that it ran into): the runner stops
    short of it, and after RUNNER_BLOCKED_S standing it is gone, so neither waits for the other for good."""
    from sim.api import Pose, VehicleControl
    from sim.scenarios.library import RUNNER_BLOCKED_S

    env, scenario = runner_env()
    world, runner = env.world, scenario.runner
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(scenario.path, axis=0).T))])
    k = int(np.searchsorted(along, 15.0))
    heading = np.arctan2(*(scenario.path[k + 1] - scenario.path[k])[::-1])
    blocker = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(*scenario.path[k], 0.3, float(heading)),
                                  role_name="scenario")
    far = scenario.entry_s + 40.0  # the ego is out of the way; the scenario is told it is 20 m short
    world.teleport(env.ego_id, Pose(*env.route.points_xy[int(np.searchsorted(env.route.s_m, far))], 0.3, 0.0))
    standing_from = None
    snapshot = world.snapshot()
    for tick in range(400):
        world.apply_control(blocker, VehicleControl(brake=1.0))
        scenario.tick(snapshot, scenario.entry_s - 20.0)
        snapshot = world.tick()
        if scenario.runner is None:
            break
        row = snapshot.index_of(runner)
        if standing_from is None and scenario.go and tick > 20 and np.hypot(*snapshot.velocity_mps[row, :2]) < 0.3:
            standing_from = snapshot.timestamp_s
    assert scenario.go and standing_from is not None, "the runner set off and stopped behind the car"
    assert scenario.runner is None and runner not in snapshot.actor_id and runner not in scenario.actors
    assert RUNNER_BLOCKED_S - 0.5 <= snapshot.timestamp_s - standing_from <= RUNNER_BLOCKED_S + 1.0
