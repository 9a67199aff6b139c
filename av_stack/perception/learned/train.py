"""Train the perception network on a dataset written by ``avsim collect`` (its ``train`` split; ``val`` for the
per-epoch scores).

    avsim train perception --config configs/perception/fusion.yaml --out runs/perception/fusion

Writes ``OUT/last.pt`` (every ``train.checkpoint_every_steps`` steps and at each epoch's end, atomically),
``OUT/train_log.jsonl`` (one line per epoch: losses and validation scores), and TensorBoard curves under
``OUT/tb``. Running the same command again resumes from ``OUT/last.pt`` (model, optimizer, epoch, step, and
the position within the epoch), so an interrupted run loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from av_stack.logs.reader import LogReader
from av_stack.messages import BevSpec
from av_stack.perception.learned.checkpoint import load_checkpoint, save_checkpoint
from av_stack.perception.learned.config import SEG_CHANNELS, PerceptionConfig
from av_stack.perception.learned.features import InputBuilder
from av_stack.perception.learned.geometry import mirror_bev
from av_stack.perception.learned.model import FusionNet
from av_stack.perception.learned.targets import detection_targets, light_class, losses, seg_target

CHECKPOINT = "last.pt"


class PerceptionSamples(Dataset):
    """Network inputs and targets of a :class:`~av_stack.data.dataset.DrivingDataset`'s samples."""

    def __init__(self, data, builder: InputBuilder, spec: BevSpec, mirror: float = 0.0, seed: int = 0) -> None:
        """``mirror``: the probability that a sample is mirrored left to right (inputs and targets; the
        draw depends on ``seed``, :attr:`epoch` and the index, so a resumed run sees the same samples)."""
        if mirror > 0 and not builder.can_mirror:
            raise ValueError("mirror augmentation needs the camera on the ego's centre line (y = 0, yaw = roll = 0)")
        self.data, self.builder, self.spec = data, builder, spec
        self.mirror, self.seed, self.epoch = mirror, seed, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        sample = self.data[index]
        mirror = self.mirror > 0 and np.random.default_rng([self.seed, self.epoch, index]).random() < self.mirror
        sensors = {name[len("sensor/"):]: value for name, value in sample.items() if name.startswith("sensor/")}
        item = self.builder(sensors, mirror=mirror)
        item["seg"] = seg_target(sample["bev"], self.spec.channels)
        boxes = np.array(sample["boxes"], dtype=np.float32).reshape(-1, 7)
        velocity = sample.get("box_velocity")
        velocity = None if velocity is None else np.array(velocity, dtype=np.float32).reshape(-1, 2)
        if mirror:
            item["seg"] = mirror_bev(item["seg"], self.spec)
            boxes[:, 1] *= -1.0
            boxes[:, 6] *= -1.0
            if velocity is not None:
                velocity[:, 1] *= -1.0
        grid = self.builder.grid
        item.update(detection_targets(boxes, np.asarray(sample["box_kind"]), velocity, grid.spec, grid.scale))
        item["light"] = np.int64(light_class(int(sample["light_state"])))
        return item


def dataset_geometry(root: str | Path) -> tuple[dict, BevSpec]:
    """(sensor calibration, BEV grid) of a dataset, from its first log (a dataset has one sensor suite)."""
    from av_stack.data.manifest import read_manifest

    manifest = read_manifest(Path(root))
    first = Path(root) / manifest["logs"][0]["file"]
    log = LogReader(first)
    return log.calibration, log.bev_spec


def _loader(data: Dataset, batch_size: int, shuffle: bool, workers: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, num_workers=workers, generator=generator,
                      drop_last=shuffle, persistent_workers=workers > 0)


def _to_tensors(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in batch.items()}


@torch.no_grad()
def validation_scores(model: FusionNet, loader: DataLoader) -> dict[str, float]:
    """Per-channel IoU (threshold 0.5), light accuracy and the mean losses over ``loader``."""
    model.eval()
    inter = np.zeros(len(SEG_CHANNELS))
    union = np.zeros(len(SEG_CHANNELS))
    light_right = light_total = 0
    sums: dict[str, float] = {}
    batches = 0
    for batch in loader:
        batch = _to_tensors(batch)
        out = model(batch)
        for name, value in losses(out, batch).items():
            sums[name] = sums.get(name, 0.0) + float(value)
        batches += 1
        pred = out["seg"] > 0
        truth = batch["seg"] > 0.5
        inter += (pred & truth).sum(dim=(0, 2, 3)).numpy()
        union += (pred | truth).sum(dim=(0, 2, 3)).numpy()
        if "light" in out:
            light_right += int((out["light"].argmax(1) == batch["light"]).sum())
            light_total += int(batch["light"].numel())
    scores = {f"iou_{name}": float(inter[k] / union[k]) if union[k] else math.nan
              for k, name in enumerate(SEG_CHANNELS)}
    scores.update({f"val_loss_{k}": v / max(batches, 1) for k, v in sums.items()})
    if light_total:
        scores["light_accuracy"] = light_right / light_total
    model.train()
    return scores


