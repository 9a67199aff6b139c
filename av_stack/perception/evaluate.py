"""Score a perception stage on a dataset directory (``avsim eval perception --data DIR --json``).

Every sample frame of the dataset's logs (a split, or all) is given to the
stage as the stack would give it (reset with each logged route's mission:
the map rebuilt from the log, the route, the signals); its output is scored
against the logged ground truth:

- ``iou``: per BEV channel (``road``, ``lane_solid``, ``lane_broken``,
  ``vehicles``, ``pedestrians``): intersection over union of the stage's BEV
  (probability > 0.5) with the privileged BEV, over all frames.
- ``ap``: nuScenes-style detection AP by centre distance: for each class
  (``vehicle``, ``pedestrian``), threshold (0.5 m, 1.0 m) and range (30 m,
  50 m from the ego), detections of all frames sorted by score, each matched
  to the nearest unmatched ground-truth box of its class within the
  threshold; AP is the 101-point interpolated area under precision-recall.
  Keys ``vehicle@1.0m/30m`` and so on.
- ``velocity_error_mps``: mean velocity error of the true positives at 1.0 m.
- ``light_accuracy``: the governing light's state (none, red, yellow, green) within ``light_range_m``
  (default 40 m) along the route: a light farther away counts as none, since no camera resolves it
  (CARLA's own ``Vehicle.get_traffic_light`` names a light only near its stop line).
  ``light_accuracy_any_range`` scores against the state at any distance.
- ``ms_per_frame``: mean wall time per frame of the stage plus the BEV assembly (torch threads as set);
  ``ms_stage``, ``ms_assembly`` and ``ms_localization`` apart.

The BEV scored is the one the planner would get: by default assembled after a
localization stage (``localization``, default ``ekf`` on the logged GNSS, IMU
and speedometer) with the road and markings from the map at the pose estimate
(``assemble: map``, :mod:`av_stack.perception.assembly`); ``assemble:
perception`` keeps the stage's road and markings, ``off`` scores the stage's
BEV as it is. ``iou_stage`` always scores the stage's own BEV.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.messages import Detections, PerceptionOutput, SensorFrame
from sim.api import ActorKind

IOU_CHANNELS = {"road": "road", "lane_solid": "lane_solid", "lane_broken": "lane_broken",
                "vehicles": "vehicles_t0", "pedestrians": "pedestrians_t0"}
CLASSES = {"vehicle": ActorKind.VEHICLE, "pedestrian": ActorKind.WALKER}
THRESHOLDS_M = (0.5, 1.0)
RANGES_M = (30.0, 50.0)
LIGHT_RANGE_M = 40.0


def average_precision(scores: np.ndarray, matched: np.ndarray, num_truth: int) -> float:
    """101-point interpolated AP of detections with ``scores`` and whether each was a true positive."""
    if num_truth == 0:
        return math.nan
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(matched[order])
    fp = np.cumsum(~matched[order])
    recall = tp / num_truth
    precision = tp / np.maximum(tp + fp, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0.0, 1.0, 101)
    index = np.searchsorted(recall, points, side="left")
    return float(np.mean(np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0)))


def _match(detections: Detections, truth, kind: ActorKind, threshold_m: float, range_m: float
           ) -> tuple[np.ndarray, np.ndarray, int, list[float]]:
    """(scores, true-positive flags, ground-truth count, velocity errors of the matches) of one frame."""
    d_keep = (detections.kind == int(kind)) & (np.hypot(*detections.center_m[:, :2].T) <= range_m)
    t_keep = (truth.kind == int(kind)) & (np.hypot(*truth.center_m[:, :2].T) <= range_m)
    d_xy, scores = detections.center_m[d_keep, :2], detections.score[d_keep]
    d_vel = detections.velocity_mps[d_keep]
    t_xy, t_vel = truth.center_m[t_keep, :2], truth.velocity_mps[t_keep, :2]
    matched = np.zeros(len(scores), bool)
    taken = np.zeros(len(t_xy), bool)
    errors: list[float] = []
    for k in np.argsort(-scores, kind="stable"):
        if len(t_xy) == 0:
            break
        distance = np.hypot(*(t_xy - d_xy[k]).T)
        distance[taken] = np.inf
        best = int(np.argmin(distance))
        if distance[best] <= threshold_m:
            matched[k], taken[best] = True, True
            errors.append(float(np.hypot(*(d_vel[k] - t_vel[best]))))
    return scores, matched, int(t_keep.sum()), errors


class PerceptionScores:
    """Accumulates the scores of :func:`evaluate_perception` frame by frame."""

    def __init__(self, light_range_m: float = LIGHT_RANGE_M) -> None:
        self.inter = defaultdict(float)
        self.union = defaultdict(float)
        self.detections: dict[tuple, list] = defaultdict(list)
        self.truth: dict[tuple, int] = defaultdict(int)
        self.velocity_errors: list[float] = []
        self.light_right = self.light_right_any = self.light_total = 0
        self.light_range_m = light_range_m
        self.timing = defaultdict(float)
        self.frames = 0
        self.seconds = 0.0

    def add(self, frame: SensorFrame, output: PerceptionOutput, seconds: float,
            stage_bev: np.ndarray | None = None) -> None:
        """Score one frame's output (``stage_bev``: the stage's own BEV before assembly, if it was assembled)
        against its ground truth; ``seconds``: its stage and assembly wall time."""
        self.frames += 1
        self.seconds += seconds
        channels = frame.bev_spec.channels
        for prefix, bev in (("", output.bev), ("stage/", output.bev if stage_bev is None else stage_bev)):
            if bev is None or frame.privileged_bev is None:
                continue
            for key, name in IOU_CHANNELS.items():
                if name in channels:
                    k = channels.index(name)
                    pred, true = bev[k] > 0.5, frame.privileged_bev[k] > 127
                    self.inter[prefix + key] += float(np.count_nonzero(pred & true))
                    self.union[prefix + key] += float(np.count_nonzero(pred | true))
        truth = frame.ground_truth
        for cls, kind in CLASSES.items():
            for threshold in THRESHOLDS_M:
                for range_m in RANGES_M:
                    scores, matched, count, errors = _match(output.detections, truth.actors, kind, threshold,
                                                            range_m)
                    key = (cls, threshold, range_m)
                    self.detections[key].append((scores, matched))
                    self.truth[key] += count
                    if threshold == 1.0 and range_m == RANGES_M[-1]:
                        self.velocity_errors += errors
        self.light_total += 1
        in_range = truth.light.state if truth.light.distance_m <= self.light_range_m else None
        self.light_right += int(output.light.state == in_range)
        self.light_right_any += int(output.light.state == truth.light.state)

    def result(self) -> dict[str, Any]:
        """The scores so far (see the module docstring)."""
        ap = {}
        for (cls, threshold, range_m), parts in self.detections.items():
            scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
            matched = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
            value = average_precision(scores, matched, self.truth[(cls, threshold, range_m)])
            ap[f"{cls}@{threshold:.1f}m/{range_m:.0f}m"] = None if math.isnan(value) else round(value, 4)
        def iou(prefix: str) -> dict[str, float | None]:
            return {k: round(self.inter[prefix + k] / self.union[prefix + k], 4) if self.union[prefix + k] else None
                    for k in IOU_CHANNELS}

        frames = max(self.frames, 1)
        return {"frames": self.frames, "iou": iou(""), "iou_stage": iou("stage/"), "ap": ap,
                "velocity_error_mps": round(float(np.mean(self.velocity_errors)), 3) if self.velocity_errors else None,
                "light_accuracy": round(self.light_right / self.light_total, 4) if self.light_total else None,
                "light_accuracy_any_range": (round(self.light_right_any / self.light_total, 4) if self.light_total
                                             else None),
                "light_range_m": self.light_range_m,
                "ms_per_frame": round(1e3 * self.seconds / frames, 2),
                **{f"ms_{k}": round(1e3 * v / frames, 2) for k, v in sorted(self.timing.items())}}


def evaluate_perception(stage_config: dict[str, Any], data: str | Path, split: str | None = None,
                        max_frames: int | None = None, progress=None, assemble: str = "map",
                        localization: dict[str, Any] | None = None,
                        light_range_m: float = LIGHT_RANGE_M) -> dict[str, Any]:
    """Score the perception stage built from ``stage_config`` on the dataset ``data`` (``split``: one of
    train / val / test, default all), its BEV assembled as ``assemble`` says (``map``, ``perception`` or
    ``off``) at the pose of the ``localization`` stage (default ``{name: ekf}``); the result dict plus
    ``model``, ``split``, ``assemble`` and ``localization``."""
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.localization import LOCALIZATION
    from av_stack.logs.reader import LogReader
    from av_stack.perception import PERCEPTION
    from av_stack.perception.assembly import BevAssembler, BevAssemblyConfig

    root = Path(data)
    manifest = read_manifest(root)
    logs = [entry for entry in manifest["logs"] if split is None or entry["split"] == split]
    if not logs:
        raise DatasetError(f"dataset {root} has no {split or ''} logs".replace("  ", " "))
    from av_stack.logs import topics as T
    from av_stack.replay.logged import ReplayError, log_map, mission_of

    if assemble not in ("map", "perception", "off"):
        raise ValueError(f"assemble must be map, perception or off, got {assemble!r}")
    stage = PERCEPTION.build(stage_config)
    localization = dict(localization or {"name": "ekf"})
    locator = LOCALIZATION.build(localization, "localization") if assemble != "off" else None
    assembler = (BevAssembler(BevAssemblyConfig(assemble=True, road_and_lanes=assemble))
                 if assemble != "off" else None)
    scores = PerceptionScores(light_range_m)
    for entry in logs:
        log = LogReader(root / entry["file"])
        the_map = log_map(log)
        for logged in log.frames():
            episode = logged.messages.get(T.EPISODE)
            if episode is not None:  # a route starts: the stage gets its mission (map, route, signals)
                try:
                    mission = mission_of(log, the_map, episode, logged.messages.get(T.GT_WORLD))
                except ReplayError as exc:  # a log without the route's waypoints whose route does not re-plan
                    warnings.warn(f"{exc}: that route's frames are scored without a mission", stacklevel=2)
                    mission = None
                stage.reset(mission)
                if locator is not None:
                    locator.reset(mission)
                if assembler is not None and mission is not None:
                    assembler.reset(mission)
            if not logged.has_sensor_data or logged.sensor_frame.ground_truth is None:
                continue
            frame = logged.sensor_frame
            t0 = time.perf_counter()
            output = stage.step(frame)
            stage_s = time.perf_counter() - t0
            scores.timing["stage"] += stage_s
            stage_bev, assembly_s = None, 0.0
            if locator is not None and assembler is not None:
                t1 = time.perf_counter()
                pose = locator.step(frame)
                t2 = time.perf_counter()
                stage_bev = output.bev
                output = assembler(output, pose)
                assembly_s = time.perf_counter() - t2
                scores.timing["localization"] += t2 - t1
                scores.timing["assembly"] += assembly_s
            scores.add(frame, output, stage_s + assembly_s, stage_bev)
            if progress is not None:
                progress(scores.frames)
            if max_frames is not None and scores.frames >= max_frames:
                break
        if max_frames is not None and scores.frames >= max_frames:
            break
    return {**scores.result(), "model": stage_config, "split": split or "all", "assemble": assemble,
            "localization": localization if assemble != "off" else None,
            "towns": sorted({entry["town"] for entry in logs})}
