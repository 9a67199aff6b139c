"""The closed-loop run's video: the front camera, the ground-truth BEV and the stack's BEV side by side.

One video frame (:func:`compose_frame`) shows, left to right:

- the camera (``SensorFrame.data[camera]``, scaled to the panel height;
  left out when the run names no camera);
- the ground-truth BEV (``SensorFrame.privileged_bev``);
- the stack's BEV (``PerceptionOutput.bev``), with the detections' boxes;

both BEVs colourised the same way (:func:`colorize_bev`, probabilities
blended channel by channel, so a confident prediction looks like the ground
truth) and both with the plan's trajectory (world frame, turned into each
panel's ego frame). A strip below shows the control (throttle, brake and
steer bars, reverse), the speed, the route id and the simulated time.
Drawing is OpenCV; :class:`StackVideo` writes every ``every``-th frame to an
H.264 MP4 (:class:`sim.render.VideoWriter`) and stops recording after
``max_frames``.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from av_stack.messages import BevSpec, Detections, SensorFrame
from sim.render import VideoWriter
from sim.transforms import box_corners, world_to_ego

STRIP_PX = 44
"""Height of the status strip under the panels."""

_BACKGROUND = np.array([28, 28, 32], dtype=np.float32)
_TEXT = (235, 235, 235)
_PLAN = (0, 230, 255)
_BOX = (255, 80, 200)
_EGO = (255, 255, 255)


def _channel_color(name: str) -> tuple[int, int, int] | None:
    """RGB of a BEV channel by name (history channels fade with age); None: not drawn."""
    fixed = {"road": (82, 82, 88), "route": (40, 90, 150), "lane_broken": (170, 170, 170),
             "lane_solid": (235, 235, 235), "light_red": (240, 40, 40), "light_yellow": (250, 210, 30),
             "light_green": (40, 210, 70), "stop_sign": (250, 120, 0)}
    if name in fixed:
        return fixed[name]
    for prefix, color in (("vehicles_t", (60, 130, 255)), ("pedestrians_t", (255, 110, 240))):
        if name.startswith(prefix):
            age = int(name[len(prefix):] or 0)
            fade = 1.0 if age == 0 else 0.45 / (1.0 + age / 10.0)
            return tuple(int(round(c * fade + _BACKGROUND[i] * (1.0 - fade))) for i, c in enumerate(color))
    return None


def _draw_order(channels: tuple[str, ...]) -> list[int]:
    """Channel indices in painting order: old history first so that current boxes end up on top."""
    def key(index: int) -> tuple[int, int]:
        name = channels[index]
        if name.startswith(("vehicles_t", "pedestrians_t")):
            return (1, -int(name.rsplit("_t", 1)[1]))
        return (0 if name in ("road", "route", "lane_broken", "lane_solid") else 2, index)
    return sorted(range(len(channels)), key=key)


def colorize_bev(bev: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """An (H, W, 3) uint8 RGB picture of a (C, H, W) BEV: masks (uint8 0 / 255) or probabilities (float in
    [0, 1]); each channel's colour is blended in with its value as the weight, later channels on top."""
    bev = np.asarray(bev)
    if bev.ndim != 3 or bev.shape[0] != len(channels):
        raise ValueError(f"bev must have shape ({len(channels)}, H, W) for channels {channels}, got {bev.shape}")
    height, width = bev.shape[1:]
    flat = bev.reshape(len(channels), -1)
    scale = np.float32(1.0 / 255.0) if bev.dtype == np.uint8 else np.float32(1.0)
    image = np.empty((height * width, 3), dtype=np.float32)
    image[:] = _BACKGROUND
    for index in _draw_order(channels):
        color = _channel_color(channels[index])
        if color is None:
            continue
        pixels = np.flatnonzero(flat[index])  # only where the channel is on: most are sparse
        if pixels.size == 0:
            continue
        weight = flat[index, pixels].astype(np.float32)[:, None] * scale
        image[pixels] += weight * (np.asarray(color, dtype=np.float32) - image[pixels])
    return np.clip(image + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)


def panel_height(camera_size: tuple[int, int] | None, bev_size_px: int) -> int:
    """Height of the panels: the camera's or the BEV's, whichever is larger (even, for H.264)."""
    height = max(camera_size[1] if camera_size else 0, bev_size_px)
    return height + height % 2


