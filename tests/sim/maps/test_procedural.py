"""Tests for the procedural OpenDRIVE town generator, checked through carla.Map."""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import carla
import networkx as nx
import pytest
import yaml
from pydantic import ValidationError

from sim.maps.procedural import ProceduralTownConfig, generate_town, write_town

EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "world" / "procedural_small.yaml"
TRAFFIC_LIGHT, STOP, SPEED_LIMIT = "1000001", "206", "274"


@functools.lru_cache(maxsize=None)
def _text(cfg: ProceduralTownConfig) -> str:
    return generate_town(cfg)


@functools.lru_cache(maxsize=None)
def _map(cfg: ProceduralTownConfig) -> carla.Map:
    return carla.Map("procedural", _text(cfg))


def _road_names(cfg: ProceduralTownConfig) -> dict[int, str]:
    return {int(road.get("id")): road.get("name") for road in ET.fromstring(_text(cfg)).findall("road")}


def _lane_key(wp: carla.Waypoint) -> tuple[int, int, int]:
    return (wp.road_id, wp.section_id, wp.lane_id)


def _lane_graph(town: carla.Map) -> nx.DiGraph:
    graph = nx.DiGraph()
    for w0, w1 in town.get_topology():
        graph.add_edge(_lane_key(w0), _lane_key(w1))
    return graph


def _junction_ids(town: carla.Map) -> set[int]:
    return {w.junction_id for w in town.generate_waypoints(2.0) if w.is_junction}


def _approach_lane(town: carla.Map, landmark: carla.Landmark) -> carla.Waypoint:
    """Driving waypoint at the landmark's s on the lane that the landmark is valid for."""
    positive = landmark.orientation == carla.LandmarkOrientation.Positive
    wp = town.get_waypoint_xodr(landmark.road_id, -1 if positive else 1, landmark.s)
    assert wp is not None and wp.lane_type == carla.LaneType.Driving
    return wp


def _yaw_gap_deg(a_deg: float, b_deg: float) -> float:
    return abs((a_deg - b_deg + 180.0) % 360.0 - 180.0)


DEFAULT = ProceduralTownConfig()
CONFIGS = {
    "default_3x3": DEFAULT,
    "single_junction": ProceduralTownConfig(grid_rows=1, grid_cols=1),
    "one_row": ProceduralTownConfig(grid_rows=1, grid_cols=4),
    "two_lanes_jitter": ProceduralTownConfig(
        grid_rows=2, grid_cols=3, lanes_per_direction=2, block_length_jitter=0.25, seed=7
    ),
    "three_lanes": ProceduralTownConfig(grid_rows=2, grid_cols=2, lanes_per_direction=3, block_length_m=100),
    "no_sidewalk_short_blocks": ProceduralTownConfig(sidewalk_width_m=0.0, block_length_m=30),
    "highway": ProceduralTownConfig(highway=True, traffic_light_share=0.5, seed=3),
    "highway_small_two_lanes": ProceduralTownConfig(grid_rows=1, grid_cols=2, highway=True, lanes_per_direction=2),
}


# -- loading, junctions, connectivity ------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_town_loads_with_expected_junctions_and_full_connectivity(name: str) -> None:
    cfg = CONFIGS[name]
    town = _map(cfg)
    assert len(town.get_topology()) > 0
    assert len(town.generate_waypoints(2.0)) > 0
    expected_junctions = cfg.grid_rows * cfg.grid_cols + (2 if cfg.highway else 0)
    assert len(_junction_ids(town)) == expected_junctions

    graph = _lane_graph(town)
    lanes = {_lane_key(w) for w in town.generate_waypoints(2.0)}
    assert lanes <= set(graph.nodes)
    largest = max(nx.strongly_connected_components(graph), key=len)
    # Every lane can be reached from every other one: no dead ends, no trapped lanes.
    assert len(largest) == graph.number_of_nodes()


