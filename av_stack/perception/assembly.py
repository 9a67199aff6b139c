"""The policy's BEV, assembled after localization: the map's layers rendered at the pose estimate, the dynamic
layers from perception.

A perception stage sees what is around the car; the map knows what no sensor
can (the route, which lanes a light controls, where stop lines are) and draws
the road and its markings more exactly than a network predicts them, once the
car knows where it is. :class:`BevAssembler` builds the BEV the planner gets:

- ``route``, ``stop_sign``: from the map (the mission's route and lane graph)
  at the localization estimate;
- ``light_red`` / ``light_yellow`` / ``light_green``: the stop line of the light
  that governs the ego on its route (the next one ahead), in the channel of the
  state perception reports for it (nothing when perception reports none);
- ``road``, ``lane_solid``, ``lane_broken``: from the map (``road_and_lanes:
  map``, the default) or as perception predicted them (``perception``);
- ``vehicles_t*``, ``pedestrians_t*``: perception's, unchanged.

It is a step of the :class:`~av_stack.stack.Stack` (stack config ``bev:
{assemble: true}``) and of ``avsim eval perception`` (which scores the
assembled BEV and the stage's own). Any map and route: everything comes from
the :class:`~av_stack.messages.Mission`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict

from av_stack.messages import BevSpec, Mission, PerceptionOutput, PoseEstimate
from av_stack.perception.classical import _BROKEN, _ROAD, _ROUTE, _SOLID, MapRaster
from sim.api import TrafficLightState
from sim.env.bev import stop_line_quads

__all__ = ["BevAssembler", "BevAssemblyConfig"]

_LIGHT_CHANNEL = {TrafficLightState.RED: "light_red", TrafficLightState.YELLOW: "light_yellow",
                  TrafficLightState.GREEN: "light_green"}
_SHIFT = 3  # cv2 fixed-point bits


class BevAssemblyConfig(BaseModel):
    """The stack config's ``bev`` section: ``assemble`` (False: the planner gets perception's BEV as it is) and
    where ``road_and_lanes`` come from (``map`` at the pose estimate, or ``perception``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assemble: bool = False
    road_and_lanes: Literal["map", "perception"] = "map"


class BevAssembler:
    """See the module docstring. ``reset`` with each mission, then call it on every tick's perception output
    and pose estimate."""

    def __init__(self, config: BevAssemblyConfig | None = None) -> None:
        self.config = config or BevAssemblyConfig(assemble=True)
        self._mission: Mission | None = None
        self._raster: MapRaster | None = None
        self._stop_quads = np.zeros((0, 4, 2))
        self._entries: list[tuple[int, int]] = []  # (route index of a junction entry, lane before it) with a light
        self._progress = 0

    def reset(self, mission: Mission) -> None:
        """Take the mission's map and route (the world raster is drawn at the first frame, at the BEV's scale)."""
        self._mission = mission
        self._raster = None
        self._progress = 0
        lanes, signals, route = mission.lanes, mission.signals, mission.route
        stop_lanes = np.flatnonzero(np.asarray(signals.lane_stop) >= 0)
        self._stop_quads = stop_line_quads(lanes, stop_lanes) if stop_lanes.size else np.zeros((0, 4, 2))
        self._entries = []
        for index in np.asarray(route.junction_entries).tolist():
            before = int(route.lane[max(index - 1, 0)])
            if int(signals.lane_light[before]) >= 0:
                self._entries.append((index, before))

    def __call__(self, perception: PerceptionOutput, pose: PoseEstimate) -> PerceptionOutput:
        """``perception`` with its BEV assembled at ``pose`` (unchanged without a mission or a BEV)."""
        if self._mission is None or perception.bev is None or perception.bev_spec is None:
            return perception
        spec = perception.bev_spec
        x, y, yaw = float(pose.pose.x_m), float(pose.pose.y_m), float(pose.pose.yaw_rad)
        if not all(math.isfinite(v) for v in (x, y, yaw)):
            return perception
        if self._raster is None or self._raster.ppm != spec.config.pixels_per_m:
            self._raster = MapRaster(self._mission.lanes, spec.config.pixels_per_m,
                                     np.asarray(self._mission.route.points_xy))
        channels = spec.channels
        bev = np.array(perception.bev, dtype=np.float32, copy=True)
        packed = self._raster.view(x, y, yaw, spec)
        layers = [("route", _ROUTE)]
        if self.config.road_and_lanes == "map":
            layers += [("road", _ROAD), ("lane_solid", _SOLID), ("lane_broken", _BROKEN)]
        for name, bit in layers:
            if name in channels:
                bev[channels.index(name)] = (packed & bit) != 0
        for name in ("light_red", "light_yellow", "light_green", "stop_sign"):
            if name in channels:
                bev[channels.index(name)] = 0.0
        if "stop_sign" in channels and len(self._stop_quads):
            self._fill(bev[channels.index("stop_sign")], self._stop_quads, x, y, yaw, spec)
        state = perception.light.state
        lane = self._governing_lane(x, y)
        if state in _LIGHT_CHANNEL and lane is not None and _LIGHT_CHANNEL[state] in channels:
            quads = stop_line_quads(self._mission.lanes, np.array([lane]))
            self._fill(bev[channels.index(_LIGHT_CHANNEL[state])], quads, x, y, yaw, spec)
        return replace(perception, bev=bev)

    def _governing_lane(self, x: float, y: float) -> int | None:
        """The lane whose stop line governs the ego: before the next light-controlled junction entry ahead of
        the ego's progress along the route (kept monotone, searched near the last progress)."""
        route = self._mission.route
        points = np.asarray(route.points_xy)
        lo, hi = max(0, self._progress - 20), min(len(points), self._progress + 400)
        if hi <= lo:
            return None
        window = points[lo:hi]
        nearest = lo + int(np.argmin(np.hypot(window[:, 0] - x, window[:, 1] - y)))
        if math.hypot(points[nearest, 0] - x, points[nearest, 1] - y) > 20.0:  # lost: search the whole route
            nearest = int(np.argmin(np.hypot(points[:, 0] - x, points[:, 1] - y)))
        self._progress = nearest
        for index, lane in self._entries:
            if index > nearest:
                return lane
        return None

    @staticmethod
    def _fill(layer: np.ndarray, quads: np.ndarray, x: float, y: float, yaw: float, spec: BevSpec) -> None:
        """Fill world quads (Q, 4, 2) into one BEV layer of an ego at (x, y, yaw)."""
        cos, sin = math.cos(yaw), math.sin(yaw)
        d = quads.reshape(-1, 2) - (x, y)
        ego = np.stack([d[:, 0] * cos + d[:, 1] * sin, -d[:, 0] * sin + d[:, 1] * cos], axis=1)
        pixels = spec.ego_to_pixel(ego).reshape(-1, 4, 2)
        size = spec.config.size_px
        mask = np.zeros((size, size), np.uint8)
        for quad in np.round(pixels * (1 << _SHIFT)).astype(np.int32):
            if np.all(quad < -(size << _SHIFT)) or np.all(quad > 2 * (size << _SHIFT)):
                continue
            cv2.fillConvexPoly(mask, quad, 1, cv2.LINE_8, _SHIFT)
        layer[mask > 0] = 1.0
