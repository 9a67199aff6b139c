"""Routes: planned on the lane graph from waypoints, loaded from YAML route files, or sampled at random.

A route file (``configs/routes/*.yaml``) lists routes of one town, each a
start, a goal and optional waypoints between them, in world metres::

    town: Town01
    routes:
      - id: town01_short_00
        waypoints: [[92.1, 37.2], [150.0, 55.4], [120.4, 133.0]]

:func:`plan_route` snaps every waypoint to the lanes within a few metres of
it (either direction) and picks the chain of lanes that joins them with the
least driving distance (plus :data:`SNAP_PENALTY` times each waypoint's
distance from its lane, so a waypoint on a lane keeps to that lane where a
parallel one would be shorter); the result is a dense :class:`Route` (one point per
metre) with CARLA ``RoadOption`` commands: the turn of each junction, and
``LANEFOLLOW`` elsewhere. :func:`random_route` walks the lane graph from a
random spawn point for training on any map, procedural towns included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from enum import IntEnum
from pathlib import Path

import networkx as nx
import numpy as np
import yaml

from sim.maps.lanes import LaneGraph, SpawnPoint, wrap_angle
from sim.resources import locate_config

SNAP_RADIUS_M = 4.0
"""A waypoint may lie this far from the centre line of the lane it snaps to."""

SNAP_PENALTY = 10.0
"""Metres of driving a route planner trades for one metre of a waypoint's distance from its lane."""

TURN_THRESHOLD_RAD = math.radians(30.0)
"""Junction lanes turning more than this are LEFT / RIGHT, the rest STRAIGHT."""


class RouteError(ValueError):
    """A route cannot be planned or a route file is invalid; the message names the route or file."""


class RoadOption(IntEnum):
    """CARLA's ``agents.navigation.local_planner.RoadOption`` values."""

    VOID = -1
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


@dataclass(frozen=True, eq=False)
class Route:
    """A dense route: ``points_xy`` (M, 2) about 1 m apart with their heading, arc length and lane.

    ``command`` (M,) int8 :class:`RoadOption` per point: the turn of the junction
    lane it lies on, ``LANEFOLLOW`` outside junctions. ``waypoints_xy`` are the
    sparse points the route was planned from (what a route file stores).
    """

    route_id: str
    lanes: tuple[int, ...]
    points_xy: np.ndarray
    yaw_rad: np.ndarray
    s_m: np.ndarray
    lane: np.ndarray
    in_junction: np.ndarray
    command: np.ndarray
    waypoints_xy: np.ndarray

    @property
    def length_m(self) -> float:
        """Length along the route [m]."""
        return float(self.s_m[-1])

    @cached_property
    def junction_entries(self) -> np.ndarray:
        """Indices of the route points where the route enters a junction (the first point of each junction lane run)."""
        return np.flatnonzero(np.diff(self.in_junction.astype(np.int8), prepend=0) == 1)

    @property
    def num_junctions(self) -> int:
        """Number of junctions the route crosses."""
        return int(self.junction_entries.size)

    @property
    def turns(self) -> int:
        """Number of junctions crossed with a left or right turn."""
        changes = np.flatnonzero(np.diff(self.command, prepend=RoadOption.VOID) != 0)
        return int(np.isin(self.command[changes], (RoadOption.LEFT, RoadOption.RIGHT)).sum())


def _turn_of_lane(lanes: LaneGraph, lane: int) -> RoadOption:
    points = lanes.lane_points(lane)
    start = int(lanes.offset[lane])
    yaw = lanes.yaw_rad[start:start + points.shape[0]]
    change = float(wrap_angle(yaw[-1] - yaw[0]))
    if change > TURN_THRESHOLD_RAD:
        return RoadOption.RIGHT  # CARLA's frame is left-handed: yaw grows clockwise seen from above
    if change < -TURN_THRESHOLD_RAD:
        return RoadOption.LEFT
    return RoadOption.STRAIGHT


