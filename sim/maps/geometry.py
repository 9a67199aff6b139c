"""Map geometry from a `carla.Map`: lane-area polygons, lane markings and a class raster.

The polygons serve BEV rendering and analysis; the raster (`AreaRaster`) answers
"what kind of ground is under this point" quickly for off-road and sidewalk checks.
All coordinates are CARLA world metres (x forward, y right). Where the map's surfaces
pass over one another (a bridge over a road), the raster also keeps one layer per
level, so a point's class can be asked at a height.

Lanes are sampled only through lateral neighbours of driving-lane waypoints
(`get_left_lane` / `get_right_lane`): the client library's longitudinal stepping on
non-driving lanes is unreliable (`previous_until_lane_start` on a sidewalk can crash).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import carla
import cv2
import numpy as np

from sim.maps.lanes import LEVEL_SEPARATION_M

__all__ = [
    "AreaClass",
    "AreaRaster",
    "LaneMarking",
    "MapGeometry",
    "build_map_geometry",
    "rasterize_areas",
]

_MAX_LANES_PER_SECTION = 64  # bound on the lateral walk; real roads have < 20 lanes
_MIN_LANE_WIDTH_M = 0.01  # lanes never wider than this are not drawn
_FILL_SHIFT = 4  # cv2 fixed-point bits: sub-pixel polygon vertices
_MAX_LEVELS = 4  # surfaces stacked deeper than this at one spot share the top level
_FLAT_PIECE_M = 0.5  # a lane polygon whose height varies less than this is painted as one piece
_PIECE_SAMPLES = 4  # otherwise it is painted in pieces of this many samples (about 4 m)
_JUNCTION_GAP_M = 4.0  # ground enclosed by a junction's lanes is paved up to this width (wider: an island)
_CORNER_KERB_M = 3.0  # a junction corner's sidewalk reaches this far from the lanes (within the junction's hull)
_ROAD_END_REACH_M = 0.3  # a road whose end lies this close to a junction's lanes meets the junction


class AreaClass(IntEnum):
    """Ground class of a map point; values are the raster's uint8 codes."""

    OFFROAD = 0  # buildings, terrain, anything outside the road network
    DRIVING = 1
    SIDEWALK = 2
    SHOULDER = 3  # shoulder, parking, border, median, biking and other non-driving lanes
    JUNCTION = 4  # driving area inside junctions
    CROSSWALK = 5


@dataclass(frozen=True, eq=False)
class LaneMarking:
    """A polyline along a lane boundary with one marking type and colour.

    marking_type is a carla.LaneMarkingType name ("Broken", "Solid", "SolidSolid", ...,
    "NONE"); color is a carla.LaneMarkingColor name ("White", "Yellow", ...).
    """

    points_xy: np.ndarray  # (K, 2), K >= 2
    marking_type: str
    color: str


@dataclass(frozen=True, eq=False)
class MapGeometry:
    """Polygons (each a (K, 2) array, one per lane segment) and markings of one map."""

    bounds_xy: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax incl. a margin
    driving_polygons: list[np.ndarray]  # all driving lanes, junction lanes included
    junction_polygons: list[np.ndarray]  # driving lanes inside junctions
    sidewalk_polygons: list[np.ndarray]
    shoulder_polygons: list[np.ndarray]
    crosswalk_polygons: list[np.ndarray]
    lane_markings: list[LaneMarking]
    polygon_z_m: dict[str, list[np.ndarray]] = field(default_factory=dict)
    """Heights (K,) of the vertices of each polygon, by list name ("driving_polygons", ...); a list
    that is missing here is at height 0."""
    junction_hulls: list[np.ndarray] = field(default_factory=list)
    """Per junction, the convex hull (K, 2) of all its lanes (any type) and of the ends of the roads
    that meet it (sidewalks included): the ground it spans, corners included. Its heights are in
    ``polygon_z_m["junction_hulls"]``."""
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def heights(self, name: str) -> list[np.ndarray]:
        """Vertex heights of every polygon of the list ``name`` (zeros where unknown)."""
        polygons = getattr(self, name)
        known = self.polygon_z_m.get(name)
        if known is not None and len(known) == len(polygons):
            return known
        return [np.zeros(len(p)) for p in polygons]

    def drivable_union(self) -> Any:
        """Union of all driving polygons as a shapely geometry (cached; not for hot paths)."""
        if "drivable" not in self._cache:
            import shapely

            polys = [shapely.make_valid(shapely.Polygon(p)) for p in self.driving_polygons]
            self._cache["drivable"] = shapely.union_all(polys)
        return self._cache["drivable"]


