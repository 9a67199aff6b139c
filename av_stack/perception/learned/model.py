"""The BEV fusion network: camera features lifted by inverse perspective mapping, LiDAR and radar rasters,
a small U-shaped BEV backbone, and heads for segmentation, CenterPoint-style detection and the light state.

Shapes (``B`` batch, ``G`` the feature grid: ``size_px / scale``, or the larger network grid of a model with a
``detection_range_m``; ``S = size_px`` the shared BEV grid):

- inputs: ``image`` (B, 3, h, w) float in [0, 1]; ``lidar`` (B, 4, G, G); ``radar`` (B, 2, G, G); the
  camera's ground grid (G, G, 2) and mask (G, G) are buffers set once per calibration
  (:meth:`FusionNet.set_camera`), so the lift is one ``grid_sample``.
- outputs: ``seg`` (B, len(SEG_CHANNELS), S, S) logits; ``heatmap`` (B, 2, G, G) logits (vehicle,
  pedestrian) over the whole feature grid; ``box`` (B, 8, G, G): centre offset in cells (2), log half length and width [m] (2), sin and
  cos of the yaw (2), velocity [m/s] in the ego frame (2); ``light`` (B, 4) logits (none, red, yellow, green).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from av_stack.perception.learned.config import DETECTION_CLASSES, LIGHT_CLASSES, SEG_CHANNELS, ModelConfig
from av_stack.perception.learned.geometry import LIDAR_CHANNELS, RADAR_CHANNELS, NetworkGrid

BOX_CHANNELS = 8


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """``model`` (in eval mode) with every batch norm that follows a convolution folded into it, in place: the
    same outputs (to float rounding) with one pass less over each feature map. For inference only (the
    folded model has other parameters than a checkpoint's)."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode")
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for k in range(len(module) - 1):
                if isinstance(module[k], nn.Conv2d) and isinstance(module[k + 1], nn.BatchNorm2d):
                    module[k] = fuse_conv_bn_eval(module[k], module[k + 1])
                    module[k + 1] = nn.Identity()
    return model


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CameraEncoder(nn.Module):
    """Image to a feature map at 1/8 resolution and a pooled vector (for the light head)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_block(3, 16, 2), _block(16, 24, 2), _block(24, width, 2), _block(width, width))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net(image)
        return features, torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)


class FusionNet(nn.Module):
    """See the module docstring. ``grid``: the network's grid (:func:`~av_stack.perception.learned.geometry.
    network_grid`), needed when the config has a ``detection_range_m``; the segmentation is cut to the shared
    grid's window of it before it is upsampled to ``size_px``."""

    def __init__(self, config: ModelConfig, size_px: int, grid: NetworkGrid | None = None) -> None:
        super().__init__()
        if grid is None and config.detection_range_m is not None:
            raise ValueError("a model with a detection_range_m needs its network grid")
        self.config = config
        self.size_px = size_px
        self.shared_px = size_px // config.scale
        self.grid_px = grid.cells if grid is not None else self.shared_px
        self.window = (grid.row0, grid.col0) if grid is not None else (0, 0)
        w = config.width
        bev_in = 0
        if "camera" in config.inputs:
            self.camera = CameraEncoder(config.camera_width)
            bev_in += config.camera_width + 1  # features + visibility mask
            self.light = nn.Sequential(nn.Linear(2 * config.camera_width, 64), nn.ReLU(inplace=True),
                                       nn.Linear(64, len(LIGHT_CLASSES)))
            self.register_buffer("ground_grid", torch.full((1, self.grid_px, self.grid_px, 2), -2.0))
            self.register_buffer("ground_mask", torch.zeros((1, 1, self.grid_px, self.grid_px)))
        if "lidar" in config.inputs:
            bev_in += len(LIDAR_CHANNELS)
        if "radar" in config.inputs:
            bev_in += len(RADAR_CHANNELS)
        self.stem = nn.Sequential(_block(bev_in, w), _block(w, w))
        self.down1 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.down2 = nn.Sequential(_block(2 * w, 3 * w, 2), _block(3 * w, 3 * w))
        self.up2 = _block(3 * w + 2 * w, 2 * w)
        self.up1 = _block(2 * w + w, w)
        self.seg_head = nn.Conv2d(w, len(SEG_CHANNELS), 1)
        self.heatmap_head = nn.Sequential(_block(w, w), nn.Conv2d(w, len(DETECTION_CLASSES), 1))
        self.box_head = nn.Sequential(_block(w, w), nn.Conv2d(w, BOX_CHANNELS, 1))
        nn.init.constant_(self.heatmap_head[-1].bias, -2.19)  # prior 0.1, as CenterNet

    def grid_free_state(self) -> dict[str, torch.Tensor]:
        """The state dict without the camera's ground-grid buffers, which belong to a grid and a calibration
        (``set_camera`` fills them): what carries over to the same network on another grid."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("ground_")}

    def set_camera(self, ground_grid: torch.Tensor, ground_mask: torch.Tensor) -> None:
        """The camera's ground grid (G, G, 2) and visibility mask (G, G) (geometry.camera_ground_grid)."""
        self.ground_grid.copy_(torch.as_tensor(ground_grid, dtype=torch.float32)[None])
        self.ground_mask.copy_(torch.as_tensor(ground_mask, dtype=torch.float32)[None, None])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.infer(batch)
        out["box"] = self.box_head(out.pop("features"))
        return out

    def infer(self, batch: dict[str, torch.Tensor], upsample: bool = True) -> dict[str, torch.Tensor]:
        """The outputs of :meth:`forward` but ``box``, plus ``features`` (B, width, G, G): the box head's input,
        for :meth:`boxes_at` (inference runs the box head only where the heatmap peaks). ``upsample=False``:
        ``seg`` stays on the network's cells (the shared grid's window, ``scale`` times coarser), for a caller
        that upsamples it itself (the stage: OpenCV's bilinear resize, the same values 3 times faster)."""
        layers = []
        light = None
        if "camera" in self.config.inputs:
            image = batch["image"]
            features, pooled = self.camera(image)
            grid = self.ground_grid.expand(image.shape[0], -1, -1, -1)
            lifted = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            mask = self.ground_mask.expand(image.shape[0], -1, -1, -1)
            layers += [lifted * mask, mask]
            light = self.light(pooled)
        if "lidar" in self.config.inputs:
            layers.append(batch["lidar"])
        if "radar" in self.config.inputs:
            layers.append(batch["radar"])
        x0 = self.stem(torch.cat(layers, dim=1))
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        u2 = self.up2(torch.cat([F.interpolate(x2, size=x1.shape[-2:], mode="bilinear", align_corners=False), x1], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=x0.shape[-2:], mode="bilinear", align_corners=False), x0], 1))
        r0, c0 = self.window
        seg = self.seg_head(u1[..., r0:r0 + self.shared_px, c0:c0 + self.shared_px])
        if self.config.scale > 1 and upsample:
            seg = F.interpolate(seg, size=(self.size_px, self.size_px), mode="bilinear", align_corners=False)
        out = {"seg": seg, "heatmap": self.heatmap_head(u1), "features": u1}
        if light is not None:
            out["light"] = light
        return out

    def boxes_at(self, features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(K, 8) box-head outputs of the first sample of ``features`` at the cells (``rows``, ``cols``) (K,):
        what ``box[0, :, rows, cols].T`` of :meth:`forward` holds, computed on the 3x3 neighbourhoods only."""
        if rows.numel() == 0:
            return features.new_zeros((0, BOX_CHANNELS))
        padded = F.pad(features[0], (1, 1, 1, 1))  # the box head's 3x3 convolution pads with zeros
        offsets = torch.arange(3, device=features.device)
        patches = padded[:, rows[:, None, None] + offsets[None, :, None], cols[:, None, None] + offsets[None, None, :]]
        block, last = self.box_head
        conv = block[0]
        centre = F.conv2d(patches.permute(1, 0, 2, 3), conv.weight, conv.bias)  # (K, width, 1, 1): one output each
        return last(block[1:](centre))[:, :, 0, 0]
