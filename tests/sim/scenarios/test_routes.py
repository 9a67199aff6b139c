"""Routes: planning through waypoints, commands, route files (shipped sets included), progress tracking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.scenarios.routes import (ROUTE_CLASSES, RoadOption, RouteError, RouteTracker, load_route_file, plan_route,
                            random_route, write_route_file)

ROUTE_DIR = Path(__file__).resolve().parents[3] / "configs" / "routes"


@pytest.fixture(scope="module")
def lanes(town01):
    return town01[2]


def test_random_route_is_connected_dense_and_in_range(lanes):
    route = random_route(lanes, np.random.default_rng(0), 200.0, 300.0)
    assert 200.0 - 1.0 <= route.length_m <= 300.0 + 1.0
    steps = np.hypot(*np.diff(route.points_xy, axis=0).T)
    assert steps.max() < 1.5  # dense: about a metre apart, no jumps between lanes
    for a, b in zip(route.lanes, route.lanes[1:]):
        assert lanes.graph.has_edge(a, b)


def test_replanning_from_waypoints_gives_the_same_route(lanes):
    route = random_route(lanes, np.random.default_rng(3), 250.0, 400.0)
    again = plan_route(lanes, route.waypoints_xy)
    assert again.length_m == pytest.approx(route.length_m, abs=1.0)
    np.testing.assert_allclose(again.points_xy[-1], route.points_xy[-1], atol=1.0)


def test_junction_commands_follow_the_turn_direction(lanes):
    """LEFT where the heading turns anticlockwise seen from above (yaw decreases in CARLA's frame)."""
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        route = random_route(lanes, rng, 150.0, 300.0)
        for lane in np.unique(route.lane[route.in_junction]):
            rows = np.flatnonzero(route.lane == lane)
            change = math.atan2(math.sin(route.yaw_rad[rows[-1]] - route.yaw_rad[rows[0]]),
                                math.cos(route.yaw_rad[rows[-1]] - route.yaw_rad[rows[0]]))
            command = RoadOption(int(route.command[rows[0]]))
            expected = RoadOption.RIGHT if change > 0.6 else RoadOption.LEFT if change < -0.6 else None
            if expected is not None:
                assert command == expected
                seen.add(command)
        assert np.all(route.command[~route.in_junction] == RoadOption.LANEFOLLOW)
    assert seen == {RoadOption.LEFT, RoadOption.RIGHT}


def test_tracker_progress_lateral_sign_and_command(lanes):
    route = random_route(lanes, np.random.default_rng(4), 150.0, 250.0)
    tracker = RouteTracker(route)
    i = 20
    yaw = route.yaw_rad[i]
    right = np.array([-math.sin(yaw), math.cos(yaw)])  # CARLA: +y is to the right of +x
    x, y = route.points_xy[i] + 1.5 * right
    progress = tracker.update(x, y, yaw + 0.1)
    assert progress.s_m == pytest.approx(route.s_m[i], abs=0.6)
    assert progress.lateral_m == pytest.approx(1.5, abs=0.1)
    assert progress.heading_error_rad == pytest.approx(0.1, abs=1e-6)
    # Progress never moves backwards.
    assert tracker.update(*route.points_xy[0], yaw).s_m >= progress.s_m - 1e-9


def test_bad_waypoints_and_files(lanes, tmp_path):
    with pytest.raises(RouteError, match="waypoint 0"):
        plan_route(lanes, [[1e5, 1e5], [0.0, 0.0]])
    with pytest.raises(RouteError, match="K >= 2"):
        plan_route(lanes, [[0.0, 0.0]])
    with pytest.raises(RouteError, match="does not exist"):
        load_route_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("town: Town01\nroutes:\n  - id: a\n    waypoints: [[1, 2]]\n")
    with pytest.raises(RouteError, match="at least two"):
        load_route_file(bad)
    bad.write_text("town: Town01\nroutes:\n  - id: a\n    waypoints: [[1, 2], [3, 4]]\n    speed: 3\n")
    with pytest.raises(RouteError, match="exactly the keys"):
        load_route_file(bad)
    bad.write_text("town: Town01\nroutes: [\n")
    with pytest.raises(RouteError, match="not valid YAML"):
        load_route_file(bad)


def test_write_and_read_back(lanes, tmp_path):
    route = random_route(lanes, np.random.default_rng(5), 150.0, 250.0, route_id="mine")
    path = tmp_path / "r.yaml"
    write_route_file(path, "Town01", [route], header="test")
    loaded = load_route_file(path)
    assert loaded.town == "Town01" and loaded.routes[0].route_id == "mine"
    with pytest.raises(RouteError, match="nope"):
        loaded.select(("nope",))


@pytest.mark.parametrize("town", ["Town01", "Town10HD"])
def test_shipped_route_sets_plan_within_their_classes(town, town01, town10):
    lanes = (town01 if town == "Town01" else town10)[2]
    route_file = load_route_file(ROUTE_DIR / f"{town.lower()}.yaml")
    assert route_file.town == town and len(route_file.routes) == 12
    for spec in route_file.routes:
        route = plan_route(lanes, np.asarray(spec.waypoints_xy), spec.route_id)
        low, high, turns = ROUTE_CLASSES[spec.route_id.split("_")[1]]
        assert low - 1.0 <= route.length_m <= high + 1.0, spec.route_id
        assert route.turns >= turns, spec.route_id
