"""Train the traffic-light classifier (:mod:`av_stack.perception.learned.light`) on a dataset written by
``avsim collect``:

    avsim train perception-light --config configs/perception/light.yaml --out runs/perception/light

The logs of the ``train`` split (``val`` for the per-epoch scores) are replayed as the evaluation does: each
logged route's mission resets a :class:`~av_stack.perception.learned.light.LightReader`, whose locator
follows the GNSS fixes. Every sample frame whose next light (the locator's, when it agrees with the ground
truth's) is within ``train.max_distance_m`` along the route and in view gives ``train.crops_per_frame``
patches: one from the GNSS pose, the others from poses jittered along, across and in heading, so that a
noisy fix still finds the heads. Each patch is cropped from the camera the reader would read (the
checkpoint's camera, or ``light_rgb`` near the stop line where a dataset has it). A model with the
``none_class`` also learns crops with no lit head (label :data:`~av_stack.perception.learned.light.NONE_CLASS`):
the same frames' box raised above the heads (a crop wholly above the heads' box in the image), and random crops
of frames with no light pole near. The patches are kept in
``OUT/patches_{split}.npz`` (built once; ``OUT/patches_{split}_{k}.npz`` for the k-th of
``train.extra_data``, whose logs are added to the first dataset's).

Writes ``OUT/last.pt`` (each epoch, atomically; it holds the config), ``OUT/train_log.jsonl`` (one line per
epoch: loss, validation accuracy overall and per distance bin). Running the command again resumes from
``OUT/last.pt``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from av_stack.messages import SensorCalibration
from av_stack.perception.learned.light import (
    LIGHT_STATES,
    NONE_CLASS,
    LightConfig,
    LightNet,
    LightReader,
    LightTarget,
    Window,
    box_samples,
    frame_pose,
    head_box,
    light_net,
    load_light_checkpoint,
    project,
    save_light_checkpoint,
    world_to_ego,
)

CHECKPOINT = "last.pt"
DISTANCE_BINS = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, 60.0))
_LABEL = {int(state): k for k, state in enumerate(LIGHT_STATES)}
FIELDS = ("patches", "label", "distance", "visible", "log", "camera")


def jitter_pose(pose: tuple[float, float, float], rng: np.random.Generator, along_m: float, lateral_m: float,
                yaw_deg: float) -> tuple[float, float, float]:
    """``pose`` (x, y, yaw) moved by Gaussian errors along and across its heading and in the heading."""
    x, y, yaw = pose
    da, dl = rng.normal(0.0, along_m), rng.normal(0.0, lateral_m)
    cos, sin = math.cos(yaw), math.sin(yaw)
    return x + da * cos - dl * sin, y + da * sin + dl * cos, yaw + math.radians(rng.normal(0.0, yaw_deg))


def random_window(image_size: tuple[int, int], rng: np.random.Generator, min_width: float = 24.0) -> Window:
    """A 2:1 crop box of random size (log-uniform from ``min_width`` to the image width) and place."""
    width, height = image_size
    w = float(np.exp(rng.uniform(np.log(min_width), np.log(width))))
    cu, cv = rng.uniform(0, width), rng.uniform(0, height)
    return Window((cu - w / 2, cv - w / 4, cu + w / 2, cv + w / 4), 1.0)


def lifted_window(reader: LightReader, target: LightTarget, calibration: SensorCalibration,
                  pose: tuple[float, float, float], lift_m: float) -> Window | None:
    """The window of ``target``'s box raised by ``lift_m`` seen from ``pose``, if the crop lies wholly above
    the heads' own box in the image (so it holds no lamp of this light) and reaches into the image; else None."""
    window = reader.window(target, calibration, pose, lift_m)
    if window is None:
        return None
    corners = head_box(reader.locator.mission, target, reader.config.window, reader.locator.road_height(target.entry))
    pixels, depth = project(box_samples(world_to_ego(corners, pose), 6), calibration)
    front = depth > 0.5
    top = float(pixels[front, 1].min()) if front.any() else math.inf
    bottom = window.box[3]
    return window if 8.0 < bottom < top - 2.0 else None


def _near_light(reader: LightReader, frame, clear_m: float) -> bool:
    """Whether a light pole of the reader's mission is within ``clear_m`` of the frame's GNSS position (True
    when there is no mission or no fix: not a safe negative)."""
    mission, pose = reader.locator.mission, frame_pose(frame)
    if mission is None or pose is None:
        return True
    poles = mission.signals.location_xyz
    if len(poles) == 0:
        return False
    return bool((np.hypot(poles[:, 0] - pose[0], poles[:, 1] - pose[1]) < clear_m).any())


