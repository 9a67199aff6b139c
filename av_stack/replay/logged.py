"""What a replay rebuilds from a run log: the map (from the attached OpenDRIVE text), each route, the missions,
and the stage messages of the JSON topics.

Nothing here reads the original files of the run: the map comes from the
log's ``map.xodr`` attachment (validated in a child process like any
untrusted map), the route from its ``/episode`` record (re-planned on that
map through one waypoint per lane run, then checked point by point against
the logged route).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.logs import topics as T
from av_stack.logs.reader import LogError, LogReader, decode_bev
from av_stack.messages import (BevSpec, Detections, LightObservation, Mission, PerceptionOutput, Plan, PoseEstimate,
                               VehicleGeometry)
from sim.api import Pose, TrafficLightState, VehicleControl
from sim.maps.lanes import LaneGraph, build_lane_graph
from sim.maps.loader import MapSource, load_carla_map
from sim.maps.signals import SignalLayout, build_signal_layout
from sim.scenarios.routes import RoadOption, Route, RouteError, plan_route

ROUTE_TOLERANCE_M = 0.05
"""A re-planned route must lie within this of the logged route's points."""


class ReplayError(ValueError):
    """A log that cannot be replayed (no map, no route, a route that does not fit the map, a bad stage name);
    the message names the log and the problem."""


def open_log(path: str | Path | LogReader) -> LogReader:
    """A :class:`LogReader` on ``path``; :class:`LogError` (one line naming the file) if it is missing, not an
    MCAP file or not an avsim log."""
    return path if isinstance(path, LogReader) else LogReader(path)


# ---------------------------------------------------------------------------------------------- the map
@dataclass(frozen=True)
class LogMap:
    """The map of a log, rebuilt from its attached OpenDRIVE text: the source, lane graph and signals."""

    source: MapSource
    lanes: LaneGraph
    signals: SignalLayout


@functools.lru_cache(maxsize=2)
def _build_map(name: str, digest: str, text: str) -> LogMap:
    source = MapSource(name, text, None, trusted=False)  # a log is untrusted input: validate in a child
    carla_map = load_carla_map(source)
    lanes = build_lane_graph(carla_map, text)
    return LogMap(source, lanes, build_signal_layout(carla_map, lanes, True))


def log_map(log: LogReader) -> LogMap:
    """The log's map (cached per map text); :class:`ReplayError` if the log has none attached."""
    text = log.map_xodr
    if not text:
        raise ReplayError(f"{log.path} has no OpenDRIVE map attached ({T.MAP_ATTACHMENT}): it cannot be replayed")
    return _build_map(log.map_name or "logged_map", hashlib.sha256(text.encode()).hexdigest(), text)


# ---------------------------------------------------------------------------------------------- routes
def lane_run_waypoints(points_xy: np.ndarray, lane: np.ndarray) -> np.ndarray:
    """Waypoints that pin a dense route to its lanes: its first point, the middle point of every run of points
    on one lane, and its last point."""
    starts = np.flatnonzero(np.diff(lane, prepend=lane[0] - 1) != 0)
    ends = np.append(starts[1:], lane.shape[0])
    middles = (starts + ends - 1) // 2
    rows = np.unique(np.concatenate([[0], middles, [lane.shape[0] - 1]]))
    return points_xy[rows]


def logged_route(lanes: LaneGraph, episode: dict[str, Any], where: str = "log") -> Route:
    """The :class:`Route` of an ``/episode`` record, re-planned on ``lanes`` through the route's own waypoints
    when the record has them (``route.waypoints_xy``: then it is the logged route exactly), else through
    :func:`lane_run_waypoints` (within millimetres: the ends snap to the lanes a little differently);
    :class:`ReplayError` if it cannot be planned or differs from the logged points by more than
    :data:`ROUTE_TOLERANCE_M`."""
    route_id = str(episode.get("route_id", "route"))
    record = episode.get("route") or {}
    points = np.asarray(record.get("points_xy") or [], dtype=np.float64).reshape(-1, 2)
    lane = np.asarray(record.get("lane") or [], dtype=np.int64)
    if points.shape[0] < 2 or lane.shape[0] != points.shape[0]:
        raise ReplayError(f"{where}: route {route_id!r} has no points in its {T.EPISODE} record")
    logged_waypoints = record.get("waypoints_xy")
    waypoints = (np.asarray(logged_waypoints, dtype=np.float64).reshape(-1, 2) if logged_waypoints
                 else lane_run_waypoints(points, lane))
    try:
        route = plan_route(lanes, waypoints, route_id)
    except RouteError as exc:
        raise ReplayError(f"{where}: route {route_id!r} does not fit the logged map: {exc}") from None
    if route.points_xy.shape != points.shape or \
            float(np.abs(route.points_xy - points).max()) > ROUTE_TOLERANCE_M:
        raise ReplayError(f"{where}: route {route_id!r} re-planned on the logged map differs from the logged "
                          f"route ({route.points_xy.shape[0]} points, {route.length_m:.1f} m vs "
                          f"{points.shape[0]} points, {float(record.get('length_m') or 0.0):.1f} m)")
    return route


def ego_extent(world: dict[str, Any], ego_id: int) -> tuple[float, float, float]:
    """The ego's half extents from a logged ``/ground_truth/world`` message."""
    ids = list(world["actor_id"])
    if ego_id not in ids:
        raise ReplayError(f"the logged world of frame {world.get('frame')} has no ego (actor {ego_id})")
    return tuple(float(v) for v in world["extent_m"][ids.index(ego_id)])