@pytest.mark.parametrize("name", ["default_3x3", "single_junction", "highway"])
def test_every_lane_can_be_entered_and_left(name: str) -> None:
    """Successors and predecessors at both ends of every road lane (CARLA links both ways)."""
    cfg = CONFIGS[name]
    town = _map(cfg)
    checked = 0
    for road_id, road_name in _road_names(cfg).items():
        if road_name.startswith(("junction_", "highway_on_ramp", "highway_off_ramp")):
            continue  # connecting roads
        for lane_id in (-1, 1):
            wp = town.get_waypoint_xodr(road_id, lane_id, 1.0)
            if wp is None:
                continue  # one-way ramp
            assert wp.previous_until_lane_start(1.0)[-1].previous(2.0), (road_name, lane_id)
            assert wp.next_until_lane_end(1.0)[-1].next(2.0), (road_name, lane_id)
            checked += 1
    assert checked >= 8


def test_every_road_ends_in_a_junction_or_continues_directly() -> None:
    root = ET.fromstring(_text(DEFAULT))
    roads = [road for road in root.findall("road") if road.get("junction") == "-1"]
    assert roads
    for road in roads:
        link = road.find("link")
        ends = [link.find("predecessor"), link.find("successor")]
        assert all(end is not None for end in ends)
        if road.get("name").startswith("corner_loop"):
            # Two halves joined in the middle of the loop.
            assert sorted(end.get("elementType") for end in ends) == ["junction", "road"]
        else:
            assert all(end.get("elementType") == "junction" for end in ends)
    road_ids = {road.get("id") for road in root.findall("road")}
    junction_ids = {junction.get("id") for junction in root.findall("junction")}
    assert not road_ids & junction_ids  # CARLA tells junction links from road links by id


def test_jitter_changes_block_lengths_within_bounds() -> None:
    cfg = ProceduralTownConfig(grid_rows=4, grid_cols=4, block_length_jitter=0.3, seed=11)
    root = ET.fromstring(_text(cfg))
    streets = [float(r.get("length")) for r in root.findall("road") if r.get("name").startswith("street_")]
    regular = [float(r.get("length")) for r in ET.fromstring(_text(DEFAULT)).findall("road")
               if r.get("name").startswith("street_")]
    assert len(set(round(x, 6) for x in regular)) == 1
    assert len(set(round(x, 6) for x in streets)) > 3
    junction_arms_m = 80.0 - regular[0]  # both arm lengths of a regular street
    spacing = [length + junction_arms_m for length in streets]
    assert min(spacing) >= 80.0 * 0.7 - 1e-6 and max(spacing) <= 80.0 * 1.3 + 1e-6


# -- traffic control -------------------------------------------------------------


@pytest.mark.parametrize("share", [1.0, 0.5, 0.0])
def test_one_traffic_light_or_stop_sign_per_approach(share: float) -> None:
    cfg = ProceduralTownConfig(traffic_light_share=share, seed=5)
    town = _map(cfg)
    lights = town.get_all_landmarks_of_type(TRAFFIC_LIGHT)
    stops = town.get_all_landmarks_of_type(STOP)
    n_junctions = cfg.grid_rows * cfg.grid_cols
    n_lit = int(math.floor(share * n_junctions + 0.5))
    assert len(lights) == 4 * n_lit
    assert len(stops) == 4 * (n_junctions - n_lit)

    per_junction: dict[int, dict[str, int]] = {}
    for landmark in lights + stops:
        approach = _approach_lane(town, landmark)
        # The sign is valid for the lane it sits on and is found looking ahead from upstream.
        upstream = approach.previous(10.0)[0]
        assert landmark.id in {lm.id for lm in upstream.get_landmarks_of_type(15.0, landmark.type)}
        # Near the stop line: the junction starts a few metres ahead of the sign.
        assert not approach.next(3.5)[0].is_junction
        entry = approach.next(5.5)[0]
        assert entry.is_junction
        # Signs face the drivers they are valid for, as in CARLA's own towns.
        assert _yaw_gap_deg(landmark.transform.rotation.yaw, approach.transform.rotation.yaw + 180.0) < 1.0
        kinds = per_junction.setdefault(entry.junction_id, {})
        kinds[landmark.type] = kinds.get(landmark.type, 0) + 1
    assert len(per_junction) == n_junctions
    assert all(sum(kinds.values()) == 4 and len(kinds) == 1 for kinds in per_junction.values())


