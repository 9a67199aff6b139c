"""Checkpoints of the perception network: weights, the config it was built from, the BEV grid, the camera
geometry, the training state (optimizer, step, epoch) and the metrics reached, in one ``torch.save`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from av_stack.messages import BevSpec
from av_stack.perception.learned.config import PerceptionConfig
from av_stack.perception.learned.geometry import network_grid
from av_stack.perception.learned.model import FusionNet
from sim.env.bev import BevConfig

FORMAT = "avsim.perception/1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, not a perception checkpoint, or does not fit the model."""


def save_checkpoint(path: str | Path, model: FusionNet, config: PerceptionConfig, spec: BevSpec,
                    state: dict[str, Any] | None = None) -> None:
    """Write ``path`` atomically (a temporary file renamed), so an interrupted save keeps the previous one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": config.model_dump(mode="json"),
               "bev": {"size_px": spec.config.size_px, "pixels_per_m": spec.config.pixels_per_m,
                       "ego_from_bottom_px": spec.config.ego_from_bottom_px,
                       "history_steps": list(spec.config.history_steps)},
               "model": model.state_dict(), "state": state or {}}
    partial = path.with_name(path.name + ".part")
    torch.save(payload, partial)
    partial.replace(path)


def load_checkpoint(path: str | Path) -> tuple[FusionNet, PerceptionConfig, BevSpec, dict[str, Any]]:
    """(model in eval mode, config, BEV grid, training state) of a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no perception checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several kinds for a damaged file
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a perception checkpoint ({FORMAT})")
    config = PerceptionConfig.model_validate(payload["config"])
    b = payload["bev"]
    spec = BevSpec(BevConfig(size_px=b["size_px"], pixels_per_m=b["pixels_per_m"],
                             ego_from_bottom_px=b["ego_from_bottom_px"], history_steps=tuple(b["history_steps"])))
    grid = network_grid(spec, config.model.scale, config.model.detection_range_m)
    model = FusionNet(config.model, spec.config.size_px, grid)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the model of its config: {exc}") from None
    model.eval()
    return model, config, spec, payload.get("state", {})
