"""The learned perception model's config (``configs/perception/*.yaml``): inputs, sizes, targets, training.

Input sets are one key away: ``inputs: [camera, lidar, radar]`` (any non-empty
subset), so the ablations of the issue (camera only, LiDAR only, LiDAR + radar,
all three) are four small files.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


INPUTS = ("camera", "lidar", "radar")
SEG_CHANNELS = ("road", "lane_solid", "lane_broken", "vehicles_t0", "pedestrians_t0")
"""The BEV channels the network predicts (the others come from the map at the pose, or are history)."""
DETECTION_CLASSES = ("vehicle", "pedestrian")
LIGHT_CLASSES = ("none", "red", "yellow", "green")


class ModelConfig(BaseModel):
    """Network sizes. ``scale``: the BEV feature maps are the BEV grid at 1/scale resolution (the segmentation
    is upsampled back to the full grid; detection runs at 1/scale)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[str, ...] = ("camera", "lidar", "radar")
    camera: str = "front_rgb"
    lidar: str = "roof_lidar"
    radar: str = "front_radar"
    image_width: int = Field(200, ge=32, description="camera images are resized to this width")
    scale: int = Field(2, ge=1, le=8)
    width: int = Field(32, ge=8, description="channels of the BEV backbone's first stage")
    camera_width: int = Field(32, ge=8, description="channels of the camera features lifted to BEV")
    detection_range_m: float | None = Field(
        None, gt=0, le=100,
        description="the network sees a square grid reaching this far left, right and behind the ego (detection "
                    "covers it; the segmentation is cut to the shared BEV grid); None: the shared grid only")

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in INPUTS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(f"inputs must be a non-empty subset of {list(INPUTS)} without repeats, got {list(value)}")
        return tuple(value)


class TrainConfig(BaseModel):
    """Optimisation: ``epochs`` over the training split, batch size, learning rate, loss weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str = "data/perception"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    seg_weight: float = Field(1.0, ge=0)
    dice_weight: float = Field(0.0, ge=0, description="soft-Dice loss on the BEV channels (thin, rare classes)")
    heatmap_weight: float = Field(1.0, ge=0)
    box_weight: float = Field(0.5, ge=0)
    light_weight: float = Field(0.5, ge=0)
    num_workers: int = Field(0, ge=0)
    mirror: float = Field(0.0, ge=0, le=1, description="probability of mirroring a sample left to right")
    seed: int = 0
    checkpoint_every_steps: int = Field(200, ge=1)
    init_from: str | None = Field(
        None, description="a perception checkpoint whose weights start a new run (the network's layers must have "
                          "the same shapes: the grid may differ); ignored when the run resumes")


class PerceptionConfig(BaseModel):
    """One perception config file: ``model`` and ``train`` sections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()


def load_perception_config(path: str | Path | dict | None) -> PerceptionConfig:
    """A validated config from a YAML file (a path or a shipped name under configs/perception) or a dict;
    :class:`ConfigError` naming the file and the key."""
    from sim.resources import load_model_config

    return load_model_config(path, PerceptionConfig, "perception", "perception config")