def test_traffic_lights_have_one_controller_each_listed_by_their_junction() -> None:
    root = ET.fromstring(_text(DEFAULT))
    controllers = root.findall("controller")
    lights = [s for s in root.iter("signal") if s.get("type") == TRAFFIC_LIGHT]
    assert sorted(c.find("control").get("signalId") for c in controllers) == sorted(s.get("id") for s in lights)
    for junction in root.findall("junction"):
        assert [c.get("sequence") for c in junction.findall("controller")] == ["0", "1", "2", "3"]
    town = _map(DEFAULT)
    light = town.get_all_landmarks_of_type(TRAFFIC_LIGHT)[0]
    assert [lm.id for lm in town.get_landmark_group(light)] == [light.id]


def test_speed_limit_signs_carry_the_configured_limit() -> None:
    cfg = ProceduralTownConfig(speed_limit_kph=40.0)
    signs = _map(cfg).get_all_landmarks_of_type(SPEED_LIMIT)
    assert signs and all(sign.value == pytest.approx(40.0) for sign in signs)


# -- lanes, markings, sidewalks, crosswalks -------------------------------------------


def _street_waypoint(town: carla.Map) -> carla.Waypoint:
    return next(w for w in town.generate_waypoints(2.0) if not w.is_junction and w.lane_id == -1)


def _walk_right_to(wp: carla.Waypoint, lane_type: carla.LaneType) -> carla.Waypoint | None:
    lane = wp.get_right_lane()
    while lane is not None and lane.lane_type != lane_type:
        lane = lane.get_right_lane()
    return lane


def test_sidewalk_lanes_on_the_outer_edge() -> None:
    town = _map(CONFIGS["two_lanes_jitter"])
    street_ids = _street_ids(CONFIGS["two_lanes_jitter"])
    street = [w for w in town.generate_waypoints(2.0) if not w.is_junction and w.road_id in street_ids]
    for wp in street[::7]:
        sidewalk = _walk_right_to(wp, carla.LaneType.Sidewalk)
        assert sidewalk is not None
        assert sidewalk.lane_width == pytest.approx(2.5)
        assert sidewalk.get_right_lane() is None  # outermost lane of the road
    no_sidewalks = _map(CONFIGS["no_sidewalk_short_blocks"])
    for wp in no_sidewalks.generate_waypoints(5.0):
        assert _walk_right_to(wp, carla.LaneType.Sidewalk) is None


def _street_ids(cfg: ProceduralTownConfig) -> set[int]:
    names = _road_names(cfg)
    return {road_id for road_id, name in names.items() if name.startswith(("street_", "border_loop", "corner_loop"))}


def test_lane_markings_centre_lane_and_edge_lines() -> None:
    town = _map(CONFIGS["two_lanes_jitter"])
    inner = _street_waypoint(town)
    assert inner.left_lane_marking.type == carla.LaneMarkingType.SolidSolid
    assert inner.left_lane_marking.color == carla.LaneMarkingColor.Yellow
    assert inner.right_lane_marking.type == carla.LaneMarkingType.Broken
    assert inner.right_lane_marking.color == carla.LaneMarkingColor.White
    assert inner.lane_change == carla.LaneChange.Right
    outer = inner.get_right_lane()
    assert outer.lane_type == carla.LaneType.Driving
    assert outer.left_lane_marking.type == carla.LaneMarkingType.Broken
    assert outer.right_lane_marking.type == carla.LaneMarkingType.Solid
    assert outer.lane_change == carla.LaneChange.Left
    junction_wp = next(w for w in town.generate_waypoints(2.0) if w.is_junction)
    assert junction_wp.left_lane_marking.type == carla.LaneMarkingType.NONE

    single = _street_waypoint(_map(DEFAULT))
    assert single.left_lane_marking.type == carla.LaneMarkingType.SolidSolid
    assert single.right_lane_marking.type == carla.LaneMarkingType.Solid
    assert single.lane_change == carla.LaneChange.NONE