def _snap(lanes: LaneGraph, xy: np.ndarray, radius_m: float) -> list[tuple[int, float, float]]:
    """Candidate (lane, s, distance) for one point: the nearest sample of every lane within ``radius_m``."""
    rows = lanes.kdtree.query_ball_point(xy, r=radius_m)
    best: dict[int, tuple[float, int]] = {}
    for row in rows:
        lane = int(lanes.sample_lane[row])
        d = float(np.hypot(*(lanes.points_xyz[row, :2] - xy)))
        if lane not in best or d < best[lane][0]:
            best[lane] = (d, row)
    out = []
    for lane, (d, row) in best.items():
        yaw = lanes.yaw_rad[row]
        along = (xy[0] - lanes.points_xyz[row, 0]) * math.cos(yaw) + (xy[1] - lanes.points_xyz[row, 1]) * math.sin(yaw)
        s = float(np.clip(lanes.s_m[row] + along, 0.0, lanes.length_m[lane]))
        out.append((lane, s, d))
    return out


def _segments(lanes: LaneGraph, chain: list[int], s_start: float, s_goal: float) -> list[tuple[int, float, float]]:
    """(lane, s_from, s_to) pieces along a chain of lanes from ``s_start`` on the first to ``s_goal`` on the last."""
    if len(chain) == 1:
        return [(chain[0], s_start, s_goal)]
    pieces = [(chain[0], s_start, float(lanes.length_m[chain[0]]))]
    pieces += [(lane, 0.0, float(lanes.length_m[lane])) for lane in chain[1:-1]]
    pieces.append((chain[-1], 0.0, s_goal))
    return pieces


def plan_route(lanes: LaneGraph, waypoints_xy: np.ndarray | list, route_id: str = "route",
               snap_radius_m: float = SNAP_RADIUS_M) -> Route:
    """The shortest drivable route through ``waypoints_xy`` (K >= 2 points, in order); ``RouteError`` if none."""
    waypoints = np.asarray(waypoints_xy, dtype=np.float64)
    if waypoints.ndim != 2 or waypoints.shape[0] < 2 or waypoints.shape[1] != 2 or not np.isfinite(waypoints).all():
        raise RouteError(f"route {route_id!r}: waypoints must be a finite (K >= 2, 2) list of [x, y], "
                         f"got shape {waypoints.shape}")
    layers = []
    for k, point in enumerate(waypoints):
        candidates = _snap(lanes, point, snap_radius_m)
        if not candidates:
            raise RouteError(f"route {route_id!r}: waypoint {k} ({point[0]:.1f}, {point[1]:.1f}) is more than "
                             f"{snap_radius_m} m from every driving lane")
        layers.append(candidates)
    # Layered shortest path: cost[j] = least cost to candidate j of the current layer, with its pieces. The
    # cost is the driving distance plus SNAP_PENALTY times each waypoint's distance from its lane, so a
    # waypoint on a lane's centre line keeps to that lane when a neighbour within the radius is shorter.
    cost = {j: (SNAP_PENALTY * d, []) for j, (_, _, d) in enumerate(layers[0])}
    for k in range(1, len(layers)):
        new_cost: dict[int, tuple[float, list]] = {}
        for i, (lane_a, s_a, _) in enumerate(layers[k - 1]):
            if i not in cost:
                continue
            base, pieces = cost[i]
            distances, paths = nx.single_source_dijkstra(lanes.graph, lane_a, weight="length")
            for j, (lane_b, s_b, d_b) in enumerate(layers[k]):
                if lane_b == lane_a and s_b >= s_a:
                    total, chain = s_b - s_a, [lane_a]
                elif lane_b in distances and lane_b != lane_a:
                    total, chain = distances[lane_b] - s_a + s_b, paths[lane_b]
                else:  # behind on the same lane: go round a loop through a successor
                    loops = [(distances[p] + lanes.length_m[p], paths[p]) for p in lanes.predecessors[lane_a]
                             if p in distances]
                    if not loops:
                        continue
                    loop_length, loop_path = min(loops, key=lambda item: item[0])
                    total, chain = loop_length - s_a + s_b, [*loop_path, lane_a]
                total += SNAP_PENALTY * d_b
                if j not in new_cost or base + total < new_cost[j][0]:
                    new_cost[j] = (base + total, pieces + _segments(lanes, chain, s_a, s_b))
        if not new_cost:
            raise RouteError(f"route {route_id!r}: no drivable path from waypoint {k - 1} to waypoint {k}")
        cost = new_cost
    _, pieces = min(cost.values(), key=lambda item: item[0])
    return _densify(lanes, pieces, route_id, waypoints)