@dataclass(frozen=True, eq=False)
class AreaRaster:
    """Grid of `AreaClass` codes; cell (row, col) covers
    x in [x0 + col*res, x0 + (col+1)*res) and y in [y0 + row*res, y0 + (row+1)*res).

    `rasterize_areas` fills cells whose centre is within about half a cell of a polygon,
    so area edges are accurate to one cell. ``classes`` merges all heights. On a map
    whose surfaces pass over one another, ``level_classes`` (L, H, W) uint8 and
    ``level_z_m`` (L, H, W) float16 (NaN: nothing there) keep up to L surfaces per cell
    that lie more than :data:`~sim.maps.lanes.LEVEL_SEPARATION_M` apart in height;
    both are None on a one-level map.
    """

    origin_xy: np.ndarray  # (2,) = (x0, y0)
    resolution_m: float
    classes: np.ndarray  # (H, W) uint8
    level_classes: np.ndarray | None = None
    level_z_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.resolution_m) and self.resolution_m > 0.0):
            raise ValueError(f"resolution_m must be positive, got {self.resolution_m}")
        if np.shape(self.origin_xy) != (2,):
            raise ValueError(f"origin_xy must have shape (2,), got {np.shape(self.origin_xy)}")
        if self.classes.ndim != 2 or self.classes.dtype != np.uint8:
            raise ValueError(
                f"classes must be a 2-D uint8 array, got {self.classes.ndim}-D {self.classes.dtype}"
            )
        if (self.level_classes is None) != (self.level_z_m is None):
            raise ValueError("level_classes and level_z_m must be given together")
        if self.level_classes is not None:
            shape = (self.level_classes.shape[0], *self.classes.shape)
            if self.level_classes.shape != shape or self.level_z_m.shape != shape:
                raise ValueError(f"level_classes and level_z_m must have shape (L, H, W) = (L, "
                                 f"{self.classes.shape[0]}, {self.classes.shape[1]}), got "
                                 f"{self.level_classes.shape} and {self.level_z_m.shape}")

    @property
    def multilevel(self) -> bool:
        """Whether surfaces pass over one another somewhere on this map."""
        return self.level_classes is not None

    def lookup(self, xy: np.ndarray, z_m: np.ndarray | None = None) -> np.ndarray:
        """Classes (N,) uint8 at points (N, 2); points outside the raster are OFFROAD.

        With heights ``z_m`` (N,) on a multi-level map, each point reads the
        surface nearest its height, and OFFROAD if none lies within
        :data:`~sim.maps.lanes.LEVEL_SEPARATION_M` (under a bridge the road
        below, on it the bridge, beside the bridge nothing). Without heights,
        or on a one-level map, all levels merge.
        """
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"xy must have shape (N, 2), got {xy.shape}")
        cell = (xy - self.origin_xy) / self.resolution_m  # (N, 2): col, row as floats
        height, width = self.classes.shape
        ok = (cell >= 0.0) & (cell < (width, height))  # False for NaN too
        inside = ok[:, 0] & ok[:, 1]
        # Truncation is floor for the non-negative cells kept; outside points read cell 0.
        idx = np.where(inside[:, None], cell, 0.0).astype(np.intp)
        if z_m is None or self.level_classes is None:
            return self.classes[idx[:, 1], idx[:, 0]] * inside
        z = np.asarray(z_m, dtype=np.float64).reshape(-1)
        if z.shape != (xy.shape[0],):
            raise ValueError(f"z_m must have shape ({xy.shape[0]},), got {z.shape}")
        gap = np.abs(self.level_z_m[:, idx[:, 1], idx[:, 0]] - z)  # (L, N), NaN where a level is empty
        gap = np.where(np.isnan(gap), np.inf, gap)
        best = np.argmin(gap, axis=0)
        columns = np.arange(xy.shape[0])
        found = self.level_classes[best, idx[:, 1], idx[:, 0]]
        return found * (inside & (gap[best, columns] <= LEVEL_SEPARATION_M))


