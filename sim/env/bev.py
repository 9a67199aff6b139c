"""The privileged bird's-eye view (BEV): binary masks around the ego, Roach-style.

This is the observation a driving policy sees and the target a perception
network learns to predict. :func:`bev_channel_names` is the one place that
lists the channels; :data:`BEV_CHANNELS` is that list for the default
:class:`BevConfig`. In order, each a ``(H, W)`` mask of 0 or 255:

- ``road``: drivable area (every driving lane, junctions included). On a map
  whose roads pass over one another (given its ``AreaRaster``), the static
  layers show only the ego's level: on a bridge not the road below it.
- ``route``: the route set by :meth:`BevRenderer.set_route`, a 2 m wide line.
- ``lane_solid``: solid lane markings, the solid halves of double markings included.
- ``lane_broken``: broken and Botts'-dots markings (drawn continuous: the class is what
  matters). Curbs and grass edges are not markings; the ``road`` edge shows them.
- ``vehicles_t{k}`` for every ``k`` in ``history_steps``: oriented boxes of every vehicle
  but the ego as they were ``k`` ticks ago, drawn in the *current* ego frame. Only actors
  on the ego's level count: not those on a bridge above it or a road below it.
- ``pedestrians_t{k}``: the same for pedestrians (``ActorKind.WALKER``).
- ``light_red``, ``light_yellow``, ``light_green``: stop lines of the lanes a traffic light
  controls, in the channel of that light's current state (OFF / UNKNOWN: not drawn).
- ``stop_sign``: stop lines of the lanes a stop sign controls.

A stop line is a 0.8 m thick bar across the whole lane at the end of the lane
that enters the junction (``SignalLayout.lane_light`` / ``lane_stop`` name
that incoming lane, see ``sim/embedded/traffic/lights.py``).

Frame: ego-centred and ego-aligned, the ego's heading pointing up. The ego's
origin is at column ``size_px // 2``, row ``size_px - 1 - ego_from_bottom_px``.
CARLA's frame is left-handed (y to the right of x), so a point at ego-frame
``(x forward, y right)`` lands at ``col = cx + y * ppm``, ``row = cy - x * ppm``:
the world seen from above, not mirrored. Pixel centres are at integer
coordinates.

Speed: the static layers (road, route, markings) are rasterised once in the
world frame, one bit per layer in one uint8 image; a tick warps that image
into the view once (nearest neighbour) and unpacks the bits. Actor boxes and
stop lines are drawn per tick, only those in view.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.transforms import box_corners
from sim.maps.geometry import AreaClass, AreaRaster, MapGeometry, offset_polyline
from sim.maps.lanes import LaneGraph
from sim.maps.signals import SignalLayout
from sim.render import actor_ground_z, on_level

__all__ = ["BEV_CHANNELS", "BevConfig", "BevRenderer", "bev_channel_names", "stop_line_quads"]

_SHIFT = 3  # cv2 fixed-point bits: vertices placed to 1/8 pixel
_SCALE = float(1 << _SHIFT)
_MAX_SIDE_PX = 20000  # a world raster larger than this per side is surely a mistake
_ROUTE_WIDTH_M = 2.0
_MARKING_WIDTH_M = 0.3  # at least 2 px: thinner lines break up when the view is rotated
_DOUBLE_GAP_M = 0.2  # distance between the two lines of a double marking
_STOP_LINE_M = 0.8  # thickness of a stop line along the lane

# Bits of the packed static world raster: output channels 0..3 in this order.
_ROAD, _ROUTE, _SOLID, _BROKEN = (1 << b for b in range(4))
_STATIC_BITS = np.array([_ROAD, _ROUTE, _SOLID, _BROKEN], dtype=np.uint8)[:, None, None]

# (left, right) parts of each marking type relative to the polyline's direction; "Broken"
# stands for every non-solid painted pattern. Curb, Grass, NONE and Other are not drawn.
_MARKING_PARTS: dict[str, tuple[str, ...]] = {
    "Solid": ("Solid",),
    "Broken": ("Broken",),
    "BottsDots": ("Broken",),
    "SolidSolid": ("Solid", "Solid"),
    "SolidBroken": ("Solid", "Broken"),
    "BrokenSolid": ("Broken", "Solid"),
    "BrokenBroken": ("Broken", "Broken"),
}
_LIGHT_CHANNELS = (("light_red", TrafficLightState.RED), ("light_yellow", TrafficLightState.YELLOW),
                   ("light_green", TrafficLightState.GREEN))


@dataclass(frozen=True)
class BevConfig:
    """Size, scale, ego placement and history of the BEV.

    ``ego_from_bottom_px``: rows between the ego's origin and the bottom edge.
    ``history_steps``: ticks back at which vehicles and pedestrians are drawn,
    strictly increasing from 0 (now).
    """

    size_px: int = 192
    pixels_per_m: float = 5.0
    ego_from_bottom_px: int = 40
    history_steps: tuple[int, ...] = (0, 5, 10)

    def __post_init__(self) -> None:
        if isinstance(self.size_px, bool) or not isinstance(self.size_px, (int, np.integer)) or self.size_px < 16:
            raise ValueError(f"BevConfig.size_px must be an int >= 16, got {self.size_px!r}")
        ppm = self.pixels_per_m
        if isinstance(ppm, bool) or not isinstance(ppm, (int, float)) or not math.isfinite(ppm) or ppm <= 0:
            raise ValueError(f"BevConfig.pixels_per_m must be a finite number > 0, got {ppm!r}")
        bottom = self.ego_from_bottom_px
        if isinstance(bottom, bool) or not isinstance(bottom, (int, np.integer)) or not 0 <= bottom < self.size_px:
            raise ValueError(f"BevConfig.ego_from_bottom_px must be an int in [0, size_px={self.size_px}), "
                             f"got {bottom!r}")
        steps = tuple(self.history_steps) if isinstance(self.history_steps, (tuple, list)) else None
        if (not steps or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in steps)
                or steps[0] != 0 or any(b <= a for a, b in pairwise(steps))):
            raise ValueError(f"BevConfig.history_steps must be non-empty non-negative ints, strictly increasing "
                             f"from 0, got {self.history_steps!r}")
        object.__setattr__(self, "size_px", int(self.size_px))
        object.__setattr__(self, "pixels_per_m", float(ppm))
        object.__setattr__(self, "ego_from_bottom_px", int(bottom))
        object.__setattr__(self, "history_steps", tuple(int(k) for k in steps))


def bev_channel_names(config: BevConfig) -> tuple[str, ...]:
    """The BEV's channel names, in order, for ``config`` (see the module docstring)."""
    return (("road", "route", "lane_solid", "lane_broken")
            + tuple(f"vehicles_t{k}" for k in config.history_steps)
            + tuple(f"pedestrians_t{k}" for k in config.history_steps)
            + tuple(name for name, _ in _LIGHT_CHANNELS) + ("stop_sign",))