def _densify(lanes: LaneGraph, pieces: list[tuple[int, float, float]], route_id: str,
             waypoints: np.ndarray) -> Route:
    xy, yaw, lane_of, s_local = [], [], [], []
    for lane, s0, s1 in pieces:
        if s1 - s0 < 1e-6:
            continue
        s_values = np.append(np.arange(s0, s1, 1.0), s1)
        points, headings = lanes.interpolate(np.full(s_values.shape, lane), s_values)
        xy.append(points[:, :2])
        yaw.append(headings)
        lane_of.append(np.full(s_values.shape, lane))
        s_local.append(s_values)
    if not xy:
        raise RouteError(f"route {route_id!r}: start and goal are the same point")
    points_xy = np.concatenate(xy)
    keep = np.ones(points_xy.shape[0], dtype=bool)
    keep[1:] = np.hypot(*np.diff(points_xy, axis=0).T) > 0.05  # lane joints repeat a point
    points_xy, yaw_rad = points_xy[keep], np.concatenate(yaw)[keep]
    lane = np.concatenate(lane_of)[keep]
    s_m = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points_xy, axis=0).T))])
    in_junction = lanes.is_junction[lane].astype(bool)
    command = np.full(lane.shape, RoadOption.LANEFOLLOW, dtype=np.int8)
    for junction_lane in np.unique(lane[in_junction]):
        command[lane == junction_lane] = _turn_of_lane(lanes, int(junction_lane))
    chain = tuple(int(lane_id) for lane_id, _, _ in pieces)
    return Route(route_id, chain, points_xy, yaw_rad, s_m, lane, in_junction, command, waypoints)


def route_starts(lanes: LaneGraph) -> list[SpawnPoint]:
    """Where routes may start: spawn points every 10 m on the main lane component.

    A map whose main component has only short lanes (none 10 m long) gets
    points every 2 m, 1 m from lane ends; ``RouteError`` if it has none at all.
    """
    starts = lanes.spawn_points(spacing_m=10.0) or lanes.spawn_points(spacing_m=2.0, margin_m=1.0)
    if not starts:
        raise RouteError("the map cannot host a route: its main lane component (the largest set of driving lanes "
                         "that all reach each other) has no lane outside junctions 2 m long")
    return starts


