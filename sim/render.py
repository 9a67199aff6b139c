"""Top-down rendering of a map and a world snapshot, and MP4 (H.264) / PNG output.

Image orientation: the view is CARLA's world seen from above, not mirrored.
World x grows to the right (image columns) and world y to the bottom (image
rows): pixel ``(row, col)`` covers ``x in [ox + col/ppm, ox + (col+1)/ppm)``
and ``y in [oy + row/ppm, oy + (row+1)/ppm)``, where ``(ox, oy)`` is the world
point at the image's top-left corner and ``ppm`` the scale in pixels per metre.
Because CARLA's frame is left-handed (y is to the right of x), this is what a
camera above the map looking down sees; positive yaw turns clockwise on screen.

Images are ``(H, W, 3)`` uint8 RGB. The static map (areas, crosswalks, lane
markings) is drawn once by :class:`TopDownRenderer` and each frame only copies
(or crops) it and draws the actors on top.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.maps.geometry import LaneMarking, MapGeometry, offset_polyline
from sim.maps.lanes import LEVEL_SEPARATION_M
from sim.transforms import body_to_world_xy

__all__ = ["DEFAULT_PALETTE", "Palette", "TopDownRenderer", "VideoWriter", "actor_ground_z", "on_level", "save_png"]

RGB = tuple[int, int, int]

_SHIFT = 3  # cv2 fixed-point bits: vertices are placed to 1/8 pixel
_SCALE = float(1 << _SHIFT)
_MAX_SIDE_PX = 20000  # a full-map image larger than this per side is surely a mistake

_MARKING_WIDTH_M = 0.15
_DASH_ON_M = 3.0  # broken lines: 3 m painted, 6 m gap (CARLA towns' typical dash pattern)
_DASH_OFF_M = 6.0
_DOT_ON_M = 0.3  # Botts' dots
_DOT_OFF_M = 1.5
_DOUBLE_GAP_M = 0.2  # distance between the two lines of a double marking
_CROSSWALK_STRIPE_M = 0.5  # zebra stripes and gaps
_LIGHT_RADIUS_M = 1.0
_ROUTE_WIDTH_M = 0.6
_TRAIL_WIDTH_M = 0.3

# Single lines, and the (left, right) parts of double lines, relative to the polyline's direction.
_MARKING_PARTS: dict[str, tuple[str, ...]] = {
    "Solid": ("Solid",),
    "Broken": ("Broken",),
    "BottsDots": ("BottsDots",),
    "SolidSolid": ("Solid", "Solid"),
    "SolidBroken": ("Solid", "Broken"),
    "BrokenSolid": ("Broken", "Solid"),
    "BrokenBroken": ("Broken", "Broken"),
}


def actor_ground_z(snapshot: WorldSnapshot) -> np.ndarray:
    """Height (N,) of the ground each actor stands on: a vehicle's location, a walker's box bottom."""
    z = snapshot.location_m[:, 2]
    return np.where(snapshot.kind == ActorKind.WALKER, z - snapshot.extent_m[:, 2], z)


def on_level(ground_z: np.ndarray, level_z: float) -> np.ndarray:
    """Whether actors standing at ``ground_z`` are on the level at ``level_z`` (not on a bridge above or a road
    below: within :data:`~sim.maps.lanes.LEVEL_SEPARATION_M`)."""
    return np.abs(np.asarray(ground_z) - level_z) <= LEVEL_SEPARATION_M


@dataclass(frozen=True)
class Palette:
    """RGB colours of the top-down view."""

    background: RGB = (34, 37, 41)  # off-road: buildings, terrain, outside the map
    sidewalk: RGB = (128, 128, 122)
    shoulder: RGB = (72, 76, 80)
    road: RGB = (92, 94, 98)
    junction: RGB = (100, 102, 106)
    crosswalk: RGB = (220, 220, 215)
    marking_white: RGB = (235, 235, 235)
    marking_yellow: RGB = (240, 200, 40)
    vehicle: RGB = (70, 130, 225)
    hero: RGB = (230, 60, 200)
    heading: RGB = (230, 240, 255)
    walker: RGB = (60, 225, 235)
    light_red: RGB = (240, 40, 40)
    light_yellow: RGB = (250, 210, 0)
    light_green: RGB = (40, 220, 70)
    light_off: RGB = (150, 150, 150)
    light_outline: RGB = (15, 15, 15)
    route: RGB = (120, 235, 120)
    trail: RGB = (160, 40, 140)

    def marking(self, color_name: str) -> RGB:
        """Colour of a lane marking by ``carla.LaneMarkingColor`` name (unknown names: white)."""
        named = {"Yellow": self.marking_yellow, "Blue": (60, 110, 235), "Green": (60, 200, 90), "Red": (225, 50, 50)}
        return named.get(color_name, self.marking_white)

    def light(self, state: int) -> RGB:
        """Colour of a traffic light in ``TrafficLightState`` ``state``."""
        return {
            TrafficLightState.RED: self.light_red,
            TrafficLightState.YELLOW: self.light_yellow,
            TrafficLightState.GREEN: self.light_green,
        }.get(int(state), self.light_off)


DEFAULT_PALETTE = Palette()


class TopDownRenderer:
    """Renders a map and snapshots seen from above (see the module docstring for the orientation).

    ``view_size_px=None`` renders the whole map (``geometry.bounds_xy``) every
    frame; ``(width, height)`` renders a north-up window of that size centred
    on a point (follow mode), padded with the background colour beyond the map.
    """

    def __init__(self, geometry: MapGeometry, pixels_per_m: float = 4.0,
                 view_size_px: tuple[int, int] | None = None, palette: Palette = DEFAULT_PALETTE) -> None:
        if not (isinstance(pixels_per_m, (int, float)) and math.isfinite(pixels_per_m) and pixels_per_m > 0):
            raise ValueError(f"pixels_per_m must be a positive finite number, got {pixels_per_m!r}")
        if view_size_px is not None:
            if len(view_size_px) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in view_size_px):
                raise ValueError(f"view_size_px must be None or two positive ints (width, height), "
                                 f"got {view_size_px!r}")
            view_size_px = (int(view_size_px[0]), int(view_size_px[1]))
        self.geometry = geometry
        self.pixels_per_m = float(pixels_per_m)
        self.view_size_px = view_size_px
        self.palette = palette
        xmin, ymin, xmax, ymax = geometry.bounds_xy
        self.origin_xy = (float(xmin), float(ymin))
        width = max(1, math.ceil((xmax - xmin) * self.pixels_per_m))
        height = max(1, math.ceil((ymax - ymin) * self.pixels_per_m))
        if max(width, height) > _MAX_SIDE_PX:
            raise ValueError(f"the map image would be {width}x{height} px at {pixels_per_m} px/m "
                             f"(at most {_MAX_SIDE_PX} per side): lower pixels_per_m")
        self._map = self._draw_map(width, height)
        self._map.flags.writeable = False
        if view_size_px is not None:
            self._blank_view = _filled(view_size_px[0], view_size_px[1], palette.background)

    # ------------------------------------------------------------------ public
    @property
    def map_image(self) -> np.ndarray:
        """The cached static layer of the whole map, (H, W, 3) RGB, read-only."""
        return self._map

    def view_origin_xy(self, center_xy: tuple[float, float] | None = None) -> tuple[float, float]:
        """World point at the top-left corner of the rendered image for this centre.

        Follow-mode windows are snapped to whole map pixels, so the centre lands
        within half a pixel of the image centre.
        """
        if self.view_size_px is None:
            return self.origin_xy
        col0, row0 = self._window_corner_px(self._center_or_default(center_xy))
        ppm = self.pixels_per_m
        return (self.origin_xy[0] + col0 / ppm, self.origin_xy[1] + row0 / ppm)

    def pixel_of(self, xy: np.ndarray, center_xy: tuple[float, float] | None = None) -> np.ndarray:
        """Integer (col, row) of the pixels holding world points ``xy`` (N, 2) in a render centred on ``center_xy``.

        In follow mode ``center_xy=None`` means the map's centre (pass the hero's position for hero-centred renders).
        """
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ox, oy = self.view_origin_xy(center_xy)
        return np.floor((xy - (ox, oy)) * self.pixels_per_m).astype(np.int64)

    def render(self, snapshot: WorldSnapshot, *, center_xy: tuple[float, float] | None = None,
               hero_id: int | None = None, route_xy: np.ndarray | None = None,
               trail_xy: np.ndarray | None = None) -> np.ndarray:
        """Draw ``snapshot`` over the map; returns a new (H, W, 3) uint8 RGB image.

        In follow mode the window is centred on ``center_xy``, else on the hero
        (``hero_id``), else on the map's centre; in whole-map mode ``center_xy``
        is ignored. The hero is drawn in its own colour; ``route_xy`` and
        ``trail_xy`` are (K, 2) or (K, 3) world polylines (route to follow, past
        hero positions). With a hero, only actors on the hero's level are drawn
        (not cars on a bridge above it or on a road below). ``KeyError`` if
        ``hero_id`` is not in the snapshot.
        """
        hero_row = snapshot.index_of(hero_id) if hero_id is not None else -1
        if self.view_size_px is None:
            image = self._map.copy()
            origin = self.origin_xy
        else:
            if center_xy is None and hero_row >= 0:
                center_xy = (float(snapshot.location_m[hero_row, 0]), float(snapshot.location_m[hero_row, 1]))
            center_xy = self._center_or_default(center_xy)
            col0, row0 = self._window_corner_px(center_xy)
            image = self._crop(col0, row0)
            origin = (self.origin_xy[0] + col0 / self.pixels_per_m, self.origin_xy[1] + row0 / self.pixels_per_m)
        pal = self.palette
        ppm = self.pixels_per_m
        if route_xy is not None:
            self._polyline(image, origin, route_xy, pal.route, max(2, round(_ROUTE_WIDTH_M * ppm)), "route_xy")
        if trail_xy is not None:
            self._polyline(image, origin, trail_xy, pal.trail, max(2, round(_TRAIL_WIDTH_M * ppm)), "trail_xy")
        self._draw_lights(image, origin, snapshot)
        level = (on_level(actor_ground_z(snapshot), float(snapshot.location_m[hero_row, 2])) if hero_row >= 0
                 else np.ones(snapshot.actor_id.shape[0], dtype=bool))
        self._draw_vehicles(image, origin, snapshot, hero_row, level)
        self._draw_walkers(image, origin, snapshot, level)
        return image

    # ------------------------------------------------------------------ per frame
    def _center_or_default(self, center_xy: tuple[float, float] | None) -> tuple[float, float]:
        if center_xy is None:
            xmin, ymin, xmax, ymax = self.geometry.bounds_xy
            return ((xmin + xmax) / 2, (ymin + ymax) / 2)
        cx, cy = float(center_xy[0]), float(center_xy[1])
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise ValueError(f"center_xy must be finite, got {center_xy!r}")
        return (cx, cy)

    def _window_corner_px(self, center_xy: tuple[float, float]) -> tuple[int, int]:
        """Map-image (col, row) of the follow window's top-left pixel."""
        width, height = self.view_size_px
        ppm = self.pixels_per_m
        col0 = round((center_xy[0] - self.origin_xy[0]) * ppm - width / 2)
        row0 = round((center_xy[1] - self.origin_xy[1]) * ppm - height / 2)
        return int(col0), int(row0)

    def _crop(self, col0: int, row0: int) -> np.ndarray:
        """The window of the map image at (col0, row0), background where it leaves the map."""
        width, height = self.view_size_px
        map_h, map_w = self._map.shape[:2]
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + width, map_w), min(row0 + height, map_h)
        if c0 == col0 and r0 == row0 and c1 - c0 == width and r1 - r0 == height:
            return self._map[r0:r1, c0:c1].copy()
        image = self._blank_view.copy()  # a prebuilt copy: filling 3 channels by broadcast is ~50x slower
        if c1 > c0 and r1 > r0:
            image[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = self._map[r0:r1, c0:c1]
        return image

    def _to_fixed(self, origin: tuple[float, float], xy: np.ndarray) -> np.ndarray:
        """World points (..., 2) to cv2 fixed-point pixel coordinates (pixel centres at integers)."""
        pixels = (xy - origin) * self.pixels_per_m - 0.5
        return np.round(pixels * _SCALE).astype(np.int32)

    def _visible(self, image: np.ndarray, origin: tuple[float, float], xy: np.ndarray, margin_m: float) -> np.ndarray:
        height, width = image.shape[:2]
        lo = np.asarray(origin) - margin_m
        hi = np.asarray(origin) + np.array([width, height]) / self.pixels_per_m + margin_m
        return np.all((xy >= lo) & (xy <= hi), axis=1)

    def _polyline(self, image: np.ndarray, origin: tuple[float, float], points: np.ndarray, color: RGB,
                  thickness: int, name: str) -> None:
        points = np.asarray(points, dtype=float)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise ValueError(f"{name} must have shape (K, 2) or (K, 3), got {points.shape}")
        points = points[np.isfinite(points[:, :2]).all(axis=1), :2]
        if points.shape[0] >= 2:
            cv2.polylines(image, [self._to_fixed(origin, points)], False, color, thickness, cv2.LINE_AA, _SHIFT)

    def _draw_lights(self, image: np.ndarray, origin: tuple[float, float], snapshot: WorldSnapshot) -> None:
        xy = snapshot.light_location_m[:, :2]
        rows = np.flatnonzero(self._visible(image, origin, xy, _LIGHT_RADIUS_M))
        if rows.size == 0:
            return
        centers = self._to_fixed(origin, xy[rows])
        radius = int(round(max(2.0, _LIGHT_RADIUS_M * self.pixels_per_m) * _SCALE))
        outline = self.palette.light_outline
        for (cx, cy), state in zip(centers.tolist(), snapshot.light_state[rows].tolist()):
            cv2.circle(image, (cx, cy), radius + int(_SCALE), outline, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(image, (cx, cy), radius, self.palette.light(state), -1, cv2.LINE_AA, _SHIFT)

    def _draw_vehicles(self, image: np.ndarray, origin: tuple[float, float], snapshot: WorldSnapshot,
                       hero_row: int, level: np.ndarray) -> None:
        xy = snapshot.location_m[:, :2]
        is_vehicle = snapshot.kind == ActorKind.VEHICLE
        rows = np.flatnonzero(is_vehicle & level & self._visible(image, origin, xy, 12.0))
        if rows.size == 0:
            return
        rows = np.concatenate([rows[rows != hero_row], rows[rows == hero_row]])  # hero on top
        half_l = snapshot.extent_m[rows, 0:1]
        half_w = snapshot.extent_m[rows, 1:2]
        # Box corners then a heading triangle pointing at the front bumper, in the vehicle frame.
        local_x = np.hstack([half_l, half_l, -half_l, -half_l, half_l, 0.3 * half_l, 0.3 * half_l])
        local_y = np.hstack([half_w, -half_w, -half_w, half_w, 0 * half_w, 0.7 * half_w, -0.7 * half_w])
        world = body_to_world_xy(np.stack([local_x, local_y], axis=-1), xy[rows], snapshot.rotation_rad[rows, 1])
        shapes = self._to_fixed(origin, world)
        pal = self.palette
        for row, shape in zip(rows.tolist(), shapes):
            color = pal.hero if row == hero_row else pal.vehicle
            cv2.fillConvexPoly(image, shape[:4], color, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(image, shape[4:], pal.heading, cv2.LINE_AA, _SHIFT)

    def _draw_walkers(self, image: np.ndarray, origin: tuple[float, float], snapshot: WorldSnapshot,
                      level: np.ndarray) -> None:
        xy = snapshot.location_m[:, :2]
        rows = np.flatnonzero((snapshot.kind == ActorKind.WALKER) & level & self._visible(image, origin, xy, 2.0))
        if rows.size == 0:
            return
        centers = self._to_fixed(origin, xy[rows])
        radii = np.round(np.maximum(2.0, snapshot.extent_m[rows, :2].max(axis=1) * self.pixels_per_m) * _SCALE)
        color = self.palette.walker
        for (cx, cy), radius in zip(centers.tolist(), radii.astype(int).tolist()):
            cv2.circle(image, (cx, cy), radius, color, -1, cv2.LINE_AA, _SHIFT)

    # ------------------------------------------------------------------ static map, drawn once
    def _draw_map(self, width: int, height: int) -> np.ndarray:
        geometry, pal = self.geometry, self.palette
        image = _filled(width, height, pal.background)
        layers = [
            (geometry.sidewalk_polygons, pal.sidewalk),
            (geometry.shoulder_polygons, pal.shoulder),
            (geometry.driving_polygons, pal.road),
            (geometry.junction_polygons, pal.junction),
            (geometry.crosswalk_polygons, pal.road),
        ]
        for polygons, color in layers:
            for polygon in polygons:
                points = [self._to_fixed(self.origin_xy, polygon)]
                # One call per polygon (a multi-contour fill leaves overlaps empty); the 1 px
                # outline closes hairline seams between lanes that share an edge.
                cv2.fillPoly(image, points, color, cv2.LINE_8, _SHIFT)
                cv2.polylines(image, points, True, color, 1, cv2.LINE_8, _SHIFT)
        for polygon in geometry.crosswalk_polygons:
            self._draw_zebra(image, polygon)
        for marking in geometry.lane_markings:
            self._draw_marking(image, marking)
        return image

    def _draw_zebra(self, image: np.ndarray, polygon: np.ndarray) -> None:
        """Stripes across the crosswalk's long side (parallel to the traffic)."""
        ppm = self.pixels_per_m
        pixels = (polygon - self.origin_xy) * ppm
        c0, r0 = np.floor(pixels.min(axis=0)).astype(int)
        c1, r1 = np.ceil(pixels.max(axis=0)).astype(int)
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, image.shape[1]), min(r1, image.shape[0])
        if c1 <= c0 or r1 <= r0:
            return
        edges = np.roll(polygon, -1, axis=0) - polygon
        longest = edges[np.argmax(np.hypot(edges[:, 0], edges[:, 1]))]
        along = longest / max(float(np.hypot(*longest)), 1e-9)
        inside = np.zeros((r1 - r0, c1 - c0), dtype=np.uint8)
        local = np.round((pixels - (c0, r0) - 0.5) * _SCALE).astype(np.int32)
        cv2.fillPoly(inside, [local], 1, cv2.LINE_8, _SHIFT)
        cols, rows = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        t_m = ((cols / ppm + self.origin_xy[0] - polygon[0, 0]) * along[0]
               + (rows / ppm + self.origin_xy[1] - polygon[0, 1]) * along[1])
        stripe = np.mod(t_m, 2 * _CROSSWALK_STRIPE_M) < _CROSSWALK_STRIPE_M
        region = image[r0:r1, c0:c1]
        region[(inside > 0) & stripe] = self.palette.crosswalk

    def _draw_marking(self, image: np.ndarray, marking: LaneMarking) -> None:
        parts = _MARKING_PARTS.get(marking.marking_type)
        if parts is None:  # Curb, Grass, NONE, Other: the area colours already show these edges
            return
        color = self.palette.marking(marking.color)
        thickness = max(1, round(_MARKING_WIDTH_M * self.pixels_per_m))
        points = np.asarray(marking.points_xy, dtype=float)
        # Keep double lines at least ~1.5 px apart so they stay two lines at small scales.
        half_gap_m = max(_DOUBLE_GAP_M, 1.5 / self.pixels_per_m) / 2
        offsets = (0.0,) if len(parts) == 1 else (-half_gap_m, half_gap_m)
        for part, offset in zip(parts, offsets):
            line = offset_polyline(points, offset) if offset else points
            if part == "Solid":
                pieces = [line]
            elif part == "Broken":
                pieces = _dashes(line, _DASH_ON_M, _DASH_OFF_M)
            else:
                pieces = _dashes(line, _DOT_ON_M, _DOT_OFF_M)
            fixed = [self._to_fixed(self.origin_xy, piece) for piece in pieces if piece.shape[0] >= 2]
            if fixed:
                cv2.polylines(image, fixed, False, color, thickness, cv2.LINE_AA, _SHIFT)


def _filled(width: int, height: int, color: RGB) -> np.ndarray:
    """A (height, width, 3) uint8 image of one colour."""
    return np.tile(np.asarray(color, dtype=np.uint8), (height, width, 1))


def _dashes(points: np.ndarray, on_m: float, off_m: float) -> list[np.ndarray]:
    """Pieces of the polyline ``points`` (K, 2) painted by a dash pattern starting with a dash."""
    seg = np.hypot(*np.diff(points, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    length = s[-1]
    pieces = []
    for start in np.arange(0.0, length, on_m + off_m):
        end = min(start + on_m, length)
        inner = (s > start) & (s < end)
        at = np.concatenate([[start], s[inner], [end]])
        pieces.append(np.column_stack([np.interp(at, s, points[:, 0]), np.interp(at, s, points[:, 1])]))
    return pieces


class VideoWriter:
    """Writes RGB frames to an H.264 MP4 that browsers play (yuv420p, via imageio-ffmpeg); a context manager.

    The frame size is ``size`` (width, height) or, when None, that of the first
    frame; every frame must have it. H.264 in yuv420p needs even sides, so a
    frame with an odd width or height is padded by repeating its last column or
    row (the video is then one pixel wider or taller). Parent directories are
    created. The encoder is the static ffmpeg that the ``imageio-ffmpeg`` package
    installs; it runs in a child process, so encoding overlaps the caller's work.
    """

    def __init__(self, path: str | Path, fps: float = 20.0, size: tuple[int, int] | None = None) -> None:
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive finite number, got {fps!r}")
        if size is not None and (len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0
                                                          for v in size)):
            raise ValueError(f"size must be None or two positive ints (width, height), got {size!r}")
        self.path = Path(path)
        self.fps = float(fps)
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._encoder: Generator[None, bytes | None, None] | None = None
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if size is not None:
            self._open((int(size[0]), int(size[1])))

    def _open(self, size: tuple[int, int]) -> None:
        import imageio_ffmpeg

        try:  # ffmpeg only reports an unwritable path after the first frame; find out now
            self.path.open("wb").close()
        except OSError as exc:
            raise RuntimeError(f"cannot open an MP4 (H.264) video writer for {self.path}: {exc}") from exc
        encoded = (size[0] + size[0] % 2, size[1] + size[1] % 2)
        encoder = imageio_ffmpeg.write_frames(
            str(self.path), encoded, fps=self.fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, ffmpeg_log_level="error",
            # crf 23 is x264's default quality; faststart lets a browser play while downloading.
            output_params=["-crf", "23", "-preset", "veryfast", "-movflags", "+faststart"])
        encoder.send(None)  # starts ffmpeg
        self._encoder = encoder
        self.size = size

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; ``ValueError`` if its shape, dtype or size is wrong."""
        if self._closed:
            raise ValueError(f"video {self.path} is closed")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape:
            raise ValueError(f"frame must be an (H, W, 3) uint8 RGB image, got {frame.shape} {frame.dtype}")
        size = (frame.shape[1], frame.shape[0])
        if self._encoder is None:
            self._open(size)
        elif size != self.size:
            raise ValueError(f"frame size {size[0]}x{size[1]} differs from the video's {self.size[0]}x{self.size[1]}")
        if size[0] % 2 or size[1] % 2:
            frame = np.pad(frame, ((0, size[1] % 2), (0, size[0] % 2), (0, 0)), mode="edge")
        try:
            self._encoder.send(np.ascontiguousarray(frame).tobytes())
        except OSError as exc:  # ffmpeg exited: disk full, file removed, ...
            raise RuntimeError(f"ffmpeg stopped writing {self.path}: {exc}") from exc
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (waits for ffmpeg); idempotent."""
        if self._encoder is not None:
            encoder, self._encoder = self._encoder, None
            encoder.close()
        self._closed = True

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) RGB or (H, W) grey uint8 image as PNG, creating parent directories."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be (H, W, 3) RGB or (H, W) uint8, got {image.shape} {image.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise RuntimeError(f"cannot write PNG {path}")
    return path