@dataclass
class _LaneSamples:
    """Cross-section samples of one lane (road, section, lane id), in visiting order."""

    lane_type: str
    in_junction: bool
    junction_id: int  # -1 outside junctions
    s: list[float] = field(default_factory=list)
    z: list[float] = field(default_factory=list)
    xy_yaw_width: list[tuple[float, float, float, float]] = field(default_factory=list)
    # Per sample: ((left type, left colour) or None if not drawn here, (right type, colour)).
    markings: list[tuple[tuple[str, str] | None, tuple[str, str]]] = field(default_factory=list)


def _lane_key(wp: carla.Waypoint) -> tuple[int, int, int]:
    return (wp.road_id, wp.section_id, wp.lane_id)


def _section_pivot_samples(start: carla.Waypoint, step_m: float) -> list[carla.Waypoint]:
    """Waypoints along one driving lane, from its start to its end, on that lane only."""
    key = _lane_key(start)
    try:
        following = start.next_until_lane_end(step_m)
    except RuntimeError:  # start already at the lane end
        following = []
    return [start] + [wp for wp in following if _lane_key(wp) == key]


def _record_cross_section(
    pivot: carla.Waypoint, lanes: dict[tuple[int, int, int], _LaneSamples]
) -> None:
    """Visit every lane beside `pivot` (both directions, any orientation) and record a sample.

    The left/right chains flip direction across the road centre and can cycle, so this is a
    bounded graph walk with a visited set rather than two straight chains.
    """
    seen = {_lane_key(pivot)}
    stack = [pivot]
    while stack and len(seen) <= _MAX_LANES_PER_SECTION:
        wp = stack.pop()
        left, right = wp.get_left_lane(), wp.get_right_lane()
        _record_sample(wp, left, lanes)
        for neighbour in (left, right):
            if neighbour is not None:
                key = _lane_key(neighbour)
                if key not in seen:
                    seen.add(key)
                    stack.append(neighbour)


def _record_sample(
    wp: carla.Waypoint,
    left: carla.Waypoint | None,
    lanes: dict[tuple[int, int, int], _LaneSamples],
) -> None:
    lane_type = wp.lane_type.name
    if lane_type == "NONE":
        return
    key = _lane_key(wp)
    lane = lanes.get(key)
    if lane is None:
        lane = lanes[key] = _LaneSamples(lane_type=lane_type, in_junction=wp.is_junction,
                                         junction_id=int(wp.junction_id) if wp.is_junction else -1)
    transform = wp.transform
    location = transform.location
    lane.s.append(wp.s)
    lane.z.append(location.z)
    lane.xy_yaw_width.append(
        (location.x, location.y, math.radians(transform.rotation.yaw), wp.lane_width)
    )
    right = wp.right_lane_marking
    # A shared boundary is drawn once. "Right" always points away from the road centre, so
    # each lane draws its right edge; its left edge only where no recorded lane draws it
    # (no neighbour, a NONE lane, or the centre line, which the negative-id side draws).
    own_left = (
        left is None
        or left.lane_type.name == "NONE"
        or (left.lane_id * wp.lane_id < 0 and wp.lane_id < 0)
    )
    left_marking = None
    if own_left:
        marking = wp.left_lane_marking
        left_marking = (marking.type.name, marking.color.name)
    lane.markings.append((left_marking, (right.type.name, right.color.name)))


