"""The walkable mesh: convex polygons by area over a town's sidewalks, crossings and roads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from sim.maps.geometry import AreaClass
from sim.embedded.traffic.walkable import (
    MAX_POLY_VERTS,
    WalkArea,
    _regions,
    build_walkable_mesh,
)
from sim.embedded.world import EmbeddedWorld


@pytest.fixture(scope="module")
def world():
    return EmbeddedWorld(map="Town01", seed=0)


@pytest.fixture(scope="module")
def mesh(world):
    return build_walkable_mesh(world.geometry, world.walker_network, world.lanes)


def _shoelace(xy: np.ndarray) -> float:
    return 0.5 * float(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1]))


def test_polygons_are_convex_counter_clockwise_and_small(mesh):
    assert mesh.num_polygons > 500
    assert set(np.unique(mesh.vertex_count).tolist()) <= set(range(3, MAX_POLY_VERTS + 1))
    for p in range(mesh.num_polygons):
        xy = mesh.polygon(p)[:, :2]
        a, b, c = xy, np.roll(xy, -1, axis=0), np.roll(xy, -2, axis=0)
        turns = (b[:, 0] - a[:, 0]) * (c[:, 1] - b[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - b[:, 0])
        assert np.all(turns > 0), p
    assert np.all(mesh.polygons[np.arange(MAX_POLY_VERTS)[None, :] >= mesh.vertex_count[:, None]] == -1)
    # Triangles were merged: most polygons have more than three vertices.
    assert np.mean(mesh.vertex_count > 3) > 0.5


def test_neighbours_share_an_edge_both_ways(mesh):
    links = 0
    for p in range(mesh.num_polygons):
        n = int(mesh.vertex_count[p])
        for k in range(n):
            q = int(mesh.neighbours[p, k])
            if q < 0:
                continue
            links += 1
            a, b = mesh.polygons[p, k], mesh.polygons[p, (k + 1) % n]
            m = int(mesh.vertex_count[q])
            edges_q = {(int(mesh.polygons[q, j]), int(mesh.polygons[q, (j + 1) % m])) for j in range(m)}
            assert (b, a) in edges_q  # the same two vertices, the other way round
            assert p in mesh.neighbours[q, :m]
    assert links > mesh.num_polygons  # a connected mesh, not a soup


def test_areas_cover_their_regions_without_gaps_or_overlaps(world, mesh):
    regions = _regions(world.geometry, world.walker_network)
    for area, region in regions.items():
        assert mesh.area_m2(area) == pytest.approx(region.area, rel=1e-4), area.name  # slivers dropped
    union = shapely.union_all([shapely.Polygon(mesh.polygon(p)[:, :2]) for p in range(mesh.num_polygons)])
    assert union.area == pytest.approx(sum(mesh.area_m2(a) for a in WalkArea), rel=1e-6)  # no overlaps


def test_areas_agree_with_the_map_raster(world, mesh):
    """By surface: sidewalk polygons lie on the raster's sidewalks, road polygons on its roads, crossings cross roads."""
    centres = np.array([mesh.polygon(p)[:, :2].mean(axis=0) for p in range(mesh.num_polygons)])
    surface = np.array([abs(_shoelace(mesh.polygon(p)[:, :2])) for p in range(mesh.num_polygons)])
    classes = world.area_raster.lookup(centres)

    def share(area: WalkArea, ground: list[AreaClass]) -> float:
        mine = mesh.area == area
        return float(surface[mine & np.isin(classes, ground)].sum() / surface[mine].sum())

    assert share(WalkArea.SIDEWALK, [AreaClass.SIDEWALK]) > 0.95
    assert share(WalkArea.ROAD, [AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.SHOULDER]) > 0.95
    assert share(WalkArea.CROSSWALK, [AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.CROSSWALK]) > 0.5
    assert np.count_nonzero(mesh.area == WalkArea.CROSSWALK) > 20


def test_sidewalks_and_crossings_form_one_network(mesh):
    walk = mesh.area != WalkArea.ROAD
    rows, cols = np.nonzero(mesh.neighbours >= 0)
    other = mesh.neighbours[rows, cols]
    keep = walk[rows] & walk[other]
    graph = coo_matrix((np.ones(keep.sum()), (rows[keep], other[keep])), shape=(mesh.num_polygons,) * 2)
    _, labels = connected_components(graph, directed=False)
    assert np.unique(labels[walk]).size == 1  # Town01: every sidewalk reachable without walking on the road


def test_vertices_sit_on_the_ground(world, mesh):
    net_z = world.walker_network.points_xyz[:, 2]
    assert np.all(mesh.vertices_xyz[:, 2] >= min(net_z.min(), world.lanes.points_xyz[:, 2].min()) - 1e-9)
    assert np.all(mesh.vertices_xyz[:, 2] <= max(net_z.max(), world.lanes.points_xyz[:, 2].max()) + 1e-9)


def test_a_map_with_nothing_walkable_is_an_error(world):
    geometry = dataclasses.replace(world.geometry, driving_polygons=[], junction_polygons=[], sidewalk_polygons=[],
                                   shoulder_polygons=[], crosswalk_polygons=[])
    network = dataclasses.replace(world.walker_network, edge_length_m=np.zeros(0))  # no edges
    with pytest.raises(ValueError, match="nothing|no sidewalks"):
        build_walkable_mesh(geometry, network, world.lanes)
