"""Walkable ground as a mesh of convex polygons by area: sidewalks, crosswalks and roads.

This is what a navigation mesh is made of (``sim.carla_server.detour`` writes
it in the format CARLA's walker AI loads). The areas follow the embedded
pedestrians, so both kinds of walker share one idea of where people may go:

* SIDEWALK: the map's sidewalk lanes, plus the pedestrian network's sidewalk
  and corner edges (``walker_graph``) widened to their walkable width;
* CROSSWALK: the network's crosswalk edges widened the same way, plus the
  map's crosswalk polygons;
* ROAD: driving, junction and shoulder lanes not covered by the two above
  (CARLA's walkers cross there only when told to).

The three regions are overlaid into one planar subdivision, so neighbouring
faces share their boundary vertices exactly; each face is split by a
constrained Delaunay triangulation (no new vertices), and neighbouring
triangles of one area are merged greedily, longest shared edge first, into
convex polygons of up to :data:`MAX_POLY_VERTS` vertices (as Recast does).
Polygons are wound counter-clockwise in CARLA's x-y plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import shapely
from scipy.spatial import cKDTree

from sim.maps.geometry import MapGeometry
from sim.maps.lanes import LaneGraph
from sim.embedded.traffic.walker_graph import EdgeKind, WalkerNetwork

MAX_POLY_VERTS = 6
"""Most vertices of one polygon (Detour's ``DT_VERTS_PER_POLYGON``)."""
SIMPLIFY_M = 0.05
"""Region outlines are simplified within this distance (lane sampling leaves many collinear points)."""
GRID_M = 1e-3
"""Overlays snap to this grid, so no two vertices are closer (near-duplicates make sliver triangles)."""
_MIN_TURN = 1e-6
"""Least cross product [m^2] of a corner of a kept triangle or merged polygon (float32 in the navmesh)."""


class WalkArea(IntEnum):
    """Kind of walkable ground; the values are CARLA's navigation-mesh area ids."""

    SIDEWALK = 1
    CROSSWALK = 2
    ROAD = 3


@dataclass(frozen=True, eq=False)
class WalkableMesh:
    """Convex polygons over walkable ground.

    ``vertices_xyz`` (V, 3) CARLA world metres (z: the ground). ``polygons``
    (P, MAX_POLY_VERTS) vertex indices counter-clockwise in x-y, padded with
    -1; ``vertex_count`` (P,); ``area`` (P,) :class:`WalkArea` codes;
    ``neighbours`` (P, MAX_POLY_VERTS): the polygon across edge ``k`` (from
    vertex ``k`` to the next one), -1 on the mesh's border.
    """

    vertices_xyz: np.ndarray
    polygons: np.ndarray
    vertex_count: np.ndarray
    area: np.ndarray
    neighbours: np.ndarray

    @property
    def num_polygons(self) -> int:
        """Number of polygons ``P``."""
        return int(self.polygons.shape[0])

    def polygon(self, index: int) -> np.ndarray:
        """The (k, 3) vertices of polygon ``index`` in order."""
        return self.vertices_xyz[self.polygons[index, : self.vertex_count[index]]]

    def area_m2(self, area: WalkArea) -> float:
        """Total surface of the polygons of one area (square metres, in x-y)."""
        total = 0.0
        for index in np.flatnonzero(self.area == int(area)).tolist():
            xy = self.polygon(index)[:, :2]
            total += 0.5 * float(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1]))
        return total


def build_walkable_mesh(geometry: MapGeometry, network: WalkerNetwork, lanes: LaneGraph) -> WalkableMesh:
    """The walkable mesh of one map (see the module docstring); ValueError if the map has nothing walkable."""
    regions = _regions(geometry, network)
    triangles: list[np.ndarray] = []
    areas: list[int] = []
    linework = shapely.union_all([region.boundary for region in regions.values() if not region.is_empty],
                                 grid_size=GRID_M)
    for face in shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))):
        inside = face.point_on_surface()
        area = next((a for a, region in regions.items() if region.contains(inside)), None)
        if area is None:  # a hole: a building block, the middle of a roundabout
            continue
        for triangle in shapely.get_parts(shapely.constrained_delaunay_triangles(face)):
            triangles.append(shapely.get_coordinates(triangle)[:3])
            areas.append(int(area))
    if not triangles:
        raise ValueError("the map has no sidewalks, crossings or roads to walk on")
    corners = np.stack(triangles)  # (T, 3, 2)
    vertices_xy, index = np.unique(corners.reshape(-1, 2), axis=0, return_inverse=True)
    tris = index.reshape(-1, 3)
    # Counter-clockwise in x-y: swap two corners of clockwise triangles.
    a, b, c = (vertices_xy[tris[:, k]] for k in range(3))
    clockwise = _cross(a, b, c) < 0
    tris[clockwise] = tris[clockwise][:, [0, 2, 1]]
    keep = np.abs(_cross(a, b, c)) > _MIN_TURN  # degenerate slivers
    polygons = _merge_convex(vertices_xy, [list(t) for t in tris[keep].tolist()], np.asarray(areas)[keep].tolist())
    return _assemble(vertices_xy, polygons, _ground_z(vertices_xy, network, lanes))