def _lane_boundaries(samples: _LaneSamples) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Sorted by s, deduplicated: (left boundary (K,2), right boundary (K,2), sample order)."""
    s = np.asarray(samples.s)
    order = np.argsort(s, kind="stable")
    keep = np.concatenate([[True], np.diff(s[order]) > 1e-6])
    order = order[keep]
    if order.size < 2:
        return None
    data = np.asarray(samples.xy_yaw_width)[order]
    if data[:, 3].max() < _MIN_LANE_WIDTH_M:
        return None
    # Right vector for yaw psi in the x-forward / y-right frame is (-sin psi, cos psi).
    right = np.column_stack([-np.sin(data[:, 2]), np.cos(data[:, 2])]) * (0.5 * data[:, 3:4])
    return data[:, :2] - right, data[:, :2] + right, order


def _marking_runs(
    boundary_xy: np.ndarray, styles: list[tuple[str, str] | None], keep_unmarked: bool
) -> list[LaneMarking]:
    """Split a boundary polyline into runs of one (type, colour); None = not drawn here.

    Consecutive runs share their joint vertex so the marking has no gaps. Runs of type
    "NONE" are dropped unless `keep_unmarked`.
    """
    runs: list[LaneMarking] = []
    start = 0
    for k in range(1, len(styles) + 1):
        if k < len(styles) and styles[k] == styles[start]:
            continue
        style = styles[start]
        end = min(k + 1, len(styles))  # include the first vertex of the next run
        drawn = style is not None and (keep_unmarked or style[0] != "NONE")
        if drawn and end - start >= 2:
            runs.append(LaneMarking(boundary_xy[start:end].copy(), style[0], style[1]))
        start = k
    return runs


def _split_crosswalks(locations: list[carla.Location]) -> list[np.ndarray]:
    """The flat crosswalk vertex list closes each polygon by repeating its first vertex.

    Returns (K, 3) polygons: x, y and the height of each vertex.
    """
    polygons: list[np.ndarray] = []
    current: list[tuple[float, float, float]] = []
    for loc in locations:
        point = (loc.x, loc.y, loc.z)
        if current and len(current) >= 3 and np.allclose(point[:2], current[0][:2], atol=1e-3):
            polygons.append(np.asarray(current))
            current = []
        else:
            current.append(point)
    if len(current) >= 3:  # tolerate a last polygon without its closing vertex
        polygons.append(np.asarray(current))
    return polygons


def build_map_geometry(
    carla_map: carla.Map,
    sample_step_m: float = 1.0,
    margin_m: float = 10.0,
    keep_unmarked: bool = False,
) -> MapGeometry:
    """Sample every lane of `carla_map` every `sample_step_m` metres into polygons and markings.

    Lane markings come from every drawn lane (driving, shoulder, sidewalk, ...), so curbs
    are included; boundaries whose marking type is "NONE" are kept only if `keep_unmarked`.
    `bounds_xy` is the extent of all polygons grown by `margin_m`.
    """
    if not (np.isfinite(sample_step_m) and sample_step_m > 0.0):
        raise ValueError(f"sample_step_m must be positive, got {sample_step_m}")
    if not (np.isfinite(margin_m) and margin_m >= 0.0):
        raise ValueError(f"margin_m must be non-negative, got {margin_m}")

    # One driving lane per lane section serves as the pivot: every lane of a section spans
    # the same s range, so cross-sections at the pivot's samples cover all of them.
    lanes: dict[tuple[int, int, int], _LaneSamples] = {}
    sections: set[tuple[int, int]] = set()
    for start, _ in carla_map.get_topology():
        section = (start.road_id, start.section_id)
        if section in sections:
            continue
        sections.add(section)
        for pivot in _section_pivot_samples(start, sample_step_m):
            _record_cross_section(pivot, lanes)

    driving, junction, sidewalk, shoulder = [], [], [], []
    driving_z, junction_z, sidewalk_z, shoulder_z = [], [], [], []
    markings: list[LaneMarking] = []
    junction_points: dict[int, list[np.ndarray]] = {}
    junction_heights: dict[int, list[np.ndarray]] = {}
    road_ends: dict[tuple[int, int, int], list[np.ndarray]] = {}  # (road, section, 0: start / 1: end)
    for key, samples in lanes.items():
        bounds = _lane_boundaries(samples)
        if bounds is None:
            continue
        left, right, order = bounds
        polygon = np.concatenate([left, right[::-1]])
        z = np.asarray(samples.z)[order]
        polygon_z = np.concatenate([z, z[::-1]])
        if samples.junction_id >= 0:
            junction_points.setdefault(samples.junction_id, []).append(polygon)
            junction_heights.setdefault(samples.junction_id, []).append(polygon_z)
        else:  # where a road meets a junction, its end joins the junction's ground (the corner between sidewalks)
            for end, k in ((0, 0), (1, -1)):
                road_ends.setdefault((key[0], key[1], end), []).append(np.stack([left[k], right[k]]))
        styles = [samples.markings[k] for k in order]
        markings += _marking_runs(left, [style[0] for style in styles], keep_unmarked)
        markings += _marking_runs(right, [style[1] for style in styles], keep_unmarked)
        if samples.lane_type == "Driving":
            driving.append(polygon)
            driving_z.append(polygon_z)
            if samples.in_junction:
                junction.append(polygon)
                junction_z.append(polygon_z)
        elif samples.lane_type == "Sidewalk":
            sidewalk.append(polygon)
            sidewalk_z.append(polygon_z)
        else:
            shoulder.append(polygon)
            shoulder_z.append(polygon_z)
    crosswalks_xyz = _split_crosswalks(carla_map.get_crosswalks())
    crosswalks = [c[:, :2] for c in crosswalks_xyz]
    hulls, hulls_z = _junction_hulls(junction_points, junction_heights, road_ends)

    all_points = np.concatenate(driving + sidewalk + shoulder + crosswalks or [np.zeros((1, 2))])
    lo = all_points.min(axis=0) - margin_m
    hi = all_points.max(axis=0) + margin_m
    return MapGeometry(
        bounds_xy=(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])),
        driving_polygons=driving,
        junction_polygons=junction,
        sidewalk_polygons=sidewalk,
        shoulder_polygons=shoulder,
        crosswalk_polygons=crosswalks,
        lane_markings=markings,
        polygon_z_m={"driving_polygons": driving_z, "junction_polygons": junction_z,
                     "sidewalk_polygons": sidewalk_z, "shoulder_polygons": shoulder_z,
                     "crosswalk_polygons": [c[:, 2] for c in crosswalks_xyz], "junction_hulls": hulls_z},
        junction_hulls=hulls,
    )


def _junction_hulls(junction_points: dict[int, list[np.ndarray]], junction_heights: dict[int, list[np.ndarray]],
                    road_ends: dict[tuple[int, int, int], list[np.ndarray]]
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per junction, the convex hull of its lanes and of the end cross-sections (every lane, sidewalks
    included) of the roads that meet it (an end within ``_ROAD_END_REACH_M`` of the hull of its lanes),
    and its mean height per hull vertex."""
    import shapely

    ends = [np.concatenate(points) for points in road_ends.values()]
    end_points = shapely.points(np.concatenate(ends)) if ends else None
    owner = np.repeat(np.arange(len(ends)), [len(e) for e in ends])
    hulls, hulls_z = [], []
    for junction_id in sorted(junction_points):
        points = np.concatenate(junction_points[junction_id])
        hull = _convex_hull(points)
        if hull is None:
            continue
        if end_points is not None:
            near = shapely.dwithin(end_points, shapely.Polygon(hull), _ROAD_END_REACH_M)
            meeting = np.unique(owner[near])
            if meeting.size:
                hull = _convex_hull(np.concatenate([points, *(ends[k] for k in meeting)]))
        hulls.append(hull)
        hulls_z.append(np.full(len(hull), float(np.mean(np.concatenate(junction_heights[junction_id])))))
    return hulls, hulls_z


