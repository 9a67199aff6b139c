"""Lane-graph connectivity: no lane is lost, links are CARLA's own, and the main component covers the towns.

CARLA's ``get_topology()`` is the reference for what is linked. Generated maps
(tests/sim/maps/xodr_builder.py and procedural towns) cover each linking case:
lane-section changes, road-to-road links by contact point ``start`` and
``end`` (the driving direction flips), lanes that appear and end, merges,
non-driving lane types, multi-lane roads whose lanes reach each other only by
lane changes.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import carla
import networkx as nx
import numpy as np
import pytest

from sim.embedded.world import EmbeddedWorld
from sim.maps.lanes import build_lane_graph
from sim.maps.loader import load_carla_map, procedural_source, resolve_map
from sim.maps.procedural import ProceduralTownConfig

sys.path.insert(0, str(Path(__file__).parent))
from xodr_builder import ring, stadium  # noqa: E402

PROCEDURAL = {
    "grid1x1": ProceduralTownConfig(grid_rows=1, grid_cols=1),
    "grid2x4_2lanes": ProceduralTownConfig(grid_rows=2, grid_cols=4, lanes_per_direction=2, seed=3),
    "grid3x3_3lanes_jitter": ProceduralTownConfig(lanes_per_direction=3, block_length_m=120.0,
                                                  block_length_jitter=0.2, seed=5),
    "ring_highway": ProceduralTownConfig(highway=True, block_length_m=120.0, seed=1),
    "nearest_turns_3lanes": ProceduralTownConfig(lanes_per_direction=3, block_length_m=120.0,
                                                 turn_lanes="nearest", seed=6),
    "nearest_turns_ring_highway": ProceduralTownConfig(grid_rows=2, grid_cols=3, lanes_per_direction=2, highway=True,
                                                       block_length_m=120.0, turn_lanes="nearest", seed=7),
}


def _key(waypoint) -> tuple[int, int, int]:
    return (waypoint.road_id, waypoint.section_id, waypoint.lane_id)


@functools.lru_cache(maxsize=None)
def _town(name: str):
    source = procedural_source(PROCEDURAL[name]) if name in PROCEDURAL else resolve_map(name)
    carla_map = load_carla_map(source)
    return carla_map, build_lane_graph(carla_map, source.xodr_text)


@functools.lru_cache(maxsize=None)
def _generated(text: str):
    carla_map = carla.Map("generated", text)
    return carla_map, build_lane_graph(carla_map, text)


def _successors(lanes, key) -> set:
    lane = lanes.index[key]
    return {lanes.keys[b] for b in lanes.successors[lane, : lanes.num_successors[lane]]}


def _assert_matches_carla(carla_map, lanes, gap_m: float = 0.5) -> None:
    """Every lane CARLA links is in the graph with exactly CARLA's successors; lane ends meet their successors."""
    topology: dict = {}
    for a, b in carla_map.get_topology():
        topology.setdefault(_key(a), set()).add(_key(b))
    for key, successors in topology.items():
        assert key in lanes.index, f"lane {key} is lost"
        assert successors <= set(lanes.index), f"successors of {key} are lost: {successors - set(lanes.index)}"
        assert _successors(lanes, key) == successors, key
    for lane in range(lanes.num_lanes):
        end = lanes.lane_points(lane)[-1]
        for nxt in lanes.successors[lane, : lanes.num_successors[lane]]:
            assert np.linalg.norm(lanes.lane_points(int(nxt))[0] - end) < gap_m, (lanes.keys[lane], lanes.keys[nxt])


def _directions_are_loops(lanes) -> list[set]:
    """Strongly connected components (following lanes) of more than one lane."""
    return [c for c in nx.strongly_connected_components(lanes.graph) if len(c) > 1]


@pytest.mark.parametrize("town", ["Town01", "Town02", "Town10HD", *PROCEDURAL])
def test_graph_links_are_carlas(town):
    carla_map, lanes = _town(town)
    _assert_matches_carla(carla_map, lanes)


@pytest.mark.parametrize("town", ["Town01", "Town02", "Town10HD", *PROCEDURAL])
def test_main_component_covers_the_towns(town):
    _, lanes = _town(town)
    assert lanes.in_main_component.mean() >= 0.95
    assert lanes.in_follow_core.any()
    # Every main-component lane has a successor in it: traffic that follows lanes never meets a dead end.
    main = lanes.in_main_component
    for lane in np.flatnonzero(main):
        assert main[lanes.successors[lane, : lanes.num_successors[lane]]].any(), lanes.keys[lane]


def test_shipped_towns_are_fully_connected():
    for town in ("Town01", "Town02", "Town10HD"):
        assert _town(town)[1].in_main_component.all(), town


def test_lanes_reached_only_by_lane_changes_are_in_the_main_component():
    # Town10HD's outer ring lane and the middle lanes of nearest-lane-turn towns form loops of their own when
    # lanes are only followed; lane changes join them to the rest.
    for town in ("Town10HD", "nearest_turns_3lanes", "nearest_turns_ring_highway"):
        _, lanes = _town(town)
        assert lanes.in_follow_core.mean() < 0.96
        assert lanes.in_main_component.all(), town
    _, lanes = _town("nearest_turns_3lanes")
    assert lanes.in_follow_core.mean() < 0.5


