"""Traffic lights and stop signs of a map: where they are and which lanes they control.

Lights come from the map's signals (OpenDRIVE type ``1000001``, read through
``carla.Map.get_all_landmarks_of_type``); a map without any gets one
generated light per road approach at every junction with three or more
approaches. Stop signs come from type ``206`` signals. Lights are grouped per
junction, as CARLA groups them, with a clockwise order in each group.

This is map data, shared by every backend; how lights cycle over time is the
simulator's business (``sim.embedded.traffic.lights``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.maps.lanes import LaneGraph, _key

TRAFFIC_LIGHT_TYPE = "1000001"
STOP_SIGN_TYPE = "206"


@dataclass(frozen=True)
class SignalLayout:
    """Where lights and stop signs are and which lanes they control.

    Per light (``L``): ``light_id``, ``junction_id``, ``location_xyz`` (L, 3),
    ``group_order`` (position in its junction's cycle). Per stop sign (``S``):
    ``stop_id``, ``stop_location_xyz``. Per lane: ``lane_light`` and
    ``lane_stop`` (index of the light / stop sign at the end of that lane, -1
    for none). ``generated``: the lights were made up, the map had none.
    """

    light_id: np.ndarray
    junction_id: np.ndarray
    location_xyz: np.ndarray
    group_order: np.ndarray
    lane_light: np.ndarray
    stop_id: np.ndarray
    stop_location_xyz: np.ndarray
    lane_stop: np.ndarray
    generated: bool

    @property
    def num_lights(self) -> int:
        """Number of lights ``L``."""
        return int(self.light_id.shape[0])


def _incoming_lanes(lanes: LaneGraph, lane: int) -> list[int]:
    """The lane(s) ending at the junction this signal faces (the stop line is at their end)."""
    if lanes.is_junction[lane]:
        return [p for p in lanes.predecessors[lane] if not lanes.is_junction[p]]
    current = lane
    for _ in range(4):
        succ = lanes.successors[current, : lanes.num_successors[current]]
        if succ.size == 0:
            return []
        if lanes.is_junction[succ].any():
            return [current]
        current = int(succ[0])
    return []


def _signal_lanes(carla_map, lanes: LaneGraph, landmark) -> list[int]:
    result: list[int] = []
    for low, high in landmark.get_lane_validities():
        for lane_id in range(int(low), int(high) + 1):
            if lane_id == 0:
                continue
            waypoint = carla_map.get_waypoint_xodr(int(landmark.road_id), lane_id, float(landmark.s))
            if waypoint is None or _key(waypoint) not in lanes.index:
                continue
            for incoming in _incoming_lanes(lanes, lanes.index[_key(waypoint)]):
                if incoming not in result:
                    result.append(incoming)
    return result


def _numeric_id(text: str, fallback: int) -> int:
    try:
        return int(text)
    except ValueError:
        return fallback


def _junction_after(lanes: LaneGraph, lane: int) -> int:
    succ = lanes.successors[lane, : lanes.num_successors[lane]]
    junctions = lanes.junction_id[succ]
    junctions = junctions[junctions >= 0]
    return int(junctions[0]) if junctions.size else -1


def _lane_end(lanes: LaneGraph, lane: int) -> np.ndarray:
    return lanes.lane_points(lane)[-1]


def build_signal_layout(carla_map, lanes: LaneGraph, generate_missing: bool = True) -> SignalLayout:
    """Read lights and stop signs from the map and tie each to the lanes it controls."""
    lane_light = np.full(lanes.num_lanes, -1, dtype=np.int64)
    lane_stop = np.full(lanes.num_lanes, -1, dtype=np.int64)
    light_ids: list[int] = []
    light_junctions: list[int] = []
    light_xyz: list[np.ndarray] = []
    by_landmark_id: dict[str, int] = {}

    for landmark in carla_map.get_all_landmarks_of_type(TRAFFIC_LIGHT_TYPE):
        controlled = [k for k in _signal_lanes(carla_map, lanes, landmark) if lane_light[k] < 0]
        if not controlled:
            continue
        index = by_landmark_id.get(landmark.id)
        if index is None:
            index = len(light_ids)
            by_landmark_id[landmark.id] = index
            light_ids.append(_numeric_id(landmark.id, 100000 + index))
            light_junctions.append(_junction_after(lanes, controlled[0]))
            loc = landmark.transform.location
            light_xyz.append(np.array([loc.x, loc.y, loc.z]))
        lane_light[controlled] = index

    generated = False
    if not light_ids and generate_missing:
        generated = True
        approaches: dict[tuple[int, int], list[int]] = {}
        for lane in range(lanes.num_lanes):
            junction = -1 if lanes.is_junction[lane] else _junction_after(lanes, lane)
            if junction >= 0:
                approaches.setdefault((junction, lanes.keys[lane][0]), []).append(lane)
        per_junction: dict[int, int] = {}
        for junction, _road in approaches:
            per_junction[junction] = per_junction.get(junction, 0) + 1
        for (junction, road), controlled in sorted(approaches.items()):
            if per_junction[junction] < 3:
                continue
            index = len(light_ids)
            light_ids.append(1_000_000 + index)
            light_junctions.append(junction)
            light_xyz.append(np.mean([_lane_end(lanes, k) for k in controlled], axis=0))
            lane_light[controlled] = index

    stop_ids: list[int] = []
    stop_xyz: list[np.ndarray] = []
    for landmark in carla_map.get_all_landmarks_of_type(STOP_SIGN_TYPE):
        controlled = [k for k in _signal_lanes(carla_map, lanes, landmark) if lane_stop[k] < 0]
        if not controlled:
            continue
        lane_stop[controlled] = len(stop_ids)
        stop_ids.append(_numeric_id(landmark.id, 200000 + len(stop_ids)))
        loc = landmark.transform.location
        stop_xyz.append(np.array([loc.x, loc.y, loc.z]))

    junctions = np.array(light_junctions, dtype=np.int64)
    xyz = np.array(light_xyz, dtype=float).reshape(-1, 3)
    return SignalLayout(
        light_id=np.array(light_ids, dtype=np.int64), junction_id=junctions, location_xyz=xyz,
        group_order=_cycle_order(junctions, xyz), lane_light=lane_light,
        stop_id=np.array(stop_ids, dtype=np.int64), stop_location_xyz=np.array(stop_xyz, dtype=float).reshape(-1, 3),
        lane_stop=lane_stop, generated=generated,
    )


def _cycle_order(junctions: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Position of each light in its junction's cycle: clockwise around the junction centre."""
    order = np.zeros(junctions.shape[0], dtype=np.int64)
    for junction in np.unique(junctions):
        members = np.flatnonzero(junctions == junction)
        centre = xyz[members, :2].mean(axis=0)
        angles = np.arctan2(xyz[members, 1] - centre[1], xyz[members, 0] - centre[0])
        order[members[np.argsort(angles, kind="stable")]] = np.arange(members.size)
    return order
