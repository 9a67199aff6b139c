"""The governing traffic light's state from the front camera, read where the map says the light is.

Three parts, used alike at training and at run time:

- :class:`RouteLightLocator` (map and GNSS, no learning). At ``reset`` it takes
  the mission's route junction entries and the light that governs each (the
  light of the lane before the entry: the ground truth's rule,
  ``sim.env.driving.DrivingEnv.route_light``). Per frame it follows the ego
  along the route from the GNSS fix and the compass (a speedometer-predicted
  arc length corrected toward the nearest route point, so 2 m of GNSS noise
  moves it by well under a metre; never more than a metre backwards) and
  returns the next light ahead, its route distance to the stop line and the
  pose the camera is projected from (on the route at that arc length, shifted
  by the smoothed lateral offset, heading from the compass).
- :func:`light_window` (geometry). The lit heads of a light are near its
  signal location (the pole) and on an arm from the pole across the lanes:
  in the embedded towns the heads sit within a metre of the pole along the
  road, between the pole and the ego's lane across it, 2.5-5.1 m above the
  road; real CARLA towns hang heads on arms over the road as well. The
  window is that box (with margins), projected with the camera's intrinsics
  and mount; the crop around it keeps a fixed 2:1 aspect and is resized to a
  small patch (areas off the image are black). The share of the box inside
  the image says whether the camera can see the light at all: at the stop
  line (4-5 m) it is above the 90 degree camera's view.
- :class:`LightNet`, a tiny CNN (about 50k parameters, under a millisecond)
  scoring the patch red / yellow / green from its lit (saturated, bright)
  pixels; with ``none_class``, a fourth class says the patch holds no lit
  head at all (sky, walls, the arm from behind: a window whose heads are out
  of the image), which the reader takes as "not seen". Without it, a patch of
  blue sky was read red with 0.98.

:class:`LightReader` puts them together for the perception stage, with a
memory: when the light is out of view, or the patch is not read with
confidence, the last confident reading of the same light holds; a light never
read and not in view is reported red, the safe guess. A held state changes only
after ``confirm_frames`` consecutive confident readings of the new one, so a
single misread frame (a green crop read red for one tick) neither stops the car
nor, where the heads then leave the view, holds it for good. Beyond ``range_m``, with
no light ahead, without a GNSS fix or without the camera's image the
observation is "none".

The reader can read several cameras (``cameras``): the first whose window is
in view is cropped. By default that is the checkpoint's camera, then
``light_rgb`` where the frame has it: a wide camera at the rear of the roof
looking forward and up (``configs/sensors/default.yaml``), which sees the heads
while the ego waits at the stop line, where they are above or beside the front
camera and a held red would otherwise never turn green. A camera other than the
checkpoint's sees the heads' box from close by, partly behind or beside it, so
its window is :func:`clipped_window`: the share of points sampled in the box
that land in the image, the crop around them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from av_stack.messages import LightObservation, Mission, SensorCalibration, SensorFrame
from av_stack.perception.classical import gnss_to_world
from av_stack.perception.learned.geometry import mount_transform
from sim.api import TrafficLightState

__all__ = ["EXTRA_LIGHT_CAMERA", "LIGHT_STATES", "NONE_CLASS", "LightCameraError", "LightCheckpointError", "LightConfig",
           "LightNet", "LightReader", "LightTarget", "RouteLightLocator", "WindowConfig", "box_samples", "clipped_window",
           "light_net", "light_window", "load_light_checkpoint", "save_light_checkpoint"]

LIGHT_STATES = (TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN)
"""The classifier's classes, in order."""
NONE_CLASS = len(LIGHT_STATES)
"""The index of the "no lit head in the patch" class of a model with ``none_class``."""
FORMAT = "avsim.perception.light/1"
EXTRA_LIGHT_CAMERA = "light_rgb"
"""The default suite's camera for the light at the stop line; the reader adds it when the frame has it."""


