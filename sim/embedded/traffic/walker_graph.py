"""The pedestrian network: sidewalks, corners and road crossings as a graph of polylines.

Sidewalks are the OpenDRIVE lanes of type ``Sidewalk`` beside the driving
lanes (reached through ``waypoint.get_right_lane()``, which CARLA mirrors for
positive lane ids so it always steps away from the road centre). Each sidewalk
lane becomes a SIDEWALK edge; sidewalk ends closer than :data:`NODE_MERGE_M`
share a node. The network then gets

* CORNER edges between sidewalk ends of different roads a few metres apart
  (walking around a junction corner), unless they are already joined;
* CROSSWALK edges across the road at every road end that meets a junction;
* JAYWALK edges across the middle of long roads, which only careless walkers use.

Edges are polylines resampled to a uniform spacing and stored in flat arrays
(edge ``e`` owns point rows ``edge_offset[e] : edge_offset[e] + edge_count[e]``),
so walkers can be placed on them with a few vectorised numpy calls. Routing
uses all-pairs shortest paths over the network without JAYWALK edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from sim.maps.lanes import LaneGraph, _key
from sim.maps.signals import SignalLayout

WAYPOINT_STEP_M = 2.0
"""Spacing of the driving-lane waypoints used to sample the sidewalks beside them."""
POINT_STEP_M = 1.0
"""Target spacing of the resampled edge polylines."""
NODE_MERGE_M = 1.0
"""Sidewalk ends closer than this share one node."""
CORNER_RADIUS_M = 10.0
"""Sidewalk ends of different roads within this distance get a CORNER edge."""
CORNER_DETOUR_FACTOR = 1.5
"""No CORNER edge where the network already joins the two ends within this many times their distance."""
CROSSWALK_SETBACK_M = 2.5
"""Crosswalks lie this far beyond the road end, inside the junction (past the stop line)."""
CROSSING_WIDTH_M = 2.0
"""Walkable width recorded for crossings and corner links."""
MAX_CROSSWALK_M = 40.0
"""Longest road crossing (sidewalk centre to sidewalk centre) that is still made a CROSSWALK."""
JAYWALK_MIN_ROAD_M = 30.0
"""Road sections longer than this get a JAYWALK edge across their middle."""
CROSSED_LANE_RADIUS_M = 1.5
"""A crossing cuts the driving lanes with samples within this distance of it."""
CLEARANCE_MARGIN_M = 0.3
"""A CORNER edge must stay this far outside every driving lane (beyond half its width)."""
MIN_SIDEWALK_WIDTH_M = 0.5
"""Sidewalk samples narrower than this are dropped (sidewalks that taper away)."""
_MAX_LANE_CHAIN = 10


class EdgeKind(IntEnum):
    """What an edge of the walker network is."""

    SIDEWALK = 0
    CORNER = 1
    CROSSWALK = 2
    JAYWALK = 3


@dataclass(frozen=True, eq=False)
class WalkerNetwork:
    """Pedestrian network as flat polyline arrays plus routing tables.

    Per point (``P``): ``points_xyz`` (P, 3), ``point_s_m`` (arc length from
    its edge's start), ``point_tangent_xy`` (P, 2) unit direction of the
    segment starting there (the last point of an edge repeats the previous one).
    Per edge (``E``): ``edge_offset``, ``edge_count``, ``edge_length_m``,
    ``edge_step_m`` (uniform point spacing), ``edge_kind`` (:class:`EdgeKind`),
    ``edge_nodes`` (E, 2) start/end node, ``edge_width_m`` (walkable width),
    ``edge_road_id`` (road of a SIDEWALK edge, else -1), ``edge_crossed_lanes``
    (E, C) LaneGraph lanes a CROSSWALK/JAYWALK edge cuts (the crossed road's
    lanes and junction lanes passing it), ``edge_signal_lanes`` (E, S) the
    crossed lanes that end at the crossing, whose lights govern it
    (``SignalLayout.lane_light``); both padded with -1.
    Per node (``N``): ``node_xy`` (N, 2), ``node_in_main`` (node belongs to the
    largest connected component without JAYWALK edges), ``node_jaywalk``
    (a JAYWALK edge leaving the node or -1).
    Routing (N, N) over the network without JAYWALK edges: ``edge_between``
    (edge joining two nodes or -1), ``next_hop`` (next node from ``a`` toward
    ``b``; -1 where ``a == b`` or ``b`` is unreachable), ``distance_m``
    (shortest walking distance, inf where unreachable). ``main_nodes``: the
    node ids of the main component.
    """

    points_xyz: np.ndarray
    point_s_m: np.ndarray
    point_tangent_xy: np.ndarray
    edge_offset: np.ndarray
    edge_count: np.ndarray
    edge_length_m: np.ndarray
    edge_step_m: np.ndarray
    edge_kind: np.ndarray
    edge_nodes: np.ndarray
    edge_width_m: np.ndarray
    edge_road_id: np.ndarray
    edge_crossed_lanes: np.ndarray
    edge_signal_lanes: np.ndarray
    node_xy: np.ndarray
    node_in_main: np.ndarray
    node_jaywalk: np.ndarray
    main_nodes: np.ndarray
    edge_between: np.ndarray
    next_hop: np.ndarray
    distance_m: np.ndarray

    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return int(self.edge_length_m.shape[0])

    @property
    def num_nodes(self) -> int:
        """Number of nodes ``N``."""
        return int(self.node_xy.shape[0])

    def edge_points(self, edge: int) -> np.ndarray:
        """The (count, 3) polyline of one edge, from its start node to its end node."""
        start = int(self.edge_offset[edge])
        return self.points_xyz[start:start + int(self.edge_count[edge])]

    def interpolate(self, edge: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (n, 3) and unit tangents (n, 2) at arc lengths ``s_m`` along ``edge`` (vectorised)."""
        step = self.edge_step_m[edge]
        local = np.clip((s_m / step).astype(np.int64), 0, self.edge_count[edge] - 2)
        row = self.edge_offset[edge] + local
        frac = np.clip(s_m / step - local, 0.0, 1.0)
        p0 = self.points_xyz[row]
        return p0 + (self.points_xyz[row + 1] - p0) * frac[:, None], self.point_tangent_xy[row]


@dataclass
class _Piece:
    """A polyline under construction: points (k, 3) from node ``a`` to node ``b``."""

    points: np.ndarray
    kind: EdgeKind
    width_m: float
    road_id: int = -1
    node_a: int = -1
    node_b: int = -1
    crossed: list[int] = field(default_factory=list)
    signal_lanes: list[int] = field(default_factory=list)


@dataclass
class _Sidewalk:
    """One sampled sidewalk lane, points ordered by road ``s``."""

    road_id: int
    section_id: int
    side: int  # sign of the lane id
    s_m: np.ndarray
    xyz: np.ndarray
    width_m: np.ndarray


@dataclass
class _RawPiece:
    """A sidewalk (or part of one) with flags for touching its section's low-s / high-s end."""

    walk: _Sidewalk
    points: np.ndarray
    at_low_end: bool
    at_high_end: bool


def _sidewalk_beside(waypoint):
    """The first Sidewalk lane outward of ``waypoint`` or None."""
    current = waypoint
    for _ in range(_MAX_LANE_CHAIN):
        current = current.get_right_lane()
        if current is None:
            return None
        if str(current.lane_type) == "Sidewalk":
            return current
    return None


def _sample_sidewalks(carla_map, lanes: LaneGraph) -> list[_Sidewalk]:
    """Sample every sidewalk lane beside a driving lane by stepping that driving lane's waypoints.

    (Stepping the sidewalk's own waypoints with ``previous_until_lane_start``
    crashes CARLA's library at sidewalks without a predecessor.)
    """
    samples: dict[tuple[int, int, int], dict[float, tuple[float, float, float, float]]] = {}
    driver_of: dict[tuple[int, int, int], tuple[int, int, int]] = {}
    seen: set[tuple[int, int, int]] = set()
    for entry, _exit in carla_map.get_topology():
        lane_key = _key(entry)
        if lane_key not in lanes.index or lane_key in seen:
            continue
        seen.add(lane_key)
        first = _sidewalk_beside(entry)
        if first is None:
            continue
        side_key = _key(first)
        if driver_of.setdefault(side_key, lane_key) != lane_key:
            continue  # another driving lane already sampled this sidewalk
        points = samples.setdefault(side_key, {})
        for waypoint in [entry] + list(entry.next_until_lane_end(WAYPOINT_STEP_M)):
            if _key(waypoint) != lane_key:
                continue
            side = _sidewalk_beside(waypoint)
            if side is None or _key(side) != side_key:
                continue
            loc = side.transform.location
            points[round(float(side.s), 3)] = (loc.x, loc.y, loc.z, float(side.lane_width))
    result: list[_Sidewalk] = []
    for (road, section, lane_id), points in sorted(samples.items()):
        s = np.array(sorted(points))
        data = np.array([points[v] for v in s])
        wide = data[:, 3] >= MIN_SIDEWALK_WIDTH_M
        if wide.sum() < 2:
            continue
        # a sidewalk that tapers away in the middle keeps its longest wide run only
        s, data = _longest_run(s, data, wide)
        if s.shape[0] >= 2:
            result.append(_Sidewalk(road, section, int(np.sign(lane_id)), s, data[:, :3], data[:, 3]))
    return result


def _longest_run(s: np.ndarray, data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    best = int(np.argmax(stops - starts))
    return s[starts[best]:stops[best]], data[starts[best]:stops[best]]


def _arc_length(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1))])


