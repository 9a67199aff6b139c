"""Route sets on any town: length classes and turns adapt to the map (ring road, tiny town), options are strict."""

from __future__ import annotations

import numpy as np
import pytest

from sim.scenarios.routes import (FULL_SIZE_MAP_M, ROUTE_CLASSES, RouteError, generate_route_set, map_extent,
                                  map_route_classes, plan_route, random_route)
from tests.highway_maps import TINY_TOWN, lane_graph, ring_road_xodr, town_xodr


@pytest.fixture(scope="module")
def ring():
    """A junction-free ring road, two lanes each way (a highway-only map)."""
    return lane_graph("ring", ring_road_xodr(radius_m=120.0, lanes_per_direction=2))


@pytest.fixture(scope="module")
def tiny():
    """One junction and about half a kilometre of lanes."""
    return lane_graph("tiny", town_xodr(TINY_TOWN))


def _class_of(route) -> str:
    return route.route_id.split("_")[-2]


def test_full_size_towns_keep_the_standard_classes(town01, town10):
    for _, _, lanes in (town01, town10):
        assert map_extent(lanes).lane_length_m >= FULL_SIZE_MAP_M
        assert map_route_classes(lanes) == ROUTE_CLASSES


def test_ring_road_classes_scale_with_its_length_and_ask_no_turns(ring):
    extent = map_extent(ring)
    assert extent.turning_junctions == 0 and 0 < extent.lane_length_m < FULL_SIZE_MAP_M
    classes = map_route_classes(ring)
    scale = extent.lane_length_m / FULL_SIZE_MAP_M
    assert list(classes) == list(ROUTE_CLASSES)
    for name, (low, high, turns) in classes.items():
        assert turns == 0
        assert low == pytest.approx(ROUTE_CLASSES[name][0] * scale, abs=0.5)
        assert high == pytest.approx(ROUTE_CLASSES[name][1] * scale, abs=0.5)


def test_ring_road_gets_a_full_route_set_that_replans_exactly(ring):
    classes = map_route_classes(ring)
    routes = generate_route_set(ring, "ring", seed=0, per_class=3)
    assert [_class_of(r) for r in routes] == ["short"] * 3 + ["medium"] * 3 + ["long"] * 3
    for route in routes:
        low, high, _ = classes[_class_of(route)]
        assert low - 1.0 <= route.length_m <= high + 1.0
        again = plan_route(ring, route.waypoints_xy, route.route_id)
        assert again.lanes == route.lanes and again.length_m == pytest.approx(route.length_m, abs=1.0)


def test_waypoints_keep_to_their_lane_beside_a_shorter_parallel_one(ring):
    """On a multi-lane curve the inner lane is shorter; a route drawn on the outer lane still re-plans on it."""
    rng = np.random.default_rng(2)
    for _ in range(10):
        route = random_route(ring, rng, 80.0, 300.0)
        again = plan_route(ring, route.waypoints_xy)
        assert again.lanes == route.lanes
        assert again.length_m == pytest.approx(route.length_m, abs=1.0)


def test_tiny_town_classes_shrink_and_turns_are_capped_by_its_junctions(tiny):
    extent = map_extent(tiny)
    assert extent.turning_junctions == 1
    classes = map_route_classes(tiny)
    assert all(turns == 1 for _, _, turns in classes.values())
    assert classes["long"][1] < ROUTE_CLASSES["medium"][0]  # its long routes are short by the standard
    routes = generate_route_set(tiny, "tiny", seed=1, per_class=2)
    assert len(routes) == 6
    for route in routes:
        low, high, turns = classes[_class_of(route)]
        assert low - 1.0 <= route.length_m <= high + 1.0 and route.turns >= turns


def test_classes_given_are_strict_unless_turns_may_relax(tiny):
    asked = {"short": (30.0, 60.0, 3)}  # three turns in 60 m at the town's one junction: impossible
    with pytest.raises(RouteError, match=r"tiny: found only 0 of 2 short routes \(30-60 m, >= 3 turns\)"):
        generate_route_set(tiny, "tiny", per_class=2, classes=asked)
    routes = generate_route_set(tiny, "tiny", per_class=2, classes=asked, relax_turns=True)
    assert len(routes) == 2 and all(30.0 - 1.0 <= r.length_m <= 60.0 + 1.0 and r.turns < 3 for r in routes)


def test_same_seed_same_route_set(tiny):
    first = generate_route_set(tiny, "tiny", seed=4, per_class=1)
    again = generate_route_set(tiny, "tiny", seed=4, per_class=1)
    assert [r.waypoints_xy.tolist() for r in first] == [r.waypoints_xy.tolist() for r in again]


def test_a_map_too_small_for_any_route_is_one_clear_error():
    small = lane_graph("roundabout", ring_road_xodr(radius_m=6.0, lanes_per_direction=1, lane_width_m=3.0))
    with pytest.raises(RouteError, match=r"too small to host a route: .* \d+ m of driving lanes"):
        map_route_classes(small)
    with pytest.raises(RouteError, match="too small"):
        generate_route_set(small, "roundabout")


@pytest.mark.parametrize("classes, problem", [
    ({"short": (0.0, 50.0, 1)}, "0 < min length"),
    ({"short": (80.0, 50.0, 1)}, "0 < min length"),
    ({"short": (30.0, 50.0, -1)}, "turns >= 0"),
])
def test_bad_classes_name_the_class(tiny, classes, problem):
    with pytest.raises(RouteError, match=f"route class 'short'.*{problem}"):
        generate_route_set(tiny, "tiny", classes=classes)