def frame_size(camera_size: tuple[int, int] | None, bev_size_px: int) -> tuple[int, int]:
    """(width, height) of a video frame for a camera of ``camera_size`` (width, height; None: no camera
    panel) and BEVs of ``bev_size_px``: the panels side by side above the status strip."""
    height = panel_height(camera_size, bev_size_px)
    camera_width = 0
    if camera_size:
        camera_width = int(round(camera_size[0] * height / camera_size[1]))
        camera_width += camera_width % 2
    return camera_width + 2 * height, height + STRIP_PX


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.45) -> None:
    x, y = origin
    cv2.putText(image, text, (x + 1, y + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT, 1, cv2.LINE_AA)


def _bev_panel(bev: np.ndarray | None, spec: BevSpec, size: int, title: str, plan_ego: np.ndarray | None,
               detections: Detections | None, ego_extent_m: tuple[float, ...] | None) -> np.ndarray:
    """One BEV panel scaled to ``size`` with the ego's box outline, the plan (ego-frame points) and the
    detection boxes drawn on it."""
    if bev is None:
        panel = np.empty((size, size, 3), dtype=np.uint8)
        panel[:] = _BACKGROUND.astype(np.uint8)
        _label(panel, "no BEV", (size // 2 - 30, size // 2))
    else:
        panel = cv2.resize(colorize_bev(bev, spec.channels), (size, size), interpolation=cv2.INTER_NEAREST)
    scale = size / spec.config.size_px
    shift = 3  # cv2 fixed point: 1/8 pixel
    if detections is not None and len(detections):
        corners = box_corners(detections.center_m[:, :2], detections.yaw_rad, detections.extent_m[:, :2])
        pixels = spec.ego_to_pixel(corners.reshape(-1, 2)).reshape(-1, 4, 2) * scale
        cv2.polylines(panel, list(np.round(pixels * (1 << shift)).astype(np.int32)), True, _BOX, 1, cv2.LINE_AA,
                      shift)
    if ego_extent_m is not None:
        corners = box_corners(np.zeros((1, 2)), np.zeros(1), np.asarray(ego_extent_m[:2], dtype=float)[None])
        pixels = spec.ego_to_pixel(corners.reshape(-1, 2)) * scale
        cv2.polylines(panel, [np.round(pixels * (1 << shift)).astype(np.int32)], True, _EGO, 1, cv2.LINE_AA, shift)
    if plan_ego is not None and len(plan_ego) >= 2:
        pixels = spec.ego_to_pixel(plan_ego) * scale
        cv2.polylines(panel, [np.round(pixels * (1 << shift)).astype(np.int32)], False, _PLAN, 2, cv2.LINE_AA,
                      shift)
    _label(panel, title, (6, 16))
    return panel


def _bar(image: np.ndarray, x: int, y: int, width: int, value: float, color: tuple[int, int, int],
         label: str, centred: bool = False) -> None:
    """A horizontal bar of ``value`` (0..1, or -1..1 when ``centred``) with its label on the left."""
    _label(image, label, (x, y + 10), 0.4)
    x0, x1 = x + 52, x + 52 + width
    cv2.rectangle(image, (x0, y), (x1, y + 12), (70, 70, 76), -1)
    if centred:
        mid = (x0 + x1) // 2
        end = int(round(mid + value * width / 2))
        cv2.rectangle(image, (min(mid, end), y), (max(mid, end), y + 12), color, -1)
        cv2.line(image, (mid, y - 2), (mid, y + 14), _TEXT, 1)
    else:
        cv2.rectangle(image, (x0, y), (x0 + int(round(np.clip(value, 0, 1) * width)), y + 12), color, -1)


def compose_frame(frame: SensorFrame, outputs, camera: str | None, route_id: str = "",
                  camera_size: tuple[int, int] | None = None,
                  ego_extent_m: tuple[float, ...] | None = None) -> np.ndarray:
    """One (H, W, 3) uint8 RGB video frame of a tick (see the module docstring); ``outputs`` is the tick's
    :class:`~av_stack.stack.StackOutputs`. ``camera_size`` fixes the layout (default: the camera
    image's own size); its size is :func:`frame_size`. ``ego_extent_m``: the ego's half extents
    (:class:`~av_stack.messages.VehicleGeometry`), outlined on the BEVs."""
    spec = frame.bev_spec
    image_cam = frame.sensor(camera) if camera else None
    if image_cam is not None and camera_size is None:
        camera_size = (int(image_cam.shape[1]), int(image_cam.shape[0]))
    width, height = frame_size(camera_size if camera else None, spec.config.size_px)
    size = panel_height(camera_size if camera else None, spec.config.size_px)
    panels = []
    if camera:
        camera_width = width - 2 * size
        panel = cv2.resize(np.ascontiguousarray(image_cam[..., :3]), (camera_width, size),
                           interpolation=cv2.INTER_AREA)
        _label(panel, camera, (6, 16))
        panels.append(panel)
    plan_xy = outputs.plan.trajectory_xy
    truth = frame.ground_truth
    ego = getattr(truth, "ego", None)
    truth_plan = (world_to_ego(plan_xy, (ego.x_m, ego.y_m), ego.yaw_rad) if ego is not None
                  else world_to_ego(plan_xy, outputs.pose.xy, outputs.pose.yaw_rad))
    stack_plan = world_to_ego(plan_xy, outputs.pose.xy, outputs.pose.yaw_rad)
    panels.append(_bev_panel(frame.privileged_bev, spec, size, "ground truth", truth_plan, None, ego_extent_m))
    perception = outputs.perception
    panels.append(_bev_panel(perception.bev, perception.bev_spec, size, "stack", stack_plan,
                             perception.detections, ego_extent_m))
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = (16, 16, 20)
    image[:size] = np.concatenate(panels, axis=1)
    _status_strip(image[size:], frame, outputs, route_id)
    return image


def _status_strip(strip: np.ndarray, frame: SensorFrame, outputs, route_id: str) -> None:
    """Control bars, speed, route, time."""
    control = outputs.control
    _bar(strip, 8, 6, 90, control.throttle, (60, 200, 90), "throttle")
    _bar(strip, 8, 24, 90, control.brake, (230, 60, 60), "brake")
    _bar(strip, 170, 6, 90, control.steer, (80, 150, 255), "steer", centred=True)
    speed = frame.ego.speed_mps
    gear = "R" if control.reverse else "D"
    _label(strip, f"{speed * 3.6:5.1f} km/h  {gear}", (172, 35), 0.45)
    tail = f"{route_id}  t={frame.timestamp_s:6.1f} s  frame {frame.frame}"
    _label(strip, tail, (330, 20), 0.45)
    light = outputs.perception.light
    if light.state is not None and math.isfinite(light.distance_m):
        _label(strip, f"light {light.state.name.lower()} in {light.distance_m:.0f} m", (330, 37), 0.4)


class StackVideo:
    """Writes the run's video: every ``every``-th tick's :func:`compose_frame` to ``path`` at ``fps``,
    at most ``max_frames`` frames (later ticks are not recorded). The frame size (:attr:`size`,
    :func:`frame_size`) is fixed by the BEV grid and the camera's ``camera_size`` (width, height)."""

    def __init__(self, path: str | Path, bev_spec: BevSpec, camera: str | None = None,
                 camera_size: tuple[int, int] | None = None, fps: float = 20.0, every: int = 1,
                 max_frames: int | None = None) -> None:
        if camera and not camera_size:
            raise ValueError(f"camera {camera!r} needs its image size (width, height)")
        self.path = Path(path)
        self.camera = camera
        self.camera_size = camera_size if camera else None
        self.size = frame_size(self.camera_size, bev_spec.config.size_px)
        self.every = max(1, int(every))
        self.max_frames = max_frames
        self._ticks = 0
        self._ego_extent_m: tuple[float, ...] | None = None
        self._writer = VideoWriter(self.path, fps=fps, size=self.size)

    @property
    def frames_written(self) -> int:
        """Frames in the file so far."""
        return self._writer.frames_written

    @property
    def full(self) -> bool:
        """True once ``max_frames`` were written."""
        return self.max_frames is not None and self.frames_written >= self.max_frames

    def add(self, frame: SensorFrame, outputs, route_id: str) -> bool:
        """Record this tick if it is one of every ``every`` and the video is not full; True if it was."""
        record = self._ticks % self.every == 0 and not self.full
        self._ticks += 1
        if record:
            self._writer.write(compose_frame(frame, outputs, self.camera, route_id, self.camera_size,
                                             self._ego_extent_m))
        return record

    def new_route(self, ego_extent_m: tuple[float, ...] | None = None) -> None:
        """Start the tick count again, so that each route's first tick is recorded; ``ego_extent_m``: the
        ego's half extents for its outline on the BEVs."""
        self._ticks = 0
        self._ego_extent_m = ego_extent_m

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()
