"""The learned perception stage (``perception: {name: learned, checkpoint: PATH}``): the fusion network on
the frame's camera, LiDAR and radar, decoded into the stack's :class:`PerceptionOutput`.

The BEV it returns is on the frame's grid, in the env's channel order: the
predicted channels (road, lane markings, vehicles and pedestrians now) as
probabilities; the history channels (``vehicles_t{k}``, ``pedestrians_t{k}``)
from its own earlier predictions, carried into the current ego frame by the
ego's motion (speedometer and gyroscope, dead reckoning); the channels
perception cannot see (the route, the light and stop-sign stop lines) are
zero: they come from the map at the localization estimate.

The governing light is read by :mod:`~av_stack.perception.learned.light` (the
camera cropped where the map puts the light, a small classifier, the route
distance from GNSS), whatever inputs the fusion network takes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace
from typing import Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from av_stack.messages import Detections, LightObservation, Mission, PerceptionOutput, SensorFrame
from av_stack.perception.drawing import draw_boxes
from av_stack.perception.refine import refine_centres
from av_stack.perception.tracking import CentreTracker
from av_stack.perception.learned.checkpoint import load_checkpoint
from av_stack.perception.learned.config import LIGHT_CLASSES, SEG_CHANNELS
from av_stack.perception.learned.features import InputBuilder
from av_stack.perception.learned.light import LightReader
from av_stack.perception.learned.geometry import network_grid
from av_stack.perception.learned.model import FusionNet, fold_batch_norms
from av_stack.perception.learned.targets import LIGHT_STATES, decode_detections
from av_stack.registry import StageParams
from av_stack.shipped import shipped_file
from sim.api import ActorKind

DEFAULT_CHECKPOINT = "checkpoints/perception/bev_wide.pt"
DEFAULT_LIGHT_CHECKPOINT = "checkpoints/perception/light_rgb_v2.pt"


class LearnedPerception:
    """See the module docstring."""

    class Config(StageParams):
        """``checkpoint``: a file written by ``avsim train perception``; ``score_threshold``: detections below
        it are dropped; ``threads``: torch CPU threads (0: torch's default); ``light_checkpoint``: the
        traffic-light classifier (:mod:`~av_stack.perception.learned.light`: the camera cropped where the map
        puts the light; None: the fusion network's pooled light head, when it has one); ``light_range_m``: a
        light farther along the route is reported as none; ``vehicle_layer`` / ``pedestrian_layer``: the BEV's
        vehicles / pedestrians from the segmentation head's probabilities, the detected boxes drawn, or their
        union (defaults: the segmentation for vehicles, the LiDAR-refined boxes for pedestrians, which scored best
        on the validation town: benchmarks/perception_results.md); ``tracking``: the
        detections get track ids (:class:`~av_stack.perception.tracking.CentreTracker`, the ego's dead-reckoned
        motion taken out), which planners that reason over tracks need; ``velocity``: a detection's velocity is
        the network's regression, or the tracker's (from the centre's displacement; zero on a new track); ``detection_range_m``: run the
        checkpoint's weights on the network grid of another detection range (None: the checkpoint's; a smaller
        grid is faster: benchmarks/perception_results.md); ``refine_walkers``: pedestrian centres moved to the
        LiDAR points around them (:mod:`~av_stack.perception.refine`); ``light_cameras``: the cameras the light
        reader tries in order (None: the light checkpoint's, then ``light_rgb`` where the suite has it, which sees
        the light at the stop line); ``light_confirm_frames``: confident readings in a row that replace a held light
        state (one misread frame does not); ``vehicle_threshold``: the segmentation head's vehicle probability that the
        BEV reports as 0.5 (the Dice-trained head draws vehicles a little wide; 0.8 scored best on the
        validation town; 0.5 keeps the head's own probabilities)."""

        checkpoint: str = DEFAULT_CHECKPOINT
        score_threshold: float = Field(0.3, ge=0.0, le=1.0)
        threads: int = Field(0, ge=0)
        light_checkpoint: str | None = DEFAULT_LIGHT_CHECKPOINT
        light_range_m: float = Field(40.0, gt=0.0)
        vehicle_layer: Literal["segmentation", "boxes", "union"] = "segmentation"
        pedestrian_layer: Literal["segmentation", "boxes", "union"] = "boxes"
        tracking: bool = True
        velocity: Literal["network", "tracker"] = "tracker"
        detection_range_m: float | None = Field(None, gt=0.0, le=100.0)
        refine_walkers: bool = True
        vehicle_threshold: float = Field(0.8, gt=0.0, lt=1.0)
        light_cameras: tuple[str, ...] | None = None
        light_confirm_frames: int = Field(2, ge=1)

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or self.Config()
        model, self.model_config, self.spec, _ = load_checkpoint(shipped_file(self.config.checkpoint))
        if self.config.detection_range_m is not None:
            model = self._regridded(model, self.config.detection_range_m)
        # inference only: batch norms folded into the convolutions, channels-last tensors (about 1.5x faster on
        # CPU for the same outputs)
        self.model = fold_batch_norms(model).to(memory_format=torch.channels_last)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self._light: LightReader | None = None
        if self.config.light_checkpoint is not None:
            self._light = LightReader.from_checkpoint(shipped_file(self.config.light_checkpoint),
                                                      range_m=self.config.light_range_m,
                                                      cameras=self.config.light_cameras,
                                                      confirm_frames=self.config.light_confirm_frames)
        self._builder: InputBuilder | None = None
        self._history: deque = deque()
        self._previous_t: float | None = None
        self._pose = (0.0, 0.0, 0.0)  # the odometry pose (dead-reckoned since the reset)
        self._tracker = CentreTracker()

    def _regridded(self, model: FusionNet, range_m: float) -> FusionNet:
        """The same weights on the network grid of another detection range (the network is convolutional)."""
        config = self.model_config.model.model_copy(update={"detection_range_m": range_m})
        self.model_config = self.model_config.model_copy(update={"model": config})
        out = FusionNet(config, self.spec.config.size_px, network_grid(self.spec, config.scale, range_m))
        out.load_state_dict(model.grid_free_state(), strict=False)
        return out.eval()

    def reset(self, mission: Mission) -> None:
        """Forget the history of the previous route; the light reader takes the new route."""
        self._history.clear()
        if self._light is not None:
            self._light.reset(mission)
        self._previous_t = None
        self._pose = (0.0, 0.0, 0.0)
        self._tracker.reset()

    def _inputs(self, frame: SensorFrame) -> tuple[dict[str, torch.Tensor], tuple[np.ndarray, np.ndarray] | None]:
        """The network's input tensors and the LiDAR sweep in the ego frame (None: no LiDAR in the frame, or
        neither the network nor the refinement reads it)."""
        if self._builder is None or self._builder.calibration is not frame.calibration:
            self._builder = InputBuilder(self.model_config.model, frame.calibration, self.spec)
            if "camera" in self.model_config.model.inputs:
                self.model.set_camera(*self._builder.ground_grid())
        wanted = self.config.refine_walkers or "lidar" in self.model_config.model.inputs
        lidar = self._builder.lidar_points(frame.data) if wanted else None
        arrays = self._builder(frame.data, lidar_ego=lidar, channels_last=True)
        tensors = {k: torch.from_numpy(v)[None].contiguous(memory_format=torch.channels_last) for k, v in arrays.items()}
        return tensors, lidar

    @torch.no_grad()
    def step(self, frame: SensorFrame) -> PerceptionOutput:
        """The network's view of ``frame``."""
        if frame.bev_spec.shape[1:] != self.spec.shape[1:] or frame.bev_spec.config != self.spec.config:
            raise ValueError(f"the checkpoint was trained on a {self.spec.config} BEV, the frame has "
                             f"{frame.bev_spec.config}")
        inputs, lidar = self._inputs(frame)
        out = self.model.infer(inputs, upsample=False)
        grid = self._builder.grid
        detections = decode_detections(out["heatmap"][0], lambda rows, cols: self.model.boxes_at(out["features"], rows, cols),
                                       grid.spec, grid.scale, threshold=self.config.score_threshold)
        if self.config.refine_walkers and lidar is not None:
            mount = frame.calibration[self.model_config.model.lidar].mount
            detections = refine_centres(detections, lidar[0], (mount.x_m, mount.y_m))
        dt, forward_m, turn_rad = self._odometry(frame)
        if self.config.tracking:
            detections = self._track(detections, dt, forward_m, turn_rad)
        probs = self._probabilities(out["seg"][0])
        for k, kind, source in ((SEG_CHANNELS.index("vehicles_t0"), ActorKind.VEHICLE, self.config.vehicle_layer),
                                (SEG_CHANNELS.index("pedestrians_t0"), ActorKind.WALKER, self.config.pedestrian_layer)):
            if source != "segmentation":
                boxes = draw_boxes(detections, kind, self.spec)
                probs[k] = boxes if source == "boxes" else np.maximum(probs[k], boxes)
        bev = self._assemble(frame, probs)
        light = LightObservation(None, math.inf, 1.0)
        if self._light is not None:
            light = self._light(frame)
        elif "light" in out:
            p = torch.softmax(out["light"][0], dim=0).numpy()
            k = int(p.argmax())
            light = LightObservation(LIGHT_STATES[k], math.inf, float(p[k]))
        return PerceptionOutput(frame.frame, frame.timestamp_s, detections, light, bev, frame.bev_spec)

    def _probabilities(self, seg: torch.Tensor) -> np.ndarray:
        """(C, S, S) probabilities on the shared grid from the head's (C, h, w) logits on the network's cells:
        the vehicle logits shifted by ``vehicle_threshold``, upsampled bilinearly (OpenCV on the channels-last
        logits: the values of ``F.interpolate(..., align_corners=False)``, 3 times faster), then the sigmoid."""
        logits = np.ascontiguousarray(seg.permute(1, 2, 0).numpy())  # (h, w, C); no copy when channels-last
        threshold = self.config.vehicle_threshold
        logits[..., SEG_CHANNELS.index("vehicles_t0")] -= math.log(threshold / (1.0 - threshold))
        size = self.spec.config.size_px
        if logits.shape[:2] != (size, size):
            logits = cv2.resize(logits, (size, size), interpolation=cv2.INTER_LINEAR)
        return torch.sigmoid(torch.from_numpy(logits)).numpy().transpose(2, 0, 1)

    def _assemble(self, frame: SensorFrame, probs: np.ndarray) -> np.ndarray:
        """The frame's BEV channels from the predicted ones and the history, each past map warped once from
        its own frame into this one by the dead-reckoned motion between them."""
        spec = frame.bev_spec
        channels = spec.channels
        bev = np.zeros(spec.shape, np.float32)
        for k, name in enumerate(SEG_CHANNELS):
            if name in channels:
                bev[channels.index(name)] = probs[k]
        self._advance_history(frame, probs)
        now = self._history[0][1]
        size = (self.spec.config.size_px, self.spec.config.size_px)
        for step in spec.config.history_steps[1:]:
            if step >= len(self._history):
                continue
            maps, then = self._history[step]
            matrix = self._relative_matrix(then, now)
            for k, kind in enumerate(("vehicles", "pedestrians")):
                name = f"{kind}_t{step}"
                if name in channels:
                    bev[channels.index(name)] = cv2.warpAffine(maps[k], matrix, size, flags=cv2.INTER_LINEAR)
        return bev

    def _odometry(self, frame: SensorFrame) -> tuple[float, float, float]:
        """(seconds, metres forward, radians turned) since the last frame, from the speedometer and gyroscope;
        the odometry pose advances by them."""
        dt = 0.0 if self._previous_t is None else max(0.0, frame.timestamp_s - self._previous_t)
        self._previous_t = frame.timestamp_s
        yaw_rate = float(frame.ego.gyroscope_rad_s[2]) if np.isfinite(frame.ego.gyroscope_rad_s[2]) else 0.0
        speed = float(frame.ego.speed_mps) if np.isfinite(frame.ego.speed_mps) else 0.0
        x, y, yaw = self._pose
        self._pose = (x + speed * dt * math.cos(yaw), y + speed * dt * math.sin(yaw), yaw + yaw_rate * dt)
        return dt, speed * dt, yaw_rate * dt

    def _track(self, detections: Detections, dt: float, forward_m: float, turn_rad: float) -> Detections:
        """``detections`` with track ids (and the tracker's velocity where ``velocity: tracker``)."""
        ids, velocity, _ = self._tracker.update(detections.kind, detections.center_m[:, :2], dt, forward_m,
                                                      turn_rad)
        if self.config.velocity == "network":
            velocity = detections.velocity_mps
        return replace(detections, velocity_mps=velocity, track_id=ids)

    def _advance_history(self, frame: SensorFrame, probs: np.ndarray) -> None:
        """Push this frame's vehicle and pedestrian maps with the odometry pose of this frame."""
        self._history.appendleft((probs[3:5].copy(), self._pose))  # vehicles_t0, pedestrians_t0
        while len(self._history) > max(self.spec.config.history_steps) + 1:
            self._history.pop()

    def _motion_matrix(self, forward_m: float, yaw_rad: float) -> np.ndarray:
        """The 2x3 pixel map taking last frame's BEV to this frame's, the ego having moved ``forward_m`` and
        turned ``yaw_rad`` (CARLA: positive to the right)."""
        return self._relative_matrix((0.0, 0.0, 0.0), (forward_m, 0.0, yaw_rad))

    def _relative_matrix(self, then: tuple[float, float, float], now: tuple[float, float, float]) -> np.ndarray:
        """The 2x3 pixel map taking the BEV of an ego at odometry pose ``then`` (x, y, yaw) to one at ``now``."""
        c = self.spec.config
        cx, cy, ppm = c.size_px // 2, c.size_px - 1 - c.ego_from_bottom_px, c.pixels_per_m
        turn = now[2] - then[2]
        cos, sin = math.cos(turn), math.sin(turn)
        dx, dy = then[0] - now[0], then[1] - now[1]
        cn, sn = math.cos(now[2]), math.sin(now[2])
        tx, ty = cn * dx + sn * dy, -sn * dx + cn * dy  # R(-yaw_now) (t_then - t_now)
        # pixel (col, row) <-> ego (x, y): x = (cy - row) / ppm, y = (col - cx) / ppm
        a = np.array([[0.0, -1.0 / ppm, cy / ppm], [1.0 / ppm, 0.0, -cx / ppm], [0.0, 0.0, 1.0]])  # pixel -> ego
        move = np.array([[cos, sin, tx], [-sin, cos, ty], [0.0, 0.0, 1.0]])  # then's ego frame -> now's
        b = np.linalg.inv(a)  # ego -> pixel
        return (b @ move @ a)[:2].astype(np.float32)


__all__ = ["LearnedPerception", "LIGHT_CLASSES"]