def _convex_hull(points: np.ndarray) -> np.ndarray | None:
    """Convex hull (K, 2), K >= 3, of points (N, 2) in world metres; None if they span no area."""
    origin = points.mean(axis=0)
    hull = cv2.convexHull((points - origin).astype(np.float32)).reshape(-1, 2).astype(np.float64) + origin
    if len(hull) < 3:
        return None
    return hull


def rasterize_areas(geometry: MapGeometry, resolution_m: float = 0.2, fill_junctions: bool = False) -> AreaRaster:
    """Paint the map's area polygons into an `AreaRaster` covering `geometry.bounds_xy`.

    Later layers override earlier ones: sidewalk, shoulder, driving, junction, crosswalk.
    With ``fill_junctions``, each junction's ground that no lane covers is then filled as
    CARLA's junctions are built (:func:`_junction_fills`): gaps enclosed by its lanes are
    paved (JUNCTION), its corners are kerbed sidewalk (SIDEWALK), so neither is a wall.
    Without it the raster holds the polygons' ground only (what the 3D town and the BEV draw).
    Where surfaces lie more than :data:`~sim.maps.lanes.LEVEL_SEPARATION_M` apart in
    height at one spot, each level is also painted on its own (``level_classes``).
    """
    if not (np.isfinite(resolution_m) and resolution_m > 0.0):
        raise ValueError(f"resolution_m must be positive, got {resolution_m}")
    xmin, ymin, xmax, ymax = geometry.bounds_xy
    origin = np.array([xmin, ymin])
    width = max(1, int(np.ceil((xmax - xmin) / resolution_m)))
    height = max(1, int(np.ceil((ymax - ymin) / resolution_m)))
    classes = np.zeros((height, width), dtype=np.uint8)
    names = ("sidewalk_polygons", "shoulder_polygons", "driving_polygons", "junction_polygons", "crosswalk_polygons")
    codes = (AreaClass.SIDEWALK, AreaClass.SHOULDER, AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.CROSSWALK)
    layers = [(getattr(geometry, name), code) for name, code in zip(names, codes)]
    scale = float(1 << _FILL_SHIFT)
    for polygons, area_class in layers:
        for polygon in polygons:
            # cv2 puts pixel centres at integer coordinates; cell col covers [col, col+1).
            pixels = ((polygon - origin) / resolution_m - 0.5) * scale
            # One call per polygon: a multi-contour fillPoly leaves overlaps unfilled.
            points = [np.round(pixels).astype(np.int32)]
            cv2.fillPoly(classes, points, int(area_class), cv2.LINE_8, _FILL_SHIFT)
    fills = []
    if fill_junctions:
        fills = _junction_fills(classes, geometry.junction_hulls, geometry.heights("junction_hulls"), origin,
                                float(resolution_m))
    heights = [(geometry.heights(name), code) for name, code in zip(names, codes)]
    levels = _paint_levels(layers, heights, origin, float(resolution_m), classes.shape)
    if levels is not None and fills:
        _paint_fill_levels(levels[0], levels[1], fills)
    return AreaRaster(origin_xy=origin, resolution_m=float(resolution_m), classes=classes,
                      level_classes=None if levels is None else levels[0],
                      level_z_m=None if levels is None else levels[1])


