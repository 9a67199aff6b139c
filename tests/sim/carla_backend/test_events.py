"""Client-side red-light, stop-sign and off-road events: the embedded world's rules, on any backend."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import OffRoadEvent, RedLightEvent, TrafficLightState
from sim.carla_backend.events import FreeVehicleMonitor
from sim.embedded.world import EmbeddedWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddedWorld(map="Town01", seed=0)


def _path_into_junction(world):
    lanes, signals = world.lanes, world.signals
    for lane in np.flatnonzero(signals.lane_light >= 0).tolist():
        succ = lanes.successors[lane, : lanes.num_successors[lane]]
        junction = [int(s) for s in succ if lanes.is_junction[s]]
        if junction:
            points = np.concatenate([lanes.lane_points(lane)[-12:], lanes.lane_points(junction[0])[1:8]])
            yaw = np.arctan2(np.gradient(points[:, 1]), np.gradient(points[:, 0]))
            return lane, points[:, :2], yaw
    raise AssertionError("no signalised lane found")


@pytest.mark.parametrize("state, expected", [(TrafficLightState.RED, 1), (TrafficLightState.GREEN, 0)])
def test_entering_a_junction_on_red_raises_one_red_light_event(world, state, expected):
    lane, path, yaw = _path_into_junction(world)
    monitor = FreeVehicleMonitor(world.lanes, world.signals, world.area_raster)
    lights = np.full(world.signals.num_lights, int(TrafficLightState.GREEN), dtype=np.int8)
    lights[world.signals.lane_light[lane]] = int(state)
    events = []
    for k in range(path.shape[0]):
        events += monitor.update(k, [7], path[k:k + 1], yaw[k:k + 1], np.array([5.0]), lights)
    red = [e for e in events if isinstance(e, RedLightEvent)]
    assert len(red) == expected
    if red:
        assert red[0].actor_id == 7 and red[0].light_id == world.signals.light_id[world.signals.lane_light[lane]]


def test_leaving_the_road_and_coming_back(world):
    monitor = FreeVehicleMonitor(world.lanes, world.signals, world.area_raster)
    lane, path, yaw = _path_into_junction(world)
    lights = np.zeros(world.signals.num_lights, dtype=np.int8)
    on = monitor.update(0, [3], path[:1], yaw[:1], np.zeros(1), lights)
    off = monitor.update(1, [3], np.array([[1e4, 1e4]]), yaw[:1], np.zeros(1), lights)
    back = monitor.update(2, [3], path[:1], yaw[:1], np.zeros(1), lights)
    assert on == []
    assert [type(e) for e in off] == [OffRoadEvent] and off[0].entered
    assert [type(e) for e in back] == [OffRoadEvent] and not back[0].entered
