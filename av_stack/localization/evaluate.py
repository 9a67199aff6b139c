"""Score localization stages on a dataset directory (``avsim eval localization --data DIR --json``).

Every frame of the dataset's logs (a split, or all) that has ego signals and
ground truth is replayed in order, at the full tick rate (sensor data is
recorded only every few ticks, ego signals every tick), through each method.
Each route (``/episode``) gets a fresh stage, reset with the route's mission
when the log has it (otherwise with none). Before any stage sees a frame, its
GNSS fix is corrupted with a seeded RNG: Gaussian noise of ``gnss_noise_m``
per horizontal axis plus a constant ``gnss_bias_m`` on each axis (both in
metres, put on latitude / longitude through the towns' geo-reference), so
every method sees the same noisy frames.

Scores per method, over the *scored* frames of each route: those from the
first frame the stage called valid, or from ``converge_s`` (5 s) after the
route's start, whichever comes first:

- ``rms_lateral_m`` / ``rms_longitudinal_m``: the position error in the true
  ego frame (y right / x forward), RMS;
- ``rms_yaw_deg``; ``ate_m``: RMS position error (absolute trajectory error);
- ``share_over_1m``: the share of scored frames with a position error > 1 m;
- ``max_error_m``, ``valid_share`` (of all frames), ``frames``, ``frames_scored``;
- ``ms_per_frame``: the stage's mean wall time per frame.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.messages import PoseEstimate, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE

CONVERGE_S = 5.0


def inject_gnss_noise(frame: SensorFrame, rng: np.random.Generator, noise_m: float, bias_m: float
                      ) -> SensorFrame:
    """``frame`` with its GNSS fix (the ego signal and the GNSS sensor's array) moved by ``bias_m`` plus
    N(0, ``noise_m``) metres on each horizontal axis (a non-finite fix stays as it is)."""
    if noise_m == 0.0 and bias_m == 0.0:
        return frame
    offset_deg = (bias_m + noise_m * rng.standard_normal(2)) / METRES_PER_DEGREE  # (y, x) -> (lat, lon)
    gnss = np.array(frame.ego.gnss, dtype=np.float64)
    gnss[:2] += offset_deg
    data = dict(frame.data)
    for name, calibration in frame.calibration.items():
        if calibration.blueprint_id == "sensor.other.gnss" and name in data:
            array = np.array(data[name], dtype=np.float64)
            array[:2] += offset_deg
            data[name] = array
    return replace(frame, ego=replace(frame.ego, gnss=gnss), data=data)


class LocalizationScores:
    """Accumulates one method's errors frame by frame (see the module docstring)."""

    def __init__(self, converge_s: float = CONVERGE_S) -> None:
        self.converge_s = converge_s
        self.lateral: list[float] = []
        self.longitudinal: list[float] = []
        self.yaw: list[float] = []
        self.frames = 0
        self.valid = 0
        self.seconds = 0.0
        self._route_start: float | None = None
        self._converged = False

    def start_route(self) -> None:
        """A new route begins: its first frames are not scored until the stage converges."""
        self._route_start = None
        self._converged = False

    def add(self, frame: SensorFrame, estimate: PoseEstimate, seconds: float) -> None:
        """Score one estimate against the frame's ground truth."""
        self.frames += 1
        self.seconds += seconds
        self.valid += int(estimate.valid)
        if self._route_start is None:
            self._route_start = frame.timestamp_s
        self._converged = (self._converged or estimate.valid
                           or frame.timestamp_s - self._route_start >= self.converge_s - 1e-9)
        if not self._converged:
            return
        ego = frame.ground_truth.ego
        dx, dy = estimate.pose.x_m - ego.x_m, estimate.pose.y_m - ego.y_m
        cos, sin = math.cos(ego.yaw_rad), math.sin(ego.yaw_rad)
        self.longitudinal.append(dx * cos + dy * sin)
        self.lateral.append(-dx * sin + dy * cos)
        self.yaw.append(math.degrees(math.remainder(estimate.pose.yaw_rad - ego.yaw_rad, 2 * math.pi)))

    def result(self) -> dict[str, Any]:
        """The scores so far (None where no frame was scored)."""
        lat, lon, yaw = (np.array(v, dtype=float) for v in (self.lateral, self.longitudinal, self.yaw))
        scored = len(lat)

        def rms(values: np.ndarray) -> float | None:
            return round(float(np.sqrt(np.mean(values ** 2))), 4) if scored else None

        error = np.hypot(lat, lon)
        return {"rms_lateral_m": rms(lat), "rms_longitudinal_m": rms(lon), "rms_yaw_deg": rms(yaw),
                "ate_m": rms(error), "share_over_1m": round(float(np.mean(error > 1.0)), 4) if scored else None,
                "max_error_m": round(float(error.max()), 4) if scored else None,
                "valid_share": round(self.valid / self.frames, 4) if self.frames else None,
                "frames": self.frames, "frames_scored": scored,
                "ms_per_frame": round(1e3 * self.seconds / max(self.frames, 1), 4)}


def evaluate_localization(methods: dict[str, dict[str, Any]], data: str | Path, split: str | None = None,
                          gnss_noise_m: float = 0.0, gnss_bias_m: float = 0.0, max_frames: int | None = None,
                          seed: int = 0, progress=None) -> dict[str, Any]:
    """Score the localization stages ``methods`` (label -> stage section, e.g. ``{"ekf": {"name": "ekf"}}``)
    on the dataset ``data`` (``split``: train / val / test, default all) with GNSS noise injected; a dict
    ``{"methods": {label: scores}, ...}`` (see the module docstring). ``StageConfigError`` for a bad section,
    ``DatasetError`` for a dataset without such logs, ``ValueError`` for a negative noise."""
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.localization import LOCALIZATION
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import ReplayError, log_map, mission_of

    if not (math.isfinite(gnss_noise_m) and gnss_noise_m >= 0.0 and math.isfinite(gnss_bias_m)):
        raise ValueError(f"the GNSS noise must be a finite std >= 0 and the bias finite, got {gnss_noise_m!r}, "
                         f"{gnss_bias_m!r}")
    if not methods:
        raise ValueError("no localization method to evaluate")
    for label, section in methods.items():  # every section is checked before any log is read
        LOCALIZATION.config_for(section, f"localization method {label}")
    root = Path(data)
    manifest = read_manifest(root)
    logs = [entry for entry in manifest["logs"] if split is None or entry["split"] == split]
    if not logs:
        raise DatasetError(f"dataset {root} has no {split or ''} logs".replace("  ", " "))
    scores = {label: LocalizationScores() for label in methods}
    stages: dict[str, Any] = {}
    fed = 0
    for index, entry in enumerate(logs):
        rng = np.random.default_rng([seed, index])
        log = LogReader(root / entry["file"])
        the_map = None
        started = False
        for logged in log.frames():
            episode = logged.messages.get(T.EPISODE)
            if episode is not None or not started:  # a route starts: fresh stages
                mission = None
                if episode is not None:
                    try:
                        if the_map is None:
                            the_map = log_map(log)
                        mission = mission_of(log, the_map, episode, logged.messages.get(T.GT_WORLD))
                    except ReplayError as exc:
                        warnings.warn(f"{exc}: that route is replayed without a mission", stacklevel=2)
                stages = {label: LOCALIZATION.build(section) for label, section in methods.items()}
                for label, stage in stages.items():
                    stage.reset(mission)
                    scores[label].start_route()
                started = True
            frame = logged.sensor_frame
            if frame is None or frame.ground_truth is None:
                continue
            noisy = inject_gnss_noise(frame, rng, gnss_noise_m, gnss_bias_m)
            for label, stage in stages.items():
                start = time.perf_counter()
                estimate = stage.step(noisy)
                scores[label].add(frame, estimate, time.perf_counter() - start)
            fed += 1
            if progress is not None:
                progress(fed)
            if max_frames is not None and fed >= max_frames:
                break
        if max_frames is not None and fed >= max_frames:
            break
    return {"methods": {label: s.result() for label, s in scores.items()}, "frames": fed,
            "split": split or "all", "towns": sorted({entry["town"] for entry in logs}),
            "gnss_noise_m": gnss_noise_m, "gnss_bias_m": gnss_bias_m, "seed": seed,
            "converge_s": CONVERGE_S, "sections": methods}