def _junction_fills(classes: np.ndarray, hulls: list[np.ndarray], hulls_z: list[np.ndarray], origin: np.ndarray,
                    resolution_m: float) -> list[tuple[tuple[slice, slice], np.ndarray, int, float]]:
    """Fill, in place, the ground of each junction's hull that no polygon covers; returns what it painted.

    A junction's lanes do not tile its surface: OpenDRIVE describes lanes, and
    between turning lanes and at the corners nothing is described. In CARLA the
    whole junction is paved road mesh and its corners are raised sidewalk, so a
    car cutting a corner climbs the kerb instead of hitting a wall. Within the
    junction's hull (:attr:`MapGeometry.junction_hulls`), OFFROAD ground that
    painted ground encloses (its OFFROAD ground reaches none outside the hull)
    and at most ``_JUNCTION_GAP_M`` wide becomes JUNCTION; the rest within
    ``_CORNER_KERB_M`` of painted ground becomes SIDEWALK, and so do the narrow
    pockets that sidewalk encloses (wider islands keep their middle). Returns
    (window, cells, class, height) per painted class and junction, for the
    level layers.
    """
    fills: list[tuple[tuple[slice, slice], np.ndarray, int, float]] = []
    scale = float(1 << _FILL_SHIFT)
    shape = np.array([classes.shape[1], classes.shape[0]])
    for hull, hull_z in zip(hulls, hulls_z):
        pixels = (hull - origin) / resolution_m - 0.5
        lo = np.maximum(np.floor(pixels.min(axis=0)).astype(int) - 2, 0)
        hi = np.minimum(np.ceil(pixels.max(axis=0)).astype(int) + 3, shape)
        if (hi - lo < 3).any():
            continue
        window = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        inside = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), dtype=np.uint8)
        cv2.fillPoly(inside, [np.round((pixels - lo) * scale).astype(np.int32)], 1, cv2.LINE_8, _FILL_SHIFT)
        inside = inside.astype(bool)
        cells = classes[window]
        free = cells == AreaClass.OFFROAD
        gap = free & inside
        if not gap.any() or inside.all():
            continue
        # A gap is open (a corner) if its free ground reaches free ground outside the hull; else painted
        # ground encloses it (lanes, and the roads that go on from the junction's edge).
        _, labels = cv2.connectedComponents(free.astype(np.uint8), connectivity=4)
        enclosed = gap & ~np.isin(labels, np.unique(labels[free & ~inside]))
        paved = _narrow(enclosed, labels, resolution_m)
        reach = cv2.distanceTransform(free.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) * resolution_m
        corner = gap & ~paved & (reach <= _CORNER_KERB_M)
        # Pockets the corner sidewalk now encloses (beyond its reach, in a wide corner) are sidewalk too,
        # unless they are as wide as an island.
        rest = free & ~paved & ~corner
        _, labels = cv2.connectedComponents(rest.astype(np.uint8), connectivity=4)
        corner |= _narrow(rest & inside & ~np.isin(labels, np.unique(labels[rest & ~inside])), labels, resolution_m)
        z = float(np.mean(hull_z))
        for mask, area_class in ((paved, AreaClass.JUNCTION), (corner, AreaClass.SIDEWALK)):
            if mask.any():
                cells[mask] = int(area_class)
                fills.append((window, mask, int(area_class), z))
    return fills