def _regions(geometry: MapGeometry, network: WalkerNetwork) -> dict[WalkArea, shapely.Geometry]:
    """Disjoint regions by area, crosswalks first (they lie over roads and touch sidewalks)."""
    def union(polygons: list[np.ndarray]) -> shapely.Geometry:
        shapes = [shapely.make_valid(shapely.Polygon(p)) for p in polygons if len(p) >= 3]
        return shapely.union_all(shapes) if shapes else shapely.Polygon()

    def widened(kinds: tuple[EdgeKind, ...]) -> list[shapely.Geometry]:
        return [shapely.LineString(network.edge_points(e)[:, :2]).buffer(0.5 * float(network.edge_width_m[e]),
                                                                          cap_style="flat")
                for e in range(network.num_edges) if network.edge_kind[e] in kinds and network.edge_count[e] >= 2]

    crosswalk = shapely.union_all([union(geometry.crosswalk_polygons), *widened((EdgeKind.CROSSWALK,))])
    sidewalk = shapely.union_all([union(geometry.sidewalk_polygons), *widened((EdgeKind.SIDEWALK, EdgeKind.CORNER))])
    road = union(geometry.driving_polygons + geometry.shoulder_polygons)
    crosswalk, sidewalk, road = (shapely.set_precision(shapely.make_valid(r.simplify(SIMPLIFY_M)), GRID_M)
                                 for r in (crosswalk, sidewalk, road))
    sidewalk = shapely.difference(sidewalk, crosswalk, grid_size=GRID_M)
    road = shapely.difference(shapely.difference(road, sidewalk, grid_size=GRID_M), crosswalk, grid_size=GRID_M)
    return {WalkArea.CROSSWALK: crosswalk, WalkArea.SIDEWALK: sidewalk, WalkArea.ROAD: road}


def _cross(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """z of (b - a) x (c - b): positive where a, b, c turn left (counter-clockwise)."""
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - b[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - b[..., 0])


def _merge_convex(xy: np.ndarray, polygons: list[list[int]], areas: list[int]) -> list[tuple[list[int], int]]:
    """Merge neighbouring polygons of one area while the result is convex with at most MAX_POLY_VERTS vertices."""
    owner: dict[tuple[int, int], int] = {}
    for p, poly in enumerate(polygons):
        for k, v in enumerate(poly):
            owner[(v, poly[(k + 1) % len(poly)])] = p
    shared = [(a, b) for (a, b) in owner if a < b and (b, a) in owner]
    shared.sort(key=lambda e: -float(np.hypot(*(xy[e[0]] - xy[e[1]]))))
    alive: list[list[int] | None] = list(polygons)
    for a, b in shared:
        p, q = owner.get((a, b)), owner.get((b, a))
        if p is None or q is None or p == q or areas[p] != areas[q]:
            continue
        merged = _joined(alive[p], alive[q], a, b)
        if len(merged) > MAX_POLY_VERTS or not _convex(xy, merged):
            continue
        for k, v in enumerate(alive[q]):
            owner[(v, alive[q][(k + 1) % len(alive[q])])] = p
        del owner[(a, b)], owner[(b, a)]
        alive[p], alive[q] = merged, None
    return [(poly, areas[p]) for p, poly in enumerate(alive) if poly is not None]


def _joined(first: list[int], second: list[int], a: int, b: int) -> list[int]:
    """``first`` (with edge a->b) and ``second`` (with edge b->a) as one polygon without that edge."""
    i = first.index(b)
    j = second.index(a)
    first_from_b = first[i:] + first[:i]  # b ... a
    second_from_a = second[j:] + second[:j]  # a ... b
    return first_from_b + second_from_a[1:-1]


def _convex(xy: np.ndarray, poly: list[int]) -> bool:
    points = xy[poly]
    turns = _cross(points, np.roll(points, -1, axis=0), np.roll(points, -2, axis=0))
    return bool(np.all(turns > _MIN_TURN))


def _ground_z(xy: np.ndarray, network: WalkerNetwork, lanes: LaneGraph) -> np.ndarray:
    """Ground height at each vertex: that of the nearest pedestrian-network or lane sample."""
    samples = np.concatenate([network.points_xyz, lanes.points_xyz])
    _, nearest = cKDTree(samples[:, :2]).query(xy)
    return samples[nearest, 2]


def _assemble(xy: np.ndarray, polygons: list[tuple[list[int], int]], z: np.ndarray) -> WalkableMesh:
    """Drop unused vertices, pad the polygons and find each edge's neighbour."""
    used = np.unique(np.concatenate([np.asarray(poly) for poly, _ in polygons]))
    remap = np.full(xy.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    count = len(polygons)
    table = np.full((count, MAX_POLY_VERTS), -1, dtype=np.int64)
    vertex_count = np.zeros(count, dtype=np.int64)
    area = np.zeros(count, dtype=np.uint8)
    owner: dict[tuple[int, int], int] = {}
    for p, (poly, kind) in enumerate(polygons):
        table[p, : len(poly)] = remap[poly]
        vertex_count[p] = len(poly)
        area[p] = kind
        for k, v in enumerate(poly):
            owner[(v, poly[(k + 1) % len(poly)])] = p
    neighbours = np.full((count, MAX_POLY_VERTS), -1, dtype=np.int64)
    for p, (poly, _) in enumerate(polygons):
        for k, v in enumerate(poly):
            neighbours[p, k] = owner.get((poly[(k + 1) % len(poly)], v), -1)
    vertices = np.column_stack([xy[used], z[used]])
    return WalkableMesh(vertices, table, vertex_count, area, neighbours)
