"""Training targets from a frame's labels, the losses, and the decoding of detections.

Detection follows CenterPoint / CenterNet on the BEV feature grid: a Gaussian
peak per object at its centre cell in its class's heatmap (radius from the
box size), and at that cell the regression targets (sub-cell offset, log half
extents, yaw as sin/cos, velocity). Decoding keeps local maxima of the
heatmap (a 3x3 max-pool) above a score threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from av_stack.messages import BevSpec, Detections
from av_stack.perception.learned.config import DETECTION_CLASSES, SEG_CHANNELS
from av_stack.perception.learned.geometry import grid_shape
from sim.api import ActorKind, TrafficLightState

KIND_OF_CLASS = (ActorKind.VEHICLE, ActorKind.WALKER)
_LIGHT_INDEX = {None: 0, TrafficLightState.RED: 1, TrafficLightState.YELLOW: 2, TrafficLightState.GREEN: 3}
LIGHT_STATES = (None, TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN)


def light_class(state: int | TrafficLightState | None) -> int:
    """Index into :data:`LIGHT_CLASSES` of a light state (-1 / None / OFF / UNKNOWN: ``none``)."""
    if state is None or (isinstance(state, (int, np.integer)) and int(state) < 0):
        return 0
    try:
        return _LIGHT_INDEX.get(TrafficLightState(int(state)), 0)
    except ValueError:
        return 0


def seg_target(bev: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """(len(SEG_CHANNELS), S, S) float32 0/1 from a privileged BEV (C, S, S) uint8 with ``channels``."""
    index = [channels.index(name) for name in SEG_CHANNELS]
    return (bev[index] > 127).astype(np.float32)


def _gaussian_radius(half_length_m: float, half_width_m: float, cell_m: float) -> int:
    return max(1, int(round(0.5 * math.hypot(half_length_m, half_width_m) / cell_m)))


def detection_targets(boxes: np.ndarray, kinds: np.ndarray, velocity: np.ndarray | None, spec: BevSpec,
                      scale: int) -> dict[str, np.ndarray]:
    """Heatmap (2, G, G), box (8, G, G) and box mask (G, G) of the ego-frame boxes (N, 7: centre x, y, z,
    half extents x, y, z, yaw) with their kinds (N,) and velocities (N, 2) (None: zero)."""
    height, width = grid_shape(spec, scale)
    heatmap = np.zeros((len(DETECTION_CLASSES), height, width), np.float32)
    box = np.zeros((8, height, width), np.float32)
    mask = np.zeros((height, width), np.float32)
    cell_m = scale / spec.config.pixels_per_m
    if len(boxes) == 0:
        return {"heatmap": heatmap, "box": box, "box_mask": mask}
    pixel = spec.ego_to_pixel(boxes[:, :2])  # (col, row) at full resolution
    fx = (pixel[:, 0] + 0.5) / scale - 0.5  # continuous cell coordinates, centres at integers
    fy = (pixel[:, 1] + 0.5) / scale - 0.5
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    for k in range(len(boxes)):
        try:
            cls = KIND_OF_CLASS.index(ActorKind(int(kinds[k])))
        except ValueError:
            continue
        cx, cy = int(round(fx[k])), int(round(fy[k]))
        if not (0 <= cx < width and 0 <= cy < height):
            continue
        radius = _gaussian_radius(float(boxes[k, 3]), float(boxes[k, 4]), cell_m)
        sigma = (2 * radius + 1) / 6.0
        peak = np.exp(-((cols - cx) ** 2 + (rows - cy) ** 2) / (2 * sigma * sigma))
        heatmap[cls] = np.maximum(heatmap[cls], peak)
        box[:, cy, cx] = (fx[k] - cx, fy[k] - cy, math.log(max(boxes[k, 3], 0.05)), math.log(max(boxes[k, 4], 0.05)),
                          math.sin(boxes[k, 6]), math.cos(boxes[k, 6]),
                          *(velocity[k, :2] if velocity is not None else (0.0, 0.0)))
        mask[cy, cx] = 1.0
    return {"heatmap": heatmap, "box": box, "box_mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks."""
    prob = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1.0).float()
    pos = -torch.log(prob) * (1 - prob) ** 2 * positive
    neg = -torch.log(1 - prob) * prob ** 2 * (1 - target) ** 4 * (1 - positive)
    return (pos.sum() + neg.sum()) / positive.sum().clamp(min=1.0)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per channel over the whole batch, averaged over the channels: it weighs a channel by its
    overlap, not its pixel count, so thin and rare classes (pedestrians, markings) count as much as the road."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(0, 2, 3))
    total = prob.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return (1.0 - (2.0 * inter + smooth) / (total + smooth)).mean()