def _resample(points: np.ndarray) -> np.ndarray:
    """Resample a polyline to uniform arc-length spacing of about :data:`POINT_STEP_M`."""
    arc = _arc_length(points)
    keep = np.concatenate([[True], np.diff(arc) > 1e-6])
    points, arc = points[keep], arc[keep]
    if points.shape[0] < 2:
        points = np.vstack([points[0], points[0] + [1e-3, 0.0, 0.0]])
        arc = _arc_length(points)
    count = max(2, int(math.ceil(arc[-1] / POINT_STEP_M)) + 1)
    targets = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(targets, arc, points[:, i]) for i in range(3)], axis=1)


def _unit(vector: np.ndarray) -> np.ndarray:
    """Unit vector (x, y, 0) along the horizontal part of ``vector``."""
    flat = np.array([vector[0], vector[1], 0.0])
    return flat / max(float(np.linalg.norm(flat)), 1e-9)


def _add_crosswalk(pieces: list[_Piece], nodes: list[np.ndarray], left: tuple[int, np.ndarray],
                   right: tuple[int, np.ndarray], road_lanes: list[int], entering: list[int],
                   lanes: LaneGraph) -> None:
    """A CROSSWALK between two sidewalk ends, set back into the junction where the kerb allows.

    The setback keeps walkers clear of vehicles waiting at the stop line (the
    lane end); short CORNER stubs lead from the sidewalk ends to the crossing.
    """
    (a, out_a), (b, out_b) = left, right
    if np.linalg.norm(nodes[a][:2] - nodes[b][:2]) > MAX_CROSSWALK_M:
        return
    shift = _unit(out_a + out_b) * CROSSWALK_SETBACK_M
    stub_a, stub_b = _segment(nodes[a], nodes[a] + shift), _segment(nodes[b], nodes[b] + shift)
    if _clear_of_lanes(lanes, stub_a) and _clear_of_lanes(lanes, stub_b):
        kerb_nodes = []
        for node, stub in ((a, stub_a), (b, stub_b)):
            nodes.append(stub[1])
            kerb_nodes.append(len(nodes) - 1)
            pieces.append(_Piece(stub, EdgeKind.CORNER, CROSSING_WIDTH_M, -1, node, kerb_nodes[-1]))
        a, b = kerb_nodes
    crossed = sorted(set(road_lanes) | set(_crossed_lanes(lanes, nodes[a], nodes[b])))
    pieces.append(_Piece(_segment(nodes[a], nodes[b]), EdgeKind.CROSSWALK, CROSSING_WIDTH_M, -1, a, b, crossed,
                         sorted(entering)))


