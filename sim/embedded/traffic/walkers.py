"""Pedestrians: vectorised walkers that roam the walker network.

Each walker is on one edge of a :class:`WalkerNetwork`, ``progress_m`` metres
from the node it entered by, walking toward a destination node along the
network's shortest paths. At every node it takes the next hop toward its
destination (a new random one once it gets there). Careful walkers wait at
the kerb before a CROSSWALK until they have right of way; careless ones never
wait and cut across the road on JAYWALK edges when that shortens their way.
Once on a crossing a walker keeps going.

Walkers walk at a fixed lateral offset from the edge centre line (faded to
zero over the first and last metres of each edge so they never jump at nodes).
``location_xyz`` is the centre of the walker's box (ground + half its height),
as CARLA reports walkers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from sim.api import TrafficLightState
from sim.embedded.traffic.walker_graph import EdgeKind, WalkerNetwork

LATERAL_RAMP_M = 2.0
WALKER_PROBE_M = 0.6
"""How far ahead [m] a walker on the road checks for vehicles before stepping."""
GIVE_UP_S = 6.0
"""A walker held this long on the road before a vehicle turns back."""
WALKER_CLEARANCE_M = 0.2
"""Distance from an edge's ends over which the lateral offset fades in."""
_RIGHT = np.array([-1.0, 1.0])
_LIGHT_LEVEL = np.zeros(len(TrafficLightState) + 1, dtype=np.int8)
_LIGHT_LEVEL[[TrafficLightState.RED + 1]] = 1
_LIGHT_LEVEL[[TrafficLightState.YELLOW + 1, TrafficLightState.GREEN + 1]] = 2
"""Indexed by light state + 1 (-1 none .. UNKNOWN): 0 no working light, 1 red, 2 vehicles may go."""

LaneLightState = np.ndarray | Callable[[np.ndarray], np.ndarray] | None
"""Per-lane light states: an (L,) array (-1 none, else :class:`TrafficLightState`) or a callable
mapping lane indices to states (e.g. ``TrafficLights.lane_states``), or None for no lights."""


@dataclass(frozen=True)
class WalkerParams:
    """How walkers behave.

    ``speed_min_mps``..``speed_max_mps``: each walker's constant walking speed
    is drawn uniformly from this range. ``careless_share``: share of walkers
    that cross without looking and jaywalk; ``jaywalk_probability``: chance a
    careless walker takes a JAYWALK edge that shortens its way.
    ``lateral_jitter_m``: walkers keep a fixed random offset within this
    distance of the edge centre line. ``clear_radius_m`` and
    ``approach_speed_mps``: at an unsignalled crossing a careful walker waits
    while a vehicle within that radius of the crossing's middle moves toward
    it faster than that speed. ``look_interval_s``: waiting walkers look
    again this often (a reaction time; 0 looks every tick). ``extent_m``: half sizes of the walker box
    (CARLA's walker bounding box).
    """

    speed_min_mps: float = 0.9
    speed_max_mps: float = 1.6
    careless_share: float = 0.1
    jaywalk_probability: float = 0.5
    lateral_jitter_m: float = 0.5
    clear_radius_m: float = 15.0
    approach_speed_mps: float = 1.0
    look_interval_s: float = 0.2
    extent_m: tuple[float, float, float] = (0.25, 0.25, 0.9)

    def __post_init__(self) -> None:
        values = {
            "speed_min_mps": self.speed_min_mps, "speed_max_mps": self.speed_max_mps,
            "careless_share": self.careless_share, "jaywalk_probability": self.jaywalk_probability,
            "lateral_jitter_m": self.lateral_jitter_m, "clear_radius_m": self.clear_radius_m,
            "approach_speed_mps": self.approach_speed_mps, "look_interval_s": self.look_interval_s,
        }
        for name, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"WalkerParams.{name} must be a finite value >= 0, got {value}")
        if self.speed_max_mps <= 0 or self.speed_min_mps > self.speed_max_mps:
            raise ValueError("WalkerParams needs 0 <= speed_min_mps <= speed_max_mps and speed_max_mps > 0, "
                             f"got {self.speed_min_mps}..{self.speed_max_mps}")
        for name in ("careless_share", "jaywalk_probability"):
            if values[name] > 1:
                raise ValueError(f"WalkerParams.{name} is a probability in [0, 1], got {values[name]}")
        if len(self.extent_m) != 3 or not all(math.isfinite(v) and v > 0 for v in self.extent_m):
            raise ValueError(f"WalkerParams.extent_m must be three positive half sizes, got {self.extent_m}")


