"""Scenario actors never end up blocking traffic for good: parked clear of junctions, off the road, lights released."""

from __future__ import annotations

import numpy as np

from sim.rules.traffic import off_road
from sim.scenarios.library import clear_of_junctions
from sim.scenarios.routes import load_route_file, plan_route
from tests.sim.scenarios.helpers import drive, make_env


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
    env = make_env("red_light_runner")
    for seed in range(1, 6):
        env.reset(seed=seed)
        scenario = env.scenarios[0]
        if scenario.runner is not None:
            break
    assert scenario.runner is not None, "no route with a signalised junction in 5 seeds"
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