def _segment(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A straight polyline from ``a`` to ``b`` (3-vectors)."""
    return np.vstack([a, b])


def _junction_ends(lanes: LaneGraph) -> dict[tuple[int, int, int], list[int]]:
    """Section ends that meet a junction and the lanes that enter the junction there.

    Keys are (road, section, +1 for the high-s end / -1 for the low-s end);
    values list the lanes ending there (empty where lanes only leave the junction).
    """
    ends: dict[tuple[int, int, int], list[int]] = {}
    preds = lanes.predecessors
    for lane, (road, section, lane_id) in enumerate(lanes.keys):
        if lanes.is_junction[lane]:
            continue
        # negative lanes drive toward high s, positive ones toward low s
        exit_end = 1 if lane_id < 0 else -1
        succ = lanes.successors[lane, :lanes.num_successors[lane]]
        if lanes.is_junction[succ].any():
            ends.setdefault((road, section, exit_end), []).append(lane)
        if any(lanes.is_junction[p] for p in preds[lane]):
            ends.setdefault((road, section, -exit_end), [])
    return ends


def _crossed_lanes(lanes: LaneGraph, a: np.ndarray, b: np.ndarray) -> list[int]:
    length = float(np.linalg.norm(b[:2] - a[:2]))
    count = max(2, int(math.ceil(length / 0.5)) + 1)
    samples = a[None, :2] + (b - a)[None, :2] * np.linspace(0.0, 1.0, count)[:, None]
    hits = lanes.kdtree.query_ball_point(samples, CROSSED_LANE_RADIUS_M)
    rows = np.unique(np.concatenate([np.asarray(h, dtype=np.int64) for h in hits]))
    return sorted({int(v) for v in lanes.sample_lane[rows]}) if rows.size else []


def _clear_of_lanes(lanes: LaneGraph, points: np.ndarray) -> bool:
    """Whether the polyline ``points`` stays outside every driving lane (by :data:`CLEARANCE_MARGIN_M`)."""
    arc = _arc_length(points)
    count = max(2, int(math.ceil(arc[-1] / 0.5)) + 1)
    targets = np.linspace(0.0, arc[-1], count)
    samples = np.stack([np.interp(targets, arc, points[:, i]) for i in range(2)], axis=1)
    dist, rows = lanes.kdtree.query(samples)
    return bool(np.all(dist > lanes.width_m[rows] / 2 + CLEARANCE_MARGIN_M))


def _split_long_sidewalks(sidewalks: list[_Sidewalk]) -> tuple[list[_RawPiece], list[tuple[int, int]]]:
    """Cut sidewalks of long sections at mid-section where both sides have one.

    Returns the pieces and pairs of piece indices (one per side) whose high-s
    ends are the facing cut points, for JAYWALK edges.
    """
    by_section: dict[tuple[int, int], dict[int, int]] = {}
    for i, walk in enumerate(sidewalks):
        by_section.setdefault((walk.road_id, walk.section_id), {})[walk.side] = i
    cut_at: dict[int, float] = {}
    for sides in by_section.values():
        if len(sides) != 2:
            continue
        left, right = sidewalks[sides[1]], sidewalks[sides[-1]]
        lo = max(left.s_m[0], right.s_m[0])
        hi = min(left.s_m[-1], right.s_m[-1])
        if hi - lo > JAYWALK_MIN_ROAD_M:
            cut_at[sides[1]] = cut_at[sides[-1]] = 0.5 * (lo + hi)
    pieces: list[_RawPiece] = []
    first_piece: dict[int, int] = {}
    for i, walk in enumerate(sidewalks):
        if i not in cut_at:
            pieces.append(_RawPiece(walk, walk.xyz, True, True))
            continue
        s_cut = cut_at[i]
        mid = np.array([np.interp(s_cut, walk.s_m, walk.xyz[:, k]) for k in range(3)])
        below = walk.s_m < s_cut - 1e-6
        above = walk.s_m > s_cut + 1e-6
        first_piece[i] = len(pieces)
        pieces.append(_RawPiece(walk, np.vstack([walk.xyz[below], mid]), True, False))
        pieces.append(_RawPiece(walk, np.vstack([mid, walk.xyz[above]]), False, True))
    pairs = [(first_piece[sides[1]], first_piece[sides[-1]])
             for sides in by_section.values() if len(sides) == 2 and sides[1] in first_piece]
    return pieces, pairs


def _merge_points(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster points closer than :data:`NODE_MERGE_M`; returns (label per point, cluster centres)."""
    pairs = cKDTree(xy).query_pairs(NODE_MERGE_M, output_type="ndarray")
    n = xy.shape[0]
    graph = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    centres = np.zeros((count, 2))
    np.add.at(centres, labels, xy)
    centres /= np.bincount(labels, minlength=count)[:, None]
    return labels, centres


def build_walker_network(carla_map, lanes: LaneGraph, signals: SignalLayout) -> WalkerNetwork:
    """Build the pedestrian network of ``carla_map`` beside the driving lanes of ``lanes``.

    Crossings record the lanes whose lights govern them (``edge_signal_lanes``);
    their states are looked up per tick through ``signals.lane_light``, which
    must describe the same lanes. Raises ValueError when the map has no
    sidewalks or ``signals`` belongs to another lane graph.
    """
    if signals.lane_light.shape[0] != lanes.num_lanes:
        raise ValueError(f"signals describe {signals.lane_light.shape[0]} lanes but the lane graph has "
                         f"{lanes.num_lanes}: build both from the same map")
    sidewalks = _sample_sidewalks(carla_map, lanes)
    if not sidewalks:
        raise ValueError("the map has no Sidewalk lanes beside its driving lanes: no walker network")
    raw_pieces, jaywalk_pairs = _split_long_sidewalks(sidewalks)

    # Nodes: merged piece ends.
    ends_xyz = np.array([[raw.points[0], raw.points[-1]] for raw in raw_pieces]).reshape(-1, 3)
    labels, merged_xy = _merge_points(ends_xyz[:, :2])
    node_xyz = np.column_stack([merged_xy, np.zeros(merged_xy.shape[0])])
    node_xyz[labels, 2] = ends_xyz[:, 2]
    nodes = list(node_xyz)
    pieces: list[_Piece] = []
    end_node: dict[tuple[int, int, int, int], tuple[int, np.ndarray]] = {}
    for i, raw in enumerate(raw_pieces):
        points = raw.points.copy()
        a, b = int(labels[2 * i]), int(labels[2 * i + 1])
        points[0], points[-1] = nodes[a], nodes[b]
        walk = raw.walk
        pieces.append(_Piece(points, EdgeKind.SIDEWALK, float(np.median(walk.width_m)), walk.road_id, a, b))
        if raw.at_low_end:
            end_node[(walk.road_id, walk.section_id, walk.side, -1)] = (a, _unit(raw.points[0] - raw.points[1]))
        if raw.at_high_end:
            end_node[(walk.road_id, walk.section_id, walk.side, 1)] = (b, _unit(raw.points[-1] - raw.points[-2]))

    # CROSSWALK edges: across the road a little into the junction at section ends meeting one.
    section_lanes: dict[tuple[int, int], list[int]] = {}
    for lane, (road, section, _lane_id) in enumerate(lanes.keys):
        section_lanes.setdefault((road, section), []).append(lane)
    crossings: set[tuple[int, int]] = set()
    for (road, section, end), entering in sorted(_junction_ends(lanes).items()):
        left, right = end_node.get((road, section, 1, end)), end_node.get((road, section, -1, end))
        if left is None or right is None or (min(left[0], right[0]), max(left[0], right[0])) in crossings:
            continue
        crossings.add((min(left[0], right[0]), max(left[0], right[0])))
        _add_crosswalk(pieces, nodes, left, right, section_lanes[(road, section)], entering, lanes)

    # JAYWALK edges: across the middle of long sections.
    for first, second in jaywalk_pairs:
        a, b = pieces[first].node_b, pieces[second].node_b
        if a != b and np.linalg.norm(nodes[a][:2] - nodes[b][:2]) <= MAX_CROSSWALK_M:
            pieces.append(_Piece(_segment(nodes[a], nodes[b]), EdgeKind.JAYWALK, CROSSING_WIDTH_M, -1, a, b,
                                 _crossed_lanes(lanes, nodes[a], nodes[b])))

    node_xyz = np.array(nodes)
    _add_corners(pieces, node_xyz, {node for node, _ in end_node.values()}, lanes)
    return _assemble(pieces, node_xyz)


def _walk_graph(pieces: list[_Piece], num_nodes: int) -> np.ndarray:
    """Dense symmetric (N, N) edge lengths of the network without JAYWALK edges (inf: no edge)."""
    rows, cols, weights = [], [], []
    for piece in pieces:
        if piece.kind == EdgeKind.JAYWALK:
            continue
        length = float(_arc_length(piece.points)[-1])
        rows.append(piece.node_a)
        cols.append(piece.node_b)
        weights.append(max(length, 1e-3))
    dense = np.full((num_nodes, num_nodes), np.inf)
    np.minimum.at(dense, (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)), weights)
    dense = np.minimum(dense, dense.T)
    return dense