class Walkers:
    """All walkers of a world as parallel arrays (``n`` rows, in spawn order).

    Public arrays: ``actor_id``, ``location_xyz`` (n, 3) box centre,
    ``yaw_rad`` (heading of motion), ``velocity_xyz`` (n, 3), ``on_road``
    (on a crossing and not waiting), ``waiting`` (at a kerb, waiting for right
    of way), ``careless``, ``speed_mps``, ``destination`` (node id),
    ``edge`` (current edge). Everything random comes from ``rng``.
    """

    def __init__(self, network: WalkerNetwork, params: WalkerParams, rng: np.random.Generator) -> None:
        if network.main_nodes.size < 2:
            raise ValueError("the walker network's main component has fewer than two nodes")
        self.network = network
        self.params = params
        self.rng = rng
        self.extent_m = np.array(params.extent_m, dtype=float)
        net = network
        self._is_crossing_edge = net.edge_kind >= EdgeKind.CROSSWALK
        self._is_crosswalk_edge = net.edge_kind == EdgeKind.CROSSWALK
        self._signal_lanes = np.maximum(net.edge_signal_lanes, 0)
        self._signal_valid = (net.edge_signal_lanes >= 0).astype(np.int8)
        self._inv_step = 1.0 / net.edge_step_m
        self._table = np.column_stack([net.points_xyz + [0.0, 0.0, params.extent_m[2]], net.point_tangent_xy])
        ends = net.points_xyz[net.edge_offset + net.edge_count - 1, :2]
        self._edge_mid_xy = 0.5 * (net.points_xyz[net.edge_offset, :2] + ends)
        self._main_pos = np.full(net.num_nodes, -1, dtype=np.int64)
        self._main_pos[net.main_nodes] = np.arange(net.main_nodes.size)
        in_main = net.node_in_main[net.edge_nodes[:, 0]] & net.node_in_main[net.edge_nodes[:, 1]]
        self._spawn_edges = np.flatnonzero((net.edge_kind == EdgeKind.SIDEWALK) & in_main)
        if self._spawn_edges.size == 0:
            raise ValueError("the walker network has no sidewalk in its main component")
        spawn_rows = np.concatenate([np.arange(net.edge_offset[e], net.edge_offset[e] + net.edge_count[e])
                                     for e in self._spawn_edges])
        self._spawn_rows = spawn_rows
        self._spawn_row_edge = np.repeat(self._spawn_edges, net.edge_count[self._spawn_edges])
        self._spawn_tree = cKDTree(net.points_xyz[spawn_rows, :2])
        self._resize(0)
        self._since_look_s = 0.0

    # ----------------------------------------------------------------- state
    _STATE = ("actor_id", "edge", "progress_m", "forward", "destination", "speed_mps", "offset_m", "careless",
              "waiting", "held_s", "location_xyz", "yaw_rad", "velocity_xyz", "on_road",
              "_len", "_base", "_row0", "_inv", "_max_local", "_sign", "_crossing", "controlled", "control_velocity")

    def _resize(self, n: int) -> None:
        self.actor_id = np.zeros(n, dtype=np.int64)
        self.edge = np.zeros(n, dtype=np.int64)
        self.progress_m = np.zeros(n)
        self.forward = np.ones(n, dtype=bool)
        self.destination = np.zeros(n, dtype=np.int64)
        self.speed_mps = np.zeros(n)
        self.offset_m = np.zeros(n)
        self.careless = np.zeros(n, dtype=bool)
        self.waiting = np.zeros(n, dtype=bool)
        self.held_s = np.zeros(n)  # how long a walker on the road has been held before a vehicle
        self.location_xyz = np.zeros((n, 3))
        self.yaw_rad = np.zeros(n)
        self.velocity_xyz = np.zeros((n, 3))
        self.on_road = np.zeros(n, dtype=bool)
        self.controlled = np.zeros(n, dtype=bool)  # moved by apply_control, not by the network
        self.control_velocity = np.zeros((n, 2))
        # per-walker copies of its edge's data, refreshed when the edge changes
        self._len = np.zeros(n)
        self._base = np.zeros(n)
        self._row0 = np.zeros(n, dtype=np.int64)
        self._inv = np.zeros(n)
        self._max_local = np.zeros(n, dtype=np.int64)
        self._sign = np.ones(n)
        self._crossing = np.zeros(n, dtype=bool)

    @property
    def count(self) -> int:
        """Number of walkers ``n``."""
        return int(self.actor_id.shape[0])

    def _set_edges(self, idx: np.ndarray, edge: np.ndarray, forward: np.ndarray) -> None:
        net = self.network
        self.edge[idx] = edge
        self.forward[idx] = forward
        self._len[idx] = net.edge_length_m[edge]
        self._row0[idx] = net.edge_offset[edge]
        self._inv[idx] = self._inv_step[edge]
        self._max_local[idx] = net.edge_count[edge] - 2
        self._sign[idx] = np.where(forward, 1.0, -1.0)
        self._base[idx] = np.where(forward, 0.0, net.edge_length_m[edge])
        self._crossing[idx] = self._is_crossing_edge[edge]

    def _random_destinations(self, nodes: np.ndarray) -> np.ndarray:
        """A random main-component node for each of ``nodes``, never the node itself."""
        main = self.network.main_nodes
        pos = self._main_pos[nodes]
        shift = self.rng.integers(1, main.size, size=nodes.shape[0])
        return main[np.where(pos >= 0, pos + shift, shift) % main.size]

    # ------------------------------------------------------------ spawn/remove
    def _append(self, actor_ids: np.ndarray, edge: np.ndarray, s_m: np.ndarray,
                destination: np.ndarray | None = None) -> None:
        actor_ids = np.asarray(actor_ids, dtype=np.int64).reshape(-1)
        k = actor_ids.shape[0]
        if edge.shape[0] != k:
            raise ValueError(f"got {k} actor ids for {edge.shape[0]} walkers")
        if np.unique(actor_ids).size != k or np.isin(actor_ids, self.actor_id).any():
            raise ValueError(f"walker actor ids must be new and unique, got {actor_ids.tolist()}")
        net, p, rng = self.network, self.params, self.rng
        length = net.edge_length_m[edge]
        if destination is None:
            forward = rng.random(k) < 0.5
            destination = self._random_destinations(net.edge_nodes[edge, 0])
        else:
            # head for whichever end of the edge is on the shorter way to the destination
            via_end = (length - s_m) + net.distance_m[net.edge_nodes[edge, 1], destination]
            via_start = s_m + net.distance_m[net.edge_nodes[edge, 0], destination]
            forward = via_end <= via_start
        new = {
            "actor_id": actor_ids, "edge": edge, "forward": forward,
            "progress_m": np.where(forward, s_m, length - s_m),
            "destination": destination,
            "speed_mps": rng.uniform(p.speed_min_mps, p.speed_max_mps, k),
            "offset_m": rng.uniform(-p.lateral_jitter_m, p.lateral_jitter_m, k),
            "careless": rng.random(k) < p.careless_share,
        }
        old = {name: getattr(self, name) for name in self._STATE}
        n = self.count
        self._resize(n + k)
        for name, values in old.items():
            getattr(self, name)[:n] = values
        for name, values in new.items():
            getattr(self, name)[n:] = values
        idx = np.arange(n, n + k)
        self._set_edges(idx, edge, forward)
        self._update_pose(idx, dt_s=None)

    def spawn_random(self, count: int, actor_ids: np.ndarray) -> None:
        """Add ``count`` walkers at random places on main-component sidewalks, with random destinations."""
        if count < 0 or len(actor_ids) != count:
            raise ValueError(f"spawn_random needs count >= 0 and one actor id per walker, got {count} "
                             f"walkers and {len(actor_ids)} ids")
        lengths = self.network.edge_length_m[self._spawn_edges]
        edge = self._spawn_edges[self.rng.choice(self._spawn_edges.size, size=count, p=lengths / lengths.sum())]
        s_m = self.rng.random(count) * self.network.edge_length_m[edge]
        self._append(np.asarray(actor_ids), edge, s_m)

    def spawn_at(self, xy, actor_id: int, destination: int | None = None) -> None:
        """Add one walker at the main-component sidewalk point nearest ``xy`` (x, y) [m].

        ``destination``: a node id to walk to (it sets off toward it); random if None.
        """
        point = np.asarray(xy, dtype=float).reshape(-1)[:2]
        if point.shape[0] != 2 or not np.all(np.isfinite(point)):
            raise ValueError(f"spawn_at needs a finite (x, y), got {xy!r}")
        goal = None if destination is None else self._check_nodes(np.array([destination]))
        _dist, i = self._spawn_tree.query(point)
        row = self._spawn_rows[i]
        edge = self._spawn_row_edge[i]
        s_m = float(np.clip(self.network.point_s_m[row], 0.0, self.network.edge_length_m[edge]))
        self._append(np.array([actor_id]), np.array([edge]), np.array([s_m]), goal)

    def _check_nodes(self, nodes: np.ndarray) -> np.ndarray:
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        bad = nodes[(nodes < 0) | (nodes >= self.network.num_nodes)]
        if bad.size == 0:
            bad = nodes[~self.network.node_in_main[nodes]]
        if bad.size:
            raise ValueError(f"destination node(s) {bad.tolist()} are not nodes of the network's main component "
                             f"(see WalkerNetwork.main_nodes)")
        return nodes

    def set_destination(self, actor_ids, nodes) -> None:
        """Send walkers to network nodes (they keep walking along their current edge first)."""
        ids = np.asarray(actor_ids, dtype=np.int64).reshape(-1)
        nodes = np.broadcast_to(self._check_nodes(nodes), ids.shape)
        self.destination[self._rows(ids)] = nodes

    def _rows(self, actor_ids: np.ndarray) -> np.ndarray:
        """Rows of the walkers with these actor ids (ValueError naming unknown ids)."""
        if self.count == 0:
            if actor_ids.size:
                raise ValueError(f"no walker with actor id(s) {actor_ids.tolist()}: there are no walkers")
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(self.actor_id, kind="stable")
        pos = np.minimum(np.searchsorted(self.actor_id, actor_ids, sorter=order), self.count - 1)
        rows = order[pos]
        missing = self.actor_id[rows] != actor_ids
        if missing.any():
            raise ValueError(f"no walker with actor id(s) {actor_ids[missing].tolist()}")
        return rows

    def remove(self, actor_ids) -> None:
        """Remove the walkers with these actor ids (ValueError naming any id that is not a walker)."""
        ids = np.asarray(actor_ids, dtype=np.int64).reshape(-1)
        self._rows(ids)
        keep = ~np.isin(self.actor_id, ids)
        for name in self._STATE:
            setattr(self, name, getattr(self, name)[keep])

    def apply_control(self, actor_id: int, direction_xy: tuple[float, float], speed_mps: float) -> None:
        """Walk ``actor_id`` straight along ``direction_xy`` at ``speed_mps`` (``carla.WalkerControl``).

        The walker leaves the pedestrian network and ignores lights and
        vehicles until :meth:`release`; speed 0 stands still.
        """
        row = int(self._rows(np.array([actor_id]))[0])
        direction = np.asarray(direction_xy, dtype=float)
        norm = float(np.hypot(*direction))
        if not (np.isfinite(direction).all() and math.isfinite(speed_mps)) or speed_mps < 0:
            raise ValueError(f"walker control needs a finite direction and speed >= 0, got {direction_xy}, "
                             f"{speed_mps}")
        self.controlled[row] = True
        self.control_velocity[row] = direction / norm * speed_mps if norm > 0 else 0.0

    def place(self, actor_id: int, xyz, yaw_rad: float, speed_mps: float) -> None:
        """Put a walker's box centre at ``xyz`` facing ``yaw_rad``, walking straight on at ``speed_mps``.

        CARLA's walker state (``ApplyWalkerState``, sent by the client's walker
        AI every tick): a teleport plus a walker control along the heading. Like
        :meth:`apply_control`, the walker leaves the pedestrian network.
        """
        point = np.asarray(xyz, dtype=float).reshape(-1)
        if point.shape[0] != 3 or not (np.isfinite(point).all() and math.isfinite(yaw_rad)
                                       and math.isfinite(speed_mps)) or speed_mps < 0:
            raise ValueError(f"walker state needs a finite (x, y, z), yaw and speed >= 0, got {xyz}, {yaw_rad}, "
                             f"{speed_mps}")
        row = int(self._rows(np.array([actor_id]))[0])
        heading = np.array([math.cos(yaw_rad), math.sin(yaw_rad)])
        self.controlled[row] = True
        self.control_velocity[row] = heading * speed_mps
        self.location_xyz[row] = point
        self.yaw_rad[row] = yaw_rad
        self.velocity_xyz[row] = (*(heading * speed_mps), 0.0)

    # ------------------------------------------------------------------ tick
    def step(self, dt_s: float, lane_light_state: LaneLightState = None,
             vehicle_xy: np.ndarray | None = None, vehicle_velocity: np.ndarray | None = None,
             vehicle_yaw: np.ndarray | None = None, vehicle_half_xy: np.ndarray | None = None) -> None:
        """Advance every walker by ``dt_s`` seconds.

        ``lane_light_state``: per-lane light states (see :data:`LaneLightState`).
        ``vehicle_xy`` (V, 2) and ``vehicle_velocity`` (V, 2+) [m/s]: vehicles
        that careful walkers watch at unsignalled crossings. With ``vehicle_yaw``
        (V,) and ``vehicle_half_xy`` (V, 2) too, walkers on the road never step
        into a vehicle's box: they wait until it has moved.
        """
        if self.count == 0:
            return
        if not dt_s > 0:
            raise ValueError(f"dt_s must be positive, got {dt_s}")
        if vehicle_xy is not None:
            if vehicle_velocity is None:
                raise ValueError("vehicle_xy needs vehicle_velocity (V, 2) with it")
            vehicle_xy = np.asarray(vehicle_xy, dtype=float)
            vehicle_velocity = np.asarray(vehicle_velocity, dtype=float)
            if vehicle_velocity.shape[0] != vehicle_xy.shape[0]:
                raise ValueError(f"got {vehicle_xy.shape[0]} vehicle positions "
                                 f"but {vehicle_velocity.shape[0]} velocities")
        if lane_light_state is not None and not callable(lane_light_state):
            lane_light_state = np.asarray(lane_light_state)
        context = (lane_light_state, vehicle_xy, vehicle_velocity)
        advance = self.speed_mps * dt_s
        self._since_look_s += dt_s
        if self.waiting.any():
            if self._since_look_s >= self.params.look_interval_s:
                self._since_look_s = 0.0
                idx = np.flatnonzero(self.waiting)
                self.waiting[idx] = ~self._may_cross(self.edge[idx], *context)
            advance = np.where(self.waiting, 0.0, advance)
        if vehicle_yaw is not None and vehicle_xy is not None and vehicle_xy.shape[0]:
            wanted = advance > 0
            advance = self._hold_before_vehicles(advance, vehicle_xy, vehicle_yaw, vehicle_half_xy)
            held = wanted & (advance == 0)
            self.held_s = np.where(held, self.held_s + dt_s, 0.0)
            self._turn_back(np.flatnonzero(self.held_s >= GIVE_UP_S))
        progress = self.progress_m + advance
        overflow = progress - self._len
        arrived = overflow >= 0.0
        if arrived.any():
            idx = np.flatnonzero(arrived)
            progress[idx] = self._arrive(idx, overflow[idx], context)
        self.progress_m = progress
        held = self.location_xyz.copy() if self.controlled.any() else None
        self._update_pose(None, dt_s)
        if held is not None:
            rows = np.flatnonzero(self.controlled)
            velocity = self.control_velocity[rows]
            self.location_xyz[rows] = held[rows]
            self.location_xyz[rows, :2] += velocity * dt_s
            self.velocity_xyz[rows] = 0.0
            self.velocity_xyz[rows, :2] = velocity
            moving = np.hypot(velocity[:, 0], velocity[:, 1]) > 0
            self.yaw_rad[rows[moving]] = np.arctan2(velocity[moving, 1], velocity[moving, 0])
            self.on_road[rows] = True

    def _turn_back(self, idx: np.ndarray) -> None:
        """Walkers held too long before a vehicle that does not move (a car waiting for them, a parked one)
        turn round on their edge and go back the way they came: nobody waits for the other for ever."""
        if idx.size == 0:
            return
        progress = self.progress_m[idx].copy()
        self._set_edges(idx, self.edge[idx], ~self.forward[idx])
        self.progress_m[idx] = self._len[idx] - progress
        self.offset_m[idx] = -self.offset_m[idx]  # the same side of the edge, seen the other way
        self.held_s[idx] = 0.0
        # go back to where it came from, then somewhere new (a fresh random goal on arrival)
        self.destination[idx] = self.network.edge_nodes[self.edge[idx], self.forward[idx].astype(np.int64)]

    def _hold_before_vehicles(self, advance: np.ndarray, vehicle_xy: np.ndarray, vehicle_yaw: np.ndarray,
                              vehicle_half_xy: np.ndarray) -> np.ndarray:
        """Zero the advance of walkers on the road whose next step would enter a vehicle (plus a margin)."""
        rows = np.flatnonzero(self._crossing & (advance > 0))
        if rows.size == 0:
            return advance
        heading = self.yaw_rad[rows]
        probe = self.location_xyz[rows, :2] + WALKER_PROBE_M * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        dx = probe[:, None, 0] - vehicle_xy[None, :, 0]
        dy = probe[:, None, 1] - vehicle_xy[None, :, 1]
        cos_v, sin_v = np.cos(vehicle_yaw), np.sin(vehicle_yaw)
        along = np.abs(dx * cos_v + dy * sin_v)
        across = np.abs(-dx * sin_v + dy * cos_v)
        margin = self.params.extent_m[0] + WALKER_CLEARANCE_M
        inside = (along < vehicle_half_xy[:, 0] + margin) & (across < vehicle_half_xy[:, 1] + margin)
        blocked = rows[inside.any(axis=1)]
        if blocked.size:
            advance = advance.copy()
            advance[blocked] = 0.0
        return advance

    def _update_pose(self, idx: np.ndarray | None, dt_s: float | None) -> None:
        """Recompute location, heading and velocity (of walkers ``idx``, or all) from the edge state."""
        if idx is None:
            xyz, yaw = self._pose(self.progress_m, self._len, self._sign, self._base, self._inv, self._max_local,
                                  self._row0, self.offset_m)
            self.velocity_xyz = (xyz - self.location_xyz) * (1.0 / dt_s)
            self.location_xyz = xyz
            self.yaw_rad = yaw
            self.on_road = self._crossing & ~self.waiting
            return
        xyz, yaw = self._pose(self.progress_m[idx], self._len[idx], self._sign[idx], self._base[idx],
                              self._inv[idx], self._max_local[idx], self._row0[idx], self.offset_m[idx])
        self.velocity_xyz[idx] = 0.0 if dt_s is None else (xyz - self.location_xyz[idx]) * (1.0 / dt_s)
        self.location_xyz[idx] = xyz
        self.yaw_rad[idx] = yaw
        self.on_road[idx] = self._crossing[idx] & ~self.waiting[idx]

    def _pose(self, progress: np.ndarray, length: np.ndarray, sign: np.ndarray, base: np.ndarray, inv: np.ndarray,
              max_local: np.ndarray, row0: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Box centres (k, 3) and headings (k,) of walkers from their per-walker edge data."""
        scaled = (base + sign * progress) * inv
        local = np.minimum(scaled.astype(np.int64), max_local)
        row = row0 + local
        # one gather and one lerp for position and tangent together: rows (x, y, z + half height, tx, ty)
        first = self._table[row]
        pose = first + (self._table[row + 1] - first) * (scaled - local)[:, None]
        # right of the walking direction is (-ty, tx) * sign; the offset fades in near the edge ends
        lateral = np.minimum(np.minimum(progress, length - progress) * (1.0 / LATERAL_RAMP_M), 1.0)
        lateral *= offset * sign
        pose[:, :2] += pose[:, 4:2:-1] * (lateral[:, None] * _RIGHT)
        return pose[:, :3], np.arctan2(pose[:, 4] * sign, pose[:, 3] * sign)

    def _arrive(self, idx: np.ndarray, overflow: np.ndarray, context) -> np.ndarray:
        """Walkers ``idx`` reached the end of their edge: pick the next edge; returns their new progress."""
        net = self.network
        edge = self.edge[idx]
        node = net.edge_nodes[edge, self.forward[idx].astype(np.int64)]
        at_goal = node == self.destination[idx]
        if at_goal.any():
            self.destination[idx[at_goal]] = self._random_destinations(node[at_goal])
        goal = self.destination[idx]
        hop = net.next_hop[node, goal]
        new_edge = np.where(hop >= 0, net.edge_between[node, np.maximum(hop, 0)], -1)
        careless = self.careless[idx]
        if careless.any():
            jay = net.node_jaywalk[node]
            take = careless & (jay >= 0) & (jay != edge)
            if take.any():
                jay_safe = np.maximum(jay, 0)
                other = net.edge_nodes[jay_safe, 0] + net.edge_nodes[jay_safe, 1] - node
                shorter = net.distance_m[other, goal] < net.distance_m[node, goal]
                take &= shorter & (self.rng.random(idx.shape[0]) < self.params.jaywalk_probability)
                new_edge = np.where(take, jay, new_edge)
        new_edge = np.where(new_edge >= 0, new_edge, edge)  # nowhere to go: turn back
        forward = net.edge_nodes[new_edge, 0] == node
        self._set_edges(idx, new_edge, forward)
        wait = self._is_crosswalk_edge[new_edge] & ~careless
        if wait.any():
            sub = np.flatnonzero(wait)
            wait[sub] = ~self._may_cross(new_edge[sub], *context)
        self.waiting[idx] = wait
        return np.where(wait, 0.0, np.minimum(overflow, net.edge_length_m[new_edge]))

    def _may_cross(self, edges: np.ndarray, lane_light_state: LaneLightState,
                   vehicle_xy: np.ndarray | None, vehicle_velocity: np.ndarray | None) -> np.ndarray:
        """Whether careful walkers may step onto the crossings ``edges`` now.

        Signalled crossings (a working light on any lane ending there): only
        while all those lights are red. Unsignalled ones: while no vehicle near
        the crossing's middle is moving toward it.
        """
        lanes = self._signal_lanes[edges]
        if lane_light_state is None:
            level = np.zeros(edges.shape[0], dtype=np.int8)
        else:
            states = np.asarray(lane_light_state(lanes)) if callable(lane_light_state) else lane_light_state[lanes]
            # 0: no light, 1: red, 2: yellow or green; the padding lanes count as no light
            level = (_LIGHT_LEVEL[states + 1] * self._signal_valid[edges]).max(axis=1)
        if vehicle_xy is None or len(vehicle_xy) == 0 or level.all():
            return level <= 1
        mid = self._edge_mid_xy[edges]
        dx = mid[:, :1] - vehicle_xy[:, 0]
        dy = mid[:, 1:] - vehicle_xy[:, 1]
        dist_sq = dx * dx + dy * dy
        # speed toward the middle > v_min  <=>  closing > v_min * dist, closing = offset . velocity
        closing = dx * vehicle_velocity[:, 0] + dy * vehicle_velocity[:, 1]
        p = self.params
        blocked = ((dist_sq < p.clear_radius_m ** 2)
                   & (closing * np.abs(closing) > p.approach_speed_mps ** 2 * dist_sq)).any(axis=1)
        return np.where(level > 0, level == 1, ~blocked)