def random_route(lanes: LaneGraph, rng: np.random.Generator, min_length_m: float, max_length_m: float,
                 route_id: str = "random", starts: list[SpawnPoint] | None = None) -> Route:
    """A route of length in [min, max] from a random start, turning at random at every junction.

    ``starts``: where it may begin (default :func:`route_starts`; pass them in
    when drawing many routes on one map).
    """
    if not 0 < min_length_m <= max_length_m:
        raise RouteError(f"need 0 < min_length_m <= max_length_m, got {min_length_m} and {max_length_m}")
    starts = starts or route_starts(lanes)
    for _ in range(50):
        start = starts[int(rng.integers(len(starts)))]
        target = float(rng.uniform(min_length_m, max_length_m))
        lane, s = start.lane, start.s_m
        pieces, total = [], 0.0
        while True:
            remaining = float(lanes.length_m[lane]) - s
            if total + remaining >= target:
                pieces.append((lane, s, s + target - total))
                total = target
                break
            pieces.append((lane, s, float(lanes.length_m[lane])))
            total += remaining
            succ = lanes.successors[lane, : lanes.num_successors[lane]]
            succ = succ[lanes.in_main_component[succ]]
            if succ.size == 0:
                break
            lane, s = int(succ[int(rng.integers(succ.size))]), 0.0
        if total >= min_length_m:
            # Sparse waypoints that pin the route down: start, the middle of each junction lane, goal.
            marks = [lanes.interpolate(np.array([pieces[0][0]]), np.array([pieces[0][1]]))[0][0, :2]]
            for piece_lane, s0, s1 in pieces[1:]:
                if lanes.is_junction[piece_lane]:
                    marks.append(lanes.interpolate(np.array([piece_lane]), np.array([(s0 + s1) / 2]))[0][0, :2])
            last_lane, _, last_s = pieces[-1]
            marks.append(lanes.interpolate(np.array([last_lane]), np.array([last_s]))[0][0, :2])
            return _densify(lanes, pieces, route_id, np.asarray(marks))
    raise RouteError(f"no route of {min_length_m}-{max_length_m} m found in 50 tries: is the map that small?")


@dataclass(frozen=True)
class RouteSpec:
    """One route of a route file: an id and its waypoints (K, 2)."""

    route_id: str
    waypoints_xy: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class RouteFile:
    """The routes of one town, as read from YAML."""

    town: str
    routes: tuple[RouteSpec, ...]

    def select(self, ids: tuple[str, ...] | None) -> tuple[RouteSpec, ...]:
        """The routes with these ids (all when None); ``RouteError`` naming unknown ids."""
        if ids is None:
            return self.routes
        by_id = {r.route_id: r for r in self.routes}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RouteError(f"route ids {missing} are not in the {self.town} route file; "
                             f"valid: {sorted(by_id)}")
        return tuple(by_id[i] for i in ids)


