"""Tests for map geometry (lane polygons, markings) and the area-class raster."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import carla
import numpy as np
import pytest
import shapely

from sim.maps.geometry import (
    AreaClass,
    AreaRaster,
    LaneMarking,
    MapGeometry,
    build_map_geometry,
    rasterize_areas,
)

sys.path.insert(0, str(Path(__file__).parent))
from xodr_builder import Connection, Junction, Lane, Link, Road, document, one_section  # noqa: E402


def _load_map(town: str) -> carla.Map:
    text = (resources.files("sim.maps") / "data" / f"{town}.xodr").read_text()
    return carla.Map(town, text)


@pytest.fixture(scope="module")
def town01() -> tuple[carla.Map, MapGeometry, AreaRaster]:
    carla_map = _load_map("Town01")
    geometry = build_map_geometry(carla_map)
    return carla_map, geometry, rasterize_areas(geometry, resolution_m=0.2)


@pytest.fixture(scope="module")
def town10() -> tuple[carla.Map, MapGeometry, AreaRaster]:
    carla_map = _load_map("Town10HD")
    geometry = build_map_geometry(carla_map)
    return carla_map, geometry, rasterize_areas(geometry, resolution_m=0.2)


def _xy(wp: carla.Waypoint) -> tuple[float, float]:
    return (wp.transform.location.x, wp.transform.location.y)


def _right_vector(wp: carla.Waypoint) -> np.ndarray:
    yaw = np.deg2rad(wp.transform.rotation.yaw)
    return np.array([-np.sin(yaw), np.cos(yaw)])


def _unique_driving_lanes(carla_map: carla.Map) -> list[carla.Waypoint]:
    """One start waypoint per driving lane (topology lists a lane once per successor)."""
    starts = {}
    for start, _ in carla_map.get_topology():
        starts.setdefault((start.road_id, start.section_id, start.lane_id), start)
    return list(starts.values())


def test_driving_waypoints_are_driving_or_junction(town01):
    carla_map, _, raster = town01
    waypoints = carla_map.generate_waypoints(2.0)
    classes = raster.lookup(np.array([_xy(wp) for wp in waypoints]))
    in_junction = np.array([wp.is_junction for wp in waypoints])
    assert np.all(np.isin(classes, [AreaClass.DRIVING, AreaClass.JUNCTION]))
    # Waypoints exactly on a junction's entry edge may land on the road's side of it.
    assert np.mean(classes[in_junction] == AreaClass.JUNCTION) > 0.97
    assert np.mean(classes[~in_junction] == AreaClass.DRIVING) > 0.97


def test_points_outside_map_are_offroad(town01):
    _, geometry, raster = town01
    xmin, ymin, xmax, ymax = geometry.bounds_xy
    far = np.array(
        [[xmax + 50.0, ymax + 50.0], [xmin - 50.0, 0.5 * (ymin + ymax)], [0.0, ymin - 50.0]]
    )
    np.testing.assert_array_equal(raster.lookup(far), [AreaClass.OFFROAD] * 3)


def test_sidewalk_waypoints_are_sidewalk(town01):
    carla_map, _, raster = town01
    sidewalk_xy = []
    for wp in carla_map.generate_waypoints(5.0):
        if wp.is_junction:
            continue
        lane = wp.get_right_lane()
        for _ in range(10):
            if lane is None or lane.lane_type == carla.LaneType.Sidewalk:
                break
            lane = lane.get_right_lane()
        if lane is not None and lane.lane_type == carla.LaneType.Sidewalk:
            sidewalk_xy.append(_xy(lane))
    assert len(sidewalk_xy) > 100
    classes = raster.lookup(np.array(sidewalk_xy))
    assert np.mean(classes == AreaClass.SIDEWALK) > 0.97


def test_driving_area_matches_lane_length_times_width(town01):
    carla_map, _, raster = town01
    expected_m2 = 0.0
    for start in _unique_driving_lanes(carla_map):
        if start.is_junction:
            continue
        key = (start.road_id, start.section_id, start.lane_id)
        samples = [start] + [
            wp
            for wp in start.next_until_lane_end(0.5)
            if (wp.road_id, wp.section_id, wp.lane_id) == key
        ]
        xy = np.array([_xy(wp) for wp in samples])
        length = np.linalg.norm(np.diff(xy, axis=0), axis=1).sum()
        expected_m2 += length * np.mean([wp.lane_width for wp in samples])
    driving_m2 = np.count_nonzero(raster.classes == AreaClass.DRIVING) * raster.resolution_m**2
    assert expected_m2 > 10_000.0
    assert driving_m2 == pytest.approx(expected_m2, rel=0.15)


def test_drivable_union_matches_raster_and_is_cached(town01):
    _, geometry, raster = town01
    union = geometry.drivable_union()
    assert geometry.drivable_union() is union
    drivable_pixels = np.isin(raster.classes, [AreaClass.DRIVING, AreaClass.JUNCTION])
    raster_m2 = np.count_nonzero(drivable_pixels) * raster.resolution_m**2
    assert union.area == pytest.approx(raster_m2, rel=0.05)


def test_polygons_are_well_formed_and_inside_bounds(town01):
    _, geometry, _ = town01
    xmin, ymin, xmax, ymax = geometry.bounds_xy
    assert len(geometry.driving_polygons) > 50
    assert 0 < len(geometry.junction_polygons) < len(geometry.driving_polygons)
    assert len(geometry.sidewalk_polygons) > 0 and len(geometry.shoulder_polygons) > 0
    assert geometry.crosswalk_polygons == []  # Town01 defines no crosswalks
    for polygon in geometry.driving_polygons + geometry.sidewalk_polygons:
        assert polygon.ndim == 2 and polygon.shape[1] == 2 and polygon.shape[0] >= 4
        assert np.all(polygon >= [xmin, ymin]) and np.all(polygon <= [xmax, ymax])


def test_town01_markings_types_and_centre_line_position(town01):
    carla_map, geometry, _ = town01
    types = {(m.marking_type, m.color) for m in geometry.lane_markings}
    # Town01's OpenDRIVE has a broken yellow centre line and curbs; no solid lines.
    assert ("Broken", "Yellow") in types
    assert any(t == "Curb" for t, _ in types)
    assert all(t != "NONE" for t, _ in types)  # unmarked boundaries are dropped by default
    for marking in geometry.lane_markings:
        assert isinstance(marking, LaneMarking)
        assert marking.points_xy.ndim == 2 and marking.points_xy.shape[0] >= 2

    centre_lines = shapely.union_all(
        [
            shapely.LineString(m.points_xy)
            for m in geometry.lane_markings
            if m.marking_type == "Broken"
        ]
    )
    checked = 0
    for wp in carla_map.generate_waypoints(10.0):
        if wp.is_junction or wp.lane_id != -1:
            continue
        half_width = 0.5 * wp.lane_width
        left_edge = np.array(_xy(wp)) - _right_vector(wp) * half_width
        right_edge = np.array(_xy(wp)) + _right_vector(wp) * half_width
        # The centre line is on lane -1's left edge, a lane width away from its right edge.
        assert centre_lines.distance(shapely.Point(left_edge)) < 0.05
        assert centre_lines.distance(shapely.Point(right_edge)) > 0.9 * wp.lane_width
        checked += 1
    assert checked > 20


def test_unmarked_boundaries_kept_on_request():
    geometry = build_map_geometry(_load_map("Town02"), sample_step_m=2.0, keep_unmarked=True)
    assert any(m.marking_type == "NONE" for m in geometry.lane_markings)


def test_town10hd_markings_include_solid_and_broken(town10):
    _, geometry, _ = town10
    types = {m.marking_type for m in geometry.lane_markings}
    assert {"Broken", "Solid", "SolidSolid", "Curb"} <= types


def test_town10hd_crosswalks(town10):
    carla_map, geometry, raster = town10
    crosswalks = geometry.crosswalk_polygons
    vertices = carla_map.get_crosswalks()
    assert len(crosswalks) > 0
    # Each closed polygon in the flat list repeats its first vertex once.
    assert sum(len(p) + 1 for p in crosswalks) == len(vertices)
    for polygon in crosswalks:
        assert polygon.shape[0] >= 3
        assert not np.allclose(polygon[0], polygon[-1])
    centroids = np.array([shapely.Polygon(p).centroid.coords[0] for p in crosswalks])
    np.testing.assert_array_equal(raster.lookup(centroids), [AreaClass.CROSSWALK] * len(crosswalks))


def test_town10hd_raster_size_and_classes(town10):
    _, _, raster = town10
    assert raster.classes.dtype == np.uint8
    assert raster.classes.nbytes < 8_000_000
    present = set(np.unique(raster.classes).tolist())
    assert present == {int(c) for c in AreaClass}


def _square(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _toy_geometry() -> MapGeometry:
    return MapGeometry(
        bounds_xy=(-2.0, -2.0, 22.0, 12.0),
        driving_polygons=[_square(0.0, 0.0, 20.0, 4.0), _square(8.0, 0.0, 12.0, 10.0)],
        junction_polygons=[_square(8.0, 0.0, 12.0, 4.0)],
        sidewalk_polygons=[_square(0.0, 4.0, 20.0, 6.0), _square(0.0, 3.0, 2.0, 6.0)],
        shoulder_polygons=[_square(0.0, -1.0, 20.0, 0.5)],
        crosswalk_polygons=[_square(14.0, 0.0, 16.0, 4.0)],
        lane_markings=[],
    )


def test_raster_painting_order_and_cell_convention():
    raster = rasterize_areas(_toy_geometry(), resolution_m=0.5)
    assert raster.classes.shape == (28, 48)  # (ymax - ymin) / res, (xmax - xmin) / res
    points = np.array(
        [
            [5.0, 2.0],  # driving
            [5.0, 0.2],  # driving over shoulder
            [5.0, -0.7],  # shoulder only
            [5.0, 5.0],  # sidewalk
            [1.0, 3.5],  # driving over sidewalk
            [10.0, 2.0],  # junction over driving
            [10.0, 8.0],  # driving (not junction)
            [15.0, 2.0],  # crosswalk over driving
            [5.0, 9.0],  # nothing
        ]
    )
    expected = [
        AreaClass.DRIVING,
        AreaClass.DRIVING,
        AreaClass.SHOULDER,
        AreaClass.SIDEWALK,
        AreaClass.DRIVING,
        AreaClass.JUNCTION,
        AreaClass.DRIVING,
        AreaClass.CROSSWALK,
        AreaClass.OFFROAD,
    ]
    np.testing.assert_array_equal(raster.lookup(points), expected)
    # row = floor((y - y0) / res), col = floor((x - x0) / res)
    assert raster.classes[int((2.0 + 2.0) / 0.5), int((15.0 + 2.0) / 0.5)] == AreaClass.CROSSWALK
    # Overlapping polygons of one layer are both filled (no even-odd holes).
    assert raster.lookup(np.array([[10.0, 3.0]]))[0] == AreaClass.JUNCTION
    # Polygon edges land within a cell of their true position.
    driving_m2 = np.count_nonzero(np.isin(raster.classes, [1, 4, 5])) * 0.5**2
    union = shapely.union_all([shapely.Polygon(p) for p in _toy_geometry().driving_polygons])
    assert union.buffer(-0.5, join_style="mitre").area <= driving_m2
    assert driving_m2 <= union.buffer(0.5, join_style="mitre").area


def test_lookup_is_vectorised_and_handles_outside_points():
    classes = np.arange(12, dtype=np.uint8).reshape(3, 4) % 6
    raster = AreaRaster(origin_xy=np.array([10.0, 20.0]), resolution_m=1.0, classes=classes)
    points = np.array(
        [
            [10.0, 20.0],  # first cell
            [13.99, 22.99],  # last cell
            [12.5, 21.5],  # row 1, col 2
            [9.99, 21.0],  # left of raster
            [14.0, 21.0],  # right edge is exclusive
            [11.0, 23.0],  # below
            [11.0, 19.0],  # above
            [np.nan, 21.0],
            [1e12, -1e12],
        ]
    )
    result = raster.lookup(points)
    assert result.shape == (9,) and result.dtype == np.uint8
    expected = [classes[0, 0], classes[2, 3], classes[1, 2], 0, 0, 0, 0, 0, 0]
    np.testing.assert_array_equal(result, expected)
    assert raster.lookup(np.zeros((0, 2))).shape == (0,)


def test_bad_inputs_raise(town01):
    _, geometry, raster = town01
    for resolution in (0.0, -0.2, float("nan")):
        with pytest.raises(ValueError, match="resolution_m"):
            rasterize_areas(geometry, resolution_m=resolution)
    with pytest.raises(ValueError, match="resolution_m"):
        AreaRaster(origin_xy=np.zeros(2), resolution_m=0.0, classes=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="classes"):
        AreaRaster(origin_xy=np.zeros(2), resolution_m=1.0, classes=np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="origin_xy"):
        AreaRaster(origin_xy=np.zeros(3), resolution_m=1.0, classes=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="xy"):
        raster.lookup(np.zeros(3))
    carla_map = town01[0]
    with pytest.raises(ValueError, match="sample_step_m"):
        build_map_geometry(carla_map, sample_step_m=0.0)
    with pytest.raises(ValueError, match="margin_m"):
        build_map_geometry(carla_map, margin_m=-1.0)


# ---------------------------------------------------------------------------------------------- junction fills
def test_ground_beside_every_junction_lane_is_no_wall(town01):
    """A car cutting a junction corner climbs a kerb (CARLA's corners are sidewalk), it never meets a wall:
    1 m beyond either edge of every junction lane, half-way along it, the ground is part of the road network."""
    carla_map, geometry, lanes_only = town01
    raster = rasterize_areas(geometry, resolution_m=0.2, fill_junctions=True)
    points, seen = [], set()
    for start, _ in carla_map.get_topology():
        if not start.is_junction or (start.road_id, start.lane_id) in seen:
            continue
        seen.add((start.road_id, start.lane_id))
        following = start.next_until_lane_end(0.5)
        wp = following[len(following) // 2] if following else start
        for side in (-1.0, 1.0):
            points.append(np.array(_xy(wp)) + side * _right_vector(wp) * (wp.lane_width / 2 + 1.0))
    assert len(points) > 50
    assert np.count_nonzero(lanes_only.lookup(np.array(points)) == AreaClass.OFFROAD) > 10  # the lanes leave gaps
    assert np.count_nonzero(raster.lookup(np.array(points)) == AreaClass.OFFROAD) == 0


def test_sidewalks_run_on_round_junction_corners(town01):
    """Where a road enters a junction its sidewalk goes on round the corner (CARLA's corner sidewalks): 1.2 m
    past the sidewalk's end, into the junction, is never a wall."""
    carla_map, geometry, lanes_only = town01
    raster = rasterize_areas(geometry, resolution_m=0.2, fill_junctions=True)
    junctions = {wp.junction_id: wp.get_junction() for wp in carla_map.generate_waypoints(5.0) if wp.is_junction}
    points = []
    for junction in junctions.values():
        for entry, _ in junction.get_waypoints(carla.LaneType.Driving):
            before = entry.previous(0.2)
            if not before or before[0].is_junction:
                continue
            wp = before[0]
            for _ in range(8):  # outwards to the sidewalk
                if wp is None or wp.lane_type == carla.LaneType.Sidewalk:
                    break
                wp = wp.get_right_lane()
            if wp is None or wp.lane_type != carla.LaneType.Sidewalk:
                continue
            yaw = np.deg2rad(entry.transform.rotation.yaw)
            points.append(np.array(_xy(wp)) + 1.2 * np.array([np.cos(yaw), np.sin(yaw)]))
    assert len(points) > 50
    assert np.count_nonzero(lanes_only.lookup(np.array(points)) == AreaClass.OFFROAD) > 10
    assert np.count_nonzero(raster.lookup(np.array(points)) == AreaClass.OFFROAD) == 0


def _gap_junction_xodr() -> str:
    """Road 1 (lanes -1, -2, -3; -2 is 2 m wide) meets road 2 through junction 100 of two connecting roads, one
    for lane -1 and one for lane -3: between them, for the junction's 20 m, lies a 2 m strip no lane covers."""
    def lanes(successor: bool) -> tuple[Lane, ...]:
        return tuple(Lane(i, "driving", w, None, None, i if successor else None) for i, w in ((-1, 3.5), (-2, 2.0),
                                                                                             (-3, 3.5)))

    road1 = Road(1, -30.0, 0.0, 0.0, 30.0, one_section(30.0, lanes(False)), successor=Link("junction", 100))
    # Road 2 goes on into road 3 (a road that leads nowhere is not drawn).
    road2 = Road(2, 20.0, 0.0, 0.0, 30.0, one_section(30.0, lanes(True)), predecessor=Link("junction", 100),
                 successor=Link("road", 3, "start"))
    road3 = Road(3, 50.0, 0.0, 0.0, 10.0, one_section(10.0, lanes(False)), predecessor=Link("road", 2, "end"))
    near = Road(10, 0.0, 0.0, 0.0, 20.0, one_section(20.0, (Lane(-1, "driving", 3.5, None, -1, -1),)),
                junction=100, predecessor=Link("road", 1, "end"), successor=Link("road", 2, "start"))
    far = Road(11, 0.0, -5.5, 0.0, 20.0, one_section(20.0, (Lane(-1, "driving", 3.5, None, -3, -3),)),
               junction=100, predecessor=Link("road", 1, "end"), successor=Link("road", 2, "start"))
    junction = Junction(100, (Connection(0, 1, 10, "start", ((-1, -1),)), Connection(1, 1, 11, "start", ((-3, -1),))))
    return document([road1, road2, road3, near, far], [junction])


def test_gap_between_connecting_roads_is_paved():
    geometry = build_map_geometry(carla.Map("gap", _gap_junction_xodr()))
    assert len(geometry.junction_hulls) == 1
    gap = np.array([[5.0, 4.5], [10.0, 4.5], [15.0, 3.8], [15.0, 5.2]])  # CARLA's y is OpenDRIVE's -y
    beside = np.array([[10.0, -1.0], [10.0, 10.0]])  # outside the junction's lanes and the roads
    np.testing.assert_array_equal(rasterize_areas(geometry).lookup(gap), AreaClass.OFFROAD)  # lanes only: a wall
    raster = rasterize_areas(geometry, fill_junctions=True)
    np.testing.assert_array_equal(raster.lookup(gap), AreaClass.JUNCTION)
    np.testing.assert_array_equal(raster.lookup(beside), AreaClass.OFFROAD)


def _fill_geometry(bridge: bool) -> MapGeometry:
    """Three junctions: a 2 m gap closed by lanes all round, an L of two lanes, a ring around a 12 m island."""
    gap = [_square(0.0, 0.0, 20.0, 4.0), _square(0.0, 6.0, 20.0, 10.0), _square(-4.0, 0.0, 0.0, 10.0),
           _square(20.0, 0.0, 24.0, 10.0)]
    ell = [_square(30.0, 0.0, 50.0, 4.0), _square(46.0, 4.0, 50.0, 20.0)]
    ring = [_square(60.0, 0.0, 80.0, 4.0), _square(60.0, 16.0, 80.0, 20.0), _square(60.0, 4.0, 64.0, 16.0),
            _square(76.0, 4.0, 80.0, 16.0)]
    hulls = [_square(-4.0, 0.0, 24.0, 10.0), np.array([[30.0, 0.0], [50.0, 0.0], [50.0, 20.0], [46.0, 20.0],
                                                        [30.0, 4.0]]), _square(60.0, 0.0, 80.0, 20.0)]
    # With ``bridge``, a road at 8 m passes over one at 0 m: the raster has levels.
    driving = gap + ell + ring + ([_square(0.0, 30.0, 10.0, 34.0), _square(4.0, 26.0, 6.0, 38.0)] if bridge else [])
    heights = [np.zeros(4)] * (len(gap) + len(ell) + len(ring)) + ([np.full(4, 8.0), np.zeros(4)] if bridge else [])
    return MapGeometry(bounds_xy=(-10.0, -10.0, 90.0, 40.0), driving_polygons=driving,
                       junction_polygons=gap + ell + ring, sidewalk_polygons=[], shoulder_polygons=[],
                       crosswalk_polygons=[], lane_markings=[], junction_hulls=hulls,
                       polygon_z_m={"driving_polygons": heights, "junction_hulls": [np.zeros(len(h)) for h in hulls]})


@pytest.mark.parametrize("bridge", [False, True])
def test_junction_gaps_are_paved_corners_are_sidewalk_islands_keep_their_middle(bridge):
    raster = rasterize_areas(_fill_geometry(bridge), resolution_m=0.2, fill_junctions=True)
    assert raster.multilevel == bridge
    cases = [
        ((10.0, 5.0), AreaClass.JUNCTION),  # the 2 m gap enclosed by lanes: paved
        ((40.0, 6.0), AreaClass.SIDEWALK),  # the L's inner corner, within the hull, 2 m from the lanes
        ((40.0, 10.0), AreaClass.OFFROAD),  # deeper into the corner than a corner sidewalk reaches (6 m)
        ((36.0, 12.0), AreaClass.OFFROAD),  # beyond the hull
        ((70.0, 5.0), AreaClass.SIDEWALK),  # the island's kerb
        ((70.0, 10.0), AreaClass.OFFROAD),  # the island's middle: 6 m from any lane
        ((10.0, 20.0), AreaClass.OFFROAD),  # outside every junction
    ]
    points = np.array([p for p, _ in cases])
    expected = [int(c) for _, c in cases]
    np.testing.assert_array_equal(raster.lookup(points), expected)
    if bridge:  # each level reads the fills too
        np.testing.assert_array_equal(raster.lookup(points, np.zeros(len(points))), expected)
    lanes_only = rasterize_areas(_fill_geometry(bridge), resolution_m=0.2)  # the default: the polygons' ground
    np.testing.assert_array_equal(lanes_only.lookup(points), AreaClass.OFFROAD)
