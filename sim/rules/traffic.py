"""Red-light, stop-sign and off-road rules for vehicles driven by a policy (not the simulator's autopilot).

Both backends call these after every tick, so they raise the same events on
the same drive (CARLA's server does not report red-light or stop-sign runs;
the Leaderboard computes them in the client, as this does):

- red light: the vehicle moves from the lane ending at a junction onto one of
  that lane's junction successors while the lane's light is red;
- stop sign: it enters the junction from a stop-sign lane without having
  stood still (< ``STOPPED_MPS``) within ``STOP_ZONE_M`` of the stop line;
- off road: its centre leaves (or comes back to) the driving area: driving
  lanes, junctions and crosswalks;
- static contact: a corner of its box is on ground outside the road network
  (buildings, terrain): the kerb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.api import Event, OffRoadEvent, RedLightEvent, StopSignEvent, TrafficLightState
from sim.maps.geometry import AreaClass
from sim.maps.lanes import LaneGraph
from sim.maps.signals import SignalLayout

STOPPED_MPS = 0.1
"""Slower than this counts as standing still at a stop sign."""
STOP_ZONE_M = 8.0
"""A stop counts within this distance of the stop line (the end of the lane)."""
ON_ROAD = (AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.CROSSWALK)
LANE_MATCH_M = 3.0
"""A vehicle farther than this from every lane centre is on no lane."""


def off_road(area_class: np.ndarray) -> np.ndarray:
    """Per point: whether its area class (``sim.maps.geometry.AreaClass`` codes) is off the driving area."""
    area_class = np.asarray(area_class)
    return (area_class != AreaClass.DRIVING) & (area_class != AreaClass.JUNCTION) & (area_class != AreaClass.CROSSWALK)


def on_static(area_class: np.ndarray) -> np.ndarray:
    """Per point: whether its area class is ground outside the road network (buildings, terrain: the static layout)."""
    return np.asarray(area_class) == AreaClass.OFFROAD


def touches_static(corner_class: np.ndarray) -> np.ndarray:
    """Per box, from its corners' area classes (K, 4): whether a corner is outside the road network (a kerb)."""
    return on_static(corner_class).any(axis=1)


def off_road_events(frame: int, actor_ids: np.ndarray, xy: np.ndarray, now_off: np.ndarray,
                    was_off: np.ndarray) -> list[Event]:
    """An :class:`OffRoadEvent` for every vehicle whose off-road state changed this tick."""
    return [OffRoadEvent(frame, int(actor_ids[k]), bool(now_off[k]), (float(xy[k, 0]), float(xy[k, 1]), 0.0))
            for k in np.flatnonzero(np.asarray(now_off) != np.asarray(was_off)).tolist()]


@dataclass
class LaneRuleState:
    """What the junction rules remember of one vehicle between ticks: its lane (-1: none), arc length, stop."""

    lane: int = -1
    s_m: float = 0.0
    stopped: bool = False


def junction_events(frame: int, actor_id: int, state: LaneRuleState, lane_now: int, s_now_m: float,
                    speed_mps: float, where: tuple[float, float, float], lanes: LaneGraph, signals: SignalLayout,
                    light_state: np.ndarray) -> list[Event]:
    """Red-light and stop-sign events of one vehicle this tick; ``state`` is updated in place.

    ``lane_now``/``s_now_m``: the vehicle's lane (-1: none) and arc length now;
    ``light_state``: every light's state (``signals``' order).
    """
    events: list[Event] = []
    before = state.lane
    if before >= 0 and signals.lane_stop[before] >= 0 and speed_mps < STOPPED_MPS \
            and lanes.length_m[before] - state.s_m < STOP_ZONE_M:
        state.stopped = True
    if before >= 0 and lane_now >= 0 and lane_now != before:
        entered = bool(lanes.is_junction[lane_now]) and not lanes.is_junction[before] \
            and lane_now in lanes.successors[before]
        light = int(signals.lane_light[before])
        if entered and light >= 0 and light_state[light] == TrafficLightState.RED:
            events.append(RedLightEvent(frame, actor_id, int(signals.light_id[light]), where))
        stop = int(signals.lane_stop[before])
        if entered and stop >= 0 and not state.stopped:
            events.append(StopSignEvent(frame, actor_id, int(signals.stop_id[stop]), where))
        state.stopped = False
    state.lane, state.s_m = int(lane_now), float(s_now_m)
    return events


def project_to_lanes(lanes: LaneGraph, xy: np.ndarray, yaw: np.ndarray, z: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Lane (-1: farther than ``LANE_MATCH_M`` from any) and arc length [m] of vehicles at ``xy`` heading ``yaw``.

    With ground heights ``z`` only lanes of the level a vehicle is on count
    (on a bridge the bridge's lanes, under it the road below).
    """
    lane, s_m, dist = lanes.project(xy, yaw, z_m=z)
    return np.where(dist < LANE_MATCH_M, lane, -1), s_m