def _polygons(points: list[carla.Location]) -> list[list[carla.Location]]:
    polygons, current = [], []
    for point in points:
        current.append(point)
        if len(current) > 1 and current[-1].distance(current[0]) < 1e-6:
            polygons.append(current)
            current = []
    assert not current
    return polygons


def test_crosswalks_on_every_arm_of_signalised_junctions() -> None:
    cfg = ProceduralTownConfig(traffic_light_share=0.5, seed=5)
    town = _map(cfg)
    n_lit = len(town.get_all_landmarks_of_type(TRAFFIC_LIGHT)) // 4
    polygons = _polygons(town.get_crosswalks())
    assert len(polygons) == 4 * n_lit
    for polygon in polygons:
        assert len(polygon) == 5
        centre = carla.Location(
            x=sum(p.x for p in polygon[:4]) / 4, y=sum(p.y for p in polygon[:4]) / 4, z=0.0
        )
        # Centred on the centre line of a road, right at the junction.
        wp = town.get_waypoint(centre)
        assert wp.transform.location.distance(centre) == pytest.approx(wp.lane_width / 2, abs=1e-3)
        assert not wp.is_junction
        assert any(w.is_junction for w in wp.next(4.0) + wp.previous(4.0))
        # Spans both carriageways: 2 lanes of 3.5 m across, 3 m along the road.
        sides = sorted(polygon[i].distance(polygon[i + 1]) for i in range(4))
        assert sides[0] == pytest.approx(3.0, abs=1e-3) and sides[-1] == pytest.approx(7.0, abs=1e-3)
    assert _map(ProceduralTownConfig(traffic_light_share=0.0)).get_crosswalks() == []


# -- highway ---------------------------------------------------------------------------


def test_highway_ring_is_two_lanes_each_way_and_joined_to_the_grid() -> None:
    cfg = CONFIGS["highway"]
    town = _map(cfg)
    names = _road_names(cfg)
    graph = _lane_graph(town)
    highway = [n for n in graph.nodes if names[n[0]].startswith("highway_ring")]
    grid = [n for n in graph.nodes if names[n[0]].startswith("street_")]
    assert highway and grid
    assert nx.has_path(graph, grid[0], highway[0]) and nx.has_path(graph, highway[0], grid[0])

    ring_wp = town.get_waypoint_xodr(highway[0][0], -1, 50.0)
    assert ring_wp.get_right_lane().lane_type == carla.LaneType.Driving
    assert ring_wp.get_right_lane().get_right_lane() is None
    assert ring_wp.get_left_lane().lane_id == 1

    ramps = {name for name in names.values() if name in ("on_ramp", "off_ramp")}
    assert ramps == {"on_ramp", "off_ramp"}
    # The on-ramp meets the ring at a stop sign; ring traffic has priority.
    on_ramp_id = next(road_id for road_id, name in names.items() if name == "on_ramp")
    assert any(lm.road_id == on_ramp_id for lm in town.get_all_landmarks_of_type(STOP))


def test_highway_needs_two_columns() -> None:
    with pytest.raises(ValueError, match="grid_cols >= 2"):
        ProceduralTownConfig(highway=True, grid_cols=1)


# -- determinism, output ----------------------------------------------------------------


def test_same_config_gives_same_bytes() -> None:
    cfg = ProceduralTownConfig(block_length_jitter=0.2, traffic_light_share=0.5, seed=42, highway=True)
    first = generate_town(cfg)
    generate_town(ProceduralTownConfig(seed=1))  # no state may leak between calls
    assert generate_town(cfg) == first
    assert 'date="2024-01-01T00:00:00"' in first


def test_different_seeds_give_different_towns() -> None:
    assert generate_town(ProceduralTownConfig(block_length_jitter=0.1, seed=0)) != generate_town(
        ProceduralTownConfig(block_length_jitter=0.1, seed=1)
    )
    lit = [
        {lm.road_id for lm in _map(ProceduralTownConfig(traffic_light_share=0.5, seed=s)).get_all_landmarks_of_type(
            TRAFFIC_LIGHT)}
        for s in (0, 1)
    ]
    assert lit[0] != lit[1]


