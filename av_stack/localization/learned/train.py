"""Train the map-matching network on ``avsim collect`` datasets (``avsim train localization``).

    avsim train localization --config configs/localization/matcher.yaml --out runs/localization/matcher

Each sample frame of the ``train`` split (``val`` for the per-epoch scores)
gives its LiDAR raster once (cached in ``OUT/samples_<split>.npz``); every
time it is drawn, the prior pose is the true pose moved by a random offset
(uniform within ``max_offset_m`` / ``max_yaw_deg``, or, for ``fine_share`` of
the draws, Gaussian with ``fine_offset_m`` / ``fine_yaw_deg``), the map is
rendered there, and the network learns the true pose in the prior's frame
with a Gaussian negative log-likelihood. Validation uses fixed seeded offsets.

**The ego moved off its recorded pose** (``shift_share``, off by default).
An expert that keeps to the lane centre teaches the network that the true
pose is the lane centre the map shows around the prior: in closed loop, a
car that drifted 1.7 m off the centre was matched back onto it with a
0.08 m standard deviation. For ``shift_share`` of the draws the sample's
ego is moved (uniformly within ``shift_longitudinal_m`` /
``shift_lateral_m`` / ``shift_yaw_deg``, in its own frame) before the prior
is drawn around it: the LiDAR raster is warped into the moved ego's frame
(:func:`shift_scan`, nearest cell) and the target is the moved pose.
Validation then also scores moved poses (``val_*_shifted``). Measured
(``benchmarks/localization_results.md``): this helps little, since the warp
leaves the sweep's rings and blind disc around the recorded sensor position,
which still tells the network where the lane centre was; real off-centre
drives (``avsim collect`` with ``drift``, ``configs/collect/localization.yaml``)
cut the pull towards the lane centre far more.

Writes ``OUT/last.pt`` (every ``checkpoint_every_steps`` and at each epoch's
end, atomically), ``OUT/train_log.jsonl`` (one line per epoch) and
TensorBoard curves in ``OUT/tb``; the same command again resumes from
``OUT/last.pt``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from av_stack.localization.learned.model import GRID, MatchNet, compose, gaussian_nll, load_checkpoint, \
    map_layers, relative_pose, save_checkpoint

CHECKPOINT = "last.pt"


class ModelSection(BaseModel):
    """Network size."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width: int = Field(16, ge=4, description="channels of the first stage (the last three have 4x)")
    lidar: str = Field("roof_lidar", description="the LiDAR sensor")


class TrainSection(BaseModel):
    """Data, perturbations and optimisation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data: str = "data/perception"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    max_offset_m: float = Field(3.0, gt=0, description="uniform prior offsets up to this on each axis")
    max_yaw_deg: float = Field(5.0, gt=0)
    fine_share: float = Field(0.5, ge=0, le=1, description="share of draws with small Gaussian offsets")
    fine_offset_m: float = Field(0.5, gt=0)
    fine_yaw_deg: float = Field(1.0, gt=0)
    shift_share: float = Field(0.0, ge=0, le=1, description="share of draws whose ego is moved off its "
                               "recorded pose (the lane centre must not be the answer)")
    shift_longitudinal_m: float = Field(1.0, ge=0, description="the ego moved up to this along its heading")
    shift_lateral_m: float = Field(2.0, ge=0, description="... and up to this across it")
    shift_yaw_deg: float = Field(5.0, ge=0, description="... and turned up to this")
    val_samples: int = Field(600, ge=1, description="validation frames scored each epoch (at most)")
    checkpoint_every_steps: int = Field(200, ge=1)
    seed: int = 0


class MatcherConfig(BaseModel):
    """``configs/localization/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelSection = ModelSection()
    train: TrainSection = TrainSection()


def load_matcher_config(path: str | Path | dict | None) -> MatcherConfig:
    """A validated config from a YAML file (a path or a shipped name under configs/localization) or a dict;
    :class:`ConfigError` naming the file and the key."""
    from sim.resources import load_model_config

    return load_model_config(path, MatcherConfig, "localization", "localization config")