@pytest.mark.parametrize("reverse", [frozenset(), frozenset({3}), frozenset({2, 4}), frozenset({1, 2, 3, 4})],
                         ids=["forward", "road3_reversed", "roads2_4_reversed", "all_reversed"])
def test_road_links_by_contact_point(reverse):
    # Roads joined end to end without junctions; reversed roads are reached at their 'end' and lane -1 of one
    # road continues as lane +1 of the next.
    carla_map, lanes = _generated(stadium(reverse=reverse))
    _assert_matches_carla(carla_map, lanes)
    loops = _directions_are_loops(lanes)
    assert sorted(len(c) for c in loops) == [4, 4]
    assert lanes.in_main_component.sum() == 4  # the two directions never meet: one of them is the main component


@pytest.mark.parametrize("reverse", [frozenset(), frozenset({1, 3})], ids=["forward", "reversed"])
def test_lane_section_changes_keep_lanes_linked(reverse):
    carla_map, lanes = _generated(stadium(split=frozenset({1, 3}), reverse=reverse))
    _assert_matches_carla(carla_map, lanes)
    assert sorted(len(c) for c in _directions_are_loops(lanes)) == [6, 6]


def test_merge_of_two_lanes_into_one():
    carla_map, lanes = _generated(stadium(merge=True))
    _assert_matches_carla(carla_map, lanes, gap_m=1.8)  # the merging lane narrows to the edge of the one it joins
    # CARLA links the narrowing lane on to the lane it merges into, but not from the lane before it (the file's
    # split link): it is entered by a lane change, and in the main component for that.
    assert _successors(lanes, (2, 0, -2)) == {(2, 1, -1)}
    assert (2, 0, -2) not in _successors(lanes, (1, 0, -1))
    lane = lanes.index[(2, 0, -2)]
    assert lanes.left_lane[lane] == lanes.index[(2, 0, -1)]
    assert lanes.in_main_component[lane] and not lanes.in_follow_core[lane]


def test_a_lane_that_appears_and_ends_is_kept_but_not_driven_into():
    # Lane -2 of road 2's second section widens from nothing and ends with the road, linked to nothing:
    # get_topology() never names it (the previous builder lost it), yet cars may change onto it.
    carla_map, lanes = _generated(stadium(taper=True))
    _assert_matches_carla(carla_map, lanes)
    assert (2, 1, -2) in lanes.index
    lane = lanes.index[(2, 1, -2)]
    assert lanes.num_successors[lane] == 0 and not lanes.in_main_component[lane]
    assert lanes.width_m[lanes.offset[lane]] < 0.1 < lanes.width_m[lanes.offset[lane] + lanes.count[lane] - 1]
    assert not any(p.lane == lane for p in lanes.spawn_points(spacing_m=2.0, margin_m=1.0))
    found, _, _ = lanes.project(lanes.lane_points(lane)[-2:-1, :2], lanes.yaw_rad[lanes.offset[lane]][None])
    assert found[0] == lane


def test_non_driving_lanes_stay_out():
    carla_map, lanes = _generated(stadium(extra_lane_type="bidirectional"))
    assert all(key[2] in (-1, 1) for key in lanes.keys)
    _assert_matches_carla(carla_map, lanes)


def test_junction_connecting_roads_link_through():
    carla_map, lanes = _generated(ring(20.0))
    _assert_matches_carla(carla_map, lanes)
    assert sorted(len(c) for c in _directions_are_loops(lanes)) == [4, 4]
    assert lanes.is_junction.sum() == 4


def test_npc_traffic_is_not_absorbed_by_side_loops():
    # Town10HD's outer ring lane is entered from three junction lanes but left only by lane changes. NPCs that
    # never change lanes must not pile up there: they prefer successors in the lane-following core.
    world = EmbeddedWorld(map="Town10HD", seed=0)
    side_loop = ~world.lanes.in_follow_core
    world.spawn_traffic(60)
    on_loop_at_start = set(world.traffic.actor_id[side_loop[world.traffic.lane]].tolist())
    for _ in range(2000):
        world.tick()
    on_loop_now = set(world.traffic.actor_id[side_loop[world.traffic.lane]].tolist())
    assert on_loop_now <= on_loop_at_start


def test_connectivity_benchmark_reports_before_and_after():
    from benchmarks.lane_graph_connectivity import PROCEDURAL_TOWNS, measure

    label = "procedural 3x3, 3 lanes, nearest-lane turns"
    row = measure(label, procedural_source(PROCEDURAL_TOWNS[label]))
    assert row["town"] == label and row["driving_lanes"] == row["before_lanes"] == 300
    assert row["before"] < 0.5 and row["after"] == 1.0 and row["follow_core"] == row["before"]
    assert row["carla_edges_missing"] == 0
