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
- ``valid_over_1m``: the share of the frames the stage called valid with a position error > 1 m (a wrong
  pose claimed as right; scoring from ``converge_s`` also counts frames the stage honestly called invalid),
  and ``max_valid_error_m``, the largest error of a valid frame;
- ``ms_per_frame``: the stage's mean wall time per frame;
- for the ``icp`` stage also ``icp_fits`` (ICP runs) and ``icp_accepted`` (fits fused); for the ``learned``
  stage ``match_fits`` (network runs) and ``match_accepted`` (matches fused).

Other corruptions (:class:`Corruption`, all off by default): GNSS dropouts
(no fix from ``gnss_dropout_start_s`` after each route's start, for
``gnss_dropout_s``), Gaussian noise on the wheel speed, the gyroscope's yaw
rate (plus a constant bias) and the compass, and a wrong initial pose
(``init_error_m`` / ``init_error_deg``, handed at each route's first frame to
the stages that have ``set_initial_pose``: ``ekf`` and ``icp``), and range noise
on the LiDAR returns (``lidar_noise_m``, along each ray). They are drawn from the same
seeded RNG, after the GNSS noise, so adding one leaves the GNSS noise as it
was only when none is set.

The ``icp`` method needs a prior map (its ``prior_map`` key): a file used for
every log, or a folder holding one map per evaluated log, named after the log
(``FOLDER/<log file stem>.npz``, e.g. each built from a mapping drive through
that log's world). When its section has none, one is built from the dataset itself, honestly: for each evaluated
log, from the *other* logs of the same town in the dataset (any split;
leave-one-out, so the sweep being localised is never in its own map), with
:func:`av_stack.localization.prior_map.accumulate_log`'s defaults, into a
temporary folder; the result's ``prior_map`` then reads ``"leave-one-out from
N logs"``. A log whose town has no other log is a :class:`DatasetError`.
"""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.messages import PoseEstimate, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE
from sim.api import Pose

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


@dataclass(frozen=True)
class Corruption:
    """What the evaluation does to the ego signals before any stage sees them (module docstring): GNSS noise
    and bias [m per axis], a GNSS dropout [s] starting ``gnss_dropout_start_s`` after each route's start, and
    noise on the wheel speed [m/s], the gyroscope's yaw rate [rad/s] (and its constant bias) and the compass
    [deg], a wrong initial pose [m, deg] given to the stages that take one, and range noise on every LiDAR
    return [m] (along its ray, as CARLA's ``noise_stddev``)."""

    gnss_noise_m: float = 0.0
    gnss_bias_m: float = 0.0
    gnss_dropout_s: float = 0.0
    gnss_dropout_start_s: float = 3.0
    speed_noise_mps: float = 0.0
    gyro_noise_rad_s: float = 0.0
    gyro_bias_rad_s: float = 0.0
    compass_noise_deg: float = 0.0
    init_error_m: float = 0.0
    init_error_deg: float = 0.0
    lidar_noise_m: float = 0.0

    def initial_pose(self, truth) -> Pose | None:
        """The wrong start handed to a stage's ``set_initial_pose`` at a route's first frame (``truth``: its
        ground-truth ego): ``init_error_m`` away (3 : -4 in x : y) and ``init_error_deg`` turned; None when
        both are 0."""
        if self.init_error_m == 0.0 and self.init_error_deg == 0.0:
            return None
        return Pose(truth.x_m + 0.6 * self.init_error_m, truth.y_m - 0.8 * self.init_error_m, truth.z_m,
                    truth.yaw_rad + math.radians(self.init_error_deg))

    def check(self) -> None:
        """``ValueError`` naming the first value that is not finite or, for a noise or a duration, negative."""
        for name, value in vars(self).items():
            if not math.isfinite(value) or (value < 0.0 and name not in ("gnss_bias_m", "gyro_bias_rad_s",
                                                                          "init_error_deg")):
                raise ValueError(f"{name} must be finite{'' if 'bias' in name else ' and >= 0'}, got {value!r}")

    def apply(self, frame: SensorFrame, rng: np.random.Generator, since_start_s: float) -> SensorFrame:
        """``frame`` with its ego signals corrupted (GNSS first, as :func:`inject_gnss_noise`)."""
        frame = inject_gnss_noise(frame, rng, self.gnss_noise_m, self.gnss_bias_m)
        ego = frame.ego
        changes: dict = {}
        if self.gnss_dropout_s > 0 and 0.0 <= since_start_s - self.gnss_dropout_start_s < self.gnss_dropout_s:
            changes["gnss"] = np.full(3, np.nan)
        if self.speed_noise_mps > 0:
            changes["speed_mps"] = float(ego.speed_mps + self.speed_noise_mps * rng.standard_normal())
        if self.gyro_noise_rad_s > 0 or self.gyro_bias_rad_s != 0:
            gyro = np.array(ego.gyroscope_rad_s, dtype=np.float64)
            gyro[2] += self.gyro_bias_rad_s + self.gyro_noise_rad_s * rng.standard_normal()
            changes["gyroscope_rad_s"] = gyro
        if self.compass_noise_deg > 0:
            noise = math.radians(self.compass_noise_deg) * rng.standard_normal()
            changes["compass_rad"] = float(ego.compass_rad + noise) % (2 * math.pi)
        if not changes and self.lidar_noise_m == 0:
            return frame
        data = dict(frame.data)
        if self.lidar_noise_m > 0:
            for name, calibration in frame.calibration.items():
                if calibration.blueprint_id.startswith("sensor.lidar.") and name in data \
                        and np.ndim(data[name]) == 2 and np.shape(data[name])[1] >= 3:
                    points = np.array(data[name], dtype=np.float32)
                    norm = np.linalg.norm(points[:, :3], axis=1, keepdims=True)
                    step = self.lidar_noise_m * rng.standard_normal((len(points), 1))
                    points[:, :3] += (points[:, :3] / np.maximum(norm, 1e-6) * step).astype(np.float32)
                    data[name] = points
        if "gnss" in changes:  # the GNSS sensor's own array goes too
            for name, calibration in frame.calibration.items():
                if calibration.blueprint_id == "sensor.other.gnss" and name in data:
                    data[name] = np.full(3, np.nan)
        return replace(frame, ego=replace(ego, **changes) if changes else ego, data=data)


class LocalizationScores:
    """Accumulates one method's errors frame by frame (see the module docstring)."""

    def __init__(self, converge_s: float = CONVERGE_S) -> None:
        self.converge_s = converge_s
        self.lateral: list[float] = []
        self.longitudinal: list[float] = []
        self.yaw: list[float] = []
        self.valid_errors: list[float] = []
        self.frames = 0
        self.valid = 0
        self.seconds = 0.0
        self._route_start: float | None = None
        self._converged = False
        self.counters: dict[str, int] = {}

    def count(self, stage) -> None:
        """Add a finished route's counters (``fits`` / ``accepted``), if the stage keeps them, as
        ``<counter_prefix>fits`` (``icp_``, the ``learned`` stage's ``match_``)."""
        prefix = getattr(stage, "counter_prefix", "icp_")
        for key in ("fits", "accepted"):
            if hasattr(stage, key):
                self.counters[prefix + key] = self.counters.get(prefix + key, 0) + int(getattr(stage, key))

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
        if estimate.valid:
            self.valid_errors.append(math.hypot(dx, dy))

    def result(self) -> dict[str, Any]:
        """The scores so far (None where no frame was scored)."""
        lat, lon, yaw = (np.array(v, dtype=float) for v in (self.lateral, self.longitudinal, self.yaw))
        scored = len(lat)

        def rms(values: np.ndarray) -> float | None:
            return round(float(np.sqrt(np.mean(values ** 2))), 4) if scored else None

        error = np.hypot(lat, lon)
        valid_error = np.array(self.valid_errors, dtype=float)
        return {"rms_lateral_m": rms(lat), "rms_longitudinal_m": rms(lon), "rms_yaw_deg": rms(yaw),
                "ate_m": rms(error), "share_over_1m": round(float(np.mean(error > 1.0)), 4) if scored else None,
                "max_error_m": round(float(error.max()), 4) if scored else None,
                "valid_share": round(self.valid / self.frames, 4) if self.frames else None,
                "valid_over_1m": round(float(np.mean(valid_error > 1.0)), 4) if len(valid_error) else None,
                "max_valid_error_m": round(float(valid_error.max()), 4) if len(valid_error) else None,
                "frames": self.frames, "frames_scored": scored,
                "ms_per_frame": round(1e3 * self.seconds / max(self.frames, 1), 4), **self.counters}


def evaluate_localization(methods: dict[str, dict[str, Any]], data: str | Path, split: str | None = None,
                          gnss_noise_m: float = 0.0, gnss_bias_m: float = 0.0, max_frames: int | None = None,
                          seed: int = 0, progress=None, corruption: Corruption | None = None) -> dict[str, Any]:
    """Score the localization stages ``methods`` (label -> stage section, e.g. ``{"ekf": {"name": "ekf"}}``)
    on the dataset ``data`` (``split``: train / val / test, default all) with GNSS noise injected (and the
    other ``corruption``, whose GNSS noise and bias ``gnss_noise_m`` / ``gnss_bias_m`` replace); a dict
    ``{"methods": {label: scores}, ...}`` (see the module docstring). ``StageConfigError`` for a bad section,
    ``DatasetError`` for a dataset without such logs, ``ValueError`` for a negative noise, ``PriorMapError``
    for a bad prior map."""
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.localization import LOCALIZATION
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import ReplayError, log_map, mission_of

    corruption = replace(corruption or Corruption(), gnss_noise_m=gnss_noise_m, gnss_bias_m=gnss_bias_m)
    if not (math.isfinite(gnss_noise_m) and gnss_noise_m >= 0.0 and math.isfinite(gnss_bias_m)):
        raise ValueError(f"the GNSS noise must be a finite std >= 0 and the bias finite, got {gnss_noise_m!r}, "
                         f"{gnss_bias_m!r}")
    corruption.check()
    if not methods:
        raise ValueError("no localization method to evaluate")
    auto_map = {label for label, section in methods.items()
                if isinstance(section, dict) and section.get("name") == "icp" and "prior_map" not in section}
    for label, section in methods.items():  # every section is checked before any log is read
        LOCALIZATION.config_for({**section, "prior_map": ""} if label in auto_map else section,
                                f"localization method {label}")
    root = Path(data)
    manifest = read_manifest(root)
    logs = [entry for entry in manifest["logs"] if split is None or entry["split"] == split]
    if not logs:
        raise DatasetError(f"dataset {root} has no {split or ''} logs".replace("  ", " "))
    maps = _LeaveOneOutMaps(root, manifest["logs"]) if auto_map else None
    scores = {label: LocalizationScores() for label in methods}
    stages: dict[str, Any] = {}
    fed = 0
    try:
        for index, entry in enumerate(logs):
            rng = np.random.default_rng([seed, index])
            log = LogReader(root / entry["file"])
            sections = {label: _per_log_map(section, entry) for label, section in methods.items()}
            if maps is not None:
                prior = maps.for_log(entry)
                sections.update({label: {**methods[label], "prior_map": str(prior)} for label in auto_map})
            the_map = None
            started = False
            route_start = 0.0
            pending_start = False
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
                    for label, stage in stages.items():
                        scores[label].count(stage)
                    stages = {label: LOCALIZATION.build(section) for label, section in sections.items()}
                    for label, stage in stages.items():
                        stage.reset(mission)
                        scores[label].start_route()
                    started = True
                    route_start = logged.t_s
                    pending_start = True
                frame = logged.sensor_frame
                if frame is None or frame.ground_truth is None:
                    continue
                if pending_start:
                    wrong = corruption.initial_pose(frame.ground_truth.ego)
                    for stage in stages.values():
                        if wrong is not None and hasattr(stage, "set_initial_pose"):
                            stage.set_initial_pose(wrong)
                    pending_start = False
                noisy = corruption.apply(frame, rng, frame.timestamp_s - route_start)
                for label, stage in stages.items():
                    start = time.perf_counter()
                    estimate = stage.step(noisy)
                    scores[label].add(frame, estimate, time.perf_counter() - start)
                fed += 1
                if progress is not None:
                    progress(fed)
                if max_frames is not None and fed >= max_frames:
                    break
            for label, stage in stages.items():
                scores[label].count(stage)
            stages = {}
            if max_frames is not None and fed >= max_frames:
                break
    finally:
        if maps is not None:
            maps.close()
    result = {"methods": {label: s.result() for label, s in scores.items()}, "frames": fed,
              "split": split or "all", "towns": sorted({entry["town"] for entry in logs}),
              "gnss_noise_m": gnss_noise_m, "gnss_bias_m": gnss_bias_m, "seed": seed,
              "converge_s": CONVERGE_S, "sections": methods,
              "corruption": {k: v for k, v in vars(corruption).items() if k not in ("gnss_noise_m", "gnss_bias_m")}}
    if maps is not None:
        result["prior_map"] = maps.describe()
    else:
        given = sorted({str(section["prior_map"]) for section in methods.values()
                        if isinstance(section, dict) and "prior_map" in section})
        if given:
            result["prior_map"] = ", ".join(given)
    return result


def _per_log_map(section: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``section`` with a ``prior_map`` that names a folder replaced by that folder's map of the log
    (``FOLDER/<log file stem>.npz``)."""
    prior = section.get("prior_map") if isinstance(section, dict) else None
    if prior and Path(prior).is_dir():
        return {**section, "prior_map": str(Path(prior) / (Path(entry["file"]).stem + ".npz"))}
    return section


class _LeaveOneOutMaps:
    """Prior maps for the ``icp`` method built from the dataset: for each evaluated log, from the other logs
    of its town (each log's LiDAR is accumulated once), written to a temporary folder."""

    def __init__(self, root: Path, entries: list[dict[str, Any]]) -> None:
        self.root, self.entries = root, entries
        self.folder = tempfile.TemporaryDirectory(prefix="avsim_prior_maps_")
        self._clouds: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        self.sizes: list[int] = []

    def for_log(self, entry: dict[str, Any]) -> Path:
        """The prior map of ``entry``'s town without ``entry``'s own log."""
        from av_stack.data.manifest import DatasetError
        from av_stack.localization.prior_map import VoxelCloud, accumulate_log, finish_map, save_prior_map

        others = [e for e in self.entries if e["town"] == entry["town"] and e["file"] != entry["file"]]
        if not others:
            raise DatasetError(f"icp needs a prior map: {self.root} has no other log of {entry['town']} to build "
                               f"one from for {entry['file']} (give the method a prior_map)")
        cloud = None
        for other in others:
            if other["file"] not in self._clouds:
                part, name, _ = accumulate_log(self.root / other["file"])
                self._clouds[other["file"]], self._names[other["file"]] = part, name
            cloud = cloud or VoxelCloud(self._clouds[other["file"]].voxel_m)
            cloud.merge(self._clouds[other["file"]])
        prior = finish_map(cloud, self._names[others[0]["file"]], [e["file"] for e in others])
        self.sizes.append(len(others))
        return save_prior_map(prior, Path(self.folder.name) / f"{Path(entry['file']).stem}.npz")

    def describe(self) -> str:
        """``leave-one-out from N logs`` (a range where the towns differ)."""
        if not self.sizes:
            return "leave-one-out (no log evaluated)"
        low, high = min(self.sizes), max(self.sizes)
        return (f"leave-one-out from {low} log{'' if low == 1 else 's'}" if low == high
                else f"leave-one-out from {low} to {high} logs")

    def close(self) -> None:
        """Delete the temporary maps."""
        self.folder.cleanup()
