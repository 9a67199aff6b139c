"""Classical perception (``perception: {name: classical}``): LiDAR clustering, the map at a GNSS pose, colour
thresholds; no learning, no privileged data by default.

- **Detections** from the LiDAR: the points go into the ego frame through the
  sensor's mount; the ground is the lowest return within a few metres (a min
  filter over a 1 m height grid); points ``min_height_m`` to
  ``max_height_m`` above it are obstacles. Their occupancy on a fine grid,
  closed by one cell, is split into connected components
  (``cv2.connectedComponentsWithStats``); each component gets an oriented box
  (``cv2.minAreaRect``) and is a vehicle or a pedestrian by its footprint
  and height, or dropped (walls, poles, trees). The LiDAR sees only the faces
  turned to it, so a box shorter than a typical vehicle is grown away from
  the ego to that size (one visible face: it is the rear or front, and the
  car extends along the line of sight). Velocity comes from a nearest-centre
  tracker with the ego's motion (speedometer, gyroscope) taken out.
- **BEV**: ``vehicles_t0`` / ``pedestrians_t0`` are the boxes; ``road``,
  ``lane_solid``, ``lane_broken`` and ``route`` are the map (the Mission's
  lane graph, or ``map`` by name when the stage is reset without a mission)
  drawn at the pose. The pose comes from GNSS and compass
  (:func:`gnss_to_world`) unless ``pose_source: ground_truth``. History
  channels, stop lines and light channels are left zero.
- **Light**: the upper half of the image is searched for small lit red /
  yellow / green blobs (HSV thresholds; large blobs such as a red car are not
  lamps). With a map and a pose, a light must be ahead within
  ``light_range_m`` (else None) and its distance is reported; the window the
  light projects to (:func:`_light_window`) proved too coarse to restrict the
  search to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from av_stack.messages import (
    BevSpec,
    Detections,
    LightObservation,
    Mission,
    PerceptionOutput,
    SensorCalibration,
    SensorFrame,
)
from av_stack.perception.drawing import draw_boxes
from av_stack.perception.tracking import CentreTracker
from av_stack.perception.learned.geometry import mount_transform
from av_stack.registry import StageParams
from sim.api import ActorKind, TrafficLightState
from sim.maps.lanes import LaneGraph
from sim.maps.signals import SignalLayout

__all__ = ["ClassicalPerception", "LidarDetector", "MapRaster", "classify_light", "gnss_to_world"]

METRES_PER_DEGREE = 111274.963
"""Metres per degree of latitude and of longitude near a map's geo-reference origin, as CARLA 0.9.16's
``carla.Map.transform_to_geolocation`` has it for the shipped towns' and generated towns' ``+proj=tmerc
+lat_0=0 +lon_0=0`` (linear to about 1e-5 m over a town; latitude grows toward +y)."""

_VEHICLE_HALF = np.array([2.45, 1.06, 0.76])  # a typical car's half extents [m] (CARLA's default sedan)
_WALKER_HALF = np.array([0.25, 0.25, 0.9])
_ROAD, _ROUTE, _SOLID, _BROKEN = 1, 2, 4, 8
_SOLID_NAMES = {"Solid", "SolidSolid", "SolidBroken", "BrokenSolid"}
_BROKEN_NAMES = {"Broken", "BottsDots", "BrokenBroken"}
_MARKING_WIDTH_M = 0.3
_ROUTE_WIDTH_M = 2.0
_ROAD_MARGIN_M = 1.0  # a vehicle's centre farther than this off the road is not a vehicle (when a map is known)


def gnss_to_world(gnss: np.ndarray, compass_rad: float, origin_deg: tuple[float, float] = (0.0, 0.0)
                  ) -> tuple[float, float, float] | None:
    """World (x, y, yaw) from a GNSS fix (latitude, longitude, altitude) and the IMU compass, or None when
    either is missing. Inverse of CARLA's geolocation about ``origin_deg`` (lat_0, lon_0): x east with
    longitude, y with latitude; the compass is 0 facing -y, so yaw = compass - pi / 2."""
    lat, lon = float(gnss[0]), float(gnss[1])
    if not (math.isfinite(lat) and math.isfinite(lon) and math.isfinite(compass_rad)):
        return None
    x = (lon - origin_deg[1]) * METRES_PER_DEGREE
    y = (lat - origin_deg[0]) * METRES_PER_DEGREE
    yaw = math.remainder(compass_rad - math.pi / 2, 2 * math.pi)
    return x, y, yaw


# ---------------------------------------------------------------------------------------------- the map
class MapRaster:
    """The map's static layers (road, route, solid and broken markings) as bits of one world image, warped
    into the ego's BEV at a pose (as :class:`sim.env.bev.BevRenderer` does, from the lane graph alone)."""

    def __init__(self, lanes: LaneGraph, pixels_per_m: float, route_xy: np.ndarray | None = None) -> None:
        self.ppm = pixels_per_m
        xy = lanes.points_xyz[:, :2]
        margin = float(lanes.width_m.max(initial=4.0)) + 2.0
        self.origin = xy.min(axis=0) - margin
        width, height = (int(v) for v in np.ceil((xy.max(axis=0) + margin - self.origin) * pixels_per_m))
        self.world = np.zeros((height, width), np.uint8)
        self._draw_lanes(lanes)
        if route_xy is not None and len(route_xy) >= 2:
            pixels = self._pixels(np.asarray(route_xy, dtype=float)[:, :2])
            layer = np.zeros_like(self.world)  # drawn apart and OR-ed in: polylines would overwrite the road bit
            cv2.polylines(layer, [np.round(pixels * 8).astype(np.int32)], False, _ROUTE,
                          max(1, round(_ROUTE_WIDTH_M * pixels_per_m)), cv2.LINE_8, 3)
            self.world |= layer
        grow = 2 * max(1, round(_ROAD_MARGIN_M * pixels_per_m)) + 1
        self.near_road = cv2.dilate((self.world & _ROAD).astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0

    def on_road(self, world_xy: np.ndarray) -> np.ndarray:
        """(N,) bool: world points on the road or within ``_ROAD_MARGIN_M`` of it (off the raster: False)."""
        pixels = np.round(self._pixels(np.asarray(world_xy, dtype=float).reshape(-1, 2))).astype(np.int64)
        height, width = self.near_road.shape
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        result = np.zeros(len(pixels), bool)
        result[inside] = self.near_road[pixels[inside, 1], pixels[inside, 0]]
        return result

    def _pixels(self, xy: np.ndarray) -> np.ndarray:
        return (xy - self.origin) * self.ppm - 0.5

    def _draw_lanes(self, lanes: LaneGraph) -> None:
        from sim.maps.lanes import _MARKING_NAMES  # the index the lane graph's marking codes refer to

        solid = np.array([name in _SOLID_NAMES for name in _MARKING_NAMES])
        broken = np.array([name in _BROKEN_NAMES for name in _MARKING_NAMES])
        quads, lines = [], {_SOLID: [], _BROKEN: []}
        for lane in range(lanes.num_lanes):
            start, count = int(lanes.offset[lane]), int(lanes.count[lane])
            if count < 2:
                continue
            rows = slice(start, start + count)
            centre, yaw, half = lanes.points_xyz[rows, :2], lanes.yaw_rad[rows], lanes.width_m[rows] / 2
            right = np.stack([-np.sin(yaw), np.cos(yaw)], axis=1)  # CARLA: y is to the right of x
            left_edge = self._pixels(centre - right * half[:, None])
            right_edge = self._pixels(centre + right * half[:, None])
            quads.append(np.stack([left_edge[:-1], left_edge[1:], right_edge[1:], right_edge[:-1]], axis=1))
            for edge, codes in ((left_edge, lanes.left_marking[rows]), (right_edge, lanes.right_marking[rows])):
                for bit, table in ((_SOLID, solid), (_BROKEN, broken)):
                    on = table[codes[:-1]]
                    if on.any():
                        lines[bit].append(np.stack([edge[:-1][on], edge[1:][on]], axis=1))
        # One convex fill per quad: a single multi-contour fillPoly leaves the overlaps of neighbouring lanes
        # (junctions) empty (even-odd rule).
        for quad in np.round(np.concatenate(quads) * 8).astype(np.int32) if quads else ():
            cv2.fillConvexPoly(self.world, quad, _ROAD, cv2.LINE_8, 3)
        thickness = max(2, round(_MARKING_WIDTH_M * self.ppm))
        for bit, parts in lines.items():
            if parts:
                layer = np.zeros_like(self.world)
                cv2.polylines(layer, list(np.round(np.concatenate(parts) * 8).astype(np.int32)), False, 1,
                              thickness, cv2.LINE_8, 3)
                self.world |= layer * np.uint8(bit)

    def view(self, x: float, y: float, yaw: float, spec: BevSpec) -> np.ndarray:
        """The packed layers (H, W) uint8 in the BEV of an ego at world (x, y, yaw)."""
        c = spec.config
        size, ppm = c.size_px, self.ppm
        cx, cy = float(size // 2), float(size - 1 - c.ego_from_bottom_px)
        cos, sin = math.cos(yaw), math.sin(yaw)
        u0 = (x - self.origin[0]) * ppm - 0.5 + cos * cy + sin * cx
        v0 = (y - self.origin[1]) * ppm - 0.5 + sin * cy - cos * cx
        inverse = np.array([[-sin, -cos, u0], [cos, -sin, v0]])
        return cv2.warpAffine(self.world, inverse, (size, size), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ---------------------------------------------------------------------------------------------- LiDAR
@dataclass(frozen=True)
class Boxes:
    """Boxes found in one cloud (ego frame): kind, centre (N, 3), half extents (N, 3), yaw, score."""

    kind: np.ndarray
    center: np.ndarray
    extent: np.ndarray
    yaw: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls) -> Boxes:
        """No boxes."""
        return cls(np.zeros(0, np.int8), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0))


class LidarDetector:
    """Ground removal, connected-component clustering and box fitting on a LiDAR cloud (module docstring)."""

    def __init__(self, range_m: float = 50.0, cell_m: float = 0.25, ground_cell_m: float = 1.0,
                 ground_window_m: float = 5.0, min_height_m: float = 0.3, max_height_m: float = 3.0,
                 min_points: int = 4) -> None:
        self.range_m, self.cell_m, self.ground_cell_m = range_m, cell_m, ground_cell_m
        self.min_height_m, self.max_height_m, self.min_points = min_height_m, max_height_m, min_points
        self._ground_n = int(math.ceil(2 * range_m / ground_cell_m))
        self._grid_n = int(math.ceil(2 * range_m / cell_m))
        k = max(1, int(round(ground_window_m / ground_cell_m))) | 1
        self._ground_kernel = np.ones((k, k), np.uint8)

    def points_in_ego(self, points: np.ndarray, mount) -> np.ndarray:
        """(N, 3) ego-frame points of a (N, 4) sensor-frame cloud, the ego's own box and far points removed."""
        rows = np.asarray(points, dtype=np.float64).reshape(-1, points.shape[-1] if np.ndim(points) == 2 else 4)
        rotation, translation = mount_transform(mount)
        ego = rows[:, :3] @ rotation.T + translation
        r = self.range_m - 1e-6
        keep = (np.abs(ego[:, 0]) < r) & (np.abs(ego[:, 1]) < r)
        keep &= ~((np.abs(ego[:, 0]) < 2.8) & (np.abs(ego[:, 1]) < 1.3))  # the ego's own body
        return ego[keep]

    def ground_height(self, ego: np.ndarray) -> np.ndarray:
        """(N,) the ground's height under each point: the lowest return within the ground window."""
        n = self._ground_n
        cells = np.floor((ego[:, :2] + self.range_m) / self.ground_cell_m).astype(np.int64).clip(0, n - 1)
        flat = cells[:, 0] * n + cells[:, 1]
        lowest = np.full(n * n, 1e3, np.float32)
        np.minimum.at(lowest, flat, ego[:, 2].astype(np.float32))
        ground = cv2.erode(lowest.reshape(n, n), self._ground_kernel, borderType=cv2.BORDER_REPLICATE)
        return ground.reshape(-1)[flat].astype(np.float64)

    def detect(self, ego: np.ndarray) -> Boxes:
        """Boxes of the obstacles in the ego-frame cloud ``ego`` (N, 3)."""
        if ego.shape[0] == 0:
            return Boxes.empty()
        height = ego[:, 2] - self.ground_height(ego)
        obstacle = (height > self.min_height_m) & (height < self.max_height_m)
        pts, height = ego[obstacle], height[obstacle]
        if pts.shape[0] < self.min_points:
            return Boxes.empty()
        n = self._grid_n
        cells = np.floor((pts[:, :2] + self.range_m) / self.cell_m).astype(np.int64).clip(0, n - 1)
        grid = np.zeros((n, n), np.uint8)
        grid[cells[:, 0], cells[:, 1]] = 1
        grid = cv2.dilate(grid, np.ones((3, 3), np.uint8))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=8)
        point_label = labels[cells[:, 0], cells[:, 1]]
        # keep components whose bounding box could hold a vehicle or a pedestrian (a quick first filter)
        span = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]) * self.cell_m
        plausible = span <= 9.0
        plausible[0] = False
        order = np.argsort(point_label, kind="stable")
        bounds = np.searchsorted(point_label[order], np.arange(count + 1))
        found = []
        for label in np.flatnonzero(plausible):
            members = order[bounds[label]:bounds[label + 1]]
            if members.size >= self.min_points:
                box = self._fit(pts[members], height[members])
                if box is not None:
                    found.append(box)
        if not found:
            return Boxes.empty()
        kind, center, extent, yaw, score = (np.array(v) for v in zip(*found))
        keep = _suppress(kind, center, score)
        return Boxes(kind[keep].astype(np.int8), center[keep], extent[keep], yaw[keep], score[keep])

    def _fit(self, pts: np.ndarray, height: np.ndarray) -> tuple | None:
        """(kind, centre, half extent, yaw, score) of one cluster, or None when it is neither class."""
        (cx, cy), (w, h), angle = cv2.minAreaRect(pts[:, :2].astype(np.float32))
        axis_w = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])  # along side w
        long_side, short_side = max(w, h), min(w, h)
        long_axis = axis_w if w >= h else np.array([-axis_w[1], axis_w[0]])
        top = float(height.max())
        ground = float(np.median(pts[:, 2] - height))
        n = pts.shape[0]
        centre = np.array([cx, cy])
        distance = float(np.hypot(cx, cy))
        if long_side <= 1.3 and short_side <= 1.0 and 1.0 <= top <= 2.3:
            centre = pts[:, :2].mean(axis=0)
            score = min(1.0, 0.3 + n / 40.0) * (0.9 if long_side > 0.3 else 0.6)
            return (int(ActorKind.WALKER), np.array([*centre, ground + _WALKER_HALF[2]]), _WALKER_HALF.copy(),
                    math.atan2(long_axis[1], long_axis[0]), score)
        if not (1.0 <= long_side <= 7.5 and short_side <= 3.2 and 0.8 <= top and n >= self.min_points + 2):
            return None
        if long_side > 3.0 and short_side < 0.25:
            return None  # a wall or a fence: long and flat
        sight = centre / max(distance, 1e-6)
        if long_side < 2.6:
            # one face seen (a rear, a front): the car extends away along the line of sight
            cos_long = abs(float(long_axis @ sight))
            if cos_long < 0.7071:
                long_axis = np.array([-long_axis[1], long_axis[0]])
                long_side, short_side = short_side, long_side
        width_axis = np.array([-long_axis[1], long_axis[0]])
        for axis, seen, want in ((long_axis, long_side, 2 * _VEHICLE_HALF[0]),
                                 (width_axis, short_side, 2 * _VEHICLE_HALF[1])):
            if seen < want:
                centre = centre + math.copysign(1.0, float(axis @ sight)) * (want - seen) / 2 * axis
        half = np.array([max(long_side / 2, _VEHICLE_HALF[0]), max(short_side / 2, _VEHICLE_HALF[1]),
                         max(top / 2, _VEHICLE_HALF[2] * 0.8)])
        fit = math.exp(-max(0.0, long_side - 6.0)) * (1.0 if top <= 2.6 else 0.6)
        score = min(1.0, 0.2 + n / 60.0) * fit * (1.0 if distance < 40.0 else 0.8)
        return (int(ActorKind.VEHICLE), np.array([*centre, ground + half[2]]), half,
                math.atan2(long_axis[1], long_axis[0]), float(np.clip(score, 0.01, 1.0)))


