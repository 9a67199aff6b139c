"""The static town layout around a map's roads: surfaces, markings and seeded props, as tagged triangles.

:class:`TownLayout` is built once per map from the world's lane polygons:
road (tag 1) with painted lane markings and crosswalk stripes (24), raised
sidewalks with kerbs (2), shoulders (1), terrain (10), and seeded procedural
props off the road: buildings (3), walls (4), fences (5), street-light poles
(6), trees (9), traffic lights at the map's signals (7) and stop signs (8 on
a pole). Every triangle carries a CARLA semantic tag, an instance id (0: the
static world, as CARLA's semantic LiDAR) and a base colour (albedo) for the
RGB camera; the buildings are also kept as oriented boxes
(:attr:`TownLayout.building_boxes`).

Plain numpy, shapely and OpenCV: no Open3D. The raycasting scene
(:mod:`sim.embedded.sensors.scene`) builds its Embree BVH over this layout,
and ``avsim serve`` answers level boxes and environment objects from it
without importing Open3D.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import shapely

from sim.api import TrafficLightState
from sim.embedded.sensors.meshes import BOX_FACE_TOP, Tag, boxes, concat, cylinders, icospheres
from sim.transforms import box_corners

__all__ = ["LAMP_DARK", "LAMP_LIT", "Lamps", "Tag", "TownLayout"]

# ---------------------------------------------------------------------------------------------- layout constants
SIDEWALK_HEIGHT_M = 0.15
MARKING_LIFT_M = 0.02  # paint floats above the asphalt so rays meet it first
MARKING_WIDTH_M = 0.15
TERRAIN_DROP_M = 0.05
TERRAIN_MARGIN_M = 60.0
_DASH_M, _DASH_PERIOD_M = 3.0, 9.0
_DOUBLE_LINE_OFFSET_M = 0.1

# Base colours (RGB); natural rather than the Cityscapes palette.
ASPHALT = (78, 78, 80)
SHOULDER = (92, 90, 88)
PAINT_WHITE = (225, 225, 220)
PAINT_YELLOW = (220, 180, 40)
PAVEMENT = (172, 168, 160)
KERB = (150, 148, 142)
GRASS = (92, 118, 60)
_FACADES = np.array([(186, 166, 142), (150, 140, 130), (205, 195, 175), (120, 112, 104), (168, 98, 78),
                     (140, 152, 164), (214, 206, 190), (96, 100, 110)], dtype=np.uint8)
ROOF = (88, 84, 80)
CONCRETE = (165, 158, 145)
FENCE_WOOD = (112, 96, 72)
METAL = (112, 114, 118)
DARK_METAL = (52, 56, 54)
TRUNK = (92, 68, 46)
_LEAVES = np.array([(62, 112, 44), (78, 126, 52), (52, 96, 40), (96, 130, 58)], dtype=np.uint8)
SIGN_RED = (190, 30, 30)
LAMP_LIT = {int(TrafficLightState.RED): (255, 40, 30), int(TrafficLightState.YELLOW): (255, 190, 0),
            int(TrafficLightState.GREEN): (40, 255, 100)}
LAMP_DARK = {int(TrafficLightState.RED): (60, 22, 20), int(TrafficLightState.YELLOW): (60, 48, 14),
             int(TrafficLightState.GREEN): (16, 50, 26)}
_UP = np.array([0.0, 0.0, 1.0])
_ROAD_AREAS = (1, 3, 4, 5)  # AreaClass codes on which nothing may stand: driving, shoulder, junction, crosswalk


class _MeshAccumulator:
    """Collects triangle meshes with a tag and colour per triangle; hands back flat arrays."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.num_vertices = 0
        self.num_triangles = 0

    def add(self, vertices: np.ndarray, triangles: np.ndarray, tag: int | np.ndarray,
            albedo: tuple[int, int, int] | np.ndarray, facing: np.ndarray | None = None) -> np.ndarray:
        """Add a mesh; returns the global indices of its triangles.

        ``facing`` (3,) or (T, 3): triangles whose normal points away from it
        are turned around, so most rays meet front faces (``Scene`` then
        rarely has to flip a normal).
        """
        n = triangles.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if facing is not None:
            a, b, c = (vertices[triangles[:, k]] for k in range(3))
            back = np.einsum("ij,ij->i", np.cross(b - a, c - a), np.broadcast_to(facing, (n, 3))) < 0
            triangles = np.where(back[:, None], triangles[:, [0, 2, 1]], triangles)
        tags = np.broadcast_to(np.asarray(tag, dtype=np.uint8), (n,))
        colours = np.broadcast_to(np.asarray(albedo, dtype=np.uint8), (n, 3))
        self._parts.append((vertices, triangles + self.num_vertices, tags, colours))
        first = self.num_triangles
        self.num_vertices += vertices.shape[0]
        self.num_triangles += n
        return np.arange(first, self.num_triangles)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(vertices float32, triangles int32, tags uint8, albedo uint8) of everything added."""
        return (np.concatenate([p[0] for p in self._parts]).astype(np.float32),
                np.concatenate([p[1] for p in self._parts]).astype(np.int32),
                np.concatenate([p[2] for p in self._parts]),
                np.ascontiguousarray(np.concatenate([p[3] for p in self._parts])))


# ---------------------------------------------------------------------------------------------- static geometry
class _Ground:
    """Ground height at any (x, y): the z of the nearest lane-centre sample."""

    def __init__(self, lanes) -> None:
        self._tree = lanes.kdtree
        self._z = lanes.points_xyz[:, 2]

    def z(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if self._z.size == 0:
            return np.zeros(xy.shape[0])
        return self._z[self._tree.query(xy)[1]]

    def lift(self, xy: np.ndarray, dz: float = 0.0) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        return np.column_stack([xy, self.z(xy) + dz])


def _strip_sides(polygon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A lane polygon (left boundary then right boundary reversed) split into its two (K, 2) sides."""
    k = polygon.shape[0] // 2
    return polygon[:k], polygon[k:][::-1]