class MatchSamples:
    """The LiDAR rasters, true poses (x, y, yaw) and towns of one split, with each town's map raster."""

    def __init__(self, scans: np.ndarray, poses: np.ndarray, towns: np.ndarray, rasters: dict[str, Any]) -> None:
        self.scans, self.poses, self.towns, self.rasters = scans, poses, towns, rasters

    def __len__(self) -> int:
        return len(self.poses)

    def batch(self, rows: np.ndarray, offsets: np.ndarray, shifts: np.ndarray | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, 7, H, W) with the map at each true pose plus ``offsets`` (B, 3: world dx, dy, dyaw) and
        the targets (B, 3): the true pose in the prior's frame. ``shifts`` (B, 3: dx forward, dy right, dyaw
        in the ego frame): each ego moved this far off its recorded pose first (its scan warped to match)."""
        inputs = np.empty((len(rows), 7, GRID.config.size_px, GRID.config.size_px), np.float32)
        targets = np.empty((len(rows), 3), np.float32)
        for k, (row, offset) in enumerate(zip(rows, offsets)):
            truth = self.poses[row]
            if shifts is not None and np.any(shifts[k]):
                truth = compose(truth, shifts[k])
                inputs[k, :4] = shift_scan(self.scans[row], shifts[k])
            else:
                inputs[k, :4] = self.scans[row]
            prior = truth + offset
            inputs[k, 4:] = map_layers(self.rasters[str(self.towns[row])].view(*prior, GRID))
            targets[k] = relative_pose(prior, truth)
        return torch.from_numpy(inputs), torch.from_numpy(targets)


def draw_offsets(rng: np.random.Generator, count: int, t: TrainSection) -> np.ndarray:
    """(count, 3) prior offsets (world dx, dy [m], dyaw [rad]) as the module docstring says."""
    wide = rng.uniform(-1, 1, (count, 3)) * [t.max_offset_m, t.max_offset_m, math.radians(t.max_yaw_deg)]
    fine = rng.standard_normal((count, 3)) * [t.fine_offset_m, t.fine_offset_m, math.radians(t.fine_yaw_deg)]
    use_fine = rng.random(count) < t.fine_share
    return np.where(use_fine[:, None], fine, wide)


def draw_shifts(rng: np.random.Generator, count: int, t: TrainSection, share: float | None = None) -> np.ndarray:
    """(count, 3) moves of the ego off its recorded pose (dx forward, dy right [m], dyaw [rad], in its frame):
    uniform within the ``shift_*`` bounds for ``share`` (default ``t.shift_share``) of the rows, zero for the
    rest."""
    bounds = [t.shift_longitudinal_m, t.shift_lateral_m, math.radians(t.shift_yaw_deg)]
    moves = rng.uniform(-1, 1, (count, 3)) * bounds
    moved = rng.random(count) < (t.shift_share if share is None else share)
    return np.where(moved[:, None], moves, 0.0)


def shift_scan(scan: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The (C, H, W) ego-frame raster ``scan`` of :data:`GRID` as seen from the ego moved by ``shift`` (dx
    forward, dy right, dyaw in its frame): what lies at ``q`` in the moved frame lies at ``shift``
    composed with ``q`` in the recorded one (nearest cell; uncovered cells are 0)."""
    import cv2

    c = GRID.config
    cx, cy = c.size_px // 2, c.size_px - 1 - c.ego_from_bottom_px
    to_pixel = np.array([[0.0, c.pixels_per_m, cx], [-c.pixels_per_m, 0.0, cy], [0.0, 0.0, 1.0]])  # (x, y) -> (col, row)
    cos, sin = math.cos(shift[2]), math.sin(shift[2])
    move = np.array([[cos, -sin, shift[0]], [sin, cos, shift[1]], [0.0, 0.0, 1.0]])
    source = to_pixel @ move @ np.linalg.inv(to_pixel)  # moved-frame pixel -> recorded-frame pixel
    image = np.ascontiguousarray(np.moveaxis(np.asarray(scan, np.float32), 0, -1))
    warped = cv2.warpAffine(image, source[:2], (c.size_px, c.size_px),
                            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    return np.moveaxis(warped.reshape(c.size_px, c.size_px, -1), -1, 0)


def load_samples(root: Path, split: str, lidar: str, cache: Path | None = None, limit: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> MatchSamples:
    """The split's samples (LiDAR rasters computed once, reused from ``cache`` when it is there)."""
    from av_stack.data.dataset import DrivingDataset
    from av_stack.data.manifest import DatasetError
    from av_stack.perception.learned.geometry import lidar_bev
    from av_stack.perception.learned.train import dataset_geometry

    calibration, _ = dataset_geometry(root)
    if lidar not in calibration:
        raise DatasetError(f"dataset {root} has no LiDAR {lidar!r} (it has {sorted(calibration)})")
    if cache is not None and cache.is_file():
        saved = np.load(cache)
        scans, poses, towns = saved["scans"], saved["poses"], saved["towns"]
    else:
        data = DrivingDataset(root, split, sensors=(lidar,))
        count = len(data) if limit is None else min(limit, len(data))
        scans = np.empty((count, 4, GRID.config.size_px, GRID.config.size_px), np.float16)
        poses = np.empty((count, 3))
        towns = []
        mount = calibration[lidar].mount
        for k in range(count):
            sample = data[k]
            scans[k] = lidar_bev(np.asarray(sample["sensor/" + lidar]), mount, GRID)
            pose = sample["ego_pose"]
            poses[k] = (pose[0], pose[1], pose[4])
            towns.append(str(sample["town"]))
            if progress is not None:
                progress(k + 1, count)
        towns = np.array(towns)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, scans=scans, poses=poses, towns=towns)
    return MatchSamples(scans, poses, towns, town_rasters(root, sorted(set(towns.tolist()))))


def town_rasters(root: Path, towns: list[str]) -> dict[str, Any]:
    """Each town's :class:`~av_stack.perception.classical.MapRaster` on :data:`GRID`'s resolution, from the
    lane graph of the map attached to one of its logs."""
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.logs.reader import LogReader
    from av_stack.perception.classical import MapRaster
    from av_stack.replay.logged import log_map

    entries = read_manifest(root)["logs"]
    rasters = {}
    for town in towns:
        entry = next((e for e in entries if e["town"] == town), None)
        if entry is None:
            raise DatasetError(f"dataset {root} has no log of town {town}")
        rasters[town] = MapRaster(log_map(LogReader(root / entry["file"])).lanes, GRID.config.pixels_per_m)
    return rasters


def validation_scores(model: MatchNet, samples: MatchSamples, t: TrainSection, shifted: bool = False
                      ) -> dict[str, float]:
    """NLL, RMS errors (m, deg) and the share of errors within 2 predicted sigmas, at seeded offsets;
    ``shifted``: every ego moved off its recorded pose (seeded :func:`draw_shifts`, share 1), the keys
    suffixed ``_shifted``."""
    rng = np.random.default_rng(t.seed + 1)
    rows = np.arange(min(t.val_samples, len(samples)))
    offsets = draw_offsets(rng, len(rows), t)
    shifts = draw_shifts(np.random.default_rng(t.seed + 2), len(rows), t, share=1.0) if shifted else None
    model.eval()
    nll, errors, within = 0.0, [], []
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            x, target = samples.batch(rows[start:start + 64], offsets[start:start + 64],
                                      None if shifts is None else shifts[start:start + 64])
            mean, log_var = model(x)
            nll += float(gaussian_nll(mean, log_var, target / model.scale)) * len(x)
            error = mean * model.scale - target
            errors.append(error.numpy())
            within.append((error.abs() <= 2 * torch.exp(0.5 * log_var) * model.scale).float().numpy())
    model.train()
    error, inside = np.concatenate(errors), np.concatenate(within)
    scores = {"val_nll": nll / len(rows), "val_rms_x_m": float(np.sqrt(np.mean(error[:, 0] ** 2))),
              "val_rms_y_m": float(np.sqrt(np.mean(error[:, 1] ** 2))),
              "val_rms_yaw_deg": float(np.degrees(np.sqrt(np.mean(error[:, 2] ** 2)))),
              "val_within_2sigma": float(inside.mean())}
    return {f"{key}_shifted" if shifted else key: value for key, value in scores.items()}


def train_matcher(config: MatcherConfig, out: str | Path, data_root: str | Path | None = None,
                  max_steps: int | None = None, progress: Callable[[int, int, dict], None] | None = None,
                  limit: int | None = None) -> dict[str, Any]:
    """Train (or resume) as the module docstring says; the last epoch's record. ``limit``: use at most that
    many frames of each split (tests)."""
    from torch.utils.tensorboard import SummaryWriter

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = config.train
    root = Path(data_root or t.data)
    torch.manual_seed(t.seed)
    model = MatchNet(config.model.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    state = {"epoch": 0, "step": 0}
    if (out / CHECKPOINT).is_file():
        loaded, saved = load_checkpoint(out / CHECKPOINT)
        model.load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: int(saved[k]) for k in state}
    train = load_samples(root, "train", config.model.lidar, out / "samples_train.npz", limit)
    val = load_samples(root, "val", config.model.lidar, out / "samples_val.npz", limit) if _has_split(root, "val") \
        else None
    steps_per_epoch = max(1, len(train) // t.batch_size)
    total = steps_per_epoch * t.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    with warnings.catch_warnings():  # fast-forwarding a resumed run's schedule before any optimizer step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(state["step"]):
            schedule.step()
    board = SummaryWriter(str(out / "tb"))
    record: dict[str, Any] = {}
    dump = config.model_dump(mode="json")
    model.train()
    try:
        while state["epoch"] < t.epochs:
            rng = np.random.default_rng([t.seed, state["epoch"]])
            order = rng.permutation(len(train))
            done_in_epoch = state["step"] - state["epoch"] * steps_per_epoch
            losses, started = [], time.time()
            for k in range(done_in_epoch, steps_per_epoch):
                rows = order[k * t.batch_size:(k + 1) * t.batch_size]
                step_rng = np.random.default_rng([t.seed, state["epoch"], k])
                x, target = train.batch(rows, draw_offsets(step_rng, len(rows), t),
                                        draw_shifts(step_rng, len(rows), t))
                mean, log_var = model(x)
                loss = gaussian_nll(mean, log_var, target / model.scale)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                schedule.step()
                state["step"] += 1
                losses.append(float(loss.detach()))
                board.add_scalar("train/nll", losses[-1], state["step"])
                if progress is not None:
                    progress(state["step"], total, {"nll": losses[-1]})
                if state["step"] % t.checkpoint_every_steps == 0:
                    save_checkpoint(out / CHECKPOINT, model, dump, {**state, "optimizer": optimizer.state_dict()})
                if max_steps is not None and state["step"] >= max_steps:
                    break
            epoch_done = state["step"] >= (state["epoch"] + 1) * steps_per_epoch
            record = {"epoch": state["epoch"] + (1 if epoch_done else 0), "step": state["step"],
                      "seconds": round(time.time() - started, 1),
                      "loss_nll": float(np.mean(losses)) if losses else float("nan")}
            if val is not None and epoch_done:
                record.update(validation_scores(model, val, t))
                record.update(validation_scores(model, val, t, shifted=True))
                for name, value in record.items():
                    if name.startswith("val_"):
                        board.add_scalar(f"val/{name[4:]}", value, state["step"])
            if epoch_done:
                state["epoch"] += 1
            save_checkpoint(out / CHECKPOINT, model, dump, {**state, "optimizer": optimizer.state_dict(),
                                                            "metrics": record})
            with open(out / "train_log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            if not epoch_done:
                break
    finally:
        board.close()
    return record


def _has_split(root: Path, split: str) -> bool:
    from av_stack.data.manifest import read_manifest

    return any(log["split"] == split for log in read_manifest(root)["logs"])