def train_perception(config: PerceptionConfig, out: str | Path, data_root: str | Path | None = None,
                     max_steps: int | None = None, progress: Callable[[int, int, dict], None] | None = None
                     ) -> dict[str, Any]:
    """Train (or resume) as the module docstring says; the last epoch's record."""
    from av_stack.data.dataset import DrivingDataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = config.train
    root = Path(data_root or t.data)
    calibration, spec = dataset_geometry(root)
    builder = InputBuilder(config.model, calibration, spec)
    torch.manual_seed(t.seed)
    model = FusionNet(config.model, spec.config.size_px, builder.grid)
    if "camera" in config.model.inputs:
        model.set_camera(*builder.ground_grid())
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
    state = {"epoch": 0, "step": 0, "batch_in_epoch": 0}
    if (out / CHECKPOINT).is_file():
        loaded, _, _, saved = load_checkpoint(out / CHECKPOINT)
        model.load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
    elif t.init_from is not None:
        _initialise(model, t.init_from)
    train_data = PerceptionSamples(DrivingDataset(root, "train", sensors=_sensors(config)), builder, spec,
                                   mirror=t.mirror, seed=t.seed)
    val_split = DrivingDataset(root, "val", sensors=_sensors(config)) if _has_split(root, "val") else None
    val_loader = (_loader(PerceptionSamples(val_split, builder, spec), t.batch_size, False, t.num_workers, t.seed)
                  if val_split is not None else None)
    steps_per_epoch = max(1, len(train_data) // t.batch_size)
    total_steps = steps_per_epoch * t.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    for _ in range(state["step"]):
        schedule.step()
    from torch.utils.tensorboard import SummaryWriter

    board = SummaryWriter(str(out / "tb"))
    record: dict[str, Any] = {}
    model.train()
    try:
        while state["epoch"] < t.epochs:
            train_data.epoch = state["epoch"]
            loader = _loader(train_data, t.batch_size, True, t.num_workers, t.seed + state["epoch"])
            sums: dict[str, float] = {}
            batches, started = 0, time.time()
            for k, batch in enumerate(loader):
                if k < state["batch_in_epoch"]:
                    continue  # resuming inside an epoch: the same shuffled order, done batches skipped
                batch = _to_tensors(batch)
                terms = losses(model(batch), batch)
                weights = {"seg": t.seg_weight, "dice": t.dice_weight, "heatmap": t.heatmap_weight,
                           "box": t.box_weight, "light": t.light_weight}
                loss = sum(weights[name] * value for name, value in terms.items())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
                schedule.step()
                state["step"] += 1
                state["batch_in_epoch"] = k + 1
                batches += 1
                values = {name: float(value.detach()) for name, value in terms.items()}
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                    board.add_scalar(f"train/{name}", value, state["step"])
                board.add_scalar("train/loss", float(loss.detach()), state["step"])
                if progress is not None:
                    progress(state["step"], total_steps, values)
                if state["step"] % t.checkpoint_every_steps == 0:
                    save_checkpoint(out / CHECKPOINT, model, config, spec, {**state, "optimizer": optimizer.state_dict()})
                if max_steps is not None and state["step"] >= max_steps:
                    break
            epoch_done = max_steps is None or state["step"] < max_steps
            record = {"epoch": state["epoch"] + (1 if epoch_done else 0), "step": state["step"],
                      "seconds": round(time.time() - started, 1),
                      **{f"loss_{n}": v / max(batches, 1) for n, v in sums.items()}}
            if val_loader is not None and epoch_done:
                record.update(validation_scores(model, val_loader))
                for name, value in record.items():
                    if name.startswith(("iou_", "val_", "light_")) and not math.isnan(value):
                        board.add_scalar(f"val/{name}", value, state["step"])
            if epoch_done:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
            save_checkpoint(out / CHECKPOINT, model, config, spec,
                            {**state, "optimizer": optimizer.state_dict(), "metrics": record})
            with open(out / "train_log.jsonl", "a") as log:
                log.write(json.dumps(record) + "\n")
            if not epoch_done:
                break
    finally:
        board.close()
    return record


def _initialise(model: FusionNet, path: str) -> None:
    """Start ``model`` from the weights of the checkpoint at ``path`` (a shipped name or a file)."""
    from av_stack.perception.learned.checkpoint import CheckpointError
    from av_stack.shipped import shipped_file

    source, source_config, _, _ = load_checkpoint(shipped_file(path))
    if tuple(source_config.model.inputs) != tuple(model.config.inputs):
        raise CheckpointError(f"init_from {path}: its inputs {list(source_config.model.inputs)} are not the "
                              f"model's {list(model.config.inputs)}")
    try:
        missing, unexpected = model.load_state_dict(source.grid_free_state(), strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"init_from {path}: its weights do not fit the model: {exc}") from None
    missing = [k for k in missing if not k.startswith("ground_")]
    if missing or unexpected:
        raise CheckpointError(f"init_from {path}: its weights do not fit the model (missing {missing}, "
                              f"unexpected {list(unexpected)})")


def _sensors(config: PerceptionConfig) -> tuple[str, ...]:
    return tuple(getattr(config.model, name) for name in config.model.inputs)


def _has_split(root: Path, split: str) -> bool:
    from av_stack.data.manifest import read_manifest

    return any(log["split"] == split for log in read_manifest(root)["logs"])