def mission_of(log: LogReader, the_map: LogMap, episode: dict[str, Any], world: dict[str, Any] | None) -> Mission:
    """The :class:`Mission` of a logged route (its first world state gives the ego's box)."""
    route = logged_route(the_map.lanes, episode, str(log.path))
    ego_id = int(episode.get("ego_id", -1))
    extent = ego_extent(world, ego_id) if world is not None else (2.45, 1.06, 0.76)
    blueprint = str(log.run.get("ego_blueprint", "vehicle.lincoln.mkz_2020"))
    return Mission(route, the_map.lanes, the_map.signals, VehicleGeometry(blueprint, extent), log.map_name)


# ---------------------------------------------------------------------------------------------- episodes
@dataclass
class LoggedEpisode:
    """One route of a log: its ``/episode`` record and the world states, the first at the route's start and
    then one per env step (``/ground_truth/world``), with the env's step records (``/env/step``)."""

    episode: dict[str, Any]
    worlds: list[dict[str, Any]]
    steps: list[dict[str, Any]]

    @property
    def route_id(self) -> str:
        """The route's id."""
        return str(self.episode.get("route_id", "route"))

    @property
    def ego_id(self) -> int:
        """The ego's actor id in the log."""
        return int(self.episode.get("ego_id", -1))


def read_episodes(log: LogReader) -> tuple[list[LoggedEpisode], str | None]:
    """Every route of the log with its world states, and the reader's error text if the log is cut (then the
    routes hold what was read before the cut)."""
    episodes: list[LoggedEpisode] = []
    error = None
    try:
        for message in log.messages([T.EPISODE, T.GT_WORLD, T.ENV_STEP]):
            if message.topic == T.EPISODE:
                episodes.append(LoggedEpisode(message.value, [], []))
            elif episodes and message.topic == T.GT_WORLD:
                episodes[-1].worlds.append(message.value)
            elif episodes and message.topic == T.ENV_STEP:
                episodes[-1].steps.append(message.value)
    except LogError as exc:
        error = str(exc)
    return [e for e in episodes if e.worlds], error


# ---------------------------------------------------------------------------------------------- messages
def _array(values: Any, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    array = np.array([math.nan if v is None else v for v in np.ravel(np.array(values, dtype=object))]
                     if values is not None else [], dtype=dtype)
    return array.reshape(shape)


def detections_of(message: dict[str, Any]) -> Detections:
    """:class:`Detections` from their logged JSON."""
    n = len(message.get("kind") or [])
    return Detections(kind=_array(message["kind"], (n,), np.int8), center_m=_array(message["center_m"], (n, 3)),
                      extent_m=_array(message["extent_m"], (n, 3)), yaw_rad=_array(message["yaw_rad"], (n,)),
                      velocity_mps=_array(message["velocity_mps"], (n, 2)), score=_array(message["score"], (n,)),
                      track_id=_array(message["track_id"], (n,), np.int64))


def light_of(message: dict[str, Any]) -> LightObservation:
    """A :class:`LightObservation` from its logged JSON (``null`` distance: none ahead)."""
    state = message.get("state")
    distance = message.get("distance_m")
    return LightObservation(TrafficLightState[state] if state else None,
                            math.inf if distance is None else float(distance), float(message.get("score", 1.0)))


def perception_of(message: dict[str, Any], t_s: float, spec: BevSpec, bev_image=None) -> PerceptionOutput:
    """The logged ``/stack/perception`` (and, on recorded frames, ``/perception/bev``) as a
    :class:`PerceptionOutput`."""
    bev = decode_bev(bev_image, spec).astype(np.float32) / 255.0 if bev_image is not None else None
    return PerceptionOutput(int(message["frame"]), t_s, detections_of(message["detections"]),
                            light_of(message["light"]), bev, spec)


def pose_of(message: dict[str, Any]) -> PoseEstimate:
    """The logged ``/stack/localization`` as a :class:`PoseEstimate`."""
    return PoseEstimate(int(message["frame"]), float(message["timestamp_s"]), Pose(**message["pose"]),
                        _array(message["velocity_mps"], (3,)), _array(message["covariance"], (3, 3)),
                        bool(message.get("valid", True)))


def control_of(message: dict[str, Any] | None) -> VehicleControl | None:
    """A logged control (``null``: none)."""
    if message is None:
        return None
    keys = ("throttle", "steer", "brake", "hand_brake", "reverse")
    return VehicleControl(**{k: message[k] for k in keys if k in message})


def plan_of(message: dict[str, Any]) -> Plan:
    """The logged ``/stack/plan`` as a :class:`Plan`."""
    n = len(message.get("target_speed_mps") or [])
    return Plan(int(message["frame"]), float(message["timestamp_s"]), _array(message["trajectory_xy"], (n, 2)),
                _array(message["target_speed_mps"], (n,)), RoadOption[message["command"]],
                control_of(message.get("control")))


def stage_frames(log: LogReader) -> Iterator[tuple[str, Any]]:
    """The log in order as ``("episode", record)`` at each route's start and ``("frame", LoggedFrame)`` for
    every frame the stack saw (those with a rebuilt sensor frame)."""
    for frame in log.frames():
        if T.EPISODE in frame.messages:
            yield "episode", frame
        if frame.sensor_frame is not None:
            yield "frame", frame