def _strip_mesh(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quad strip between two (K, 3) polylines."""
    k = left.shape[0]
    i = np.arange(k - 1)
    tris = np.concatenate([np.stack([i, i + 1, k + i], 1), np.stack([i + 1, k + i + 1, k + i], 1)])
    return np.concatenate([left, right]), tris


def _wall_mesh(line: np.ndarray, z0: np.ndarray, z1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical quads along a (K, 2) polyline from z0 to z1 (per point)."""
    return _strip_mesh(np.column_stack([line, z0]), np.column_stack([line, z1]))


def _add_lane_surfaces(acc: _MeshAccumulator, geometry, ground: _Ground) -> None:
    for polygons, tag, colour, lift in ((geometry.driving_polygons, Tag.ROAD, ASPHALT, 0.0),
                                        (geometry.shoulder_polygons, Tag.ROAD, SHOULDER, 0.0)):
        for polygon in polygons:
            left, right = _strip_sides(polygon)
            acc.add(*_strip_mesh(ground.lift(left, lift), ground.lift(right, lift)), tag, colour, _UP)
    for polygon in geometry.sidewalk_polygons:
        left, right = _strip_sides(polygon)
        lz, rz = ground.z(left), ground.z(right)
        top = _strip_mesh(np.column_stack([left, lz + SIDEWALK_HEIGHT_M]),
                          np.column_stack([right, rz + SIDEWALK_HEIGHT_M]))
        acc.add(*top, Tag.SIDEWALK, PAVEMENT, _UP)
        for side, other, z in ((left, right, lz), (right, left, rz)):
            away = np.column_stack([side - other, np.zeros(side.shape[0])])[:-1]  # per segment, off the strip
            acc.add(*_wall_mesh(side, z - TERRAIN_DROP_M, z + SIDEWALK_HEIGHT_M), Tag.SIDEWALK, KERB,
                    np.concatenate([away, away]))


def _resample(line: np.ndarray, step_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_m`` along a polyline (the last point kept) and their arc lengths."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 1e-6:
        return line[:1], s[:1]
    n = max(math.ceil(s[-1] / step_m), 1)
    at = np.linspace(0.0, s[-1], n + 1)
    return np.column_stack([np.interp(at, s, line[:, 0]), np.interp(at, s, line[:, 1])]), at


_MARKING_LINES = {  # marking type -> lines as (lateral offset, dashed)
    "Solid": ((0.0, False),), "Broken": ((0.0, True),), "BottsDots": ((0.0, True),),
    "SolidSolid": ((-_DOUBLE_LINE_OFFSET_M, False), (_DOUBLE_LINE_OFFSET_M, False)),
    "SolidBroken": ((-_DOUBLE_LINE_OFFSET_M, False), (_DOUBLE_LINE_OFFSET_M, True)),
    "BrokenSolid": ((-_DOUBLE_LINE_OFFSET_M, True), (_DOUBLE_LINE_OFFSET_M, False)),
    "BrokenBroken": ((-_DOUBLE_LINE_OFFSET_M, True), (_DOUBLE_LINE_OFFSET_M, True)),
}


def _add_markings(acc: _MeshAccumulator, geometry, ground: _Ground, raster) -> None:
    """Lane markings as thin paint quads, one per metre of line (dashes 3 m on, 6 m off).

    A line on the road's edge (road on one side only) moves a line width
    inward, off the kerb, as edge lines are painted.
    """
    starts, ends, colours = [], [], []
    for marking in geometry.lane_markings:
        lines = _MARKING_LINES.get(marking.marking_type)
        if lines is None:  # NONE, Curb, Grass, Other: nothing painted
            continue
        points, s = _resample(np.asarray(marking.points_xy, dtype=float), 1.0)
        if points.shape[0] < 2:
            continue
        direction = np.diff(points, axis=0)
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
        normal = np.column_stack([-direction[:, 1], direction[:, 0]])
        mid_s = (s[:-1] + s[1:]) / 2
        mid = (points[:-1] + points[1:]) / 2
        road_left = np.isin(raster.lookup(mid + 0.5 * normal), _ROAD_AREAS)
        road_right = np.isin(raster.lookup(mid - 0.5 * normal), _ROAD_AREAS)
        inset = (road_left.astype(float) - road_right.astype(float)) * MARKING_WIDTH_M
        colour = PAINT_YELLOW if marking.color == "Yellow" else PAINT_WHITE
        for offset, dashed in lines:
            keep = (mid_s % _DASH_PERIOD_M < _DASH_M) if dashed else np.ones(mid_s.shape, bool)
            shift = ((offset + inset) * normal.T).T[keep]
            starts.append(points[:-1][keep] + shift)
            ends.append(points[1:][keep] + shift)
            colours.append(np.broadcast_to(np.asarray(colour, np.uint8), (int(keep.sum()), 3)))
    if not starts:
        return
    a, b = np.concatenate(starts), np.concatenate(ends)
    d = b - a
    half = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    half *= MARKING_WIDTH_M / 2
    corners = np.stack([a - half, a + half, b + half, b - half], axis=1).reshape(-1, 2)
    verts = ground.lift(corners, MARKING_LIFT_M)
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    tris = (quad[None] + 4 * np.arange(a.shape[0])[:, None, None]).reshape(-1, 3)
    acc.add(verts, tris, Tag.ROAD_LINE, np.repeat(np.concatenate(colours), 2, axis=0), _UP)


def _add_crosswalks(acc: _MeshAccumulator, geometry, ground: _Ground) -> None:
    """Zebra stripes (0.5 m paint, 0.5 m gap) across each crosswalk polygon, along its long axis."""
    for polygon in geometry.crosswalk_polygons:
        area = shapely.make_valid(shapely.Polygon(polygon))
        if area.area < 0.5:
            continue
        rect = np.asarray(area.minimum_rotated_rectangle.exterior.coords)[:4]
        e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
        u, v = (e1, e2) if np.linalg.norm(e1) >= np.linalg.norm(e2) else (e2, e1)
        length, width = np.linalg.norm(u), np.linalg.norm(v)
        u, v = u / length, v / width
        origin = rect.mean(axis=0) - u * length / 2 - v * width / 2
        stripes = []
        for start in np.arange(0.25, length - 0.25, 1.0):
            a, b = origin + u * start, origin + u * min(start + 0.5, length)
            stripe = shapely.Polygon([a, b, b + v * width, a + v * width]).intersection(area)
            if not stripe.is_empty and stripe.area > 0.05:
                stripes.append(stripe)
        if not stripes:
            continue
        triangles = shapely.get_parts(shapely.constrained_delaunay_triangles(shapely.MultiPolygon(
            [g for s in stripes for g in shapely.get_parts(s) if g.geom_type == "Polygon"])))
        if triangles.size == 0:
            continue
        corners = np.array([np.asarray(t.exterior.coords)[:3] for t in triangles]).reshape(-1, 2)
        verts = ground.lift(corners, MARKING_LIFT_M)
        acc.add(verts, np.arange(verts.shape[0]).reshape(-1, 3), Tag.ROAD_LINE, PAINT_WHITE, _UP)


def _add_terrain(acc: _MeshAccumulator, bounds: tuple[float, float, float, float], ground: _Ground,
                 raster) -> None:
    """Ground a little below the road, reaching ``TERRAIN_MARGIN_M`` past the map.

    10 m cells clear of the road network are one quad each; cells touching
    it are split into 2.5 m cells and those fully under road or sidewalk are
    dropped. Terrain under the road would only cost time: rays hitting the
    road would also have to visit the overlapping terrain in the BVH (a
    plain 20 m grid made the static cast ~10% slower; see scene_results.md).
    """
    coarse, split = 10.0, 4
    fine = coarse / split
    xmin, ymin, xmax, ymax = bounds
    nx_ = math.ceil((xmax - xmin + 2 * TERRAIN_MARGIN_M) / coarse)
    ny_ = math.ceil((ymax - ymin + 2 * TERRAIN_MARGIN_M) / coarse)
    x0, y0 = xmin - TERRAIN_MARGIN_M, ymin - TERRAIN_MARGIN_M
    # Fine cells (row-major over the whole grid) and a 5 x 5 sample grid on each, edges included.
    fr, fc = np.meshgrid(np.arange(ny_ * split), np.arange(nx_ * split), indexing="ij")
    corner = np.column_stack([x0 + fc.ravel() * fine, y0 + fr.ravel() * fine])
    t = np.linspace(0.0, fine, 5)
    offsets = np.stack(np.meshgrid(t, t), axis=-1).reshape(-1, 2)
    classes = raster.lookup((corner[:, None, :] + offsets[None]).reshape(-1, 2)).reshape(corner.shape[0], -1)
    clear = (classes == 0).all(axis=1).reshape(ny_, split, nx_, split)
    covered = (classes != 0).all(axis=1).reshape(ny_ * split, nx_ * split)
    coarse_clear = clear.all(axis=(1, 3))  # (ny_, nx_)
    cr, cc = np.nonzero(coarse_clear)
    quads = [np.column_stack([x0 + cc * coarse, y0 + cr * coarse, np.full(cr.size, coarse)])]
    keep = ~covered & ~np.repeat(np.repeat(coarse_clear, split, axis=0), split, axis=1)
    kr, kc = np.nonzero(keep)
    quads.append(np.column_stack([x0 + kc * fine, y0 + kr * fine, np.full(kr.size, fine)]))
    q = np.concatenate(quads)
    x, y, size = q[:, 0], q[:, 1], q[:, 2]
    corners = np.stack([np.column_stack([x, y]), np.column_stack([x + size, y]),
                        np.column_stack([x + size, y + size]), np.column_stack([x, y + size])], axis=1)
    verts = ground.lift(corners.reshape(-1, 2), -TERRAIN_DROP_M)
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    acc.add(verts, (quad[None] + 4 * np.arange(q.shape[0])[:, None, None]).reshape(-1, 3), Tag.TERRAIN, GRASS, _UP)


class _Occupancy:
    """A 0.5 m grid of where props may not go: road areas (dilated) and props already placed."""

    RES_M = 0.5

    def __init__(self, raster, bounds: tuple[float, float, float, float], margin_m: float) -> None:
        xmin, ymin, xmax, ymax = bounds
        self.origin = np.array([xmin - margin_m, ymin - margin_m])
        w = math.ceil((xmax - xmin + 2 * margin_m) / self.RES_M)
        h = math.ceil((ymax - ymin + 2 * margin_m) / self.RES_M)
        cols, rows = np.meshgrid(np.arange(w), np.arange(h))
        centres = self.origin + (np.column_stack([cols.ravel(), rows.ravel()]) + 0.5) * self.RES_M
        self.area = raster.lookup(centres).reshape(h, w)
        road = np.isin(self.area, _ROAD_AREAS) | (self.area == 2)
        self.blocked = cv2.dilate(road.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    def _cells(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cell = np.floor((np.asarray(xy).reshape(-1, 2) - self.origin) / self.RES_M).astype(np.int64)
        h, w = self.blocked.shape
        inside = (cell[:, 0] >= 0) & (cell[:, 0] < w) & (cell[:, 1] >= 0) & (cell[:, 1] < h)
        return np.clip(cell[:, 1], 0, h - 1), np.clip(cell[:, 0], 0, w - 1), inside

    def free(self, xy: np.ndarray) -> np.ndarray:
        """Per point: inside the grid and neither road nor taken."""
        r, c, inside = self._cells(xy)
        return inside & ~self.blocked[r, c]

    def take(self, polygon_xy: np.ndarray) -> None:
        pixels = (np.asarray(polygon_xy) - self.origin) / self.RES_M - 0.5
        mask = self.blocked.view(np.uint8)
        cv2.fillPoly(mask, [np.round(pixels * 16).astype(np.int32)], 1, cv2.LINE_8, 4)


def _footprint(centre: np.ndarray, yaw: float, half_long: float, half_lat: float) -> np.ndarray:
    """Corners (4, 2) of one rectangle; ``half_long`` along the yaw direction (order of ``box_corners``)."""
    return box_corners(np.asarray(centre, dtype=float)[None], np.array([yaw]), np.array([[half_long, half_lat]]))[0]


def _squares(centres: np.ndarray, half_m: float) -> np.ndarray:
    """Corners (N, 4, 2) of axis-aligned squares of half side ``half_m`` around (N, 2) centres."""
    n = centres.shape[0]
    return box_corners(np.asarray(centres, dtype=float).reshape(n, 2), np.zeros(n), np.full((n, 2), half_m))


def _rect_samples(corners: np.ndarray, n: int = 6) -> np.ndarray:
    """An n x n grid of points over a rectangle given by its corners (``box_corners`` order; edges included)."""
    t = np.linspace(0.0, 1.0, n)
    a, b, d = corners[1], corners[2], corners[0]
    return (a[None, None] + t[:, None, None] * (b - a) + t[None, :, None] * (d - a)).reshape(-1, 2)


@dataclass
class _SidewalkEdge:
    """The outer (away from the road) and inner boundary of one sidewalk strip."""

    outer: np.ndarray  # (K, 2)
    inner: np.ndarray  # (K, 2)
    outward: np.ndarray  # (K, 2) unit, from inner toward outer and beyond


def _sidewalk_edges(geometry, raster) -> list[_SidewalkEdge]:
    """Sidewalks with off-road land behind them, split into the edge by the road and the outer edge."""
    edges = []
    for polygon in geometry.sidewalk_polygons:
        left, right = _strip_sides(polygon)
        if left.shape[0] < 2:
            continue
        across = left - right
        across /= np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)
        left_off = (raster.lookup(left + 1.2 * across) == 0).mean()
        right_off = (raster.lookup(right - 1.2 * across) == 0).mean()
        if max(left_off, right_off) < 0.5:
            continue  # a sidewalk between two roads (a median): no frontage
        if left_off >= right_off:
            edges.append(_SidewalkEdge(left, right, across))
        else:
            edges.append(_SidewalkEdge(right, left, -across))
    return edges


def _along(line: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and unit tangents at arc lengths ``s_m`` on a polyline."""
    seg = np.hypot(*np.diff(line, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    point = np.column_stack([np.interp(s_m, s, line[:, 0]), np.interp(s_m, s, line[:, 1])])
    ahead = np.column_stack([np.interp(s_m + 0.5, s, line[:, 0]), np.interp(s_m + 0.5, s, line[:, 1])])
    behind = np.column_stack([np.interp(s_m - 0.5, s, line[:, 0]), np.interp(s_m - 0.5, s, line[:, 1])])
    tangent = ahead - behind
    return point, tangent / np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)


def _outward_at(edge: _SidewalkEdge, point: np.ndarray, tangent: np.ndarray) -> np.ndarray:
    """Unit normals to ``tangent`` on the side away from the road."""
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    nearest = np.argmin(((edge.outer[None] - point[:, None]) ** 2).sum(-1), axis=1)
    flip = (normal * edge.outward[nearest]).sum(1) < 0
    normal[flip] *= -1
    return normal


def _line_length(line: np.ndarray) -> float:
    return float(np.hypot(*np.diff(line, axis=0).T).sum())


class _Buildings:
    """Box buildings placed one by one on free land, meshed together at the end."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.records: list[tuple] = []  # (x, y, width, depth, height, yaw, colour)

    def try_place(self, occ: _Occupancy, centre: np.ndarray, yaw: float, width: float, depth: float) -> bool:
        """Place a building if its footprint (plus 0.5 m) is free; returns whether it was placed."""
        if not occ.free(_rect_samples(_footprint(centre, yaw, width / 2 + 0.5, depth / 2 + 0.5), 7)).all():
            return False
        occ.take(_footprint(centre, yaw, width / 2, depth / 2))
        rng = self.rng
        height = rng.choice([rng.uniform(4.0, 9.0), rng.uniform(9.0, 22.0), rng.uniform(22.0, 45.0)],
                            p=[0.55, 0.35, 0.10])
        self.records.append((float(centre[0]), float(centre[1]), width, depth, height, yaw,
                             _FACADES[rng.integers(len(_FACADES))]))
        return True

    def boxes(self, ground: _Ground) -> np.ndarray:
        """(B, 7) oriented boxes: centre x, y, z, half width (along yaw), half depth, half height, yaw [rad]."""
        if not self.records:
            return np.zeros((0, 7))
        x, y, width, depth, height, yaw, _ = (np.array(v) for v in zip(*self.records))
        base = ground.z(np.column_stack([x, y])) - TERRAIN_DROP_M
        return np.column_stack([x, y, base + height / 2, width / 2, depth / 2, height / 2, yaw])

    def mesh(self, acc: _MeshAccumulator, ground: _Ground) -> None:
        if not self.records:
            return
        box = self.boxes(ground)
        verts, tris = boxes(box[:, :3], box[:, 3:6], box[:, 6])
        colour = np.array([record[6] for record in self.records])
        albedo = np.repeat(colour.astype(np.uint8), 12, axis=0)
        albedo.reshape(-1, 12, 3)[:, BOX_FACE_TOP] = ROOF
        acc.add(verts, tris, Tag.BUILDING, albedo)


def _place_frontage_buildings(buildings: _Buildings, edges: list[_SidewalkEdge], occ: _Occupancy) -> None:
    """Buildings facing the street along sidewalks' outer edges, 0.8-3 m behind the sidewalk."""
    rng = buildings.rng
    for edge in edges:
        total = _line_length(edge.outer)
        s = rng.uniform(0.0, 4.0)
        while s < total - 4.0:
            width, depth, setback = rng.uniform(8.0, 22.0), rng.uniform(8.0, 20.0), rng.uniform(0.8, 3.0)
            point, tangent = _along(edge.outer, np.array([min(s + width / 2, total)]))
            normal = _outward_at(edge, point, tangent)[0]
            yaw = math.atan2(tangent[0, 1], tangent[0, 0])
            if buildings.try_place(occ, point[0] + normal * (setback + depth / 2), yaw, width, depth):
                s += width + rng.uniform(0.0, 3.0)
            else:
                s += 3.0


def _place_backlot_buildings(buildings: _Buildings, occ: _Occupancy, lanes,
                             bounds: tuple[float, float, float, float], attempts: int) -> None:
    """Buildings on free land inside blocks, turned like the nearest lane."""
    rng = buildings.rng
    xmin, ymin, xmax, ymax = bounds
    centres = np.column_stack([rng.uniform(xmin, xmax, attempts), rng.uniform(ymin, ymax, attempts)])
    sizes = rng.uniform(8.0, 20.0, (attempts, 2))
    free = occ.free(centres)
    yaws = lanes.yaw_rad[lanes.kdtree.query(centres)[1]] if lanes.points_xyz.shape[0] else np.zeros(attempts)
    for k in np.flatnonzero(free):
        buildings.try_place(occ, centres[k], float(yaws[k]), float(sizes[k, 0]), float(sizes[k, 1]))


def _add_boundary_walls(acc: _MeshAccumulator, edges: list[_SidewalkEdge], occ: _Occupancy, ground: _Ground,
                        rng: np.random.Generator) -> None:
    """Walls or fences (2 m panels) behind sidewalks where no building stands."""
    panels: dict[int, list] = {Tag.WALL: [], Tag.FENCE: []}
    for edge in edges:
        total = _line_length(edge.outer)
        if total < 4.0:
            continue
        s = np.arange(1.0, total - 1.0, 2.0)
        point, tangent = _along(edge.outer, s)
        normal = _outward_at(edge, point, tangent)
        line = point + 0.8 * normal
        ok = occ.free(line) & occ.free(point + 3.0 * normal)
        # Runs of free panels, each a wall, a fence or left open.
        run_start = np.flatnonzero(ok & ~np.concatenate([[False], ok[:-1]]))
        run_id = np.cumsum(ok & ~np.concatenate([[False], ok[:-1]])) - 1
        choice = rng.choice([Tag.WALL, Tag.FENCE, 0], size=max(run_start.size, 1), p=[0.4, 0.4, 0.2])
        height = rng.uniform(1.0, 2.2, size=max(run_start.size, 1))
        for i in np.flatnonzero(ok):
            kind = int(choice[run_id[i]])
            if kind:
                panels[kind].append((line[i], tangent[i], height[run_id[i]]))
        taken = np.flatnonzero(ok)
        for corners in box_corners(line[taken], np.arctan2(tangent[taken, 1], tangent[taken, 0]),
                                   np.tile([1.0, 0.3], (taken.size, 1))):
            occ.take(corners)
    for kind, thickness, colour in ((Tag.WALL, 0.25, CONCRETE), (Tag.FENCE, 0.05, FENCE_WOOD)):
        if not panels[kind]:
            continue
        xy = np.array([p[0] for p in panels[kind]])
        t = np.array([p[1] for p in panels[kind]])
        h = np.array([p[2] for p in panels[kind]])
        z0 = ground.z(xy) - TERRAIN_DROP_M
        centre = np.column_stack([xy, z0 + h / 2])
        half = np.column_stack([np.full(len(h), 1.0), np.full(len(h), thickness / 2), h / 2])
        acc.add(*boxes(centre, half, np.arctan2(t[:, 1], t[:, 0])), kind, colour)


def _add_street_furniture(acc: _MeshAccumulator, edges: list[_SidewalkEdge], occ: _Occupancy, ground: _Ground,
                          rng: np.random.Generator) -> None:
    """Street-light poles every ~30 m and trees every ~15 m along sidewalks."""
    poles, pole_dirs, trees = [], [], []
    for edge in edges:
        total = _line_length(edge.inner)
        if total < 6.0:
            continue
        width = np.median(np.linalg.norm(edge.outer - edge.inner, axis=1))
        s_pole = np.arange(rng.uniform(3.0, 15.0), total - 2.0, rng.uniform(25.0, 35.0))
        if s_pole.size:
            point, tangent = _along(edge.inner, s_pole)
            normal = _outward_at(edge, point, tangent)
            poles.append(point + 0.4 * normal)
            pole_dirs.append(-normal)
        s_tree = np.arange(rng.uniform(8.0, 14.0), total - 2.0, rng.uniform(12.0, 18.0))
        s_tree = s_tree[np.min(np.abs(s_tree[:, None] - np.append(s_pole, -1e9)[None]), axis=1) > 4.0]
        if s_tree.size:
            point, tangent = _along(edge.inner, s_tree)
            normal = _outward_at(edge, point, tangent)
            spot = point + normal * (0.9 if width >= 2.5 else width + 2.0)
            keep = occ.free(spot) if width < 2.5 else np.ones(len(spot), bool)
            trees.append(spot[keep])
    if poles:
        xy = np.concatenate(poles)
        direction = np.concatenate(pole_dirs)
        z0 = ground.z(xy)
        height = 7.0
        acc.add(*cylinders(xy, z0, z0 + height, 0.1, segments=6), Tag.POLE, METAL)
        arm_c = np.column_stack([xy + direction * 0.9, z0 + height - 0.1])
        arm_yaw = np.arctan2(direction[:, 1], direction[:, 0])
        acc.add(*boxes(arm_c, (0.9, 0.06, 0.06), arm_yaw), Tag.POLE, METAL)
        lamp_c = np.column_stack([xy + direction * 1.6, z0 + height - 0.25])
        acc.add(*boxes(lamp_c, (0.35, 0.15, 0.08), arm_yaw), Tag.POLE, DARK_METAL)
        for corners in _squares(xy, 0.3):
            occ.take(corners)
    if trees:
        _add_trees(acc, np.concatenate(trees), ground, rng)


def _add_trees(acc: _MeshAccumulator, xy: np.ndarray, ground: _Ground, rng: np.random.Generator) -> None:
    if xy.shape[0] == 0:
        return
    n = xy.shape[0]
    z0 = ground.z(xy) - TERRAIN_DROP_M
    trunk_h = rng.uniform(2.0, 3.5, n)
    crown_r = rng.uniform(1.4, 2.8, n)
    acc.add(*cylinders(xy, z0, z0 + trunk_h + crown_r * 0.5, rng.uniform(0.12, 0.25, n), segments=6),
            Tag.VEGETATION, TRUNK)
    radii = np.column_stack([crown_r, crown_r, crown_r * rng.uniform(0.9, 1.5, n)])
    centre = np.column_stack([xy, z0 + trunk_h + radii[:, 2] * 0.8])
    leaves = np.repeat(_LEAVES[rng.integers(len(_LEAVES), size=n)], 20, axis=0)
    acc.add(*icospheres(centre, radii), Tag.VEGETATION, leaves)


def _scatter_trees(acc: _MeshAccumulator, occ: _Occupancy, ground: _Ground, rng: np.random.Generator,
                   bounds: tuple[float, float, float, float], per_m2: float = 1.0 / 300.0) -> None:
    """Trees on free off-road land (at most one per 7 m cell)."""
    xmin, ymin, xmax, ymax = bounds
    count = int((xmax - xmin) * (ymax - ymin) * per_m2)
    xy = np.column_stack([rng.uniform(xmin, xmax, count), rng.uniform(ymin, ymax, count)])
    probes = xy[:, None, :] + np.array([[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]])[None]
    ok = occ.free(probes.reshape(-1, 2)).reshape(count, 5).all(axis=1)
    xy = xy[ok]
    _, first = np.unique(np.floor(xy / 7.0).astype(np.int64), axis=0, return_index=True)
    xy = xy[np.sort(first)]
    for corners in _squares(xy, 1.0):
        occ.take(corners)
    _add_trees(acc, xy, ground, rng)


@dataclass(frozen=True)
class Lamps:
    """Traffic-light lamp triangles: which light and which colour each one shows."""

    triangles: np.ndarray  # (M,) int64 triangle index
    light: np.ndarray  # (M,) int64 light index (row of the snapshot's light arrays)
    colour: np.ndarray  # (M,) int8 TrafficLightState the lamp shows when lit


def _add_traffic_lights(acc: _MeshAccumulator, world, ground: _Ground) -> Lamps:
    """A pole at each signal (moved off the road if needed), an arm over the lanes and two heads."""
    signals, lanes, raster = world.signals, world.lanes, world.area_raster
    lamp_tris, lamp_light, lamp_colour = [], [], []
    pole_parts, housing_parts = [], []
    for light in range(signals.location_xyz.shape[0]):
        controlled = np.flatnonzero(signals.lane_light == light)
        if controlled.size:
            ends = lanes.offset[controlled] + lanes.count[controlled] - 1
            stop_xy = lanes.points_xyz[ends, :2].mean(axis=0)
            yaw = float(np.arctan2(np.sin(lanes.yaw_rad[ends]).mean(), np.cos(lanes.yaw_rad[ends]).mean()))
        else:
            stop_xy, yaw = signals.location_xyz[light, :2], 0.0
        forward = np.array([math.cos(yaw), math.sin(yaw)])
        right = np.array([-forward[1], forward[0]])
        pole = signals.location_xyz[light, :2].astype(float)
        if raster.lookup(pole[None])[0] in _ROAD_AREAS:
            steps = stop_xy[None] + right[None] * np.arange(0.5, 25.0, 0.5)[:, None]
            off = np.flatnonzero(~np.isin(raster.lookup(steps), _ROAD_AREAS))
            pole = steps[off[0]] + right * 0.5 if off.size else steps[-1]
        z0 = float(ground.z(pole[None])[0])
        top = z0 + 5.5
        pole_parts.append(cylinders(pole[None], z0, top, 0.12, segments=6))
        reach = stop_xy - pole
        reach -= forward * np.dot(reach, forward)  # the arm runs across the lanes, not along them
        length = min(float(np.linalg.norm(reach)), 7.0)
        heads = [np.array([*(pole - forward * 0.3), z0 + 2.9])]
        if length > 1.5:
            along = reach / np.linalg.norm(reach)
            arm_centre = np.array([*(pole + along * length / 2), top - 0.15])
            pole_parts.append(boxes(arm_centre[None], (length / 2, 0.08, 0.08),
                                    np.array([math.atan2(along[1], along[0])])))
            heads.append(np.array([*(pole + along * (length - 0.3) - forward * 0.2), top - 0.8]))
        for head in heads:
            housing_parts.append(boxes(head[None], (0.18, 0.22, 0.5), np.array([yaw])))
            front = head[:2] - forward * 0.2
            for k, state in enumerate((TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN)):
                centre = np.array([[*front, head[2] + 0.3 - 0.3 * k]])
                index = acc.add(*boxes(centre, (0.03, 0.12, 0.12), np.array([yaw])), Tag.TRAFFIC_LIGHT,
                                LAMP_DARK[int(state)])
                lamp_tris.append(index)
                lamp_light.append(np.full(index.size, light))
                lamp_colour.append(np.full(index.size, int(state)))
    if pole_parts:
        acc.add(*concat(pole_parts), Tag.TRAFFIC_LIGHT, DARK_METAL)
        acc.add(*concat(housing_parts), Tag.TRAFFIC_LIGHT, (34, 36, 34))
    if not lamp_tris:
        return Lamps(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))
    return Lamps(np.concatenate(lamp_tris), np.concatenate(lamp_light),
                  np.concatenate(lamp_colour).astype(np.int8))


def _add_stop_signs(acc: _MeshAccumulator, world, ground: _Ground) -> None:
    """A pole (tag 6) with an octagonal plate (tag 8) at each stop sign, moved off the road if needed."""
    signals, lanes, raster = world.signals, world.lanes, world.area_raster
    for stop in range(signals.stop_location_xyz.shape[0]):
        controlled = np.flatnonzero(signals.lane_stop == stop)
        pole = signals.stop_location_xyz[stop, :2].astype(float)
        yaw = 0.0
        if controlled.size:
            end = int(lanes.offset[controlled[0]] + lanes.count[controlled[0]] - 1)
            yaw = float(lanes.yaw_rad[end])
            if raster.lookup(pole[None])[0] in _ROAD_AREAS:
                right = np.array([-math.sin(yaw), math.cos(yaw)])
                steps = lanes.points_xyz[end, :2][None] + right[None] * np.arange(0.5, 20.0, 0.5)[:, None]
                off = np.flatnonzero(~np.isin(raster.lookup(steps), _ROAD_AREAS))
                pole = steps[off[0]] + right * 0.5 if off.size else steps[-1]
        z0 = float(ground.z(pole[None])[0])
        acc.add(*cylinders(pole[None], z0, z0 + 2.6, 0.05), Tag.POLE, METAL)
        plate, tris = cylinders(np.zeros((1, 2)), -0.02, 0.02, 0.38, segments=8)
        plate = plate[:, [2, 0, 1]]  # the octagon faces along x (toward traffic) ...
        c, s = math.cos(yaw), math.sin(yaw)
        plate = plate @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + [*pole, z0 + 2.3]
        acc.add(plate, tris[:, [0, 2, 1]], Tag.TRAFFIC_SIGN, SIGN_RED)  # ... winding fixed for the axis swap



def props_seed(map_name: str) -> int:
    """The seed a town's props (buildings, walls, trees, poles) are placed with by default: fixed by the map's
    name, so every run on a town sees the same static world (a prior map built on one drive fits the next)."""
    return zlib.crc32(map_name.encode())


@dataclass(frozen=True, eq=False)
class TownLayout:
    """Static triangle geometry of one map, tagged and coloured per triangle; build it with :meth:`build`.

    Per triangle: ``triangle_tag`` (CARLA semantic tag), ``triangle_instance``
    (0: static world), ``triangle_albedo`` (RGB base colour; traffic-light
    lamps show their dark colour here, the raycasting ``Scene`` lights them).
    ``building_boxes`` are the buildings as oriented boxes; the arrays are
    read-only.
    """

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (T, 3) int32
    triangle_tag: np.ndarray  # (T,) uint8
    triangle_instance: np.ndarray  # (T,) uint32
    triangle_albedo: np.ndarray  # (T, 3) uint8
    lamps: Lamps
    num_lights: int
    building_boxes: np.ndarray  # (B, 7): centre x, y, z, half width, half depth, half height, yaw [rad]
    build_time_s: float

    @classmethod
    def build(cls, world, seed: int | None = None) -> TownLayout:
        """Lay out the town of ``world``'s map (geometry, lanes, signals, area raster); props placed with ``seed``
        (default :func:`props_seed` of the map: the same town every run, as CARLA's towns are)."""
        start = time.perf_counter()
        if seed is None:
            seed = props_seed(world.source.name)
        geometry, raster = world.geometry, world.area_raster
        rng = np.random.default_rng([int(seed), 4])
        ground = _Ground(world.lanes)
        acc = _MeshAccumulator()
        _add_terrain(acc, geometry.bounds_xy, ground, raster)
        _add_lane_surfaces(acc, geometry, ground)
        _add_markings(acc, geometry, ground, raster)
        _add_crosswalks(acc, geometry, ground)
        occ = _Occupancy(raster, geometry.bounds_xy, TERRAIN_MARGIN_M)
        lamps = _add_traffic_lights(acc, world, ground)
        _add_stop_signs(acc, world, ground)
        for corners in _squares(np.concatenate([world.signals.location_xyz[:, :2],
                                                world.signals.stop_location_xyz[:, :2]]), 1.5):
            occ.take(corners)
        edges = _sidewalk_edges(geometry, raster)
        buildings = _Buildings(rng)
        _place_frontage_buildings(buildings, edges, occ)
        _add_boundary_walls(acc, edges, occ, ground, rng)
        _add_street_furniture(acc, edges, occ, ground, rng)
        xmin, ymin, xmax, ymax = geometry.bounds_xy
        outskirts = (xmin - 30.0, ymin - 30.0, xmax + 30.0, ymax + 30.0)
        _place_backlot_buildings(buildings, occ, world.lanes, outskirts,
                                 attempts=int((outskirts[2] - outskirts[0]) * (outskirts[3] - outskirts[1]) / 150.0))
        buildings.mesh(acc, ground)
        _scatter_trees(acc, occ, ground, rng, outskirts)
        vertices, triangles, tags, albedo = acc.arrays()
        building_boxes = buildings.boxes(ground)
        for array in (vertices, triangles, tags, albedo, building_boxes):
            array.flags.writeable = False
        return cls(vertices=vertices, triangles=triangles, triangle_tag=tags,
                   triangle_instance=np.zeros(tags.shape, dtype=np.uint32), triangle_albedo=albedo, lamps=lamps,
                   num_lights=int(world.signals.location_xyz.shape[0]), building_boxes=building_boxes,
                   build_time_s=time.perf_counter() - start)

    @property
    def num_triangles(self) -> int:
        """Number of triangles."""
        return int(self.triangles.shape[0])

    @property
    def num_buildings(self) -> int:
        """Number of buildings."""
        return int(self.building_boxes.shape[0])

    def triangle_counts(self) -> dict[int, int]:
        """Triangles per semantic tag."""
        tags, counts = np.unique(self.triangle_tag, return_counts=True)
        return {int(t): int(c) for t, c in zip(tags, counts)}
