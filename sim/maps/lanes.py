"""The lane graph: every driving lane of a map as sampled polylines in flat arrays.

A *lane* here is one OpenDRIVE lane of one lane section, keyed
``(road_id, section_id, lane_id)``, as ``carla.Map.get_topology()`` lists
them, oriented in its driving direction. Positions along a lane are arc
length ``s`` [m] from its start. All lanes' samples live in flat arrays
(``points_xy`` etc., ``P`` rows) and lane ``k`` owns rows
``offset[k] : offset[k] + count[k]``, so traffic code can turn (lane, s)
arrays into poses with a handful of vectorised numpy calls.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree
from shapely import STRtree
from shapely.geometry import LineString

from sim.api import Pose
from sim.maps.loader import MapLoadError

SAMPLE_STEP_M = 1.0
DEFAULT_SPEED_LIMIT_MPS = 30.0 / 3.6
MAX_LATERAL_ACCEL_MPS2 = 2.5
CONFLICT_DISTANCE_M = 2.2
LEVEL_SEPARATION_M = 3.0
"""Surfaces farther apart than this in height are different levels (a bridge and the road under it)."""
MIN_LANE_LENGTH_M = 0.01
"""Driving lanes shorter than this are dropped and their predecessors linked to their successors.

Some towns join roads through junction lanes of under a millimetre: no
vehicle can be on one for even a tick, and as one-point polylines they break
geometry code.
"""
_END_MARGIN_M = 1e-3  # lane ends are sampled this far inside, so the lookup cannot fall in the next section
_DUPLICATE_POINT_M = 1e-6
_SPEED_UNITS = {"km/h": 1 / 3.6, "kmh": 1 / 3.6, "mph": 0.44704, "m/s": 1.0, "ms": 1.0}
_MARKING_NAMES = ("NONE", "Other", "Broken", "Solid", "SolidSolid", "SolidBroken", "BrokenSolid",
                  "BrokenBroken", "BottsDots", "Grass", "Curb")

LaneKey = tuple[int, int, int]


def _key(waypoint) -> LaneKey:
    return (int(waypoint.road_id), int(waypoint.section_id), int(waypoint.lane_id))


def wrap_angle(angle_rad: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(angle_rad), 2 * np.pi)


def road_speed_limits(xodr_text: str) -> dict[int, float]:
    """Maximum speed [m/s] per road id from ``<road><type><speed max=.. unit=..>`` records."""
    limits: dict[int, float] = {}
    root = ET.fromstring(xodr_text)
    for road in root.iter("road"):
        for speed in road.iter("speed"):
            try:
                value = float(speed.get("max", "nan"))
            except ValueError:
                continue
            factor = _SPEED_UNITS.get(speed.get("unit", "m/s").lower().replace(" ", ""), 1.0)
            if math.isfinite(value) and value > 0:
                limits[int(road.get("id", "-1"))] = value * factor
    return limits


@dataclass(frozen=True)
class SpawnPoint:
    """A place to spawn a vehicle: lane, arc length and pose (lifted 0.5 m, like CARLA's)."""

    lane: int
    s_m: float
    pose: Pose


@dataclass(frozen=True, eq=False)
class LaneGraph:
    """Driving lanes as flat sampled arrays plus their connectivity.

    Per lane (``L`` rows): ``keys``, ``length_m``, ``offset``, ``count``,
    ``is_junction``, ``junction_id`` (-1 outside junctions), ``speed_limit_mps``,
    ``comfort_speed_mps`` (curvature limit), ``successors`` (L, S) padded with -1,
    ``num_successors``, ``left_lane``/``right_lane`` (same-direction neighbour
    or -1), ``in_main_component`` (the main component: the largest set of lanes
    that all reach each other when vehicles may also change to a same-direction
    neighbour across a crossable marking outside junctions, less lanes from
    which following lanes can only end in a dead end; so every lane of a
    multi-lane ring or highway is in it, and traffic on it never reaches a dead
    end), ``in_follow_core`` (the largest set of lanes that all reach each other
    by following lanes alone: traffic that never changes lanes prefers it, so
    it is not trapped in a side loop it cannot leave).
    Per sample (``P`` rows): ``points_xyz``, ``yaw_rad``, ``s_m``, ``width_m``,
    ``sample_lane``, ``left_marking``/``right_marking`` (index into
    :data:`MARKING_NAMES`).
    """

    keys: tuple[LaneKey, ...]
    length_m: np.ndarray
    offset: np.ndarray
    count: np.ndarray
    is_junction: np.ndarray
    junction_id: np.ndarray
    speed_limit_mps: np.ndarray
    comfort_speed_mps: np.ndarray
    successors: np.ndarray
    num_successors: np.ndarray
    left_lane: np.ndarray
    right_lane: np.ndarray
    in_main_component: np.ndarray
    in_follow_core: np.ndarray
    points_xyz: np.ndarray
    yaw_rad: np.ndarray
    s_m: np.ndarray
    width_m: np.ndarray
    sample_lane: np.ndarray
    left_marking: np.ndarray
    right_marking: np.ndarray
    graph: nx.DiGraph = field(repr=False)

    @property
    def num_lanes(self) -> int:
        """Number of lanes ``L``."""
        return len(self.keys)

    @cached_property
    def index(self) -> dict[LaneKey, int]:
        """Lane index by ``(road_id, section_id, lane_id)``."""
        return {k: i for i, k in enumerate(self.keys)}

    @cached_property
    def predecessors(self) -> list[list[int]]:
        """Predecessor lanes of every lane."""
        result: list[list[int]] = [[] for _ in self.keys]
        for a, b in self.graph.edges:
            result[b].append(a)
        return result

    @cached_property
    def kdtree(self) -> cKDTree:
        """KD-tree over all samples' (x, y), for projecting free-moving vehicles onto lanes."""
        return cKDTree(self.points_xyz[:, :2])

    @cached_property
    def multilevel(self) -> bool:
        """Whether lanes pass over one another: samples within 4 m in plan but more than
        :data:`LEVEL_SEPARATION_M` apart in height (a bridge, an overpass)."""
        pairs = self.kdtree.query_pairs(4.0, output_type="ndarray")
        if pairs.shape[0] == 0:
            return False
        z = self.points_xyz[:, 2]
        return bool((np.abs(z[pairs[:, 0]] - z[pairs[:, 1]]) > LEVEL_SEPARATION_M).any())

    @cached_property
    def _kdtree_xyz(self) -> cKDTree:
        return cKDTree(self.points_xyz)

    def lane_points(self, lane: int) -> np.ndarray:
        """The (count, 3) sample points of one lane."""
        start = int(self.offset[lane])
        return self.points_xyz[start:start + int(self.count[lane])]

    def sample_index(self, lane: np.ndarray, s_m: np.ndarray, extrapolate: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Row of the sample at or before ``s_m`` on ``lane`` and the fraction to the next one.

        The fraction is clipped to [0, 1] unless ``extrapolate``, in which case
        positions before the start or past the end continue along the end segments.
        """
        local = np.minimum((s_m * (1.0 / SAMPLE_STEP_M)).astype(np.int64), self.count[lane] - 2)
        local = np.maximum(local, 0)
        row = self.offset[lane] + local
        s0 = self.s_m[row]
        span = self.s_m[row + 1] - s0
        frac = (s_m - s0) / span
        return row, (frac if extrapolate else np.clip(frac, 0.0, 1.0))

    def interpolate(self, lane: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, 3) and headings (n,) at arc lengths ``s_m`` on ``lane`` (vectorised)."""
        row, frac = self.sample_index(lane, s_m)
        p0 = self.points_xyz[row]
        xyz = p0 + (self.points_xyz[row + 1] - p0) * frac[:, None]
        y0 = self.yaw_rad[row]
        yaw = y0 + wrap_angle(self.yaw_rad[row + 1] - y0) * frac
        return xyz, yaw

    @cached_property
    def _segment_table(self) -> np.ndarray:
        """Per sample row: (x, y, z, dx, dy, dz, 1/span) of the segment to the next sample."""
        table = np.zeros((self.points_xyz.shape[0], 7))
        table[:, :3] = self.points_xyz
        table[:-1, 3:6] = np.diff(self.points_xyz, axis=0)
        span = np.diff(self.s_m, append=self.s_m[-1])
        table[:, 6] = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
        return table

    def chord_pose(self, front_lane: np.ndarray, front_s_m: np.ndarray, rear_lane: np.ndarray,
                   rear_s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pose of a vehicle whose front and rear ends both lie on lane centre lines.

        The box centre is the midpoint of its front and rear points and its
        heading the chord between them, so long vehicles cut inside curves as
        real ones do instead of swinging their ends out. Positions beyond a
        lane's ends continue along its end segments.
        """
        lane = np.concatenate([front_lane, rear_lane])
        s_m = np.concatenate([front_s_m, rear_s_m])
        # Samples sit at exact multiples of the step along each lane, so s -> row is a division.
        local = np.maximum(np.minimum((s_m * (1.0 / SAMPLE_STEP_M)).astype(np.int64), self.count[lane] - 2), 0)
        segment = self._segment_table[self.offset[lane] + local]
        frac = (s_m - local * SAMPLE_STEP_M) * segment[:, 6]
        points = segment[:, :3] + segment[:, 3:6] * frac[:, None]
        n = front_lane.shape[0]
        front, rear = points[:n], points[n:]
        yaw = np.arctan2(front[:, 1] - rear[:, 1], front[:, 0] - rear[:, 0])
        return 0.5 * (front + rear), yaw

    def project(self, xy: np.ndarray, yaw_rad: np.ndarray, k: int = 8, z_m: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest lane sample to each (x, y) whose heading is within 90 degrees of ``yaw_rad``.

        With heights ``z_m`` (n,) of the points' ground, on a map whose lanes
        pass over one another (:attr:`multilevel`) only samples within
        :data:`LEVEL_SEPARATION_M` of that height count: under a bridge the
        road below, on it the bridge. Without ``z_m`` (or on a one-level map)
        heights are ignored. Returns (lane (n,), s_m (n,), distance_m (n,) in
        plan); lane -1 where no sample among the ``k`` nearest qualifies.
        """
        n = xy.shape[0]
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        k = min(k, self.points_xyz.shape[0])
        if z_m is not None and self.multilevel:
            z = np.asarray(z_m, dtype=np.float64).reshape(-1)
            if z.shape != (n,):
                raise ValueError(f"z_m must have shape ({n},), got {z.shape}")
            _, rows = self._kdtree_xyz.query(np.column_stack([xy[:, :2], z]), k=k)
            rows = rows.reshape(n, k)
            dist = np.hypot(self.points_xyz[rows, 0] - xy[:, 0:1], self.points_xyz[rows, 1] - xy[:, 1:2])
            wrong_level = np.abs(self.points_xyz[rows, 2] - z[:, None]) > LEVEL_SEPARATION_M
        else:
            dist, rows = self.kdtree.query(xy, k=k)
            dist = dist.reshape(n, k)
            rows = rows.reshape(n, k)
            wrong_level = False
        misaligned = np.cos(self.yaw_rad[rows] - yaw_rad[:, None]) < 0.0
        cost = np.where(misaligned | wrong_level, np.inf, dist)
        best = np.argmin(cost, axis=1)
        picked = rows[np.arange(n), best]
        ok = np.isfinite(cost[np.arange(n), best])
        lane = np.where(ok, self.sample_lane[picked], -1)
        # Refine s along the sample's heading (samples are ~1 m apart).
        along = ((xy[:, 0] - self.points_xyz[picked, 0]) * np.cos(self.yaw_rad[picked])
                 + (xy[:, 1] - self.points_xyz[picked, 1]) * np.sin(self.yaw_rad[picked]))
        s_m = np.clip(self.s_m[picked] + along, 0.0, self.length_m[self.sample_lane[picked]])
        return lane, s_m, np.where(ok, dist[np.arange(n), best], np.inf)

    @cached_property
    def junction_conflicts(self) -> np.ndarray:
        """Boolean (L, L): junction lanes whose paths cross or merge.

        Two junction lanes conflict when their centre lines come closer than
        :data:`CONFLICT_DISTANCE_M` and they do not leave from the same lane
        (lanes that diverge from one lane follow each other instead).
        """
        conflicts = np.zeros((self.num_lanes, self.num_lanes), dtype=bool)
        lanes = np.flatnonzero(self.is_junction)
        if lanes.size == 0:
            return conflicts
        lines = [LineString(self.lane_points(int(k))[:, :2]) for k in lanes]
        tree = STRtree(lines)
        left, right = tree.query(lines, predicate="dwithin", distance=CONFLICT_DISTANCE_M)
        preds = self.predecessors
        for a, b in zip(lanes[left], lanes[right]):
            if a == b or set(preds[a]) & set(preds[b]):
                continue
            conflicts[a, b] = conflicts[b, a] = True
        return conflicts

    def spawn_points(self, spacing_m: float = 10.0, margin_m: float = 5.0,
                     main_component_only: bool = True) -> list[SpawnPoint]:
        """Spawn points every ``spacing_m`` along driving lanes outside junctions.

        ``carla.Map.get_spawn_points()`` returns nothing offline, so they are
        derived here, as CARLA's towns place them: on lane centres, 0.5 m up.
        """
        if spacing_m <= 0:
            raise ValueError(f"spacing_m must be positive, got {spacing_m}")
        points: list[SpawnPoint] = []
        for lane in range(self.num_lanes):
            if self.is_junction[lane] or (main_component_only and not self.in_main_component[lane]):
                continue
            length = float(self.length_m[lane])
            if length < 2 * margin_m:
                continue
            s_values = np.arange(margin_m, length - margin_m + 1e-6, spacing_m)
            xyz, yaw = self.interpolate(np.full(s_values.shape, lane), s_values)
            for s, p, y in zip(s_values, xyz, yaw):
                points.append(SpawnPoint(lane, float(s), Pose(float(p[0]), float(p[1]), float(p[2]) + 0.5,
                                                              float(y))))
        return points

    def shortest_route(self, start_lane: int, goal_lane: int) -> list[int]:
        """Lanes from ``start_lane`` to ``goal_lane`` by length (networkx A*)."""
        try:
            return nx.shortest_path(self.graph, start_lane, goal_lane, weight="length")
        except nx.NetworkXNoPath as exc:
            raise ValueError(f"no route from lane {self.keys[start_lane]} to lane {self.keys[goal_lane]}") from exc


def _speed_limits_by_road(carla_map, xodr_text: str) -> dict[int, float]:
    limits = road_speed_limits(xodr_text)
    for landmark in carla_map.get_all_landmarks_of_type("274"):
        try:
            value = float(landmark.value)
        except (TypeError, ValueError):
            continue
        if value > 0:
            # CARLA's speed-limit signs (Speed_30/60/90) are km/h whatever unit the file writes.
            limits[int(landmark.road_id)] = value / 3.6
    return limits


@dataclass(frozen=True)
class _Span:
    """One lane of one lane section as the file lays it out: road ``s`` from ``s0_m`` to ``s1_m``."""

    road_id: int
    lane_id: int
    s0_m: float
    s1_m: float


@dataclass(frozen=True, eq=False)
class _SampledLane:
    """One driving lane sampled at exact arc-length steps."""

    points_xyz: np.ndarray
    yaw_rad: np.ndarray
    s_m: np.ndarray
    width_m: np.ndarray
    left_marking: np.ndarray
    right_marking: np.ndarray
    length_m: float
    junction_id: int
    middle: object  # a carla.Waypoint half-way along the lane


def _lane_spans(xodr_text: str) -> list[_Span]:
    """Every non-centre lane of every lane section, with the road ``s`` range it covers."""
    spans: list[_Span] = []
    for road in ET.fromstring(xodr_text).findall("road"):
        lanes = road.find("lanes")
        try:
            road_id = int(road.get("id", ""))
            length = float(road.get("length", "nan"))
            sections = sorted(((float(sec.get("s", "0")), sec) for sec in (lanes if lanes is not None else [])
                               if sec.tag == "laneSection"), key=lambda item: item[0])
        except ValueError:
            continue  # carla.Map refuses such a road too
        if not math.isfinite(length):
            continue
        for i, (s0, section) in enumerate(sections):
            s1 = min(sections[i + 1][0] if i + 1 < len(sections) else length, length)
            for lane in section.iterfind("./*/lane"):
                try:
                    lane_id = int(lane.get("id", "0"))
                except ValueError:
                    continue
                if lane_id != 0:
                    spans.append(_Span(road_id, lane_id, s0, s1))
    return spans


def _sample_driving_lanes(carla_map, xodr_text: str, step_m: float) -> dict[LaneKey, _SampledLane]:
    """Every driving lane that ``carla_map`` resolves, keyed ``(road, section, lane)``.

    Samples sit every ``step_m`` of road ``s`` (plus both ends, 1 mm inside),
    duplicate points are dropped, and the polyline is resampled at exact
    arc-length steps so that ``s -> sample row`` is a division. Lanes of zero
    length come back with ``length_m == 0`` for the caller to drop.
    """
    marking_index = {name: i for i, name in enumerate(_MARKING_NAMES)}
    result: dict[LaneKey, _SampledLane] = {}
    for span in _lane_spans(xodr_text):
        extent = span.s1_m - span.s0_m
        if not extent > 0:
            continue
        middle = carla_map.get_waypoint_xodr(span.road_id, span.lane_id, 0.5 * (span.s0_m + span.s1_m))
        if (middle is None or str(middle.lane_type) != "Driving" or middle.road_id != span.road_id
                or middle.lane_id != span.lane_id):
            continue
        key = _key(middle)
        if key in result:
            continue
        margin = min(_END_MARGIN_M, extent / 4)
        road_s = np.concatenate([[span.s0_m + margin], np.arange(span.s0_m + step_m, span.s1_m - margin, step_m),
                                 [span.s1_m - margin]])
        if span.lane_id > 0:  # CARLA drives positive lanes against the road's s
            road_s = road_s[::-1]
        waypoints = [carla_map.get_waypoint_xodr(span.road_id, span.lane_id, float(s)) for s in road_s]
        waypoints = [w for w in waypoints if w is not None and _key(w) == key] or [middle]
        xyz = np.array([[w.transform.location.x, w.transform.location.y, w.transform.location.z]
                        for w in waypoints])
        distinct = np.ones(len(waypoints), dtype=bool)
        distinct[1:] = np.linalg.norm(np.diff(xyz[:, :2], axis=0), axis=1) > _DUPLICATE_POINT_M
        waypoints = [w for w, keep in zip(waypoints, distinct) if keep]
        xyz = xyz[distinct]
        yaw = np.unwrap(np.deg2rad([w.transform.rotation.yaw for w in waypoints]))
        raw_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xyz[:, :2], axis=0), axis=1))])
        length = float(raw_s[-1])
        # Resample at exact arc-length steps so that s -> sample row is a division, not a search.
        s = np.append(np.arange(0.0, length, step_m), length)
        if s.size > 2 and s[-1] - s[-2] < 1e-3:
            s = np.delete(s, -2)
        if len(waypoints) > 1:
            points = np.stack([np.interp(s, raw_s, xyz[:, i]) for i in range(3)], axis=1)
            yaw_s = np.interp(s, raw_s, yaw)
        else:
            points, yaw_s = np.repeat(xyz, s.size, axis=0), np.repeat(yaw, s.size)
        nearest = np.minimum(np.searchsorted(raw_s, s), len(waypoints) - 1)

        def markings(attr: str) -> np.ndarray:
            values = [getattr(w, attr) for w in waypoints]
            return np.array([0 if m is None else marking_index.get(str(m.type), 1) for m in values],
                            dtype=np.int8)[nearest]

        result[key] = _SampledLane(
            points_xyz=points, yaw_rad=np.asarray(wrap_angle(yaw_s), float), s_m=s,
            width_m=np.array([w.lane_width for w in waypoints], float)[nearest],
            left_marking=markings("left_lane_marking"), right_marking=markings("right_lane_marking"),
            length_m=length, junction_id=int(middle.junction_id) if middle.is_junction else -1, middle=middle)
    return result


