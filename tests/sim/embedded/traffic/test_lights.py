"""Traffic lights and stop signs: lanes they control, cycles, overrides, generated lights."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import TrafficLightState
from sim.maps.lanes import build_lane_graph
from sim.config import TrafficLightTiming
from sim.embedded.traffic.lights import TrafficLights
from sim.maps.signals import build_signal_layout


def test_town01_lights_control_every_junction_approach(town01):
    _, carla_map, lanes = town01
    layout = build_signal_layout(carla_map, lanes)
    assert not layout.generated and layout.num_lights == 36
    incoming = [k for k in range(lanes.num_lanes) if not lanes.is_junction[k]
                and lanes.is_junction[lanes.successors[k, : lanes.num_successors[k]]].any()]
    assert all(layout.lane_light[k] >= 0 for k in incoming)
    assert (layout.junction_id >= 0).all()


def test_town10_has_stop_signs(town10):
    _, carla_map, lanes = town10
    layout = build_signal_layout(carla_map, lanes)
    assert layout.stop_id.size >= 3 and (layout.lane_stop >= 0).sum() >= 3


def test_one_green_per_junction_with_all_red_gaps(town01):
    _, carla_map, lanes = town01
    layout = build_signal_layout(carla_map, lanes)
    lights = TrafficLights(layout, TrafficLightTiming(green_s=10, yellow_s=3, all_red_s=1))
    seen_states = set()
    for t in np.arange(0, 120, 0.25):
        state = lights.update(float(t))
        seen_states |= set(state.tolist())
        for junction in np.unique(layout.junction_id):
            members = layout.junction_id == junction
            assert (state[members] != TrafficLightState.RED).sum() <= 1
    assert seen_states == {0, 1, 2}


def test_cycle_timing_of_one_light(town01):
    _, carla_map, lanes = town01
    layout = build_signal_layout(carla_map, lanes)
    lights = TrafficLights(layout, TrafficLightTiming(green_s=8, yellow_s=2, all_red_s=1))
    times = np.arange(0, 200, 0.05)
    states = np.array([lights.states_at(float(t))[0] for t in times])
    green = (states == TrafficLightState.GREEN).mean()
    group = (layout.junction_id == layout.junction_id[0]).sum()
    assert green == pytest.approx(8 / (11 * group), abs=0.02)


def test_force_and_timing_changes(town01):
    _, carla_map, lanes = town01
    lights = TrafficLights(build_signal_layout(carla_map, lanes))
    lights.force_state(0, TrafficLightState.GREEN)
    assert all(lights.states_at(float(t))[0] == TrafficLightState.GREEN for t in range(0, 100, 7))
    lights.force_state(0, None)
    with pytest.raises(ValueError, match="green_s"):
        lights.set_timing(0, green_s=0)
    with pytest.raises(ValueError, match="yellow_s"):
        lights.set_timing(0, yellow_s=float("nan"))


def test_lights_generated_when_map_has_none(town01):
    source, carla_map, _ = town01
    import carla

    stripped = source.xodr_text.replace('type="1000001"', 'type="999"')
    bare = carla.Map("bare", stripped)
    lanes = build_lane_graph(bare, stripped)
    layout = build_signal_layout(bare, lanes)
    assert layout.generated and layout.num_lights > 0
    off = build_signal_layout(bare, lanes, generate_missing=False)
    assert off.num_lights == 0


def test_bad_timing_config_rejected():
    with pytest.raises(ValueError):
        TrafficLightTiming(green_s=-1)
    with pytest.raises(ValueError):
        TrafficLightTiming.model_validate({"green": 3})


def test_cached_update_matches_direct_computation(town01):
    _, carla_map, lanes = town01
    lights = TrafficLights(build_signal_layout(carla_map, lanes))
    for t in np.arange(0.0, 90.0, 0.05):
        np.testing.assert_array_equal(lights.update(float(t)), lights.states_at(float(t)))
    lights.force_state(2, TrafficLightState.YELLOW)
    assert lights.update(90.0)[2] == TrafficLightState.YELLOW