def _add_corners(pieces: list[_Piece], node_xyz: np.ndarray, end_nodes: set[int], lanes: LaneGraph) -> None:
    """CORNER edges between nearby sidewalk ends of different roads that the network does not join yet."""
    candidates = np.array(sorted(end_nodes), dtype=np.int64)
    if candidates.size < 2:
        return
    roads: dict[int, set[int]] = {}
    for piece in pieces:
        if piece.kind == EdgeKind.SIDEWALK:
            roads.setdefault(piece.node_a, set()).add(piece.road_id)
            roads.setdefault(piece.node_b, set()).add(piece.road_id)
    pairs = cKDTree(node_xyz[candidates, :2]).query_pairs(CORNER_RADIUS_M, output_type="ndarray")
    if pairs.size == 0:
        return
    dense = _walk_graph(pieces, node_xyz.shape[0])
    dense[~np.isfinite(dense)] = 0.0
    sources = np.unique(candidates[pairs.ravel()])
    reach = dijkstra(dense, directed=False, indices=sources, limit=CORNER_RADIUS_M * CORNER_DETOUR_FACTOR)
    source_row = {int(n): i for i, n in enumerate(sources)}
    gaps = np.linalg.norm(node_xyz[candidates[pairs[:, 0]], :2] - node_xyz[candidates[pairs[:, 1]], :2], axis=1)
    for (i, j), gap in sorted(zip(pairs.tolist(), gaps.tolist()), key=lambda item: item[1]):
        a, b = int(candidates[i]), int(candidates[j])
        if roads.get(a, set()) & roads.get(b, set()):
            continue
        if reach[source_row[a], b] <= CORNER_DETOUR_FACTOR * gap:
            continue
        points = _segment(node_xyz[a], node_xyz[b])
        if not _clear_of_lanes(lanes, points):
            continue
        pieces.append(_Piece(points, EdgeKind.CORNER, CROSSING_WIDTH_M, -1, a, b))
        # later pairs see this corner: a short recomputation from both ends keeps it exact
        dense[a, b] = dense[b, a] = gap
        for node in (a, b):
            if node in source_row:
                reach[source_row[node]] = dijkstra(dense, directed=False, indices=node,
                                                   limit=CORNER_RADIUS_M * CORNER_DETOUR_FACTOR)


