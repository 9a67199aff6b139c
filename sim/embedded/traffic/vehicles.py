"""NPC vehicles: lane following on the lane graph with IDM car following, vectorised.

Every vehicle driven by the traffic logic (CARLA's "autopilot") is a point
``(lane, s)`` on the lane graph that moves along lane centre lines; its speed
comes from the Intelligent Driver Model (Treiber et al., 2000) against the
nearest of: the vehicle ahead along its planned lanes, anything in a short
corridor straight ahead (pedestrians on the road, vehicles cutting in), and
a virtual wall at a stop line (red or yellow light, stop sign, a junction it
may not enter yet, a dead end).

Junctions: a vehicle *commits* to the junction lane it is about to enter
when it is close, first in its queue, the light lets it, there is room
behind the junction, and no conflicting junction lane (one that crosses or
merges with it) is occupied or committed to. Simultaneous requests for
conflicting lanes go to the lowest row. A committed vehicle no longer stops
for the light. This is what makes NPCs yield inside junctions and keeps
them from colliding with each other.

Turns at junctions are random among successors that keep the vehicle in
the lane graph's main strongly connected component (so it never meets a dead
end), unless the vehicle was given a route.

All per-tick work is numpy over all vehicles; the only Python loops run
over vehicles changing lanes in that tick that follow a given route.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from sim.api import TrafficLightState
from sim.maps.lanes import LEVEL_SEPARATION_M, SAMPLE_STEP_M, LaneGraph, wrap_angle
from sim.maps.signals import SignalLayout

ROUTE_LOOKAHEAD = 4
_LANE_KEY_SCALE = 1.0e5
_CROSSABLE_MARKINGS = np.array([0, 2, 7, 8])  # NONE, Broken, BrokenBroken, BottsDots (MARKING_NAMES)
_CROSSING_CLEARANCE_M = 1.0  # stop this far before an occupied crossing's line
_RED = int(TrafficLightState.RED)  # plain ints: enum attribute access is slow on the hot path
_YELLOW = int(TrafficLightState.YELLOW)  # sort key lane * scale + s; lanes are far shorter than this
"""Lanes each vehicle plans ahead (current lane included)."""


@dataclass(frozen=True)
class Obstacles:
    """What NPC drivers must not hit besides each other.

    In lane coordinates (``k`` rows; lane -1 when off the lane graph): ``lane``,
    ``s_m``, ``speed_mps``, ``half_length_m`` (free vehicles projected on their
    lane; pedestrians on the road, once per lane they stand on). For the
    straight-ahead corridor check (``m`` free vehicles): ``xy`` (m, 2),
    ``yaw_rad``, ``velocity_xy`` (m, 2), ``half_xy`` (m, 2), ``z_m`` (m,) the
    ground height they are at (None: the NPCs' own; vehicles on a bridge above
    or a road below are not in the way). Occupied
    pedestrian crossings (``c`` rows): ``crossing_lane``, ``crossing_s_m``, the
    lanes they cut and where; drivers stop before them unless their front is
    already on the crossing (then the pedestrian waits for them to clear it).
    """

    lane: np.ndarray
    s_m: np.ndarray
    speed_mps: np.ndarray
    half_length_m: np.ndarray
    xy: np.ndarray
    yaw_rad: np.ndarray
    velocity_xy: np.ndarray
    half_xy: np.ndarray
    crossing_lane: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    crossing_s_m: np.ndarray = field(default_factory=lambda: np.zeros(0))
    z_m: np.ndarray | None = None

    @classmethod
    def none(cls) -> "Obstacles":
        """No obstacles."""
        empty = np.zeros(0)
        return cls(np.zeros(0, np.int64), empty, empty, empty, np.zeros((0, 2)), empty, np.zeros((0, 2)),
                   np.zeros((0, 2)))


@dataclass(frozen=True)
class DriverParams:
    """IDM parameters shared by NPC drivers, plus the spread of their desired speeds.

    ``speed_difference``: desired speed = limit x (1 - difference), as the
    Traffic Manager's ``global_percentage_speed_difference`` (default 30 %),
    spread by +-``speed_spread`` per vehicle.
    """

    max_accel_mps2: float = 2.0
    comfort_decel_mps2: float = 3.0
    max_decel_mps2: float = 8.0
    time_headway_s: float = 1.2
    min_gap_m: float = 2.0
    speed_difference: float = 0.3
    speed_spread: float = 0.1
    corridor_margin_m: float = 0.4
    lane_changes: bool = False
    politeness: float = 0.3
    change_threshold_mps2: float = 0.3
    safe_decel_mps2: float = 3.0
    change_duration_s: float = 3.0


_FIELDS_F = ("s_m", "speed_mps", "stuck_s", "lateral_offset_m", "accel_mps2", "half_length_m", "half_width_m", "wheelbase_m",
             "max_steer_rad", "speed_factor", "yaw_rad", "yaw_rate_rad_s")
_FIELDS_I = ("actor_id", "lane", "previous_lane", "committed_lane", "changed_from_lane")


class TrafficVehicles:
    """Structure of arrays of NPC vehicles and the traffic logic that drives them.

    Arrays (``n`` rows): ``actor_id``, ``lane``, ``s_m``, ``speed_mps``,
    ``accel_mps2``, ``route`` (n, ROUTE_LOOKAHEAD) lane indices (-1 = dead end),
    ``location_xyz`` (n, 3), ``yaw_rad``, ``velocity_xyz`` (n, 3),
    ``acceleration_xyz`` (n, 3), ``yaw_rate_rad_s``, and the control that
    would produce the motion (``steer``, ``throttle``, ``brake``).
    """

    def __init__(self, lanes: LaneGraph, signals: SignalLayout, rng: np.random.Generator,
                 params: DriverParams | None = None) -> None:
        self.lanes = lanes
        self.signals = signals
        self.rng = rng
        self.params = params or DriverParams()
        # Lane arrays with one sentinel row at the end, so that lane -1 (dead end) indexes it.
        self._length = np.append(lanes.length_m, 0.0)
        self._lane_width = np.append(lanes.width_m[lanes.offset], 3.5)
        self._is_junction = np.append(lanes.is_junction, False)
        self._junction_id = np.append(lanes.junction_id, -1)
        self._lane_light = np.append(signals.lane_light, -1)
        self._lane_stop = np.append(signals.lane_stop, -1)
        target = np.minimum(lanes.speed_limit_mps, lanes.comfort_speed_mps)
        self._target_speed = np.append(target, 0.0)
        self._limit = np.append(lanes.speed_limit_mps, 0.0)
        self._comfort = np.append(lanes.comfort_speed_mps, 0.0)
        self._conflicts = np.vstack([lanes.junction_conflicts, np.zeros((1, lanes.num_lanes), bool)])
        # Junction lanes leaving from the same lane as each junction lane (padded, sentinel-filled).
        siblings = [sorted({int(b) for a in lanes.predecessors[k] for b in lanes.successors[a] if b >= 0} - {k})
                    if lanes.is_junction[k] else [] for k in range(lanes.num_lanes)]
        self._sibling_index = np.full((lanes.num_lanes + 1, max(1, max(map(len, siblings), default=0))),
                                      lanes.num_lanes, dtype=np.int64)
        for lane, sibs in enumerate(siblings):
            self._sibling_index[lane, : len(sibs)] = sibs
        self._fork_clear_s = np.append(_fork_clear_distances(lanes, siblings), -np.inf)
        # The same as padded index lists; padding points at the sentinel row (never occupied).
        width = max(1, int(self._conflicts.sum(axis=1).max()))
        self._conflict_index = np.full((lanes.num_lanes + 1, width), lanes.num_lanes, dtype=np.int64)
        for lane, row in enumerate(self._conflicts):
            others = np.flatnonzero(row)
            self._conflict_index[lane, : others.size] = others
        succ = lanes.successors
        # Prefer the lane-following core (a side loop reached only by lane changes would trap traffic that never
        # changes lanes), then the main component, then any successor.
        keep = (succ >= 0) & lanes.in_follow_core[np.maximum(succ, 0)]
        keep |= (succ >= 0) & ~keep.any(axis=1, keepdims=True) & lanes.in_main_component[np.maximum(succ, 0)]
        fallback = (succ >= 0) & ~keep.any(axis=1, keepdims=True)
        good = keep | fallback
        order = np.argsort(~good, axis=1, kind="stable")
        self._succ = np.vstack([np.where(np.take_along_axis(good, order, 1), np.take_along_axis(succ, order, 1), -1),
                                np.full((1, succ.shape[1]), -1)])
        self._num_succ = np.append(good.sum(axis=1), 0)
        self.routes: dict[int, deque[int]] = {}
        self._plan: dict[str, np.ndarray] = {}
        self._plan_dirty = True
        for name in _FIELDS_F:
            setattr(self, name, np.zeros(0))
        for name in _FIELDS_I:
            setattr(self, name, np.zeros(0, dtype=np.int64))
        self.route = np.zeros((0, ROUTE_LOOKAHEAD), dtype=np.int64)
        self.stopped_at_sign = np.zeros(0, dtype=bool)
        self.location_xyz = np.zeros((0, 3))
        self.velocity_xyz = np.zeros((0, 3))
        self.acceleration_xyz = np.zeros((0, 3))

    @property
    def n(self) -> int:
        """Number of NPC vehicles."""
        return int(self.actor_id.shape[0])

    # ------------------------------------------------------------------ actors
    def add(self, actor_id: int, lane: int, s_m: float, speed_mps: float, half_length_m: float,
            half_width_m: float, wheelbase_m: float, max_steer_rad: float) -> int:
        """Add a vehicle at ``(lane, s_m)``; returns its row."""
        self._plan_dirty = True
        if not 0 <= lane < self.lanes.num_lanes:
            raise ValueError(f"lane {lane} is not a lane of this map (0..{self.lanes.num_lanes - 1})")
        route = np.full(ROUTE_LOOKAHEAD, -1, dtype=np.int64)
        route[0] = lane
        for k in range(1, ROUTE_LOOKAHEAD):
            route[k] = self._choose_next(route[k - 1:k])[0]
        spread = self.params.speed_spread
        factor = (1.0 - self.params.speed_difference) * (1.0 + self.rng.uniform(-spread, spread))
        values_f = dict(s_m=s_m, speed_mps=speed_mps, stuck_s=0.0, lateral_offset_m=0.0, accel_mps2=0.0, half_length_m=half_length_m,
                        half_width_m=half_width_m, wheelbase_m=wheelbase_m, max_steer_rad=max_steer_rad,
                        speed_factor=factor, yaw_rad=0.0, yaw_rate_rad_s=0.0)
        for name, value in values_f.items():
            setattr(self, name, np.append(getattr(self, name), float(value)))
        for name, value in dict(actor_id=actor_id, lane=lane, previous_lane=-1, committed_lane=-1, changed_from_lane=-1).items():
            setattr(self, name, np.append(getattr(self, name), int(value)))
        self.route = np.vstack([self.route, route])
        self.stopped_at_sign = np.append(self.stopped_at_sign, False)
        xyz, yaw = self._pose(np.array([self.n]), lane=np.array([lane]), s_m=np.array([s_m]),
                              half=np.array([half_length_m]), route=route[None, :], previous=np.array([-1]))
        self.location_xyz = np.vstack([self.location_xyz, xyz])
        self.yaw_rad[-1] = yaw[0]
        velocity = np.array([[np.cos(yaw[0]) * speed_mps, np.sin(yaw[0]) * speed_mps, 0.0]])
        self.velocity_xyz = np.vstack([self.velocity_xyz, velocity])
        self.acceleration_xyz = np.vstack([self.acceleration_xyz, np.zeros((1, 3))])
        return self.n - 1

    def remove(self, actor_ids: np.ndarray | list[int]) -> None:
        """Remove vehicles by actor id (unknown ids are ignored)."""
        self._plan_dirty = True
        keep = ~np.isin(self.actor_id, np.asarray(actor_ids, dtype=np.int64))
        for name in (*_FIELDS_F, *_FIELDS_I, "route", "stopped_at_sign", "location_xyz", "velocity_xyz",
                     "acceleration_xyz"):
            setattr(self, name, getattr(self, name)[keep])
        for actor in np.asarray(actor_ids).tolist():
            self.routes.pop(int(actor), None)

    def row_of(self, actor_id: int) -> int:
        """Row of an actor id; ``KeyError`` if it is not an NPC vehicle."""
        rows = np.flatnonzero(self.actor_id == actor_id)
        if rows.size == 0:
            raise KeyError(actor_id)
        return int(rows[0])

    def relocate(self, actor_id: int, lane: int, s_m: float) -> None:
        """Move a vehicle to ``(lane, s_m)`` at standstill, with a fresh random plan."""
        self._plan_dirty = True
        row = self.row_of(actor_id)
        self.lane[row] = lane
        self.previous_lane[row] = -1
        self.committed_lane[row] = -1
        self.s_m[row] = s_m
        self.speed_mps[row] = 0.0
        self.stuck_s[row] = 0.0
        self.route[row, 0] = lane
        for k in range(1, ROUTE_LOOKAHEAD):
            self.route[row, k] = self._choose_next(self.route[row, k - 1:k])[0]
        self.routes.pop(int(actor_id), None)
        xyz, yaw = self._pose(np.array([row]))
        self.location_xyz[row] = xyz[0]
        self.yaw_rad[row] = yaw[0]
        self.velocity_xyz[row] = 0.0

    def set_route(self, actor_id: int, lanes: list[int]) -> None:
        """Make a vehicle follow ``lanes`` (starting with or after its current lane), then turn at random."""
        self._plan_dirty = True
        row = self.row_of(actor_id)
        plan = [int(k) for k in lanes]
        if plan and plan[0] == self.lane[row]:
            plan = plan[1:]
        queue = deque(plan)
        for k in range(1, ROUTE_LOOKAHEAD):
            self.route[row, k] = queue.popleft() if queue else self._choose_next(self.route[row, k - 1:k])[0]
        self.routes[int(actor_id)] = queue

    def _choose_next(self, lanes: np.ndarray) -> np.ndarray:
        """Random successor of each lane (preferring the main component); -1 at dead ends."""
        count = self._num_succ[lanes]
        pick = (self.rng.random(lanes.shape[0]) * count).astype(np.int64)
        return np.where(count > 0, self._succ[lanes, np.minimum(pick, self._succ.shape[1] - 1)], -1)

    # ------------------------------------------------------------------ tick
    def step(self, dt_s: float, light_state: np.ndarray, obstacles: "Obstacles") -> None:
        """Advance every NPC vehicle by ``dt_s``.

        ``light_state`` (L_lights,) int8; ``obstacles``: everything else NPC
        drivers must not hit (free vehicles, pedestrians on the road).
        """
        n = self.n
        if n == 0:
            return
        p = self.params
        lanes = self.lanes
        route = self.route
        v = self.speed_mps
        s = self.s_m
        hl = self.half_length_m

        if self._plan_dirty:
            self._update_plan(None)
            self._plan_dirty = False
        plan = self._plan
        # Arc length from each vehicle to the start of each planned lane: (n, K).
        to_start = plan["cum_len"] - s[:, None]

        # Path leader: the nearest vehicle ahead on the planned lanes, found by binary search
        # in all vehicles sorted by (lane, s) instead of comparing every pair.
        extra_lane, extra_s, extra_v, extra_hl = obstacles.lane, obstacles.s_m, obstacles.speed_mps, obstacles.half_length_m
        changing = np.flatnonzero(self.changed_from_lane >= 0)
        if changing.size:  # still partly in the lane being left: followers there keep seeing it
            old_lane = self.changed_from_lane[changing]
            old_s = self._s_beside(changing, old_lane)
            extra_lane = np.concatenate([extra_lane, old_lane])
            extra_s = np.concatenate([extra_s, old_s])
            extra_v = np.concatenate([extra_v, v[changing]])
            extra_hl = np.concatenate([extra_hl, hl[changing]])
        if extra_lane.size:
            other_lane = np.concatenate([self.lane, extra_lane])
            other_s = np.concatenate([s, extra_s])
            other_v = np.concatenate([v, extra_v])
            other_hl = np.concatenate([hl, extra_hl])
        else:
            other_lane, other_s, other_v, other_hl = self.lane, s, v, hl
        key = other_lane * _LANE_KEY_SCALE + other_s
        order = np.argsort(key)
        sorted_key = key[order]
        query = route * _LANE_KEY_SCALE
        query[:, 0] += s  # on the current lane only vehicles further along count
        query[:, 1:] -= 1.0
        pos = np.searchsorted(sorted_key, query, side="right")
        found = order[np.minimum(pos, order.size - 1)]
        hit = (pos < order.size) & (other_lane[found] == route) & (route >= 0)
        dist = np.where(hit, to_start + other_s[found], np.inf)
        k_best = np.argmin(dist, axis=1)
        rows_n = np.arange(n)
        leader = found[rows_n, k_best]
        leader_dist = dist[rows_n, k_best]
        leader_gap = leader_dist - hl - other_hl[leader]
        leader_speed = other_v[leader]
        if changing.size:  # ... and a vehicle changing lanes keeps watching the lane it is leaving
            pos_old = np.searchsorted(sorted_key, old_lane * _LANE_KEY_SCALE + old_s + 1e-6, side="right")
            ahead_old = order[np.minimum(pos_old, order.size - 1)]
            seen = (pos_old < order.size) & (other_lane[ahead_old] == old_lane)
            gap_old = np.where(seen, other_s[ahead_old] - old_s - other_hl[ahead_old] - hl[changing], np.inf)
            closer = gap_old < leader_gap[changing]
            leader_gap[changing[closer]] = gap_old[closer]
            leader_speed[changing[closer]] = other_v[ahead_old[closer]]

        # Corridor straight ahead for free vehicles (the ego) that may be off their lane or
        # cutting in; NPCs among themselves are kept apart by lanes and junction gating.
        corridor_gap = corridor_speed = None
        if obstacles.xy.shape[0]:
            cos_y, sin_y = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
            dx = obstacles.xy[None, :, 0] - self.location_xyz[:, 0:1]
            dy = obstacles.xy[None, :, 1] - self.location_xyz[:, 1:2]
            ahead = dx * cos_y[:, None] + dy * sin_y[:, None]
            side = -dx * sin_y[:, None] + dy * cos_y[:, None]
            # Vehicles count unless they face us (oncoming traffic passes beside, it is not a leader).
            facing_ok = np.cos(obstacles.yaw_rad[None, :] - self.yaw_rad[:, None]) > -0.5
            reach = (3.0 + 0.8 * v + hl)[:, None]
            half = obstacles.half_xy
            corridor = (facing_ok & (ahead > 0) & (ahead < reach)
                        & (np.abs(side) < self.half_width_m[:, None] + half[None, :, 1] + p.corridor_margin_m))
            if obstacles.z_m is not None:
                corridor &= np.abs(obstacles.z_m[None, :] - self.location_xyz[:, 2:3]) <= LEVEL_SEPARATION_M
            corridor_dist = np.where(corridor, ahead - half[None, :, 0], np.inf)
            c_idx = np.argmin(corridor_dist, axis=1)
            corridor_gap = corridor_dist[rows_n, c_idx] - hl
            o_vel = obstacles.velocity_xy[c_idx]
            corridor_speed = np.maximum(0.0, o_vel[:, 0] * cos_y + o_vel[:, 1] * sin_y)

        # Occupied pedestrian crossings on the planned lanes.
        crossing_gap = None
        if obstacles.crossing_lane.size:
            dist_c = to_start[:, :, None] + obstacles.crossing_s_m[None, None, :]
            on_path = (route[:, :, None] == obstacles.crossing_lane[None, None, :]) & (dist_c - hl[:, None, None] > 1.0)
            crossing_gap = np.where(on_path, dist_c, np.inf).min(axis=(1, 2)) - hl - _CROSSING_CLEARANCE_M

        # Stop lines. Entering a junction (or the next one straight from a junction) is gated.
        entry0 = plan["entry0"]
        d_line = to_start[:, 1]
        light_idx = plan["light0"]
        state = light_state[light_idx] if light_state.size else np.full(n, -1, np.int8)  # light -1: sentinel
        stoppable = d_line > v * v / (2.0 * p.comfort_decel_mps2) + 0.5
        light_stop = (light_idx >= 0) & ((state == _RED) | ((state == _YELLOW) & stoppable))
        sign = plan["sign0"]
        self.stopped_at_sign |= sign & (v < 0.3) & (d_line < hl + p.min_gap_m + 2.0)
        sign_stop = sign & ~self.stopped_at_sign

        committed = self.committed_lane >= 0
        target = route[:, 1]
        # Junction lanes in use: committed to, driven on, or still under a vehicle's rear end.
        occupied = np.zeros(lanes.num_lanes + 1, dtype=bool)
        occupied[self.committed_lane[committed]] = True
        in_junction = other_lane[self._is_junction[other_lane]]
        occupied[in_junction] = True
        rear_inside = (s < hl + 0.5) & self._is_junction[self.previous_lane]
        occupied[self.previous_lane[rear_inside]] = True
        occupied[-1] = False
        # Lanes diverging from one lane are not conflicts, but a vehicle still near the fork blocks
        # its siblings: the next vehicle waits until it has pulled away.
        near_fork = np.zeros(lanes.num_lanes + 1, dtype=bool)
        near_fork[self.lane[s - hl < self._fork_clear_s[self.lane]]] = True
        near_fork[-1] = False
        blocked = (occupied[self._conflict_index[target]].any(axis=1) | occupied[target]
                   | near_fork[self._sibling_index[target]].any(axis=1))
        room_after = leader_dist - to_start[:, 2] > hl + other_hl[leader] + p.min_gap_m + 2.0 * hl
        # A lane after the junction too short to hold us, ending at another junction: only
        # go if that next junction is clear as well (never stop with the rear in the box).
        short = plan["short"]
        if short.any():
            rows_short = np.flatnonzero(short)
            beyond = route[rows_short, 3]
            busy = occupied[self._conflict_index[beyond]].any(axis=1) | occupied[beyond]
            room_after[rows_short[busy]] = False
        first_in_queue = leader_dist > d_line
        commit_dist = v * v / (2.0 * p.comfort_decel_mps2) + hl + p.min_gap_m + 4.0
        want = (entry0 & ~committed & (d_line < commit_dist) & first_in_queue & ~light_stop & ~sign_stop
                & ~blocked & room_after)
        cand = np.flatnonzero(want)
        if cand.size > 1:
            pair = self._conflicts[target[cand]][:, target[cand]] | (target[cand][:, None] == target[cand][None, :])
            lose = np.triu(pair, k=1).any(axis=0)
            cand = cand[~lose]
        self.committed_lane[cand] = target[cand]
        committed = self.committed_lane >= 0
        must_stop0 = entry0 & ~committed
        # A lane two ahead entering a junction behind a red light (short lanes before junctions).
        light1 = plan["light1"]
        must_stop1 = plan["entry1"] & (light1 >= 0) & (light_state[light1] == _RED if light_state.size else False)
        stop_dist = np.minimum(np.minimum(np.where(must_stop0, d_line, np.inf),
                                          np.where(must_stop1, to_start[:, 2], np.inf)), plan["dead_end"] - s)
        stop_gap = stop_dist - hl - 0.5

        # Desired speed: limit x driver factor, slowed ahead of curves.
        ahead_target = plan["ahead_speed"]
        need = (v * v)[:, None] - ahead_target ** 2 > 2.0 * p.comfort_decel_mps2 * np.maximum(to_start[:, 1:], 0.0)
        v0 = np.maximum(np.minimum(plan["speed0"], np.where(need, ahead_target, np.inf).min(axis=1)), 0.5)

        # IDM against each obstacle; the most restrictive wins.
        inv_root_ab = 1.0 / (2.0 * np.sqrt(p.max_accel_mps2 * p.comfort_decel_mps2))
        v_headway = v * p.time_headway_s

        def interaction(gap: np.ndarray, closing: np.ndarray) -> np.ndarray:
            desired = p.min_gap_m + np.maximum(0.0, v_headway + v * closing * inv_root_ab)
            return (desired / np.maximum(gap, 0.05)) ** 2  # no obstacle: gap inf -> 0

        push = np.maximum(interaction(leader_gap, v - leader_speed), interaction(stop_gap, v))
        min_gap = np.minimum(leader_gap, stop_gap)
        if corridor_gap is not None:
            push = np.maximum(push, interaction(corridor_gap, v - corridor_speed))
            min_gap = np.minimum(min_gap, corridor_gap)
        if crossing_gap is not None:
            push = np.maximum(push, interaction(crossing_gap, v))
            min_gap = np.minimum(min_gap, crossing_gap)
        accel = p.max_accel_mps2 * (1.0 - (v / v0) ** 4 - push)
        accel = np.minimum(np.maximum(accel, -p.max_decel_mps2), p.max_accel_mps2)
        new_v = np.maximum(v + accel * dt_s, 0.0)
        new_v[min_gap < 0.05] = 0.0
        new_s = s + 0.5 * (v + new_v) * dt_s
        self.accel_mps2 = (new_v - v) / dt_s
        self.speed_mps = new_v
        # Standing still counts towards being stuck, at a red light too: a red phase is far shorter than the
        # gridlock timeout, but a driver gated at a junction entry (a box that never clears) waits through
        # greens and reds alike, and only the whole standing time shows that it will never get through.
        self.stuck_s = np.where(new_v < 0.1, self.stuck_s + dt_s, 0.0)

        # Advance along lanes; hop to the next planned lane(s) at lane ends.
        over = new_s >= self._length[self.lane]
        while over.any():
            rows = np.flatnonzero(over)
            nxt = route[rows, 1]
            dead = nxt < 0
            if dead.any():
                new_s[rows[dead]] = self._length[self.lane[rows[dead]]]
                self.speed_mps[rows[dead]] = 0.0
                rows = rows[~dead]
                if rows.size == 0:
                    break
            new_s[rows] -= self._length[self.lane[rows]]
            route[rows, :-1] = route[rows, 1:]
            route[rows, -1] = self._choose_next(route[rows, -2])
            if self.routes:
                self._apply_routes(rows)
            self.previous_lane[rows] = self.lane[rows]
            self.lane[rows] = route[rows, 0]
            self.stopped_at_sign[rows] = False
            self._update_plan(rows)
            over = np.zeros(n, dtype=bool)
            over[rows] = new_s[rows] >= self._length[self.lane[rows]]
        self.s_m = new_s
        # Once in the lane it committed to, occupancy holds the reservation.
        self.committed_lane[self.lane == self.committed_lane] = -1

        if p.lane_changes:
            self._lane_changes(dt_s, sorted_key, order, other_lane, other_s, other_v, other_hl, v0)

        # Poses, velocities and the equivalent control.
        xyz, yaw = self._pose(None)
        if changing.size or (self.lateral_offset_m != 0.0).any():
            shifting = np.flatnonzero(self.lateral_offset_m != 0.0)
            offset = self.lateral_offset_m[shifting]
            xyz[shifting, 0] -= np.sin(yaw[shifting]) * offset  # right of heading is (-sin, cos)
            xyz[shifting, 1] += np.cos(yaw[shifting]) * offset
            step = dt_s * self._lane_width[self.lane[shifting]] / p.change_duration_s
            remaining = np.sign(offset) * np.maximum(np.abs(offset) - step, 0.0)
            self.lateral_offset_m[shifting] = remaining
            # The old lane is left once the whole body is out of it.
            clear = np.abs(remaining) + self.half_width_m[shifting] < 0.5 * self._lane_width[self.lane[shifting]]
            self.changed_from_lane[shifting[clear]] = -1
        yaw_rate = wrap_angle(yaw - self.yaw_rad) / dt_s
        velocity = np.zeros((n, 3))
        velocity[:, 0] = np.cos(yaw) * new_v
        velocity[:, 1] = np.sin(yaw) * new_v
        self.acceleration_xyz = (velocity - self.velocity_xyz) / dt_s
        self.location_xyz, self.yaw_rad, self.velocity_xyz, self.yaw_rate_rad_s = xyz, yaw, velocity, yaw_rate

    @property
    def control(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steer, throttle, brake) that would produce each NPC's last motion (kinematic bicycle)."""
        p = self.params
        curvature = np.where(self.speed_mps > 0.1, self.yaw_rate_rad_s / np.maximum(self.speed_mps, 0.1), 0.0)
        steer = np.clip(np.arctan(self.wheelbase_m * curvature) / self.max_steer_rad, -1.0, 1.0)
        throttle = np.clip(self.accel_mps2 / p.max_accel_mps2, 0.0, 1.0)
        brake = np.clip(-self.accel_mps2 / p.max_decel_mps2, 0.0, 1.0)
        return steer, throttle, brake

    @cached_property
    def _beside_s(self) -> tuple[np.ndarray, np.ndarray]:
        """For every lane sample: arc length of the nearest sample on the left / right neighbour lane."""
        from scipy.spatial import cKDTree

        lanes = self.lanes
        maps = []
        for neighbour in (lanes.left_lane, lanes.right_lane):
            beside = np.zeros(lanes.points_xyz.shape[0])
            for lane in np.flatnonzero(neighbour >= 0):
                other = int(neighbour[lane])
                rows = slice(int(lanes.offset[lane]), int(lanes.offset[lane] + lanes.count[lane]))
                _, nearest = cKDTree(lanes.lane_points(other)[:, :2]).query(lanes.points_xyz[rows, :2])
                beside[rows] = lanes.s_m[lanes.offset[other] + nearest]
            maps.append(beside)
        return maps[0], maps[1]

    def _s_beside(self, rows: np.ndarray, neighbour: np.ndarray) -> np.ndarray:
        """Arc length on the adjacent lane ``neighbour`` level with vehicles ``rows``."""
        sample, frac = self.lanes.sample_index(self.lane[rows], self.s_m[rows])
        left, right = self._beside_s
        on_left = self.lanes.left_lane[self.lane[rows]] == neighbour
        return np.where(on_left, left[sample], right[sample]) + frac * SAMPLE_STEP_M

    def _idm(self, v: np.ndarray, v0: np.ndarray, gap: np.ndarray, leader_v: np.ndarray) -> np.ndarray:
        """IDM acceleration for given speeds, desired speeds, gaps (inf: free road) and leader speeds."""
        p = self.params
        inv_root_ab = 1.0 / (2.0 * np.sqrt(p.max_accel_mps2 * p.comfort_decel_mps2))
        desired = p.min_gap_m + np.maximum(0.0, v * p.time_headway_s + v * (v - leader_v) * inv_root_ab)
        return p.max_accel_mps2 * (1.0 - (v / v0) ** 4 - (desired / np.maximum(gap, 0.05)) ** 2)

    def _lane_changes(self, dt_s: float, sorted_key: np.ndarray, order: np.ndarray, other_lane: np.ndarray,
                      other_s: np.ndarray, other_v: np.ndarray, other_hl: np.ndarray, v0: np.ndarray) -> None:
        """MOBIL (Kesting et al., 2007): change to a neighbouring lane when it pays and is safe.

        Each vehicle considers it about once a second (staggered by row), only
        outside junctions, away from lane ends, when not committed to a junction,
        and across a broken marking. The new follower must not have to brake
        harder than ``safe_decel_mps2``; the gain (own acceleration change plus
        ``politeness`` x the new follower's) must exceed ``change_threshold_mps2``.
        """
        p = self.params
        lanes = self.lanes
        self._change_clock = getattr(self, "_change_clock", 0) + 1
        n = self.n
        due = (np.arange(n) + self._change_clock) % max(1, int(round(1.0 / dt_s))) == 0
        s, v, hl = self.s_m, self.speed_mps, self.half_length_m
        length = self._length[self.lane]
        rows = np.flatnonzero(due & ~self._is_junction[self.lane] & (self.committed_lane < 0)
                              & (self.changed_from_lane < 0) & (s > 10.0) & (s < length - 25.0))
        if self.routes and rows.size:  # vehicles on a given route keep to its lanes
            rows = rows[~np.isin(self.actor_id[rows], np.fromiter(self.routes, dtype=np.int64))]
        if rows.size == 0:
            return
        sample, frac = lanes.sample_index(self.lane[rows], s[rows])
        best_gain = np.full(rows.size, p.change_threshold_mps2)
        best_lane = np.full(rows.size, -1)
        best_s = np.zeros(rows.size)
        for side, (neighbour, marking) in enumerate(((lanes.left_lane, lanes.left_marking),
                                                     (lanes.right_lane, lanes.right_marking))):
            target = neighbour[self.lane[rows]]
            allowed = (target >= 0) & np.isin(marking[sample], _CROSSABLE_MARKINGS)
            target = np.where(allowed, target, self.lane[rows])
            # Where the vehicle is along the neighbour lane (nearest-sample map, +- half a sample).
            s_t = np.where(allowed, self._beside_s[side][sample] + frac * SAMPLE_STEP_M, s[rows])
            key = target * _LANE_KEY_SCALE + s_t
            ahead_pos = np.searchsorted(sorted_key, key, side="right")
            behind_pos = np.searchsorted(sorted_key, key, side="left") - 1
            lead = order[np.minimum(ahead_pos, order.size - 1)]
            has_lead = (ahead_pos < order.size) & (other_lane[lead] == target)
            follow = order[np.maximum(behind_pos, 0)]
            has_follow = (behind_pos >= 0) & (other_lane[follow] == target)
            lead_gap = np.where(has_lead, other_s[lead] - s_t - other_hl[lead] - hl[rows], np.inf)
            follow_gap = np.where(has_follow, s_t - other_s[follow] - other_hl[follow] - hl[rows], np.inf)
            own_now = self.accel_mps2[rows]
            own_new = self._idm(v[rows], v0[rows], lead_gap, np.where(has_lead, other_v[lead], 0.0))
            f_v = np.where(has_follow, other_v[follow], 0.0)
            f_v0 = np.maximum(f_v, 5.0)
            follower_new = np.where(has_follow, self._idm(f_v, f_v0, follow_gap, v[rows]), 0.0)
            follower_now = np.where(has_follow, self._idm(f_v, f_v0, follow_gap + 2.0 * hl[rows] + p.min_gap_m,
                                                          v[rows]), 0.0)
            safe = (follower_new > -p.safe_decel_mps2) & (lead_gap > p.min_gap_m) & (follow_gap > p.min_gap_m)
            gain = own_new - own_now + p.politeness * (follower_new - follower_now)
            better = allowed & safe & (gain > best_gain)
            best_gain = np.where(better, gain, best_gain)
            best_lane = np.where(better, target, best_lane)
            best_s = np.where(better, s_t, best_s)
        go = np.flatnonzero(best_lane >= 0)
        if go.size == 0:
            return
        movers = rows[go]
        new_lane = best_lane[go]
        old_lane = self.lane[movers]
        # Lateral offset: where the vehicle is now, seen from the new lane's centre (+ = right).
        old_xy = self.location_xyz[movers, :2]
        new_xyz, new_yaw = lanes.interpolate(new_lane, best_s[go])
        delta = old_xy - new_xyz[:, :2]
        self.lateral_offset_m[movers] = -delta[:, 0] * np.sin(new_yaw) + delta[:, 1] * np.cos(new_yaw)
        self.changed_from_lane[movers] = old_lane
        self.lane[movers] = new_lane
        self.s_m[movers] = best_s[go]
        self.previous_lane[movers] = -1
        self.route[movers, 0] = new_lane
        for k in range(1, ROUTE_LOOKAHEAD):
            self.route[movers, k] = self._choose_next(self.route[movers, k - 1])
        self._update_plan(movers)
        self.lane_changes_done = getattr(self, "lane_changes_done", 0) + movers.size

    def _update_plan(self, rows: np.ndarray | None) -> None:
        """Cache what depends only on each vehicle's planned lanes (recomputed when they change)."""
        route = self.route if rows is None else self.route[rows]
        k = route.shape[1]
        lengths = self._length[route]
        cum_len = np.zeros(route.shape)
        np.cumsum(lengths[:, :-1], axis=1, out=cum_len[:, 1:])
        junction_of = self._junction_id
        hl = self.half_length_m if rows is None else self.half_length_m[rows]
        factor = self.speed_factor if rows is None else self.speed_factor[rows]
        values = dict(
            cum_len=cum_len,
            entry0=self._is_junction[route[:, 1]] & (junction_of[route[:, 1]] != junction_of[route[:, 0]]),
            light0=self._lane_light[route[:, 0]],
            sign0=self._lane_stop[route[:, 0]] >= 0,
            entry1=self._is_junction[route[:, 2]] & ~self._is_junction[route[:, 1]],
            light1=self._lane_light[route[:, 1]],
            dead_end=np.where(route == -1, cum_len, np.inf).min(axis=1),
            speed0=np.minimum(self._limit[route[:, 0]] * factor, self._comfort[route[:, 0]]),
            ahead_speed=np.minimum(self._limit[route[:, 1:]] * factor[:, None], self._comfort[route[:, 1:]]),
            short=self._is_junction[route[:, 3 % k]] & (self._length[route[:, 2 % k]] < 2.0 * hl + 1.0),
        )
        if rows is None:
            self._plan = values
        else:
            for name, value in values.items():
                self._plan[name][rows] = value

    def _pose(self, rows: np.ndarray | None, lane=None, s_m=None, half=None, route=None, previous=None):
        """Chord pose of vehicles (``rows``; None = all) whose front and rear may lie on the next / previous lane."""
        pick = (lambda a: a) if rows is None else (lambda a: a[rows])
        lane = pick(self.lane) if lane is None else lane
        s_m = pick(self.s_m) if s_m is None else s_m
        half = pick(self.half_length_m) if half is None else half
        next_lane = (pick(self.route) if route is None else route)[:, 1]
        previous = pick(self.previous_lane) if previous is None else previous
        front_s = s_m + half
        length = self._length[lane]
        ahead = (front_s > length) & (next_lane >= 0)
        front_lane = np.where(ahead, next_lane, lane)
        front_s = np.where(ahead, front_s - length, front_s)
        rear_s = s_m - half
        behind = (rear_s < 0) & (previous >= 0)
        rear_lane = np.where(behind, previous, lane)
        rear_s = np.where(behind, rear_s + self._length[previous], rear_s)
        return self.lanes.chord_pose(front_lane, front_s, rear_lane, rear_s)

    def _apply_routes(self, rows: np.ndarray) -> None:
        for row in rows.tolist():
            queue = self.routes.get(int(self.actor_id[row]))
            if queue:
                # The planned lanes are consumed in order; the newest lookahead slot takes the next one.
                self.route[row, -1] = queue.popleft()

    def lane_light_states(self, light_state: np.ndarray) -> np.ndarray:
        """Light state at the end of every NPC's current lane (-1: none)."""
        light = self._lane_light[self.lane]
        if light_state.size == 0:
            return np.full(self.n, -1, dtype=np.int8)
        return np.where(light >= 0, light_state[np.maximum(light, 0)], -1).astype(np.int8)


FORK_CLEARANCE_M = 3.0
"""Lanes leaving one lane are side by side until their centre lines are this far apart."""


def _fork_clear_distances(lanes: LaneGraph, siblings: list[list[int]]) -> np.ndarray:
    """Per lane: arc length after which its centre line is clear of every sibling lane's (-inf: none)."""
    from scipy.spatial import cKDTree

    clear = np.full(lanes.num_lanes, -np.inf)
    for lane, sibs in enumerate(siblings):
        if not sibs:
            continue
        points = lanes.lane_points(lane)[:, :2]
        near = np.zeros(points.shape[0], dtype=bool)
        for other in sibs:
            distance, _ = cKDTree(lanes.lane_points(other)[:, :2]).query(points)
            near |= distance < FORK_CLEARANCE_M
        last = np.flatnonzero(near)
        clear[lane] = lanes.s_m[lanes.offset[lane] + last[-1]] if last.size else 0.0
    return clear