def extract_patches(config: LightConfig, root: str | Path, split: str,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """The training patches of one split (module docstring): ``patches`` (N, K, h, w, 3) uint8, ``label``
    (N,) index into :data:`LIGHT_STATES` (or :data:`NONE_CLASS`), ``distance`` (N,) route distance [m] (NaN
    for a negative), ``visible`` (N,), ``log`` (N,)
    the index of the frame's log among the split's, ``camera`` (N,) 0 for the checkpoint's camera, 1 for
    another (``light_rgb``)."""
    from av_stack.data.manifest import read_manifest
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import ReplayError, log_map, mission_of

    root = Path(root)
    t = config.train
    logs = [entry for entry in read_manifest(root)["logs"] if entry["split"] == split]
    reader = LightReader(light_net(config), config)
    rng = np.random.default_rng([t.seed, len(split)])
    patches, labels, distances, visible, log_index, cameras = [], [], [], [], [], []
    negatives = config.model.none_class
    clear_frames = 0

    def add(crops: list[np.ndarray], label: int, distance: float, seen: float, log: int, camera: str) -> None:
        patches.append(np.stack(crops))
        labels.append(label)
        distances.append(distance)
        visible.append(seen)
        log_index.append(log)
        cameras.append(int(camera != config.model.camera))

    for done, entry in enumerate(logs):
        log = LogReader(root / entry["file"])
        the_map = log_map(log)
        reader.reset(None)
        for logged in log.frames():
            episode = logged.messages.get(T.EPISODE)
            if episode is not None:
                try:
                    reader.reset(mission_of(log, the_map, episode, logged.messages.get(T.GT_WORLD)))
                except ReplayError:
                    reader.reset(None)
            if not logged.has_sensor_data or logged.sensor_frame.ground_truth is None:
                continue
            frame = logged.sensor_frame
            view = reader.view(frame)
            truth = frame.ground_truth.light
            target, window = view.target, view.window
            if negatives and not _near_light(reader, frame, t.negative_clear_m):
                clear_frames += 1
                if clear_frames % t.negative_every == 0:
                    choices = [c for c in reader.frame_cameras(frame) if c in frame.data]
                    camera = choices[int(rng.integers(len(choices)))]
                    image = np.asarray(frame.data[camera])
                    size = frame.calibration[camera].image_size
                    add([reader.patch(image, random_window(size, rng)) for _ in range(t.crops_per_frame)],
                        NONE_CLASS, math.nan, 0.0, done, camera)
            if (target is None or window is None or truth.state is None or int(truth.state) not in _LABEL
                    or truth.index != target.light or target.distance_m > t.max_distance_m
                    or window.visible < config.window.min_visible or view.camera not in frame.data):
                continue
            image = np.asarray(frame.data[view.camera])  # the reader's choice: light_rgb where front_rgb cannot see
            crops = [reader.patch(image, window)]
            calibration = frame.calibration[view.camera]
            while len(crops) < t.crops_per_frame:
                moved = reader.window(target, calibration, jitter_pose(
                    target.pose, rng, t.jitter_along_m, t.jitter_lateral_m, t.jitter_yaw_deg))
                crops.append(reader.patch(image, moved) if moved is not None else crops[0])
            add(crops, _LABEL[int(truth.state)], target.distance_m, window.visible, done, view.camera)
            if negatives:
                lifted = []
                for k in range(4 * t.crops_per_frame):
                    pose = target.pose if k == 0 else jitter_pose(target.pose, rng, t.jitter_along_m,
                                                                   t.jitter_lateral_m, t.jitter_yaw_deg)
                    above = lifted_window(reader, target, calibration, pose, rng.uniform(*t.negative_lift_m))
                    if above is not None:
                        lifted.append(reader.patch(image, above))
                    if len(lifted) == t.crops_per_frame:
                        add(lifted, NONE_CLASS, math.nan, 0.0, done, view.camera)
                        break
        if progress is not None:
            progress(done + 1, len(logs))
    m = config.model
    return {"patches": np.stack(patches) if patches else np.zeros((0, t.crops_per_frame, m.patch_height,
                                                                   m.patch_width, 3), np.uint8),
            "label": np.array(labels, np.int64), "distance": np.array(distances, np.float32),
            "visible": np.array(visible, np.float32), "log": np.array(log_index, np.int64),
            "camera": np.array(cameras, np.int64)}


def _patch_key(config: LightConfig, root: Path, split: str) -> str:
    """What the cached patches of a split depend on: the data, the window, the patch size, the crops."""
    from av_stack.data.manifest import read_manifest

    files = [entry["file"] for entry in read_manifest(root)["logs"] if entry["split"] == split]
    t = config.train
    m = config.model
    parts = ["cameras/2", config.window.model_dump(), m.camera, m.patch_width, m.patch_height, files, t.max_distance_m,
             t.crops_per_frame, t.jitter_along_m, t.jitter_lateral_m, t.jitter_yaw_deg, t.seed]
    if m.none_class:
        parts += ["negatives/1", t.negative_lift_m, t.negative_clear_m, t.negative_every]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_patches(config: LightConfig, root: Path, split: str, out: Path,
                   progress: Callable[[int, int], None] | None = None, name: str = "") -> dict[str, np.ndarray]:
    """The patches of ``split``, from ``out/patches_{split}{name}.npz`` when it matches, else extracted and
    saved."""
    path = out / f"patches_{split}{name}.npz"
    key = _patch_key(config, root, split)
    if path.is_file():
        with np.load(path) as stored:
            if str(stored["key"]) == key:
                return {name: stored[name] for name in FIELDS}
    data = extract_patches(config, root, split, progress)
    partial = path.with_name(path.name + ".part.npz")
    np.savez(partial, key=np.array(key), **data)
    partial.replace(path)
    return data


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness and contrast changes and left-right flips of a uint8 batch (B, 3, h, w) -> float."""
    n = batch.shape[0]
    x = batch.float()
    gain = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
    bias = 20.0 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    x = (x * gain + bias).clamp(0.0, 255.0)
    flip = torch.rand(n, generator=generator) < 0.5
    x[flip] = x[flip].flip(-1)
    return x


@torch.no_grad()
def recalibrate_batch_norm(model: LightNet, patches: np.ndarray, batch_size: int = 256) -> None:
    """Set every BatchNorm's running statistics to the exact mean and variance over ``patches`` (N, h, w, 3):
    the running averages of the last steps swing with the sparse lit features, and the accuracy in eval
    mode swung with them (between 0.68 and 0.89 on the training frames from one epoch to the next)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for k in range(0, len(patches), batch_size):
        model(torch.from_numpy(np.ascontiguousarray(patches[k:k + batch_size].transpose(0, 3, 1, 2))))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def accuracy_by_distance(model: LightNet, patches: np.ndarray, labels: np.ndarray, distance: np.ndarray,
                         batch_size: int = 256) -> dict[str, float | None]:
    """Accuracy of ``model`` on the lights' patches (N, h, w, 3), overall and per :data:`DISTANCE_BINS` bin;
    where there are negatives (:data:`NONE_CLASS`), ``none_recall`` (negatives read as none) and
    ``false_none`` (lights' patches read as none)."""
    model.eval()
    if len(labels) == 0:
        return {"accuracy": None}
    predicted_parts = []
    for k in range(0, len(labels), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(patches[k:k + batch_size].transpose(0, 3, 1, 2)))
        predicted_parts.append(model(x).argmax(1).numpy())
    predicted = np.concatenate(predicted_parts)
    lights = labels != NONE_CLASS
    right = predicted == labels
    scores: dict[str, float | None] = {"accuracy": round(float(right[lights].mean()), 4) if lights.any() else None}
    if (~lights).any():
        scores["none_recall"] = round(float(right[~lights].mean()), 4)
        scores["false_none"] = round(float((predicted[lights] == NONE_CLASS).mean()), 4) if lights.any() else None
    for lo, hi in DISTANCE_BINS:
        keep = (distance >= lo) & (distance < hi)
        scores[f"accuracy_{lo:.0f}_{hi:.0f}m"] = round(float(right[keep].mean()), 4) if keep.any() else None
    return scores


def fit(model: LightNet, patches: np.ndarray, labels: np.ndarray, config: LightConfig, out: Path | None = None,
        val: dict[str, np.ndarray] | None = None, epochs: int | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``patches`` (N, K, h, w, 3) with ``labels`` (N,) (each epoch one of the K crops of
    every frame), checkpointing and logging to ``out`` (resuming from ``out/last.pt``); the last record.
    After each epoch the BatchNorm statistics are recomputed on the GNSS-pose crops."""
    t = config.train
    epochs = epochs or t.epochs
    if len(labels) == 0:
        raise ValueError("no training patches: the dataset has no frames with a light ahead in view")
    if labels.max() >= model.head.out_features:
        raise ValueError(f"the patches have {int(labels.max()) + 1} classes, the model {model.head.out_features}: "
                         "negatives need a model with none_class")
    torch.manual_seed(t.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    state = {"epoch": 0}
    if out is not None and (out / CHECKPOINT).is_file():
        loaded, _, saved = load_light_checkpoint(out / CHECKPOINT)
        model.load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(saved["optimizer"])
        state["epoch"] = int(saved["epoch"])
    n = len(labels)
    steps_per_epoch = max(1, math.ceil(n / t.batch_size))
    total = steps_per_epoch * epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    for _ in range(state["epoch"] * steps_per_epoch):
        schedule.step()
    counts = np.bincount(labels, minlength=model.head.out_features).astype(np.float64)
    weights = torch.tensor(1.0 / np.sqrt(np.maximum(counts, 1.0)), dtype=torch.float32)
    weights = weights / (weights * torch.tensor(counts, dtype=torch.float32)).sum() * n
    labels_t = torch.from_numpy(labels)
    record: dict[str, Any] = {}
    while state["epoch"] < epochs:
        generator = torch.Generator().manual_seed(t.seed * 1000 + state["epoch"])
        order = torch.randperm(n, generator=generator)
        crop = torch.randint(0, patches.shape[1], (n,), generator=generator)
        model.train()
        started, loss_sum = time.time(), 0.0
        for step in range(steps_per_epoch):
            rows = order[step * t.batch_size:(step + 1) * t.batch_size]
            chosen = patches[rows.numpy(), crop[rows].numpy()]
            x = augment(torch.from_numpy(np.ascontiguousarray(chosen.transpose(0, 3, 1, 2))), generator)
            loss = F.cross_entropy(model(x), labels_t[rows], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach())
            if progress is not None:
                progress(state["epoch"] * steps_per_epoch + step + 1, total)
        state["epoch"] += 1
        recalibrate_batch_norm(model, patches[:, 0])
        record = {"epoch": state["epoch"], "seconds": round(time.time() - started, 1),
                  "loss": round(loss_sum / steps_per_epoch, 5),
                  "train_accuracy": accuracy_by_distance(model, patches[:, 0], labels,
                                                         np.zeros(n, np.float32))["accuracy"]}
        if val is not None:
            record.update({f"val_{k}": v for k, v in accuracy_by_distance(model, val["patches"][:, 0], val["label"],
                                                                          val["distance"]).items()})
            other = val.get("camera", np.zeros(len(val["label"]), np.int64)) == 1
            if other.any():
                record["val_accuracy_other_camera"] = accuracy_by_distance(
                    model, val["patches"][other, 0], val["label"][other], val["distance"][other])["accuracy"]
        if out is not None:
            save_light_checkpoint(out / CHECKPOINT, model, config,
                                  {**state, "optimizer": optimizer.state_dict(), "metrics": record})
            with open(out / "train_log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
    model.eval()
    return record


def train_light(config: LightConfig, out: str | Path, data_root: str | Path | None = None,
                epochs: int | None = None, progress: Callable[[str, int, int], None] | None = None
                ) -> dict[str, Any]:
    """Extract the patches (once) and train (or resume) as the module docstring says; the last record.
    ``progress(stage, done, total)``: stage ``train`` / ``val`` while extracting (logs), ``fit`` (steps)."""
    from av_stack.data.manifest import read_manifest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    roots = [Path(data_root or config.train.data), *(Path(extra) for extra in config.train.extra_data)]

    def reporter(stage: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(stage, done, total))

    trains, vals = [], []
    for k, root in enumerate(roots):
        splits = {entry["split"] for entry in read_manifest(root)["logs"]}
        name = f"_{k}" if k else ""  # the first dataset's files keep their names
        if "train" in splits:
            trains.append(cached_patches(config, root, "train", out, reporter("train"), name))
        if "val" in splits:
            vals.append(cached_patches(config, root, "val", out, reporter("val"), name))
    if not trains:
        raise ValueError(f"no train logs in {', '.join(map(str, roots))}")
    train = _concatenate(trains)
    val = _concatenate(vals) if vals else None
    model = light_net(config)
    record = fit(model, train["patches"], train["label"], config, out, val, epochs, reporter("fit"))
    return {**record, "train_frames": int(len(train["label"])),
            "train_frames_other_camera": int(train["camera"].sum()),
            "train_negatives": int((train["label"] == NONE_CLASS).sum()),
            "val_frames": int(len(val["label"])) if val is not None else 0}


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The patches of several datasets as one (log indices stay per dataset)."""
    return {name: np.concatenate([p[name] for p in parts]) for name in FIELDS}
