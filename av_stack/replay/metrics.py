"""Open-loop metrics of a perception or localization stage against a log's ground truth, accumulated frame by frame.

Perception (:class:`PerceptionScore`):

- BEV IoU per channel against the logged privileged BEV (a predicted cell
  counts as set at probability >= 0.5, a ground-truth one at >= 128), summed
  over all frames before dividing (a channel never set in either: ``None``),
  and their mean over the channels that were set;
- detections against the ground-truth boxes within ``range_m`` of the ego
  (predictions beyond it are left out too): greedy matching by centre
  distance on the ground, closest pairs first, within :data:`MATCH_RADIUS_M`
  and of the same kind; precision, recall and the mean centre error of the
  matches, overall and per kind;
- the governing traffic light: the share of frames whose state (``None``:
  no light ahead) is the ground truth's.

Localization (:class:`LocalizationScore`): position error on the ground [m]
and absolute yaw error [deg], mean and 95th percentile, and the share of
estimates marked valid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from av_stack.messages import ActorKind, PerceptionOutput, PoseEstimate, SensorFrame

MATCH_RADIUS_M = 2.0
"""A detection matches a ground-truth box of its kind whose centre is this close (on the ground)."""
DEFAULT_RANGE_M = 50.0
"""Detections and ground-truth boxes farther from the ego than this are not scored."""


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def greedy_match(pred_xy: np.ndarray, pred_kind: np.ndarray, true_xy: np.ndarray, true_kind: np.ndarray,
                 radius_m: float = MATCH_RADIUS_M) -> list[tuple[int, int, float]]:
    """(prediction, truth, distance) pairs: closest first, each used once, same kind, within ``radius_m``."""
    if pred_xy.shape[0] == 0 or true_xy.shape[0] == 0:
        return []
    distance = np.hypot(pred_xy[:, None, 0] - true_xy[None, :, 0], pred_xy[:, None, 1] - true_xy[None, :, 1])
    distance[pred_kind[:, None] != true_kind[None, :]] = np.inf
    pairs = []
    used_p, used_t = set(), set()
    for flat in np.argsort(distance, axis=None, kind="stable"):
        p, t = divmod(int(flat), true_xy.shape[0])
        d = float(distance[p, t])
        if d > radius_m:
            break
        if p in used_p or t in used_t:
            continue
        used_p.add(p)
        used_t.add(t)
        pairs.append((p, t, d))
    return pairs


class _DetectionCounts:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0
        self.errors: list[float] = []

    def result(self) -> dict[str, Any]:
        predicted, actual = self.tp + self.fp, self.tp + self.fn
        return {"precision": _rounded(self.tp / predicted) if predicted else None,
                "recall": _rounded(self.tp / actual) if actual else None,
                "mean_center_error_m": _rounded(float(np.mean(self.errors))) if self.errors else None,
                "true_positives": self.tp, "false_positives": self.fp, "false_negatives": self.fn}


class PerceptionScore:
    """Accumulates a perception stage's scores over frames (see the module docstring)."""

    def __init__(self, range_m: float = DEFAULT_RANGE_M) -> None:
        self.range_m = range_m
        self.frames = 0
        self.bev_frames = 0
        self.intersection: np.ndarray | None = None
        self.union: np.ndarray | None = None
        self.channels: tuple[str, ...] = ()
        self.detections = {"all": _DetectionCounts(), **{k.name.lower(): _DetectionCounts() for k in ActorKind}}
        self.light_frames = self.light_correct = 0

    def add(self, frame: SensorFrame, output: PerceptionOutput) -> None:
        """Score one frame's output against the frame's ground truth."""
        truth = frame.ground_truth
        if truth is None:
            return
        self.frames += 1
        if output.bev is not None and frame.privileged_bev is not None:
            predicted = output.bev >= 0.5
            actual = frame.privileged_bev >= 128
            inter = (predicted & actual).sum(axis=(1, 2))
            union = (predicted | actual).sum(axis=(1, 2))
            if self.intersection is None:
                self.intersection, self.union = inter.astype(np.int64), union.astype(np.int64)
                self.channels = frame.bev_spec.channels
            else:
                self.intersection += inter
                self.union += union
            self.bev_frames += 1
        d, a = output.detections, truth.actors
        keep_p = np.hypot(d.center_m[:, 0], d.center_m[:, 1]) <= self.range_m
        keep_t = np.hypot(a.center_m[:, 0], a.center_m[:, 1]) <= self.range_m
        pred_xy, pred_kind = d.center_m[keep_p, :2], d.kind[keep_p]
        true_xy, true_kind = a.center_m[keep_t, :2], a.kind[keep_t]
        pairs = greedy_match(pred_xy, pred_kind, true_xy, true_kind)
        for kind in ActorKind:
            counts = self.detections[kind.name.lower()]
            kind_pairs = [p for p in pairs if pred_kind[p[0]] == kind]
            counts.tp += len(kind_pairs)
            counts.fp += int((pred_kind == kind).sum()) - len(kind_pairs)
            counts.fn += int((true_kind == kind).sum()) - len(kind_pairs)
            counts.errors += [p[2] for p in kind_pairs]
        total = self.detections["all"]
        total.tp += len(pairs)
        total.fp += pred_xy.shape[0] - len(pairs)
        total.fn += true_xy.shape[0] - len(pairs)
        total.errors += [p[2] for p in pairs]
        self.light_frames += 1
        self.light_correct += int(output.light.state == truth.light.state)

    def result(self) -> dict[str, Any]:
        """The scores as plain JSON values."""
        iou = None
        miou = None
        if self.intersection is not None:
            iou = {name: (_rounded(float(i) / float(u)) if u else None)
                   for name, i, u in zip(self.channels, self.intersection, self.union)}
            present = [v for v in iou.values() if v is not None]
            miou = _rounded(float(np.mean(present))) if present else None
        return {"frames": self.frames, "bev_frames": self.bev_frames, "bev_iou": iou, "bev_miou": miou,
                "detection": {"range_m": self.range_m, "match_radius_m": MATCH_RADIUS_M,
                              **{k: v.result() for k, v in self.detections.items()}},
                "light_accuracy": _rounded(self.light_correct / self.light_frames) if self.light_frames else None,
                "light_frames": self.light_frames}


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "p95": None, "max": None}
    array = np.asarray(values, dtype=float)
    return {"mean": _rounded(float(array.mean())), "p95": _rounded(float(np.percentile(array, 95))),
            "max": _rounded(float(array.max()))}


class LocalizationScore:
    """Accumulates a localization stage's pose errors over frames (see the module docstring)."""

    def __init__(self) -> None:
        self.position: list[float] = []
        self.yaw: list[float] = []
        self.valid = 0

    def add(self, frame: SensorFrame, output: PoseEstimate) -> None:
        """Score one frame's estimate against the frame's ground-truth ego pose."""
        truth = frame.ground_truth
        if truth is None:
            return
        ego = truth.ego
        self.position.append(math.hypot(output.pose.x_m - ego.x_m, output.pose.y_m - ego.y_m))
        error = (output.pose.yaw_rad - ego.yaw_rad + math.pi) % (2.0 * math.pi) - math.pi
        self.yaw.append(abs(math.degrees(error)))
        self.valid += int(output.valid)

    def result(self) -> dict[str, Any]:
        """The scores as plain JSON values."""
        n = len(self.position)
        return {"frames": n, "position_error_m": _stats(self.position), "yaw_error_deg": _stats(self.yaw),
                "valid_share": _rounded(self.valid / n) if n else None}


SCORES = {"perception": PerceptionScore, "localization": LocalizationScore}
"""The score of each stage that open-loop replay evaluates."""
