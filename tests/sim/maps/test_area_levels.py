"""The off-road raster on a map with a bridge (tests/overpass_map.py): each level keeps its own area classes."""

from __future__ import annotations

import numpy as np
import pytest

from sim.maps.geometry import AreaClass, AreaRaster, build_map_geometry, rasterize_areas
from sim.maps.lanes import build_lane_graph
from sim.maps.loader import MapSource, load_carla_map
from tests.overpass_map import BRIDGE_HEIGHT_M, overpass_source, overpass_xodr


@pytest.fixture(scope="module")
def overpass():
    source = overpass_source()
    carla_map = load_carla_map(source)
    geometry = build_map_geometry(carla_map)
    return build_lane_graph(carla_map, source.xodr_text), geometry, rasterize_areas(geometry)


def _points_near_crossing(lanes, road_id: int, reach_m: float) -> np.ndarray:
    """(K, 3) samples of both driving lanes of a road within ``reach_m`` of the crossing (the origin)."""
    points = np.concatenate([lanes.lane_points(lanes.index[(road_id, 0, lane_id)]) for lane_id in (-1, -2)])
    return points[np.hypot(points[:, 0], points[:, 1]) < reach_m]


def test_polygons_know_their_heights(overpass):
    _, geometry, _ = overpass
    heights = geometry.heights("driving_polygons")
    assert len(heights) == len(geometry.driving_polygons)
    assert all(z.shape == (len(p),) for z, p in zip(heights, geometry.driving_polygons))
    top = max(float(z.max()) for z in heights)
    assert top == pytest.approx(BRIDGE_HEIGHT_M, abs=0.01)


def test_under_the_bridge_the_road_below_is_road_and_on_it_the_bridge(overpass):
    lanes, _, raster = overpass
    assert raster.multilevel and raster.level_classes.shape[0] == 2
    road = (AreaClass.DRIVING, AreaClass.JUNCTION)
    below = _points_near_crossing(lanes, 1, 8.0)  # the lower road, partly under the bridge deck
    above = _points_near_crossing(lanes, 2, 8.0)  # the bridge deck over the lower road
    assert np.isin(raster.lookup(below[:, :2], below[:, 2]), road).all()
    assert np.isin(raster.lookup(above[:, :2], above[:, 2]), road).all()
    # What the other level says there: the bridge over the road below is sidewalk, road or nothing;
    # somewhere the bridge's sidewalk overhangs the lower road.
    seen_from_bridge = raster.lookup(below[:, :2], np.full(len(below), BRIDGE_HEIGHT_M))
    assert (seen_from_bridge == AreaClass.SIDEWALK).any() and (seen_from_bridge == AreaClass.DRIVING).any()
    # Away from the crossing, nothing is under (or over) a road: off-road at the other level.
    far_below = _points_near_crossing(lanes, 1, 30.0)
    far_below = far_below[np.hypot(far_below[:, 0], far_below[:, 1]) > 15.0]
    assert (raster.lookup(far_below[:, :2], np.full(len(far_below), BRIDGE_HEIGHT_M)) == AreaClass.OFFROAD).all()
    far_above = _points_near_crossing(lanes, 2, 30.0)
    far_above = far_above[np.hypot(far_above[:, 0], far_above[:, 1]) > 15.0]
    assert (raster.lookup(far_above[:, :2], np.zeros(len(far_above))) == AreaClass.OFFROAD).all()
    # Without heights: all levels merged, as before.
    assert np.isin(raster.lookup(far_above[:, :2]), road).all()
    with pytest.raises(ValueError, match=r"z_m must have shape \(3,\)"):
        raster.lookup(below[:3, :2], np.zeros(2))


def test_a_flat_crossing_is_one_level():
    text = overpass_xodr(height_m=0.0)
    source = MapSource("flat_crossing", text, None, trusted=True)
    raster = rasterize_areas(build_map_geometry(load_carla_map(source)))
    assert not raster.multilevel and raster.level_classes is None
    xy = np.array([[0.0, 0.0], [50.0, 50.0]])
    np.testing.assert_array_equal(raster.lookup(xy, np.array([5.0, -3.0])), raster.lookup(xy))


def test_level_layers_are_validated():
    classes = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match="given together"):
        AreaRaster(np.zeros(2), 1.0, classes, level_classes=np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(L, H, W\) = \(L, 2, 3\)"):
        AreaRaster(np.zeros(2), 1.0, classes, np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3, 3), np.float16))
