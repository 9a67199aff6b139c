"""Maps without sidewalks (highway towns): the world refuses walkers clearly, the env runs without them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from sim.api import ActorKind, SpawnError
from sim.embedded.world import EmbeddedWorld
from sim.env.driving import DrivingEnv
from sim.maps.loader import MapSource
from tests.highway_maps import NO_SIDEWALK_TOWN, ring_road_xodr

HIGHWAY_WORLD = {"map": "procedural", "procedural": NO_SIDEWALK_TOWN.model_dump()}


def test_spawn_walkers_on_a_map_without_sidewalks_is_a_spawn_error():
    for world in (EmbeddedWorld(**HIGHWAY_WORLD),
                  EmbeddedWorld(source=MapSource("ring", ring_road_xodr(), None, trusted=True))):
        assert world.spawn_walkers(0) == []
        with pytest.raises(SpawnError, match=rf"cannot spawn 3 walkers: {world.source.name} has no sidewalks"):
            world.spawn_walkers(3)
        assert not world.actors  # nothing half-spawned
        world.spawn_traffic(2)
        world.tick()


def test_env_with_walkers_on_a_highway_town_warns_once_and_runs_without_them():
    env = DrivingEnv(world=HIGHWAY_WORLD, traffic={"vehicles": 3, "walkers": 5}, observation={"mode": "state"},
                     routes={"min_length_m": 60, "max_length_m": 120})
    with pytest.warns(UserWarning, match=r"traffic.walkers is 5 but .* has no sidewalks.*spawns no walkers"):
        obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    kinds = [record.kind for record in env.world.actors.values()]
    assert ActorKind.WALKER not in kinds and kinds.count(ActorKind.VEHICLE) == 4  # ego + 3 NPCs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: later resets are quiet
        env.reset(seed=1)
        for _ in range(5):
            env.step(np.array([0.5, 0.0]))
    env.close()


def test_env_without_walkers_on_a_highway_town_is_quiet():
    env = DrivingEnv(world=HIGHWAY_WORLD, traffic={"vehicles": 2, "walkers": 0}, observation={"mode": "state"},
                     routes={"min_length_m": 60, "max_length_m": 120})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=0)
    env.close()