def load_route_file(path: str | Path) -> RouteFile:
    """Read a route file (a path, or a shipped ``configs/routes/...`` name); ``RouteError`` naming the problem."""
    path = locate_config(path, "routes")
    if not path.is_file():
        raise RouteError(f"route file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RouteError(f"route file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"town", "routes"} or "town" not in data or "routes" not in data:
        raise RouteError(f"route file {path}: expected keys 'town' and 'routes' only")
    specs, seen = [], set()
    for k, entry in enumerate(data["routes"] or []):
        if not isinstance(entry, dict) or set(entry) != {"id", "waypoints"}:
            raise RouteError(f"route file {path}: route {k} must have exactly the keys 'id' and 'waypoints'")
        route_id = str(entry["id"])
        if route_id in seen:
            raise RouteError(f"route file {path}: route id {route_id!r} appears twice")
        seen.add(route_id)
        try:
            points = np.asarray(entry["waypoints"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RouteError(f"route file {path}: route {route_id!r}: waypoints are not numbers ({exc})") from exc
        if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] != 2 or not np.isfinite(points).all():
            raise RouteError(f"route file {path}: route {route_id!r}: waypoints must be a list of at least two "
                             f"[x, y] pairs, got shape {points.shape}")
        specs.append(RouteSpec(route_id, tuple(map(tuple, points.tolist()))))
    if not specs:
        raise RouteError(f"route file {path} has no routes")
    return RouteFile(str(data["town"]), tuple(specs))


def write_route_file(path: str | Path, town: str, routes: list[Route], header: str = "") -> None:
    """Write routes' waypoints as a route file (``header``: comment lines at the top)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [f"town: {town}", "routes:"]
    for route in routes:
        points = ", ".join(f"[{x:.2f}, {y:.2f}]" for x, y in route.waypoints_xy)
        lines.append(f"  - id: {route.route_id}")
        lines.append(f"    waypoints: [{points}]")
    Path(path).write_text("\n".join(lines) + "\n")


@dataclass
class RouteProgress:
    """Where the ego is along its route this tick."""

    index: int  # nearest route point
    s_m: float  # distance driven along the route
    lateral_m: float  # signed distance from the route (positive: right of it)
    heading_error_rad: float  # ego yaw minus route yaw, wrapped
    completion: float  # s / length, 0..1
    command: RoadOption  # next junction's turn within COMMAND_HORIZON_M, else LANEFOLLOW
    junction_distance_m: float  # to the next junction entry ahead (inf if none)


COMMAND_HORIZON_M = 30.0


class RouteTracker:
    """Follows the ego along a route: progress (index and distance) only moves forward, within a window."""

    def __init__(self, route: Route, window_back: int = 5, window_ahead: int = 40) -> None:
        self.route = route
        self.window_back = window_back
        self.window_ahead = window_ahead
        self.index = 0
        self.s_m = 0.0

    def update(self, x: float, y: float, yaw: float) -> RouteProgress:
        """Progress for the ego at (x, y) heading ``yaw``."""
        r = self.route
        lo = max(0, self.index - self.window_back)
        hi = min(r.points_xy.shape[0], self.index + self.window_ahead + 1)
        d2 = (r.points_xy[lo:hi, 0] - x) ** 2 + (r.points_xy[lo:hi, 1] - y) ** 2
        index = lo + int(np.argmin(d2))
        self.index = max(self.index, index)
        index = self.index
        ryaw = float(r.yaw_rad[index])
        dx, dy = x - r.points_xy[index, 0], y - r.points_xy[index, 1]
        along = dx * math.cos(ryaw) + dy * math.sin(ryaw)
        lateral = -dx * math.sin(ryaw) + dy * math.cos(ryaw)
        self.s_m = s = max(self.s_m, float(np.clip(r.s_m[index] + along, 0.0, r.length_m)))
        entries = r.junction_entries
        ahead = entries[entries > index]
        junction_distance = float(r.s_m[ahead[0]] - s) if ahead.size else math.inf
        if r.in_junction[index]:
            command = RoadOption(int(r.command[index]))
        elif junction_distance <= COMMAND_HORIZON_M:
            command = RoadOption(int(r.command[ahead[0]]))
        else:
            command = RoadOption.LANEFOLLOW
        return RouteProgress(index, s, lateral, float(wrap_angle(yaw - ryaw)), s / max(r.length_m, 1e-9), command,
                             junction_distance)


RouteClasses = dict[str, tuple[float, float, int]]
"""Route classes by name: (min length m, max length m, min junction turns)."""

ROUTE_CLASSES: RouteClasses = {
    "short": (150.0, 300.0, 1),
    "medium": (300.0, 600.0, 2),
    "long": (600.0, 1000.0, 3),
}
"""The standard benchmark route classes (the shipped route sets): (min length m, max length m, min junction turns)."""

FULL_SIZE_MAP_M = 2500.0
"""Driving-lane length of a main lane component from which a map gets the standard classes unscaled
(the smallest shipped town, Town02, has 2.9 km)."""

MIN_ROUTE_LENGTH_M = 20.0
"""A class whose longest route would be shorter than this is left out."""


@dataclass(frozen=True)
class MapExtent:
    """What a map offers routes: its main lane component's driving-lane length and its junctions with turns."""

    lane_length_m: float
    turning_junctions: int


def map_extent(lanes: LaneGraph) -> MapExtent:
    """The :class:`MapExtent` of a lane graph (main lane component only: routes start and stay there)."""
    main = lanes.in_main_component
    junctions = {int(lanes.junction_id[lane]) for lane in np.flatnonzero(main & lanes.is_junction)
                 if _turn_of_lane(lanes, int(lane)) != RoadOption.STRAIGHT}
    return MapExtent(float(lanes.length_m[main].sum()), len(junctions))


def map_route_classes(lanes: LaneGraph, classes: RouteClasses | None = None) -> RouteClasses:
    """``classes`` (default :data:`ROUTE_CLASSES`) adapted to what the map can host.

    The rule: with ``L`` the driving-lane length of the main lane component and
    ``J`` its junctions that have a turning lane,

    - lengths are scaled by ``min(1, L / FULL_SIZE_MAP_M)`` (a route cannot be
      long on a map that has little road; the shipped towns keep the standard
      classes), rounded to whole metres;
    - each class asks for at most ``J`` turns (a ring road or a highway
      without junctions: 0);
    - classes whose scaled maximum is under :data:`MIN_ROUTE_LENGTH_M` are
      left out; ``RouteError`` if none is left (the map is too small).
    """
    extent = map_extent(lanes)
    scale = min(1.0, extent.lane_length_m / FULL_SIZE_MAP_M)
    adapted = {name: (float(round(low * scale)), float(round(high * scale)), min(turns, extent.turning_junctions))
               for name, (low, high, turns) in (classes or ROUTE_CLASSES).items()}
    adapted = {name: spec for name, spec in adapted.items() if spec[1] >= MIN_ROUTE_LENGTH_M}
    if not adapted:
        raise RouteError(f"the map is too small to host a route: its main lane component has "
                         f"{extent.lane_length_m:.0f} m of driving lanes, too little for a {MIN_ROUTE_LENGTH_M:.0f} m "
                         "route")
    return adapted


def generate_route_set(lanes: LaneGraph, town: str, seed: int = 0, per_class: int = 4,
                       classes: RouteClasses | None = None, relax_turns: bool | None = None) -> list[Route]:
    """``per_class`` routes of every class with at least its turns, re-planned from their waypoints.

    ``classes`` default to :func:`map_route_classes` (the standard classes
    adapted to the map). ``relax_turns`` (default: True when the classes are
    the adapted default, False for classes given): a class that cannot be
    filled with its turns asks for one turn fewer, down to 0, keeping the
    routes already found; ``Route.turns`` says what each route got.

    Each route is kept only if planning it again from its sparse waypoints (what
    a route file stores) gives the same length within 1 m, so a route file
    reproduces exactly the routes generated here. ``RouteError`` names the
    class that could not be filled.
    """
    if per_class < 1:
        raise RouteError(f"per_class must be >= 1, got {per_class}")
    if relax_turns is None:
        relax_turns = classes is None
    classes = map_route_classes(lanes) if classes is None else classes
    starts = route_starts(lanes)
    rng = np.random.default_rng(seed)
    routes: list[Route] = []
    for name, (low, high, min_turns) in classes.items():
        if not 0 < low <= high or min_turns < 0:
            raise RouteError(f"route class {name!r}: need 0 < min length <= max length and turns >= 0, got "
                             f"({low}, {high}, {min_turns})")
        found: list[Route] = []
        for turns in range(min_turns, -1 if relax_turns else min_turns - 1, -1):
            for _ in range(400 * per_class):
                if len(found) == per_class:
                    break
                try:
                    candidate = random_route(lanes, rng, low, high, starts=starts)
                    if candidate.turns < turns:
                        continue
                    replanned = plan_route(lanes, candidate.waypoints_xy, f"{town.lower()}_{name}_{len(found):02d}")
                except RouteError:
                    continue
                if abs(replanned.length_m - candidate.length_m) <= 1.0:
                    found.append(replanned)
            if len(found) == per_class:
                break
        if len(found) < per_class:
            turns_text = "any number of turns" if relax_turns else f">= {min_turns} turns"
            raise RouteError(f"{town}: found only {len(found)} of {per_class} {name} routes ({low:.0f}-{high:.0f} m, "
                             f"{turns_text}) that re-plan from their waypoints")
        routes += found
    return routes