def losses(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each head's loss: ``seg`` (BCE, positives weighted up where rare), ``dice`` (soft Dice of the same
    channels), ``heatmap`` (focal), ``box`` (L1 at the peaks), ``light`` (cross-entropy, when the model has
    the camera)."""
    seg_target_ = batch["seg"]
    positive_share = seg_target_.mean(dim=(0, 2, 3), keepdim=True).clamp(1e-3, 0.5)
    weight = torch.where(seg_target_ > 0.5, 0.5 / positive_share, torch.ones_like(seg_target_)).clamp(max=20.0)
    out = {"seg": F.binary_cross_entropy_with_logits(outputs["seg"], seg_target_, weight=weight),
           "dice": dice_loss(outputs["seg"], seg_target_),
           "heatmap": focal_loss(outputs["heatmap"], batch["heatmap"])}
    mask = batch["box_mask"][:, None]
    out["box"] = (F.l1_loss(outputs["box"] * mask, batch["box"] * mask, reduction="sum")
                  / (mask.sum() * outputs["box"].shape[1]).clamp(min=1.0))
    if "light" in outputs:
        out["light"] = F.cross_entropy(outputs["light"], batch["light"])
    return out


def decode_detections(heatmap: torch.Tensor, box: torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      spec: BevSpec, scale: int, threshold: float = 0.3, max_objects: int = 64) -> Detections:
    """One frame's :class:`Detections` from its heatmap logits (2, G, G) and its box map (8, G, G), or a
    function giving the (K, 8) box values at cells (rows (K,), cols (K,)) (``FusionNet.boxes_at``)."""
    grid = heatmap.shape[-1]
    flat_logits = heatmap.reshape(-1)
    if threshold > 0.0:  # only cells above the threshold can be kept: test just those for a local maximum
        floor = math.log(threshold / (1.0 - threshold)) if threshold < 1.0 else math.inf
        candidates = torch.nonzero(flat_logits >= floor).reshape(-1)
    else:
        candidates = torch.arange(flat_logits.numel())
    if candidates.numel():
        cls_c, cell_c = candidates // (grid * grid), candidates % (grid * grid)
        padded = F.pad(heatmap, (1, 1, 1, 1), value=-math.inf)
        offsets = torch.arange(3)
        around = padded[cls_c[:, None, None], (cell_c // grid)[:, None, None] + offsets[None, :, None],
                        (cell_c % grid)[:, None, None] + offsets[None, None, :]]
        candidates = candidates[around.flatten(1).amax(dim=1) == flat_logits[candidates]]  # 3x3 local maxima
    logits, order = flat_logits[candidates].topk(min(max_objects, candidates.numel()))
    scores, flat = torch.sigmoid(logits), candidates[order]
    keep = scores >= threshold
    scores, flat = scores[keep], flat[keep]
    cls = (flat // (grid * grid)).cpu().numpy()
    cell = flat % (grid * grid)
    rows, cols = cell // grid, cell % grid
    cy, cx = rows.cpu().numpy(), cols.cpu().numpy()
    if callable(box):
        values = box(rows, cols).detach().cpu().numpy().reshape(-1, 8)
    else:
        values = box[:, cy, cx].detach().cpu().numpy().T.reshape(-1, 8)
    col = (cx + values[:, 0] + 0.5) * scale - 0.5
    row = (cy + values[:, 1] + 0.5) * scale - 0.5
    c = spec.config
    x = ((c.size_px - 1 - c.ego_from_bottom_px) - row) / c.pixels_per_m
    y = (col - c.size_px // 2) / c.pixels_per_m
    half_l, half_w = np.exp(values[:, 2]), np.exp(values[:, 3])
    kinds = np.array([int(KIND_OF_CLASS[k]) for k in cls], dtype=np.int8)
    half_h = np.where(kinds == int(ActorKind.VEHICLE), 0.75, 0.9)
    return Detections(kind=kinds, center_m=np.stack([x, y, half_h], axis=1), extent_m=np.stack([half_l, half_w, half_h], 1),
                      yaw_rad=np.arctan2(values[:, 4], values[:, 5]), velocity_mps=values[:, 6:8].astype(np.float64),
                      score=scores.detach().cpu().numpy().astype(np.float64), track_id=np.full(len(kinds), -1))
