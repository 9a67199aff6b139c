"""The map-matching network and its inputs (numpy rasters), and its checkpoint file.

Inputs, on a BEV grid centred on the ego (:data:`GRID`, ``x`` forward up the
image): the LiDAR sweep in the true ego frame (:func:`av_stack.perception.learned.geometry.lidar_bev`, 4
channels) and the map's road, solid and broken markings rendered at the
*prior* pose (:meth:`av_stack.perception.classical.MapRaster.view`, 3
channels). Output: the true pose in the prior's frame, ``(dx, dy, dyaw)``
(metres forward / right, radians), divided by :attr:`MatchNet.scale`, and
its log-variances (in those scaled units): a diagonal Gaussian.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from av_stack.messages import BevSpec
from sim.env.bev import BevConfig

GRID = BevSpec(BevConfig(size_px=128, pixels_per_m=3.0, ego_from_bottom_px=63, history_steps=(0,)))
"""128 x 128 cells of 1/3 m (42.7 m square) with the ego at the centre."""
MAP_BITS = (1, 4, 8)  # MapRaster's road, solid and broken marking bits (the route bit is not used)
IN_CHANNELS = 4 + len(MAP_BITS)
LOG_VAR_RANGE = (-12.0, 6.0)


class CheckpointError(ValueError):
    """A localization checkpoint is missing, corrupt or of another kind; the message names the file."""


def map_layers(packed: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 road / solid / broken layers of a packed :meth:`MapRaster.view`."""
    return np.stack([(packed & bit) > 0 for bit in MAP_BITS]).astype(np.float32)


def relative_pose(prior: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``truth`` (x, y, yaw) in the frame of ``prior`` (x, y, yaw): (dx forward, dy right, dyaw)."""
    cos, sin = math.cos(prior[2]), math.sin(prior[2])
    ex, ey = truth[0] - prior[0], truth[1] - prior[1]
    return np.array([cos * ex + sin * ey, -sin * ex + cos * ey, math.remainder(truth[2] - prior[2], 2 * math.pi)])


def compose(prior: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The world pose of ``delta`` (dx, dy, dyaw) given in the frame of ``prior``: the inverse of
    :func:`relative_pose`."""
    cos, sin = math.cos(prior[2]), math.sin(prior[2])
    return np.array([prior[0] + cos * delta[0] - sin * delta[1], prior[1] + sin * delta[0] + cos * delta[1],
                     math.remainder(prior[2] + delta[2], 2 * math.pi)])


def _block(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(convs):
        layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, stride=2 if k == 0 else 1, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class MatchNet(nn.Module):
    """(B, 7, 128, 128) scan + map rasters -> (B, 3) scaled correction and (B, 3) log-variances.

    Five stride-2 stages (``width`` to ``4 width`` channels; the first, at full resolution, one conv) down to 4 x 4, flattened (the position of
    what matches where is the answer, so no global pooling) into a small MLP."""

    def __init__(self, width: int = 16, scale: tuple[float, float, float] = (3.0, 3.0, math.radians(5.0))) -> None:
        super().__init__()
        self.width = width
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        w = width
        self.features = nn.Sequential(_block(IN_CHANNELS, w, convs=1), _block(w, 2 * w), _block(2 * w, 4 * w),
                                      _block(4 * w, 4 * w), _block(4 * w, 4 * w))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, 128), nn.ReLU(inplace=True), nn.Linear(128, 6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled correction (B, 3) and its log-variances (B, 3), clamped to :data:`LOG_VAR_RANGE`."""
        out = self.head(self.features(x))
        return out[:, :3], out[:, 3:].clamp(*LOG_VAR_RANGE)

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The correction (B, 3) in metres / radians and its standard deviations (B, 3), same units."""
        mean, log_var = self(x)
        return mean * self.scale, torch.exp(0.5 * log_var) * self.scale


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (without the constant) of the scaled ``target`` (B, 3)."""
    return (0.5 * (torch.exp(-log_var) * (mean - target) ** 2 + log_var)).sum(dim=1).mean()


def save_checkpoint(path: str | Path, model: MatchNet, config: dict[str, Any], extra: dict[str, Any]) -> Path:
    """Write ``model`` (and ``config``, the training config as a dict, plus ``extra``: optimizer, counters)
    atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"kind": "localization_matcher", "width": model.width, "scale": model.scale.tolist(),
                "state": model.state_dict(), "config": config, **extra}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path) -> tuple[MatchNet, dict[str, Any]]:
    """The network (in eval mode) and the whole saved dict; :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no localization checkpoint at {path} (train one with `avsim train localization`)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(saved, dict) or saved.get("kind") != "localization_matcher":
        raise CheckpointError(f"{path} is not a localization matcher checkpoint")
    model = MatchNet(int(saved["width"]), tuple(saved["scale"]))
    try:
        model.load_state_dict(saved["state"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the weights do not fit the network: {exc}") from None
    model.eval()
    return model, saved