def test_geo_reference_puts_the_origin_at_lat_lon_zero() -> None:
    geo = _map(DEFAULT).transform_to_geolocation(carla.Location(0.0, 0.0, 0.0))
    assert geo.latitude == pytest.approx(0.0, abs=1e-9) and geo.longitude == pytest.approx(0.0, abs=1e-9)


def test_write_town_writes_the_generated_text(tmp_path: Path) -> None:
    path = write_town(DEFAULT, tmp_path / "town.xodr")
    assert path == tmp_path / "town.xodr"
    assert path.read_text(encoding="utf-8") == _text(DEFAULT)


def test_example_config_loads() -> None:
    cfg = ProceduralTownConfig(**yaml.safe_load(EXAMPLE_CONFIG.read_text()))
    expected = cfg.grid_rows * cfg.grid_cols + (2 if cfg.highway else 0)
    assert len(_junction_ids(carla.Map("example", generate_town(cfg)))) == expected


def test_5x5_generates_a_junction_per_grid_node() -> None:
    text = generate_town(ProceduralTownConfig(grid_rows=5, grid_cols=5))
    assert len(_junction_ids(carla.Map("big", text))) == 25


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"grid_rows": 0}, "grid_rows"),
        ({"grid_cols": -1}, "grid_cols"),
        ({"block_length_m": -80.0}, "block_length_m"),
        ({"block_length_m": 20.0}, "block_length_m"),
        ({"block_length_jitter": 0.5}, "block_length_jitter"),
        ({"lanes_per_direction": 4}, "lanes_per_direction"),
        ({"lane_width_m": -3.5}, "lane_width_m"),
        ({"sidewalk_width_m": -1.0}, "sidewalk_width_m"),
        ({"traffic_light_share": 1.5}, "traffic_light_share"),
        ({"speed_limit_kph": 0.0}, "speed_limit_kph"),
        ({"block_length_m": float("nan")}, "block_length_m"),
        ({"grid_size": 3}, "grid_size"),
        ({"turn_lanes": "all"}, "turn_lanes"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProceduralTownConfig(**kwargs)
    with pytest.raises(ValidationError):
        ProceduralTownConfig(**kwargs)


def test_blocks_too_short_for_the_cross_section_raise() -> None:
    with pytest.raises(ValueError, match="block_length_m"):
        ProceduralTownConfig(block_length_m=30.0, lanes_per_direction=3)
    with pytest.raises(ValueError, match="block_length_jitter"):
        ProceduralTownConfig(block_length_m=30.0, block_length_jitter=0.3)


def test_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT.grid_rows = 5  # type: ignore[misc]


def test_nearest_turn_lanes_join_innermost_and_outermost_lanes_only() -> None:
    cfg = ProceduralTownConfig(grid_rows=1, grid_cols=1, lanes_per_direction=3, block_length_m=120.0,
                               turn_lanes="nearest")
    town = _map(cfg)
    graph = _lane_graph(town)
    turns: set[tuple[int, int]] = set()
    for lane in graph.nodes:
        wp = town.get_waypoint_xodr(lane[0], lane[2], 0.5)
        if wp is None or not wp.is_junction:
            continue
        for before in graph.predecessors(lane):
            for after in graph.successors(lane):
                start = town.get_waypoint_xodr(before[0], before[2], 0.5)
                end = town.get_waypoint_xodr(after[0], after[2], 0.5)
                heading = _yaw_gap_deg(start.transform.rotation.yaw, end.transform.rotation.yaw)
                if 30.0 < heading < 150.0:
                    turns.add((abs(before[2]), abs(after[2])))
    # Left turns innermost to innermost, right turns outermost to outermost: never into a middle lane.
    assert turns and turns <= {(1, 1), (3, 3)}
    assert generate_town(cfg) != generate_town(cfg.model_copy(update={"turn_lanes": "any"}))