def _contract_short_lanes(successors: dict[LaneKey, set[LaneKey]], kept: set[LaneKey]
                          ) -> dict[LaneKey, set[LaneKey]]:
    """Successors among ``kept`` lanes, passing through dropped (too short) lanes to what follows them."""
    result: dict[LaneKey, set[LaneKey]] = {}
    for key in kept:
        found: set[LaneKey] = set()
        stack = list(successors.get(key, ()))
        seen: set[LaneKey] = set()
        while stack:
            other = stack.pop()
            if other in seen:
                continue
            seen.add(other)
            if other in kept:
                found.add(other)
            else:  # a dropped (too short) lane: go on to what follows it; topology lists only driving lanes
                stack.extend(successors.get(other, ()))
        result[key] = found
    return result


def build_lane_graph(carla_map, xodr_text: str, step_m: float = SAMPLE_STEP_M) -> LaneGraph:
    """Sample every driving lane of ``carla_map`` and build the lane graph (a fraction of a second per town).

    Lanes are enumerated from the file's lane sections (``get_topology()``
    lists only lanes that have a successor, so a lane that ends, such as a
    merge lane, would be lost) and sampled with ``get_waypoint_xodr``; each lane's
    successors are the ones ``get_topology()`` gives it, so the links are
    CARLA's own. Lanes shorter than :data:`MIN_LANE_LENGTH_M` are
    dropped and their predecessors linked to their successors. Raises
    :class:`~sim.maps.loader.MapLoadError` when no driving lane is left or
    every lane leads only to dead ends.
    """
    lanes = _sample_driving_lanes(carla_map, xodr_text, step_m)
    keep = [k for k, lane in lanes.items() if lane.length_m >= MIN_LANE_LENGTH_M]
    if not keep:
        raise MapLoadError(f"map {carla_map.name} has no driving lane longer than {MIN_LANE_LENGTH_M * 100:.0f} cm")
    keys = tuple(sorted(keep))
    index = {k: i for i, k in enumerate(keys)}
    limits = _speed_limits_by_road(carla_map, xodr_text)
    sampled = [lanes[k] for k in keys]

    count = np.array([lane.s_m.size for lane in sampled], dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    lengths = [lane.length_m for lane in sampled]
    junction_ids = [lane.junction_id for lane in sampled]
    yaw_parts = [lane.yaw_rad for lane in sampled]
    s_parts = [lane.s_m for lane in sampled]
    xyz_parts = [lane.points_xyz for lane in sampled]
    width_parts = [lane.width_m for lane in sampled]
    lm_parts = [lane.left_marking for lane in sampled]
    rm_parts = [lane.right_marking for lane in sampled]
    yaw_all = np.concatenate(yaw_parts)
    s_all = np.concatenate(s_parts)
    sample_lane = np.repeat(np.arange(len(keys)), count)

    # get_topology() lists every lane section's lanes that have a successor, with CARLA's successors
    # (Waypoint.next is no reference: on some files it misses links the topology has).
    topology: dict[LaneKey, set[LaneKey]] = {}
    for entry, exit_ in carla_map.get_topology():
        topology.setdefault(_key(entry), set()).add(_key(exit_))
    succ_by_key = _contract_short_lanes(topology, set(keys))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(keys)))
    succ_lists: list[list[int]] = [[] for _ in keys]
    for key in keys:
        a = index[key]
        for other in sorted(succ_by_key[key]):
            b = index[other]
            if b != a:
                succ_lists[a].append(b)
                graph.add_edge(a, b, length=lengths[a])
    width = max(1, max(len(s) for s in succ_lists))
    successors = np.full((len(keys), width), -1, dtype=np.int64)
    for i, succ in enumerate(succ_lists):
        successors[i, :len(succ)] = succ


    # Curvature-limited comfortable speed per lane: v = sqrt(a_lat / |kappa|).
    comfort = np.empty(len(keys))
    for i in range(len(keys)):
        yaw_l, s_l = yaw_parts[i], s_parts[i]
        if len(s_l) < 3:
            comfort[i] = np.inf
            continue
        window = max(1, int(round(3.0 / step_m)))
        dyaw = np.abs(wrap_angle(yaw_l[window:] - yaw_l[:-window]))
        ds = np.maximum(s_l[window:] - s_l[:-window], 1e-3)
        kappa = float(np.max(dyaw / ds)) if dyaw.size else 0.0
        comfort[i] = math.sqrt(MAX_LATERAL_ACCEL_MPS2 / kappa) if kappa > 1e-4 else np.inf

    starts = {k: lanes[k].middle for k in keys}
    left, right = _same_direction_neighbours(keys, index, starts)
    left_marking = np.concatenate(lm_parts)
    right_marking = np.concatenate(rm_parts)
    in_main = _main_component(graph, left, right, np.array([j >= 0 for j in junction_ids]), offset, count,
                              left_marking, right_marking)
    if not in_main.any():
        raise MapLoadError(f"map {carla_map.name} has no lane network to drive on: each of its {len(keys)} driving "
                           "lanes leads only to dead ends (no loop of lanes, even with lane changes)")
    in_core = np.zeros(len(keys), dtype=bool)
    in_core[sorted(max(nx.strongly_connected_components(graph), key=len))] = True
    speed = np.array([limits.get(k[0], DEFAULT_SPEED_LIMIT_MPS) for k in keys])
    return LaneGraph(
        keys=keys, length_m=np.array(lengths), offset=offset, count=count,
        is_junction=np.array([j >= 0 for j in junction_ids]), junction_id=np.array(junction_ids, dtype=np.int64),
        speed_limit_mps=speed, comfort_speed_mps=comfort, successors=successors,
        num_successors=np.array([len(s) for s in succ_lists], dtype=np.int64),
        left_lane=left, right_lane=right, in_main_component=in_main, in_follow_core=in_core,
        points_xyz=np.concatenate(xyz_parts), yaw_rad=yaw_all, s_m=s_all,
        width_m=np.concatenate([np.asarray(w, float) for w in width_parts]), sample_lane=sample_lane,
        left_marking=left_marking, right_marking=right_marking, graph=graph,
    )


