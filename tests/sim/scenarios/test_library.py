"""Scenario events along the route: each spawns its actors and does what it says when the ego arrives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.api import RedLightEvent, TrafficLightState
from sim.config import ConfigError
from sim.env.driving import DrivingEnv
from sim.scenarios.library import SCENARIOS
from tests.sim.scenarios.helpers import drive, make_env, runner_env


def test_unknown_scenario_is_named():
    with pytest.raises(ConfigError, match="nope"):
        make_env("nope")


def test_leading_vehicle_drives_then_brakes_to_a_stop():
    env = make_env("leading_vehicle_brake")
    env.reset(seed=1)
    lead = env.scenarios[0].lead
    assert lead is not None
    speeds = [float(np.hypot(*s.velocity_mps[s.index_of(lead), :2])) for s, _ in drive(env, 500)]
    moving = [i for i, v in enumerate(speeds) if v > 3.0]
    assert moving, "the lead vehicle never drove off"
    assert min(speeds[moving[0]:]) < 0.2, "the lead vehicle never braked to a stop"


def test_occluded_pedestrian_crosses_in_front_of_the_ego():
    env = make_env("pedestrian_crossing_occluded")
    env.reset(seed=1)
    scenario = env.scenarios[0]
    assert scenario.walker is not None and len(scenario.actors) == 2  # the van and the pedestrian
    route = env.route
    i = int(np.searchsorted(route.s_m, scenario.ctx.anchor_s_m))
    yaw = route.yaw_rad[i]
    lateral = []
    for snap, _ in drive(env, 600):
        dx, dy = snap.location_m[snap.index_of(scenario.walker), :2] - route.points_xy[i]
        lateral.append(-dx * math.sin(yaw) + dy * math.cos(yaw))
    assert lateral[0] > 3.0  # starts behind the van, right of the route
    assert min(lateral) < -1.0  # ends up across the ego's lane


def test_red_light_runner_enters_the_junction_on_red():
    env, scenario = runner_env()
    ran_red = False
    for snap, _ in drive(env, 600):
        if scenario.go and scenario.runner_light >= 0:
            assert snap.light_state[scenario.runner_light] == TrafficLightState.RED
        ran_red |= any(isinstance(e, RedLightEvent) and e.actor_id == scenario.runner for e in snap.events)
    assert ran_red


def test_parked_car_blocks_the_lane_and_the_careful_ego_stops_behind_it():
    env = make_env("parked_car_blocking")
    env.reset(seed=1)
    parked = env.scenarios[0].actors[0]
    gaps = []
    for snap, info in drive(env, 700):
        ego, car = snap.index_of(env.ego_id), snap.index_of(parked)
        gaps.append(float(np.hypot(*(snap.location_m[ego, :2] - snap.location_m[car, :2]))))
        assert "collision" not in info["infractions"]
    assert min(gaps) < 12.0  # it got close, and stopped without touching it


def test_dense_junction_fills_the_approaches():
    env = make_env("dense_junction")
    env.reset(seed=1)
    assert len(env.scenarios[0].actors) >= 4
    assert set(SCENARIOS) == {"leading_vehicle_brake", "pedestrian_crossing_occluded", "red_light_runner",
                              "parked_car_blocking", "dense_junction"}


def test_scenarios_per_route_draws_that_many_per_episode_in_listed_order():
    names = ["leading_vehicle_brake", "parked_car_blocking", "pedestrian_crossing_occluded"]
    env = DrivingEnv(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                     scenarios=names, scenarios_per_route=1, routes={"min_length_m": 150, "max_length_m": 250})
    drawn = []
    for seed in range(12):
        env.reset(seed=seed)
        drawn.append(tuple(s.name for s in env.scenarios))
    assert all(len(d) == 1 for d in drawn)
    assert len(set(drawn)) >= 2, "episodes draw different scenarios"
    env.reset(seed=3)
    assert tuple(s.name for s in env.scenarios) == drawn[3], "the draw follows the episode's seed"
    env.close()
    two = DrivingEnv(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                     scenarios=names, scenarios_per_route=2)
    for seed in range(4):
        two.reset(seed=seed)
        picked = [s.name for s in two.scenarios]
        assert len(picked) == 2 and picked == sorted(picked, key=names.index)
    two.close()
    with pytest.raises(ConfigError, match="scenarios_per_route"):
        DrivingEnv(map="Town01", scenarios=names, scenarios_per_route=-1)