def _narrow(mask: np.ndarray, labels: np.ndarray, resolution_m: float) -> np.ndarray:
    """The cells of ``mask`` in components (``labels``) at most ``_JUNCTION_GAP_M`` wide (twice the
    largest distance from a cell to the mask's edge)."""
    if not mask.any():
        return np.zeros_like(mask)
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    widest = np.zeros(int(labels.max()) + 1)
    np.maximum.at(widest, labels[mask], depth[mask])
    return mask & (2.0 * widest[labels] * resolution_m <= _JUNCTION_GAP_M)


def _paint_fill_levels(level_cls: np.ndarray, level_z: np.ndarray,
                       fills: list[tuple[tuple[slice, slice], np.ndarray, int, float]]) -> None:
    """Junction fills into the level layers: each cell joins the first level that is empty there."""
    for window, mask, area_class, z in fills:
        cls, zz = level_cls[(slice(None), *window)], level_z[(slice(None), *window)]
        todo = mask.copy()
        for level in range(cls.shape[0]):
            here = todo & np.isnan(zz[level])
            cls[level][here] = area_class
            zz[level][here] = z
            todo &= ~here


def _pieces(polygon: np.ndarray, z: np.ndarray, strip: bool) -> list[tuple[np.ndarray, float]]:
    """A polygon as pieces of nearly constant height: (vertices, height) each.

    A lane polygon (``strip``: its left boundary, then its right one reversed) whose
    height varies is cut across into pieces of a few samples; anything else is one piece.
    """
    if not strip or len(polygon) < 4 or len(polygon) % 2 or float(np.ptp(z)) < _FLAT_PIECE_M:
        return [(polygon, float(np.mean(z)))]
    n = len(polygon) // 2
    left, right = polygon[:n], polygon[n:][::-1]
    zl = z[:n]
    pieces = []
    for i in range(0, n - 1, _PIECE_SAMPLES):
        j = min(i + _PIECE_SAMPLES, n - 1) + 1
        pieces.append((np.concatenate([left[i:j], right[i:j][::-1]]), float(np.mean(zl[i:j]))))
    return pieces