MARKING_NAMES = _MARKING_NAMES
"""Lane-marking type names (``carla.LaneMarkingType``) indexed by ``left_marking``/``right_marking``."""

CROSSABLE_MARKINGS = frozenset(_MARKING_NAMES.index(name) for name in ("NONE", "Broken", "BrokenBroken", "BottsDots"))
"""Marking indices a lane change may cross (the rest are solid lines, kerbs and grass)."""


def _main_component(graph: nx.DiGraph, left: np.ndarray, right: np.ndarray, is_junction: np.ndarray,
                    offset: np.ndarray, count: np.ndarray, left_marking: np.ndarray, right_marking: np.ndarray
                    ) -> np.ndarray:
    """Lanes of the main component (see :class:`LaneGraph`): the largest set of lanes that all reach each other
    when vehicles may also change to a same-direction neighbour across a crossable marking outside junctions,
    less the lanes from which following lanes (without changing) can only end in a dead end."""
    with_changes = graph.copy()
    crossable = np.zeros(256, dtype=bool)
    crossable[list(CROSSABLE_MARKINGS)] = True
    for lane in np.flatnonzero(~is_junction):
        rows = slice(int(offset[lane]), int(offset[lane] + count[lane]))
        for neighbour, marking in ((left[lane], left_marking), (right[lane], right_marking)):
            if neighbour >= 0 and crossable[marking[rows].astype(np.uint8)].any():
                with_changes.add_edge(int(lane), int(neighbour))
    main = set(max(nx.strongly_connected_components(with_changes), key=len))
    dead = [lane for lane in main if not any(b in main for b in graph.successors(lane))]
    while dead:
        main.difference_update(dead)
        dead = {a for lane in dead for a in graph.predecessors(lane)
                if a in main and not any(b in main for b in graph.successors(a))}
    in_main = np.zeros(len(left), dtype=bool)
    in_main[sorted(main)] = True
    return in_main


def _same_direction_neighbours(keys, index, starts) -> tuple[np.ndarray, np.ndarray]:
    left = np.full(len(keys), -1, dtype=np.int64)
    right = np.full(len(keys), -1, dtype=np.int64)
    for i, key in enumerate(keys):
        waypoint = starts[key]
        for getter, out in ((waypoint.get_left_lane, left), (waypoint.get_right_lane, right)):
            other = getter()
            if other is None or str(other.lane_type) != "Driving":
                continue
            other_key = _key(other)
            same_direction = (other_key[2] > 0) == (key[2] > 0)
            if same_direction and other_key in index:
                out[i] = index[other_key]
    return left, right