def _suppress(kind: np.ndarray, center: np.ndarray, score: np.ndarray, gap_m: float = 2.5) -> np.ndarray:
    """Indices of the boxes kept by greedy suppression: a vehicle whose centre is within ``gap_m`` of a
    better-scored vehicle is a fragment of it (a roof seen apart from its rear, grown into a second car)."""
    kept: list[int] = []
    for k in np.argsort(-score, kind="stable"):
        if kind[k] == int(ActorKind.VEHICLE) and any(
                kind[j] == kind[k] and np.hypot(*(center[j, :2] - center[k, :2])) < gap_m for j in kept):
            continue
        kept.append(int(k))
    return np.array(sorted(kept), np.int64)


# ---------------------------------------------------------------------------------------------- the light
_HUE_RANGES = ((TrafficLightState.RED, ((0, 8), (170, 180))), (TrafficLightState.YELLOW, ((15, 35),)),
               (TrafficLightState.GREEN, ((45, 95),)))


def classify_light(image_rgb: np.ndarray, window: tuple[int, int, int, int] | None = None, min_pixels: int = 2,
                   max_blob_px: int = 400) -> tuple[TrafficLightState | None, float]:
    """The lit lamp colour in ``image_rgb`` (H, W, 3) within ``window`` (row0, row1, col0, col1; default the
    upper half), and a score; (None, 0) when no lamp is lit there. Lit lamps are saturated and bright; blobs
    larger than ``max_blob_px`` (a red car, a green tree) are not lamps."""
    height, width = image_rgb.shape[:2]
    r0, r1, c0, c1 = window if window is not None else (0, height // 2, 0, width)
    r0, c0 = max(0, r0), max(0, c0)
    r1, c1 = min(height, r1), min(width, c1)
    if r1 <= r0 or c1 <= c0:
        return None, 0.0
    hsv = cv2.cvtColor(np.ascontiguousarray(image_rgb[r0:r1, c0:c1]), cv2.COLOR_RGB2HSV)
    hue, lit = hsv[..., 0], (hsv[..., 1] >= 180) & (hsv[..., 2] >= 90)
    best, best_count = None, 0
    for state, ranges in _HUE_RANGES:
        mask = np.zeros(hue.shape, bool)
        for lo, hi in ranges:
            mask |= (hue >= lo) & (hue < hi)
        mask &= lit
        if not mask.any():
            continue
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        small = areas[areas <= max_blob_px]
        total = int(small.sum())
        if total > best_count:
            best, best_count = state, total
    if best is None or best_count < min_pixels:
        return None, 0.0
    return best, float(min(1.0, 0.4 + best_count / 30.0))


# ---------------------------------------------------------------------------------------------- the stage
class ClassicalPerception:
    """Classical perception (see the module docstring)."""

    class Config(StageParams):
        """``lidar`` / ``camera``: sensor names; ``pose_source``: ``gnss`` (GNSS + compass, default) or
        ``ground_truth`` (the frame's privileged ego pose: for ablations only); ``map``: a shipped town or an
        .xodr path to load when ``reset`` gets no mission (offline scoring); ``range_m``: detection range;
        ``cell_m``: clustering grid; ``min_height_m`` / ``max_height_m``: obstacle points above the ground;
        ``min_points``: smallest cluster; ``light_range_m``: lights farther than this are not looked for."""

        lidar: str = "roof_lidar"
        camera: str = "front_rgb"
        pose_source: Literal["gnss", "ground_truth"] = "gnss"
        map: str | None = None
        range_m: float = Field(50.0, gt=0.0)
        cell_m: float = Field(0.25, gt=0.0)
        min_height_m: float = Field(0.3, ge=0.0)
        max_height_m: float = Field(3.0, gt=0.0)
        min_points: int = Field(4, ge=1)
        light_range_m: float = Field(60.0, gt=0.0)

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or self.Config()
        c = self.config
        self.detector = LidarDetector(c.range_m, c.cell_m, min_height_m=c.min_height_m,
                                      max_height_m=c.max_height_m, min_points=c.min_points)
        self.tracker = CentreTracker()
        self._lanes: LaneGraph | None = None
        self._signals: SignalLayout | None = None
        self._route_xy: np.ndarray | None = None
        self._raster: MapRaster | None = None
        self._previous_t: float | None = None

    def reset(self, mission: Mission | None) -> None:
        """Take the map (and route) of ``mission`` (or of ``map`` when there is none); forget the tracks."""
        self.tracker.reset()
        self._previous_t = None
        self._raster = None
        if mission is not None:
            self._lanes, self._signals = mission.lanes, mission.signals
            self._route_xy = np.asarray(mission.route.points_xy)
        elif self.config.map is not None and self._lanes is None:
            self._lanes, self._signals = _load_map(self.config.map)
            self._route_xy = None

    # ------------------------------------------------------------------ one frame
    def step(self, frame: SensorFrame) -> PerceptionOutput:
        """Detections, BEV and light of ``frame``."""
        spec = frame.bev_spec
        pose = self._pose(frame)
        raster = None
        if pose is not None and self._lanes is not None:
            if self._raster is None or self._raster.ppm != spec.config.pixels_per_m:
                self._raster = MapRaster(self._lanes, spec.config.pixels_per_m, self._route_xy)
            raster = self._raster
        detections = self._detect(frame, pose, raster)
        bev = np.zeros(spec.shape, np.float32)
        channels = spec.channels
        if raster is not None:
            packed = raster.view(*pose, spec)
            for name, bit in (("road", _ROAD), ("route", _ROUTE), ("lane_solid", _SOLID), ("lane_broken", _BROKEN)):
                if name in channels:
                    bev[channels.index(name)] = (packed & bit) != 0
        for name, kind in (("vehicles_t0", ActorKind.VEHICLE), ("pedestrians_t0", ActorKind.WALKER)):
            if name in channels:
                bev[channels.index(name)] = draw_boxes(detections, kind, spec)
        light = self._light(frame, pose)
        return PerceptionOutput(frame.frame, frame.timestamp_s, detections, light, bev, spec)

    def _detect(self, frame: SensorFrame, pose: tuple[float, float, float] | None,
                raster: MapRaster | None) -> Detections:
        if self.config.lidar not in frame.data or self.config.lidar not in frame.calibration:
            return Detections.empty()
        ego = self.detector.points_in_ego(frame.data[self.config.lidar], frame.calibration[self.config.lidar].mount)
        boxes = self.detector.detect(ego)
        if raster is not None and pose is not None and len(boxes.kind):
            x, y, yaw = pose
            cos, sin = math.cos(yaw), math.sin(yaw)
            c = boxes.center[:, :2]
            world = np.column_stack([x + c[:, 0] * cos - c[:, 1] * sin, y + c[:, 0] * sin + c[:, 1] * cos])
            keep = (boxes.kind != int(ActorKind.VEHICLE)) | raster.on_road(world)
            boxes = Boxes(boxes.kind[keep], boxes.center[keep], boxes.extent[keep], boxes.yaw[keep], boxes.score[keep])
        dt = 0.0 if self._previous_t is None else max(0.0, frame.timestamp_s - self._previous_t)
        self._previous_t = frame.timestamp_s
        yaw_rate = float(frame.ego.gyroscope_rad_s[2]) if np.isfinite(frame.ego.gyroscope_rad_s[2]) else 0.0
        ids, velocity, _ = self.tracker.update(boxes.kind, boxes.center[:, :2], dt, frame.ego.speed_mps * dt,
                                               yaw_rate * dt)
        return Detections(boxes.kind, boxes.center, boxes.extent, boxes.yaw, velocity, boxes.score, ids)

    def _pose(self, frame: SensorFrame) -> tuple[float, float, float] | None:
        if self.config.pose_source == "ground_truth":
            if frame.ground_truth is None:
                raise ValueError("classical perception with pose_source: ground_truth needs the env's ground "
                                 "truth: set observation.ground_truth: true")
            ego = frame.ground_truth.ego
            return float(ego.x_m), float(ego.y_m), float(ego.yaw_rad)
        return gnss_to_world(frame.ego.gnss, frame.ego.compass_rad)

    def _light(self, frame: SensorFrame, pose: tuple[float, float, float] | None) -> LightObservation:
        camera = self.config.camera
        if camera not in frame.data:
            return LightObservation(None, math.inf, 1.0)
        image = frame.data[camera]
        calibration = frame.calibration.get(camera)
        if pose is None or self._signals is None or calibration is None or calibration.intrinsics is None:
            state, score = classify_light(image)
            return LightObservation(state, math.inf, score if state is not None else 1.0)
        found = _light_window(self._signals, pose, calibration, self.config.light_range_m)
        if found is None:
            return LightObservation(None, math.inf, 1.0)
        # The projected window (pole base plus an arm of 6 m) often misses the lit head or holds the wrong
        # light: on the Town02 test split it scored 0.50 against 0.81 for the upper half of the image, so the
        # map gives the distance and the upper half the colour.
        _, distance = found
        state, score = classify_light(image)
        if state is None:
            return LightObservation(None, math.inf, 1.0)
        return LightObservation(state, distance, score)


def _light_window(signals: SignalLayout, pose: tuple[float, float, float], calibration: SensorCalibration,
                  max_range_m: float) -> tuple[tuple[int, int, int, int], float] | None:
    """The image window (row0, row1, col0, col1) around the nearest light ahead of ``pose`` that the camera
    sees, and its distance; None when there is none. The window spans the light's pole and arm: 2 to 7 m
    above its base and 6 m to either side."""
    if signals.num_lights == 0:
        return None
    x, y, yaw = pose
    cos, sin = math.cos(yaw), math.sin(yaw)
    d = signals.location_xyz[:, :2] - np.array([x, y])
    ahead, side = d[:, 0] * cos + d[:, 1] * sin, -d[:, 0] * sin + d[:, 1] * cos
    candidates = np.flatnonzero((ahead > 4.0) & (ahead < max_range_m) & (np.abs(side) < 0.8 * ahead + 4.0))
    if candidates.size == 0:
        return None
    rotation, translation = mount_transform(calibration.mount)
    k = calibration.intrinsics
    width, height = calibration.image_size
    for index in candidates[np.argsort(np.hypot(ahead[candidates], side[candidates]))]:
        corners = np.array([[ahead[index], side[index] + dy, dz] for dy in (-6.0, 6.0) for dz in (2.0, 7.0)])
        sensor = (corners - translation) @ rotation
        if (sensor[:, 0] <= 0.5).any():
            continue
        u = k[0, 0] * sensor[:, 1] / sensor[:, 0] + k[0, 2]
        v = -k[1, 1] * sensor[:, 2] / sensor[:, 0] + k[1, 2]
        c0, c1 = int(max(0, u.min())), int(min(width, u.max()))
        r0, r1 = int(max(0, v.min())), int(min(height, v.max()))
        if c1 - c0 >= 2 and r1 - r0 >= 2:
            return (r0, r1, c0, c1), float(np.hypot(ahead[index], side[index]))
    return None


def _load_map(name: str) -> tuple[LaneGraph, SignalLayout]:
    """Lane graph and signals of a shipped town or an .xodr file (``MapLoadError`` naming it otherwise)."""
    from sim.maps.lanes import build_lane_graph
    from sim.maps.loader import load_carla_map, resolve_map
    from sim.maps.signals import build_signal_layout

    source = resolve_map(name)
    carla_map = load_carla_map(source)
    lanes = build_lane_graph(carla_map, source.xodr_text)
    return lanes, build_signal_layout(carla_map, lanes)