def _paint_levels(layers, heights, origin: np.ndarray, resolution_m: float, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-level class and height layers, or None when no two surfaces are stacked.

    Pieces are painted in layer order; each cell of a piece joins the level already there
    within ``LEVEL_SEPARATION_M`` of the piece's height (overriding its class, as the merged
    raster does), else the first empty level.
    """
    all_z = np.concatenate([z for zs, _ in heights for z in zs] or [np.zeros(1)])
    if float(np.ptp(all_z)) <= LEVEL_SEPARATION_M:
        return None  # one level: the merged raster says it all
    level_cls = np.zeros((_MAX_LEVELS, *shape), dtype=np.uint8)
    level_z = np.full((_MAX_LEVELS, *shape), np.nan, dtype=np.float16)  # 2 bytes a cell
    scale = float(1 << _FILL_SHIFT)
    for (polygons, area_class), (zs, _) in zip(layers, heights):
        strip = area_class != AreaClass.CROSSWALK
        for polygon, z in zip(polygons, zs):
            for piece, piece_z in _pieces(polygon, z, strip):
                pixels = (piece - origin) / resolution_m - 0.5
                lo = np.maximum(np.floor(pixels.min(axis=0)).astype(int) - 1, 0)
                hi = np.minimum(np.ceil(pixels.max(axis=0)).astype(int) + 2, (shape[1], shape[0]))
                if (hi <= lo).any():
                    continue
                mask = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), dtype=np.uint8)
                points = [np.round((pixels - lo) * scale).astype(np.int32)]
                cv2.fillPoly(mask, points, 1, cv2.LINE_8, _FILL_SHIFT)
                window = (slice(None), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
                cls, zz = level_cls[window], level_z[window]
                todo = mask.astype(bool)
                for level in range(_MAX_LEVELS):  # the level at this height, else the first empty one
                    here = todo & ((np.abs(zz[level] - piece_z) <= LEVEL_SEPARATION_M) | np.isnan(zz[level]))
                    cls[level][here] = int(area_class)
                    zz[level][here] = piece_z
                    todo &= ~here
                if todo.any():  # deeper than _MAX_LEVELS: the top level takes it
                    cls[-1][todo] = int(area_class)
                    zz[-1][todo] = piece_z
    used = int((~np.isnan(level_z)).reshape(_MAX_LEVELS, -1).any(axis=1).sum())
    if used <= 1:
        return None
    return level_cls[:used].copy(), level_z[:used].copy()


def offset_polyline(points: np.ndarray, offset_m: float) -> np.ndarray:
    """The polyline shifted sideways by ``offset_m`` (positive: to its right in CARLA's frame)."""
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.hypot(tangent[:, 0], tangent[:, 1]), 1e-9)[:, None]
    return points + offset_m * np.column_stack([-tangent[:, 1], tangent[:, 0]])