# ---------------------------------------------------------------------------------------------- config
class WindowConfig(BaseModel):
    """Where the heads can be, relative to the light (see the module docstring): ``along_m`` either side of
    the signal location along the road; across it from the pole to the ego's lane (an arm reaches at most
    ``max_arm_m``) plus ``margin_m`` either side; ``low_m`` to ``high_m`` above the road at the stop line.
    ``min_visible``: the share of the box that must fall inside the image for the camera to see the light;
    ``min_visible_clipped``: the same for a camera other than the checkpoint's, whose window is clipped to the
    image (:func:`clipped_window`; None: ``min_visible``). From the rear of the roof at the stop line the box
    reaches behind that camera and beside it, while the heads themselves are well inside the image (0.47-0.54
    of the box in view on a Town02 stop); a lower share needs a model with ``none_class``, which tells a crop
    that missed the heads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    along_m: float = Field(1.5, ge=0.0)
    margin_m: float = Field(1.5, ge=0.0)
    max_arm_m: float = Field(8.0, gt=0.0)
    low_m: float = 1.8
    high_m: float = 5.8
    min_visible: float = Field(0.5, ge=0.0, le=1.0)
    min_visible_clipped: float | None = Field(None, ge=0.0, le=1.0)


class LightModelConfig(BaseModel):
    """The classifier: ``camera`` it reads, the patch size the crop is resized to, the first layer's width,
    the saturation and value (0-1) around which a pixel counts as lit (:class:`LightNet`), and ``none_class``:
    a fourth output for a patch with no lit head (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str = "front_rgb"
    patch_width: int = Field(96, ge=16)
    patch_height: int = Field(48, ge=8)
    width: int = Field(16, ge=4)
    lit_saturation: float = Field(0.5, ge=0.0, le=1.0)
    lit_value: float = Field(0.35, ge=0.0, le=1.0)
    none_class: bool = False


class LightTrainConfig(BaseModel):
    """Training (:mod:`av_stack.perception.learned.light_train`) on the datasets ``data`` and ``extra_data``
    (their train and val logs together): frames whose light is at most ``max_distance_m`` away along the
    route and in view; ``crops_per_frame`` crops each, the first from the GNSS pose, the others from a pose
    jittered by ``jitter_*`` (standard deviations). For a model with ``none_class``, the negatives (no lit head):
    each such frame's box raised by ``negative_lift_m`` (a range; crops wholly above the heads' box only), and
    every ``negative_every``-th frame with no light pole within ``negative_clear_m``, cropped at random."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = "data/perception"
    extra_data: tuple[str, ...] = ()
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    max_distance_m: float = Field(60.0, gt=0)
    crops_per_frame: int = Field(6, ge=1)
    jitter_along_m: float = Field(1.5, ge=0)
    jitter_lateral_m: float = Field(0.7, ge=0)
    jitter_yaw_deg: float = Field(1.5, ge=0)
    negative_lift_m: tuple[float, float] = (7.0, 12.0)
    negative_clear_m: float = Field(40.0, gt=0)
    negative_every: int = Field(4, ge=1)
    seed: int = 0

    @field_validator("negative_lift_m")
    @classmethod
    def _a_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= value[0] <= value[1]:
            raise ValueError(f"must be a range (low, high) with 0 <= low <= high, got {list(value)}")
        return value


class LightConfig(BaseModel):
    """One light config file (``configs/perception/light.yaml``): ``model``, ``window`` and ``train``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: LightModelConfig = LightModelConfig()
    window: WindowConfig = WindowConfig()
    train: LightTrainConfig = LightTrainConfig()


def load_light_config(path: str | Path | dict | None) -> LightConfig:
    """A validated :class:`LightConfig` from a YAML file (a path or a shipped name under configs/perception)
    or a dict; ``ConfigError`` naming the file and the key."""
    from sim.resources import load_model_config

    return load_model_config(path, LightConfig, "perception", "light config")


# ---------------------------------------------------------------------------------------------- locator
@dataclass(frozen=True)
class LightTarget:
    """The light governing the ego this frame: its index into the mission's signals, the route's junction
    entry it governs, the route distance to its stop line [m], and the pose (x, y, yaw) the camera is
    projected from."""

    light: int
    entry: int
    distance_m: float
    pose: tuple[float, float, float]


class RouteLightLocator:
    """Follows the ego along its route from GNSS and finds the next light ahead (module docstring).

    ``gain``: how far each fix pulls the speedometer-predicted arc length toward the measured one;
    ``lateral_gain``: the same for the smoothed offset from the route; ``search_m``: fixes are matched to the
    route points within this of the prediction."""

    def __init__(self, gain: float = 0.15, lateral_gain: float = 0.15, search_m: float = 15.0) -> None:
        self.gain, self.lateral_gain, self.search_m = gain, lateral_gain, search_m
        self.mission: Mission | None = None
        self.reset(None)

    def reset(self, mission: Mission | None) -> None:
        """Take the route and signals of ``mission`` (None: no route, so no light); forget the progress."""
        self.mission = mission
        self.s_m: float | None = None
        self.lateral_m = 0.0
        self._t: float | None = None
        if mission is None:
            self.entries = self.entry_light = self.entry_s = np.zeros(0, np.int64)
            return
        route, signals = mission.route, mission.signals
        entries = route.junction_entries.astype(np.int64)
        before = route.lane[np.maximum(entries - 1, 0)].astype(np.int64)
        lights = signals.lane_light[before] if len(entries) else np.zeros(0, np.int64)
        keep = lights >= 0
        self.entries, self.entry_light = entries[keep], lights[keep].astype(np.int64)
        self.entry_s = route.s_m[self.entries].astype(np.float64)
        self._route_z = _route_heights(mission)

    @property
    def index(self) -> int:
        """The route point nearest the current arc length (-1 before the first fix)."""
        if self.s_m is None or self.mission is None:
            return -1
        s = self.mission.route.s_m
        k = int(np.clip(np.searchsorted(s, self.s_m), 1, len(s) - 1))
        return k - 1 if self.s_m - s[k - 1] <= s[k] - self.s_m else k

    def update(self, pose: tuple[float, float, float] | None, t_s: float, speed_mps: float) -> LightTarget | None:
        """Advance with a GNSS pose (x, y, yaw; None: no fix, nothing changes) at time ``t_s`` with the
        speedometer's ``speed_mps``; the next light ahead, or None (no route, no fix, no light ahead)."""
        if self.mission is None or pose is None:
            return None
        route = self.mission.route
        x, y, yaw = pose
        dt = 0.0 if self._t is None else max(0.0, t_s - self._t)
        self._t = t_s
        speed = speed_mps if math.isfinite(speed_mps) else 0.0
        if self.s_m is None:
            lo, hi, predicted = 0, len(route.s_m), None
        else:
            predicted = self.s_m + max(speed, 0.0) * dt
            lo = int(np.searchsorted(route.s_m, predicted - self.search_m))
            hi = int(np.searchsorted(route.s_m, predicted + self.search_m)) + 1
        measured, lateral = _project_on_route(route, x, y, yaw, max(lo - 1, 0), min(hi, len(route.s_m)))
        if predicted is None:
            self.s_m, self.lateral_m = measured, lateral
        else:
            s = predicted + self.gain * (measured - predicted)
            self.s_m = float(np.clip(max(s, self.s_m - 1.0), 0.0, route.length_m))
            self.lateral_m += self.lateral_gain * (lateral - self.lateral_m)
        return self.target(yaw)

    def target(self, yaw: float) -> LightTarget | None:
        """The next light ahead of the current progress (the ego heading ``yaw``), or None."""
        if self.s_m is None or self.mission is None:
            return None
        ahead = np.flatnonzero(self.entries > self.index)
        if ahead.size == 0:
            return None
        k = int(ahead[0])
        route = self.mission.route
        cx, cy, ryaw = _route_point(route, self.s_m)
        normal = (-math.sin(ryaw), math.cos(ryaw))  # CARLA: y is to the right of x
        x, y = cx + self.lateral_m * normal[0], cy + self.lateral_m * normal[1]
        return LightTarget(int(self.entry_light[k]), int(self.entries[k]), float(self.entry_s[k] - self.s_m),
                           (x, y, yaw))

    def road_height(self, entry: int) -> float:
        """Height of the road at route point ``entry`` above the road under the ego now [m]."""
        return float(self._route_z[entry] - self._route_z[max(self.index, 0)])


def _route_point(route, s_m: float) -> tuple[float, float, float]:
    """(x, y, yaw) on the route at arc length ``s_m`` (linear between points)."""
    s = route.s_m
    k = int(np.clip(np.searchsorted(s, s_m) - 1, 0, len(s) - 2))
    span = max(float(s[k + 1] - s[k]), 1e-9)
    a = float(np.clip((s_m - s[k]) / span, 0.0, 1.0))
    x, y = (1 - a) * route.points_xy[k] + a * route.points_xy[k + 1]
    return float(x), float(y), float(route.yaw_rad[k])


def _project_on_route(route, x: float, y: float, yaw: float, lo: int, hi: int) -> tuple[float, float]:
    """(arc length, signed lateral offset) of (x, y) on the route points ``lo:hi``, preferring points whose
    heading is within 90 degrees of ``yaw`` (a route that passes a place twice, in two directions)."""
    pts = route.points_xy[lo:hi]
    d2 = (pts[:, 0] - x) ** 2 + (pts[:, 1] - y) ** 2
    facing = np.cos(route.yaw_rad[lo:hi] - yaw) > 0.0
    if facing.any():
        d2 = np.where(facing, d2, np.inf)
    k = lo + int(np.argmin(d2))
    ryaw = float(route.yaw_rad[k])
    dx, dy = x - route.points_xy[k, 0], y - route.points_xy[k, 1]
    along = dx * math.cos(ryaw) + dy * math.sin(ryaw)
    lateral = -dx * math.sin(ryaw) + dy * math.cos(ryaw)
    return float(np.clip(route.s_m[k] + along, 0.0, route.length_m)), float(lateral)


def _route_heights(mission: Mission) -> np.ndarray:
    """(M,) road height at each route point: the nearest sample of the point's own lane."""
    route, lanes = mission.route, mission.lanes
    z = np.zeros(len(route.s_m))
    for lane in np.unique(route.lane):
        rows = np.flatnonzero(route.lane == lane)
        points = lanes.lane_points(int(lane))
        if len(points) == 0:
            continue
        d2 = ((route.points_xy[rows, None, :] - points[None, :, :2]) ** 2).sum(-1)
        z[rows] = points[np.argmin(d2, axis=1), 2]
    return z


# ---------------------------------------------------------------------------------------------- window
def head_box(mission: Mission, target: LightTarget, window: WindowConfig, road_height_m: float = 0.0
             ) -> np.ndarray:
    """(8, 3) world-frame corners (x, y, z relative to the ego's road) of the box the light's heads can be
    in (:class:`WindowConfig`)."""
    route = mission.route
    stop = route.points_xy[target.entry]
    ryaw = float(route.yaw_rad[max(target.entry - 1, 0)])
    forward = np.array([math.cos(ryaw), math.sin(ryaw)])
    right = np.array([-forward[1], forward[0]])
    pole = mission.signals.location_xyz[target.light, :2]
    along = float((pole - stop) @ forward)
    across = float((pole - stop) @ right)
    # from the pole toward the lane (the arm), at most max_arm_m, never past the lane's centre
    reach = float(np.clip(-across, -window.max_arm_m, window.max_arm_m))
    lo, hi = sorted((across, across + reach))
    lo, hi = lo - window.margin_m, hi + window.margin_m
    corners = []
    for a in (along - window.along_m, along + window.along_m):
        for c in (lo, hi):
            xy = stop + forward * a + right * c
            for z in (window.low_m, window.high_m):
                corners.append((xy[0], xy[1], z + road_height_m))
    return np.array(corners)


def project(points_ego: np.ndarray, calibration: SensorCalibration) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (u, v) (N, 2) of ego-frame points (N, 3) in a camera, and their depth along its axis (N,)."""
    rotation, translation = mount_transform(calibration.mount)
    sensor = (np.asarray(points_ego, dtype=np.float64) - translation) @ rotation  # R^T (p - t), row-wise
    depth = sensor[:, 0]
    safe = np.where(depth > 1e-6, depth, 1e-6)
    k = calibration.intrinsics
    u = k[0, 0] * sensor[:, 1] / safe + k[0, 2]
    v = -k[1, 1] * sensor[:, 2] / safe + k[1, 2]
    return np.stack([u, v], axis=1), depth


def world_to_ego(points: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """World (x, y, z-relative) points (N, 3) into the ego frame of ``pose`` (x, y, yaw)."""
    x, y, yaw = pose
    cos, sin = math.cos(yaw), math.sin(yaw)
    d = np.asarray(points, dtype=np.float64)
    dx, dy = d[:, 0] - x, d[:, 1] - y
    return np.column_stack([dx * cos + dy * sin, -dx * sin + dy * cos, d[:, 2]])


@dataclass(frozen=True)
class Window:
    """A crop box in the image (u0, v0, u1, v1) with a 2:1 aspect, and the share of the heads' box that the
    camera sees (0: none, behind it or off the image)."""

    box: tuple[float, float, float, float]
    visible: float


def light_window(corners_ego: np.ndarray, calibration: SensorCalibration, aspect: float = 2.0) -> Window | None:
    """The crop around the projection of the heads' box (ego-frame corners (8, 3)); None when part of the box
    is behind the camera (the ego is at or past the light)."""
    pixels, depth = project(corners_ego, calibration)
    if (depth <= 0.5).any():
        return None
    u0, v0 = pixels.min(axis=0)
    u1, v1 = pixels.max(axis=0)
    width, height = calibration.image_size
    inside_w = max(0.0, min(u1, width) - max(u0, 0.0))
    inside_h = max(0.0, min(v1, height) - max(v0, 0.0))
    area = max((u1 - u0) * (v1 - v0), 1e-9)
    w = max(u1 - u0, aspect * (v1 - v0))
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    box = (cu - w / 2, cv - w / aspect / 2, cu + w / 2, cv + w / aspect / 2)
    return Window(box, float(inside_w * inside_h / area))


def box_samples(corners: np.ndarray, n: int) -> np.ndarray:
    """(n^3, 3) points on a regular grid inside the box of ``corners`` (8, 3) in :func:`head_box`'s order."""
    t = np.linspace(0.0, 1.0, n)
    a, c, z = (g.ravel()[:, None] for g in np.meshgrid(t, t, t, indexing="ij"))
    k = corners.reshape(2, 2, 2, 3)

    def lerp(p: np.ndarray, q: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (1.0 - w) * p + w * q

    return lerp(lerp(lerp(k[0, 0, 0], k[0, 0, 1], z), lerp(k[0, 1, 0], k[0, 1, 1], z), c),
                lerp(lerp(k[1, 0, 0], k[1, 0, 1], z), lerp(k[1, 1, 0], k[1, 1, 1], z), c), a)


def clipped_window(corners_ego: np.ndarray, calibration: SensorCalibration, aspect: float = 2.0,
                   samples: int = 6) -> Window | None:
    """The crop of the heads' box (ego-frame corners (8, 3)) for a camera that may be inside, beside or under
    the box: ``visible`` is the share of ``samples``^3 points spread through the box that are at least half a
    metre in front of the camera and inside the image, the crop (2:1, like :func:`light_window`'s) covers
    those points; None when no point is in the image."""
    points = box_samples(np.asarray(corners_ego, dtype=np.float64), samples)
    pixels, depth = project(points, calibration)
    width, height = calibration.image_size
    seen = (depth > 0.5) & (pixels[:, 0] >= 0) & (pixels[:, 0] <= width) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= height)
    if not seen.any():
        return None
    front = pixels[depth > 0.5]  # off-image points clip to the edge: the crop reaches as far as the box does
    u0, v0 = np.clip(front.min(axis=0), 0.0, (width, height))
    u1, v1 = np.clip(front.max(axis=0), 0.0, (width, height))
    w = max(u1 - u0, aspect * (v1 - v0), 1.0)
    cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
    return Window((cu - w / 2, cv - w / aspect / 2, cu + w / 2, cv + w / aspect / 2), float(seen.mean()))


def crop_patch(image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 patch of ``image`` in ``box`` (u0, v0, u1, v1; may reach off the image: black there),
    resized to ``size`` (w, h) -- one affine warp, so the cost does not depend on the box."""
    u0, v0, u1, v1 = box
    w, h = size
    sx, sy = (u1 - u0) / w, (v1 - v0) / h
    # patch pixel (i, j) centre <- image point (u0 + (j + 0.5) sx - 0.5, v0 + (i + 0.5) sy - 0.5)
    matrix = np.array([[sx, 0.0, u0 + 0.5 * sx - 0.5], [0.0, sy, v0 + 0.5 * sy - 0.5]])
    if sx > 1.5 or sy > 1.5:  # shrinking: average first, as INTER_AREA would
        factor = max(1, int(min(sx, sy)))
        if factor > 1:
            small = cv2.resize(image, (image.shape[1] // factor, image.shape[0] // factor),
                               interpolation=cv2.INTER_AREA)
            matrix = matrix / factor
            matrix[:, 2] += 0.5 / factor - 0.5
            image = small
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ---------------------------------------------------------------------------------------------- classifier
class LightNet(nn.Module):
    """Patch (B, 3, h, w) uint8 or float in [0, 255] -> (B, classes) logits (red, yellow, green, and with four
    classes: no lit head).

    The network sees the lit pixels only: each pixel is weighted by a soft gate on its saturation and value
    (``lit_saturation``, ``lit_value``), so walls, trees and sky are near black and a lamp stands out; on
    the plain image the same network learnt the towns' backgrounds (0.57 on a held-out training town against
    0.92 gated). Four 3x3 conv blocks (three halve the size), then global max and mean pooling: a lit lamp is
    a few pixels anywhere in the patch."""

    def __init__(self, width: int = 16, lit_saturation: float = 0.5, lit_value: float = 0.35,
                 classes: int = len(LIGHT_STATES)) -> None:
        super().__init__()
        w = width
        self.lit_saturation, self.lit_value = lit_saturation, lit_value

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(block(4, w), nn.MaxPool2d(2), block(w, 2 * w), nn.MaxPool2d(2),
                                      block(2 * w, 3 * w), nn.MaxPool2d(2), block(3 * w, 4 * w))
        self.head = nn.Linear(8 * w, classes)

    def lit(self, patch: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w): the lit-gated colour and the gate itself, for a patch in [0, 255]."""
        x = patch.float() / 255.0
        top, bottom = x.amax(1, keepdim=True), x.amin(1, keepdim=True)
        saturation = (top - bottom) / (top + 1e-3)
        gate = torch.sigmoid((saturation - self.lit_saturation) * 20.0) * torch.sigmoid((top - self.lit_value) * 20.0)
        return torch.cat([x * gate, gate], dim=1) * 2.0 - 0.2

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        f = self.features(self.lit(patch))
        return self.head(torch.cat([f.amax(dim=(2, 3)), f.mean(dim=(2, 3))], dim=1))


def light_net(config: LightConfig) -> LightNet:
    """An untrained :class:`LightNet` of ``config``'s model section."""
    m = config.model
    return LightNet(m.width, m.lit_saturation, m.lit_value, len(LIGHT_STATES) + int(m.none_class))


class LightCheckpointError(RuntimeError):
    """A light checkpoint that is missing, of another kind, or does not fit its model."""


def save_light_checkpoint(path: str | Path, model: LightNet, config: LightConfig,
                          state: dict[str, Any] | None = None) -> None:
    """Write ``path`` atomically (a temporary file renamed): the weights, the config, the training state."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": config.model_dump(mode="json"), "model": model.state_dict(),
               "state": state or {}}
    partial = path.with_name(path.name + ".part")
    torch.save(payload, partial)
    partial.replace(path)


def load_light_checkpoint(path: str | Path) -> tuple[LightNet, LightConfig, dict[str, Any]]:
    """(model in eval mode, config, training state) of a light checkpoint; :class:`LightCheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise LightCheckpointError(f"no light checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several kinds for a damaged file
        raise LightCheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise LightCheckpointError(f"{path} is not a traffic-light checkpoint ({FORMAT})")
    config = LightConfig.model_validate(payload["config"])
    model = light_net(config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise LightCheckpointError(f"{path}: the weights do not fit the model of its config: {exc}") from None
    model.eval()
    return model, config, payload.get("state", {})


# ---------------------------------------------------------------------------------------------- reader
def frame_pose(frame: SensorFrame) -> tuple[float, float, float] | None:
    """World (x, y, yaw) from the frame's GNSS fix and compass (None when either is missing)."""
    return gnss_to_world(frame.ego.gnss, frame.ego.compass_rad)


@dataclass(frozen=True)
class LightView:
    """What the locator and the window give for one frame: the target light (None: none ahead), its crop
    (None: out of view) with the share of its heads' box in the image, and the camera it is in (the first of
    the reader's cameras whose window is in view, else the first camera)."""

    target: LightTarget | None
    window: Window | None
    camera: str | None = None


class LightCameraError(ValueError):
    """A light reader's ``cameras`` option that is empty, repeats a name, or names no camera of the frame."""


class LightReader:
    """The governing light from a frame (module docstring): locator, window, classifier and memory.

    ``range_m``: lights farther along the route are "none"; ``min_score``: a reading at least this confident
    counts; ``confirm_frames``: a held state is replaced after this many consecutive confident readings of
    another (1: at once; a light's first reading is taken at once; 2, the default, filters the single-frame
    misreads seen in Town02 at the cost of one frame's delay at each change); ``unseen``: what a light in range that was never read and is not in view is taken
    for (``red``: stop, the safe guess; ``none``). ``cameras``: the cameras tried in order, the first whose
    window is in view is read; None: the checkpoint's camera, then :data:`EXTRA_LIGHT_CAMERA` on frames that
    have it (a frame without it is read as by the checkpoint's camera alone). A camera after the first is
    read only while the light is nearer than ``range_m`` times its focal length over the first camera's (a
    lamp as many pixels wide as in the first camera at ``range_m``: 15 m for ``light_rgb``; farther, its 2-3
    misread frames of a Town02 dataset were red read as green). A camera named explicitly must be a camera
    of every frame (:class:`LightCameraError` otherwise)."""

    def __init__(self, model: LightNet, config: LightConfig, range_m: float = 40.0, min_score: float = 0.7,
                 unseen: Literal["red", "none"] = "red", cameras: tuple[str, ...] | None = None,
                 confirm_frames: int = 2) -> None:
        if confirm_frames < 1:
            raise ValueError(f"confirm_frames must be at least 1, got {confirm_frames}")
        self.model, self.config = model.eval(), config
        self.range_m, self.min_score, self.unseen = range_m, min_score, unseen
        self.confirm_frames = confirm_frames
        if cameras is not None:
            cameras = tuple(cameras)
            if not cameras or any(not isinstance(c, str) or not c for c in cameras) or len(set(cameras)) < len(cameras):
                raise LightCameraError(f"light cameras must be distinct camera names, at least one: got {cameras!r}")
        self.cameras = cameras
        self.locator = RouteLightLocator()
        self._memory: dict[tuple[int, int], tuple[TrafficLightState, float]] = {}
        self._pending: dict[tuple[int, int], tuple[TrafficLightState, int]] = {}  # a new state and its streak
        self.source = "none"  # how the last observation came about: none, read, held or unseen (for scoring)
        self.camera: str | None = None  # the camera of the last reading (source "read")

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any) -> LightReader:
        """A reader with the classifier of a light checkpoint, prepared for inference: batch norms folded,
        channels-last weights (0.83 ms per patch on one thread against 1.07: the same outputs)."""
        from av_stack.perception.learned.model import fold_batch_norms

        model, config, _ = load_light_checkpoint(path)
        return cls(fold_batch_norms(model).to(memory_format=torch.channels_last), config, **options)

    def reset(self, mission: Mission | None) -> None:
        """A new route: take its mission, forget the readings."""
        self.locator.reset(mission)
        self._memory.clear()
        self._pending.clear()

    def frame_cameras(self, frame: SensorFrame) -> tuple[str, ...]:
        """The cameras tried on ``frame``, in order (the ``cameras`` option; module docstring)."""
        if self.cameras is None:
            own = self.config.model.camera
            extra = frame.calibration.get(EXTRA_LIGHT_CAMERA)
            if own != EXTRA_LIGHT_CAMERA and extra is not None and extra.intrinsics is not None:
                return own, EXTRA_LIGHT_CAMERA
            return (own,)
        bad = [c for c in self.cameras if c not in frame.calibration or frame.calibration[c].intrinsics is None]
        if bad:
            cameras = sorted(n for n, c in frame.calibration.items() if c.intrinsics is not None)
            raise LightCameraError(f"light camera {bad[0]!r} is not a camera of the frame (its cameras: "
                                   f"{', '.join(cameras) or 'none'})")
        return self.cameras

    def view(self, frame: SensorFrame, pose: tuple[float, float, float] | None = None) -> LightView:
        """Advance the locator with ``frame`` (its GNSS pose unless ``pose`` is given) and find the window: in
        the first camera that sees it, else the first camera's (out of view or None)."""
        cameras = self.frame_cameras(frame)
        pose = frame_pose(frame) if pose is None else pose
        target = self.locator.update(pose, frame.timestamp_s, frame.ego.speed_mps)
        if target is None:
            return LightView(target, None, cameras[0])
        first: LightView | None = None
        own = frame.calibration.get(cameras[0])
        for k, name in enumerate(cameras):
            calibration = frame.calibration.get(name)
            if calibration is None or calibration.intrinsics is None or (k > 0 and name not in frame.data):
                window = None
            elif k > 0 and own is not None and own.intrinsics is not None and target.distance_m > (
                    self.range_m * calibration.intrinsics[0, 0] / own.intrinsics[0, 0]):
                window = None  # a lamp there is smaller in this camera than in the first at range_m: unreadable
            else:
                window = self.window(target, calibration)
            if self.in_view(window, name):
                return LightView(target, window, name)
            first = first or LightView(target, window, name)
        return first

    def in_view(self, window: Window | None, camera: str | None) -> bool:
        """Whether ``window`` (of ``camera``) shows enough of the heads' box to be read (:class:`WindowConfig`)."""
        if window is None:
            return False
        w = self.config.window
        clipped = camera != self.config.model.camera and w.min_visible_clipped is not None
        return window.visible >= (w.min_visible_clipped if clipped else w.min_visible)

    def window(self, target: LightTarget, calibration: SensorCalibration,
               pose: tuple[float, float, float] | None = None, lift_m: float = 0.0) -> Window | None:
        """The crop of ``target``'s heads seen from ``pose`` (default the target's own): the full box's
        projection in the checkpoint's camera, :func:`clipped_window` in any other. ``lift_m`` raises the box
        (training crops above the heads, with no lamp in them)."""
        corners = head_box(self.locator.mission, target, self.config.window,
                           self.locator.road_height(target.entry) + lift_m)
        ego = world_to_ego(corners, pose or target.pose)
        if calibration.name == self.config.model.camera:
            return light_window(ego, calibration)
        return clipped_window(ego, calibration)

    def patch(self, image: np.ndarray, window: Window) -> np.ndarray:
        """(h, w, 3) uint8 patch of the window."""
        m = self.config.model
        return crop_patch(image, window.box, (m.patch_width, m.patch_height))

    @torch.no_grad()
    def classify(self, patch: np.ndarray) -> np.ndarray:
        """(3,) probabilities (red, yellow, green; (4,) with the no-lit-head class) of one patch, on one torch thread: the network is too
        small to share, and with two threads on a busy 2-core machine one patch took 40-60 ms, not 2."""
        x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return torch.softmax(self.model(x)[0], dim=0).numpy()
        finally:
            torch.set_num_threads(threads)

    def __call__(self, frame: SensorFrame) -> LightObservation:
        """The governing light of ``frame``."""
        view = self.view(frame)
        target = view.target
        image = frame.data.get(view.camera)
        self.source = "none"
        if (target is None or image is None or not math.isfinite(target.distance_m)
                or target.distance_m > self.range_m):
            return LightObservation(None, math.inf, 1.0)  # no fix, no camera, or no light near enough
        distance = max(target.distance_m, 0.0)
        key = (target.light, target.entry)
        if self.in_view(view.window, view.camera):
            p = self.classify(self.patch(np.asarray(image), view.window))
            k = int(p.argmax())
            lit = k != NONE_CLASS  # the none class: the crop missed the heads, as if out of view
            if lit and p[k] >= self.min_score:
                if self._confirmed(key, LIGHT_STATES[k], float(p[k])):
                    self.source, self.camera = "read", view.camera
                    return LightObservation(LIGHT_STATES[k], distance, float(p[k]))
            elif lit and key not in self._memory:
                self.source, self.camera = "read", view.camera  # an unsure reading beats none at all
                return LightObservation(LIGHT_STATES[k], distance, float(p[k]))
            else:
                self._pending.pop(key, None)  # a crop without a head or an unsure reading breaks a streak
        if key in self._memory:
            state, score = self._memory[key]
            self.source = "held"
            return LightObservation(state, distance, score)
        if self.unseen == "red":
            self.source = "unseen"
            return LightObservation(TrafficLightState.RED, distance, 0.5)
        return LightObservation(None, math.inf, 1.0)

    def _confirmed(self, key: tuple[int, int], state: TrafficLightState, score: float) -> bool:
        """Take a confident reading of ``state`` into the memory of light ``key`` if it agrees with it, is the
        light's first, or is the ``confirm_frames``-th in a row of a new state; whether it was taken."""
        held = self._memory.get(key)
        if held is not None and held[0] != state:
            pending, streak = self._pending.get(key, (state, 0))
            streak = streak + 1 if pending == state else 1
            if streak < self.confirm_frames:
                self._pending[key] = (state, streak)
                return False
        self._memory[key] = (state, score)
        self._pending.pop(key, None)
        return True