BEV_CHANNELS: tuple[str, ...] = bev_channel_names(BevConfig())
"""Channel names of the default :class:`BevConfig`'s BEV."""


@dataclass(frozen=True)
class _Frame:
    """What history channels need of one tick: every actor's box in the world."""

    frame: int
    actor_id: np.ndarray  # (N,)
    is_walker: np.ndarray  # (N,) bool
    centre: np.ndarray  # (N, 2) world x, y
    radius_m: np.ndarray  # (N,) half diagonal of the box
    corners: np.ndarray  # (N, 4, 2) world x, y
    ground_z: np.ndarray  # (N,) height of the ground each actor stands on


class BevRenderer:
    """Renders the BEV (see the module docstring) of one map for any ego in its snapshots.

    Call :meth:`render` once per tick: the history channels count renders as
    ticks (a second render of the same frame replaces it; an older frame, as
    after a world reset, clears the history). Until ``k`` ticks of history
    exist, ``*_t{k}`` channels show the oldest frame kept. :meth:`reset`
    clears the history; the route stays until :meth:`set_route` replaces it.
    """

    def __init__(self, lanes: LaneGraph, geometry: MapGeometry, signals: SignalLayout,
                 config: BevConfig = BevConfig(), area: AreaRaster | None = None) -> None:
        if signals.lane_light.shape[0] != lanes.num_lanes or signals.lane_stop.shape[0] != lanes.num_lanes:
            raise ValueError(f"signals cover {signals.lane_light.shape[0]} lanes but the lane graph has "
                             f"{lanes.num_lanes}: they come from different maps")
        self.config = config
        self._names = bev_channel_names(config)
        size = config.size_px
        self._ppm = config.pixels_per_m
        self._cx = float(size // 2)
        self._cy = float(size - 1 - config.ego_from_bottom_px)
        far_col, far_row = max(self._cx, size - 1 - self._cx), max(self._cy, size - 1 - self._cy)
        self._view_radius_m = math.hypot(far_col, far_row) / self._ppm + 1.0
        n_hist = len(config.history_steps)
        self._vehicle_ch_array = 4 + np.arange(n_hist)
        self._walker_ch_array = 4 + n_hist + np.arange(n_hist)
        self._history: deque[_Frame] = deque(maxlen=config.history_steps[-1] + 1)
        self._num_lights = signals.num_lights

        xmin, ymin, xmax, ymax = geometry.bounds_xy
        self._origin = np.array([xmin, ymin], dtype=float)
        width = max(1, math.ceil((xmax - xmin) * self._ppm))
        height = max(1, math.ceil((ymax - ymin) * self._ppm))
        if max(width, height) > _MAX_SIDE_PX:
            raise ValueError(f"the world raster would be {width}x{height} px at {self._ppm} px/m "
                             f"(at most {_MAX_SIDE_PX} per side): lower pixels_per_m")
        self._world = np.zeros((height, width), dtype=np.uint8)
        self._route_box: tuple[int, int, int, int] | None = None  # row0, row1, col0, col1 of the drawn route
        self._draw_static(geometry)
        # On a map whose roads pass over one another, the static layers keep only the ego's level: each view
        # pixel's ground point (ego frame, x forward, y right) is looked up in the area raster at its height.
        self._area = area if area is not None and area.multilevel else None
        if self._area is not None:
            rows, cols = np.mgrid[0:size, 0:size]
            self._pixel_ego_xy = np.stack([(self._cy - rows) / self._ppm, (cols - self._cx) / self._ppm],
                                          axis=-1).reshape(-1, 2)

        # Stop lines, drawn per tick: those of lights (channel by state), then of stop signs.
        lit, stop = np.flatnonzero(signals.lane_light >= 0), np.flatnonzero(signals.lane_stop >= 0)
        self._quads = np.concatenate([stop_line_quads(lanes, lit), stop_line_quads(lanes, stop)])
        self._quad_light = np.concatenate([signals.lane_light[lit], np.full(stop.size, -1)])
        self._quad_centres = self._quads.mean(axis=1)
        channel = {int(state): self._names.index(name) for name, state in _LIGHT_CHANNELS}
        # Channel of a quad by its light's state (index 0..4), or the stop-sign channel; -1: not drawn.
        self._state_channel = np.array([channel.get(state, -1) for state in range(len(TrafficLightState))])
        self._stop_channel = len(self._names) - 1

    # ------------------------------------------------------------------ public
    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the output channels, in order."""
        return self._names

    def reset(self) -> None:
        """Forget the actor history (a new episode)."""
        self._history.clear()

    def set_route(self, route_xy: np.ndarray) -> None:
        """Draw ``route_xy`` (M, 2) (or (M, 3), z ignored) world points as the route; M = 0 clears it."""
        points = np.asarray(route_xy, dtype=float)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ValueError(f"route_xy must have shape (M, 2) or (M, 3), got {points.shape}")
        points = points[:, :2]
        if not np.isfinite(points).all():
            raise ValueError("route_xy must be finite")
        world = self._world
        if self._route_box is not None:
            r0, r1, c0, c1 = self._route_box
            world[r0:r1, c0:c1] &= np.uint8(~_ROUTE & 0xFF)
            self._route_box = None
        if points.shape[0] == 0:
            return
        if points.shape[0] == 1:
            points = np.repeat(points, 2, axis=0)  # a dot
        thickness = max(1, round(_ROUTE_WIDTH_M * self._ppm))
        pixels = (points - self._origin) * self._ppm - 0.5
        pad = thickness + 2
        height, width = world.shape
        c0, r0 = (max(0, int(v)) for v in np.floor(pixels.min(axis=0) - pad))
        c1, r1 = (int(v) for v in np.ceil(pixels.max(axis=0) + pad))
        c1, r1 = min(width, c1), min(height, r1)
        if c1 <= c0 or r1 <= r0:
            return  # entirely off the map
        layer = np.zeros((r1 - r0, c1 - c0), dtype=np.uint8)
        fixed = np.round((pixels - (c0, r0)) * _SCALE).astype(np.int32)
        cv2.polylines(layer, [fixed], False, _ROUTE, thickness, cv2.LINE_8, _SHIFT)
        world[r0:r1, c0:c1] |= layer
        self._route_box = (r0, r1, c0, c1)

    def render(self, snapshot: WorldSnapshot, ego_id: int) -> np.ndarray:
        """The BEV around actor ``ego_id``: a new (C, H, W) uint8 array of 0 / 255 (C = len(channel_names)).

        Raises ``KeyError`` naming ``ego_id`` if it is not in the snapshot.
        """
        if snapshot.light_state.shape[0] != self._num_lights:
            raise ValueError(f"snapshot has {snapshot.light_state.shape[0]} traffic lights but the signal layout "
                             f"{self._num_lights}: it comes from another map")
        row = snapshot.index_of(ego_id)
        ex, ey = (float(v) for v in snapshot.location_m[row, :2])
        yaw = float(snapshot.rotation_rad[row, 1])
        self._remember(snapshot)

        size = self.config.size_px
        ppm, cx, cy = self._ppm, self._cx, self._cy
        c, s = math.cos(yaw), math.sin(yaw)
        # view pixel (col, row) -> world raster pixel: the inverse of the forward map below, for warpAffine.
        u0 = (ex - self._origin[0]) * ppm - 0.5 + c * cy + s * cx
        v0 = (ey - self._origin[1]) * ppm - 0.5 + s * cy - c * cx
        inverse = np.array([[-s, -c, u0], [c, -s, v0]])
        packed = cv2.warpAffine(self._world, inverse, (size, size), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out = np.empty((len(self._names), size, size), dtype=np.uint8)
        static = out[:4]
        np.bitwise_and(packed[None], _STATIC_BITS, out=static)
        np.not_equal(static, 0, out=static.view(bool))
        np.negative(static, out=static)  # 1 -> 255
        out[4:] = 0
        if self._area is not None:
            self._keep_ego_level(static, ex, ey, yaw, float(actor_ground_z(snapshot)[row]))

        # world (x, y) -> view pixel (col, row) = points @ forward.T + offset
        forward = np.array([[-s * ppm, c * ppm], [-c * ppm, -s * ppm]])
        offset = np.array([cx + ppm * (s * ex - c * ey), cy + ppm * (c * ex + s * ey)])
        history = self._history
        frames = [history[max(len(history) - 1 - k, 0)] for k in self.config.history_steps]
        self._draw_boxes(out, frames, forward, offset, ego_id, float(snapshot.location_m[row, 2]))
        self._draw_stop_lines(out, snapshot.light_state, ex, ey, forward, offset)
        return out

    # ------------------------------------------------------------------ per tick
    def _keep_ego_level(self, static: np.ndarray, ex: float, ey: float, yaw: float, ground_z: float) -> None:
        """Clear the static layers where the ego's level has no road (a road passing below or above)."""
        c, s = math.cos(yaw), math.sin(yaw)
        local = self._pixel_ego_xy
        world_xy = np.stack([ex + c * local[:, 0] - s * local[:, 1], ey + s * local[:, 0] + c * local[:, 1]], axis=1)
        classes = self._area.lookup(world_xy, np.full(world_xy.shape[0], ground_z))
        here = (classes != AreaClass.OFFROAD).reshape(static.shape[1:])
        static &= (here * np.uint8(255))[None]

    def _remember(self, snapshot: WorldSnapshot) -> None:
        history = self._history
        if history and snapshot.frame <= history[-1].frame:
            if snapshot.frame < history[-1].frame:
                history.clear()
            else:
                history.pop()
        xy = snapshot.location_m[:, :2]
        half = snapshot.extent_m[:, :2]
        corners = box_corners(xy, snapshot.rotation_rad[:, 1], half)
        history.append(_Frame(snapshot.frame, snapshot.actor_id, snapshot.kind == ActorKind.WALKER, xy,
                              np.hypot(half[:, 0], half[:, 1]), corners, actor_ground_z(snapshot)))

    def _draw_boxes(self, out: np.ndarray, frames: list[_Frame], forward: np.ndarray, offset: np.ndarray,
                    ego_id: int, ego_z: float) -> None:
        """Every history frame's boxes into its own channels, with one transform and cull for all frames.

        Only actors on the ego's level are drawn: not cars on a bridge above it or on a road below.
        """
        half_size = 0.5 * self.config.size_px
        centre = np.concatenate([f.centre for f in frames])
        radius = np.concatenate([f.radius_m for f in frames])
        # Cull by the box's circumcircle against the image square (centre pixels are cheap to transform).
        away = np.abs(centre @ forward.T + (offset - half_size))
        reach = radius * self._ppm + (half_size + 1.0)
        keep = (away[:, 0] <= reach) & (away[:, 1] <= reach)
        keep &= np.concatenate([f.actor_id for f in frames]) != ego_id
        keep &= on_level(np.concatenate([f.ground_z for f in frames]), ego_z)
        rows = np.flatnonzero(keep)
        if rows.size == 0:
            return
        corners = np.concatenate([f.corners for f in frames])[rows]
        fixed = np.round((corners @ forward.T + offset) * _SCALE).astype(np.int32)
        # Channel of each drawn box: the frame's vehicle or walker channel.
        frame_of = np.repeat(np.arange(len(frames)), [f.actor_id.shape[0] for f in frames])[rows]
        is_walker = np.concatenate([f.is_walker for f in frames])[rows]
        channel = np.where(is_walker, self._walker_ch_array[frame_of], self._vehicle_ch_array[frame_of])
        # One call per box: a multi-polygon fillPoly leaves overlaps (people in a crowd) empty.
        for box, ch in zip(fixed, channel.tolist()):
            cv2.fillConvexPoly(out[ch], box, 255, cv2.LINE_8, _SHIFT)

    def _draw_stop_lines(self, out: np.ndarray, light_state: np.ndarray, ex: float, ey: float,
                         forward: np.ndarray, offset: np.ndarray) -> None:
        if self._quads.shape[0] == 0:
            return
        away = np.abs(self._quad_centres - (ex, ey))
        near = np.flatnonzero(np.maximum(away[:, 0], away[:, 1]) < self._view_radius_m)
        if near.size == 0:
            return
        light = self._quad_light[near]
        state = light_state[np.maximum(light, 0)] if light_state.size else np.zeros(light.shape, np.int8)
        channels = np.where(light >= 0, self._state_channel[state], self._stop_channel).tolist()
        fixed = np.round((self._quads[near] @ forward.T + offset) * _SCALE).astype(np.int32)
        for quad, channel in zip(fixed, channels):
            if channel >= 0:
                cv2.fillConvexPoly(out[channel], quad, 255, cv2.LINE_8, _SHIFT)

    # ------------------------------------------------------------------ static layers, drawn once
    def _to_fixed(self, xy: np.ndarray) -> np.ndarray:
        """World points (..., 2) to cv2 fixed-point world-raster coordinates (pixel centres at integers)."""
        return np.round(((xy - self._origin) * self._ppm - 0.5) * _SCALE).astype(np.int32)

    def _draw_static(self, geometry: MapGeometry) -> None:
        world = self._world
        layer = np.zeros_like(world)
        for polygon in geometry.driving_polygons:
            points = [self._to_fixed(polygon)]
            # One call per polygon (a multi-contour fill leaves overlaps empty); the outline closes
            # hairline seams between lanes sharing an edge.
            cv2.fillPoly(layer, points, _ROAD, cv2.LINE_8, _SHIFT)
            cv2.polylines(layer, points, True, _ROAD, 1, cv2.LINE_8, _SHIFT)
        world |= layer

        thickness = max(2, round(_MARKING_WIDTH_M * self._ppm))
        half_gap = _DOUBLE_GAP_M / 2
        lines: dict[str, list[np.ndarray]] = {"Solid": [], "Broken": []}
        for marking in geometry.lane_markings:
            parts = _MARKING_PARTS.get(marking.marking_type)
            if parts is None:
                continue
            points = np.asarray(marking.points_xy, dtype=float)
            offsets = (0.0,) if len(parts) == 1 else (-half_gap, half_gap)
            for part, shift in zip(parts, offsets):
                lines[part].append(self._to_fixed(offset_polyline(points, shift) if shift else points))
        for part, bit in (("Solid", _SOLID), ("Broken", _BROKEN)):
            if lines[part]:
                layer[:] = 0
                cv2.polylines(layer, lines[part], False, bit, thickness, cv2.LINE_8, _SHIFT)
                world |= layer


def stop_line_quads(lanes: LaneGraph, lane_ids: np.ndarray) -> np.ndarray:
    """(Q, 4, 2) world corners of a stop line across each lane at its end (where it enters a junction)."""
    quads = np.zeros((lane_ids.shape[0], 4, 2))
    for i, lane in enumerate(lane_ids.tolist()):
        last = int(lanes.offset[lane] + lanes.count[lane] - 1)
        end = lanes.points_xyz[last, :2]
        yaw = float(lanes.yaw_rad[last])
        along = np.array([math.cos(yaw), math.sin(yaw)])
        right = np.array([-along[1], along[0]]) * (0.5 * float(lanes.width_m[last]))
        back = end - along * min(_STOP_LINE_M, float(lanes.length_m[lane]))
        quads[i] = (end - right, end + right, back + right, back - right)
    return quads