def _padded(rows: list[list[int]]) -> np.ndarray:
    """Ragged int lists as one (len(rows), max_len) array padded with -1 (at least one column)."""
    out = np.full((len(rows), max(1, max((len(r) for r in rows), default=0))), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def _assemble(pieces: list[_Piece], node_xyz: np.ndarray) -> WalkerNetwork:
    pieces = [p for p in pieces if p.node_a != p.node_b]
    polylines = [_resample(p.points) for p in pieces]
    counts = np.array([len(p) for p in polylines], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    points = np.concatenate(polylines)
    lengths = np.array([_arc_length(p)[-1] for p in polylines])
    steps = lengths / (counts - 1)
    point_s = np.concatenate([np.arange(c) * st for c, st in zip(counts, steps)])
    delta = np.diff(points[:, :2], axis=0, append=points[-1:, :2])
    last = offsets + counts - 1
    delta[last] = delta[last - 1]
    tangent = delta / np.maximum(np.linalg.norm(delta, axis=1, keepdims=True), 1e-9)

    kinds = np.array([int(p.kind) for p in pieces], dtype=np.int8)
    nodes = np.array([[p.node_a, p.node_b] for p in pieces], dtype=np.int64)
    crossed_lanes = _padded([p.crossed for p in pieces])
    signal_lanes = _padded([p.signal_lanes for p in pieces])

    num_nodes = node_xyz.shape[0]
    walkable = kinds != EdgeKind.JAYWALK
    edge_between = np.full((num_nodes, num_nodes), -1, dtype=np.int32)
    # shortest edge wins where two edges join the same nodes: write longest first
    for e in np.flatnonzero(walkable)[np.argsort(-lengths[walkable], kind="stable")]:
        a, b = nodes[e]
        edge_between[a, b] = edge_between[b, a] = e
    # csgraph reads zeros as missing edges: keep real ones strictly positive
    weights = np.where(edge_between >= 0, np.maximum(lengths[np.maximum(edge_between, 0)], 1e-3), 0.0)
    count, labels = connected_components(weights, directed=False)
    main_label = int(np.argmax(np.bincount(labels, minlength=count)))
    in_main = labels == main_label
    distance, predecessors = dijkstra(weights, directed=False, return_predecessors=True)
    next_hop = np.where(predecessors.T >= 0, predecessors.T, -1).astype(np.int32)

    node_jaywalk = np.full(num_nodes, -1, dtype=np.int32)
    for e in np.flatnonzero(~walkable):
        a, b = nodes[e]
        if in_main[a] and in_main[b]:
            node_jaywalk[a] = node_jaywalk[b] = e
    return WalkerNetwork(
        points_xyz=points, point_s_m=point_s, point_tangent_xy=tangent,
        edge_offset=offsets, edge_count=counts, edge_length_m=lengths, edge_step_m=steps,
        edge_kind=kinds, edge_nodes=nodes, edge_width_m=np.array([p.width_m for p in pieces]),
        edge_road_id=np.array([p.road_id for p in pieces], dtype=np.int64), edge_crossed_lanes=crossed_lanes,
        edge_signal_lanes=signal_lanes,
        node_xy=node_xyz[:, :2].copy(), node_in_main=in_main, node_jaywalk=node_jaywalk,
        main_nodes=np.flatnonzero(in_main).astype(np.int64), edge_between=edge_between,
        next_hop=next_hop, distance_m=distance.astype(np.float32),
    )
