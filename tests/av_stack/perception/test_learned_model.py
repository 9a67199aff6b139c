"""The learned perception network: shapes per input set, a tiny training run that lowers the loss, checkpoint
round trip and resume, on a dataset collected here with a small sensor suite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from av_stack.data.collect import collect
from av_stack.data.config import CollectConfig
from av_stack.messages import BEV_SPEC
from av_stack.perception.learned.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from av_stack.perception.learned.config import (DETECTION_CLASSES, LIGHT_CLASSES, SEG_CHANNELS, ModelConfig,
                                                PerceptionConfig, load_perception_config)
from av_stack.perception.learned.model import FusionNet
from av_stack.perception.learned.train import PerceptionSamples, dataset_geometry, losses, train_perception
from sim.config import ConfigError

SUITE = """sensors:
  - {name: front_rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4, pitch_deg: -5.0},
     attributes: {image_size_x: 160, image_size_y: 120, fov: 90}}
  - {name: roof_lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 8, points_per_second: 40000, rotation_frequency: 20, range: 60}}
  - {name: front_radar, blueprint: sensor.other.radar, transform: {x: 2.6, z: 1.0},
     attributes: {points_per_second: 600}}
"""
SMALL = {"model": {"image_width": 96, "width": 8, "camera_width": 8, "scale": 4},
         "train": {"batch_size": 2, "epochs": 2, "learning_rate": 5e-3, "checkpoint_every_steps": 2}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("perception_data")
    (root / "suite.yaml").write_text(SUITE)
    mix = {"towns": [{"map": "Town01"}], "traffic": [{"vehicles": 12, "walkers": 6}], "frames": 8,
           "frames_per_log": 8, "sensors": str(root / "suite.yaml"), "noise": {"enabled": False},
           "split": {"val": [], "test": []}}
    collect(CollectConfig.model_validate(mix), root / "data", show_progress=False)
    return root / "data"


@pytest.mark.parametrize("inputs", [("camera",), ("lidar",), ("lidar", "radar"), ("camera", "lidar", "radar")])
def test_output_shapes_for_every_input_set(inputs):
    config = ModelConfig(inputs=inputs, width=8, camera_width=8, image_width=64)
    model = FusionNet(config, BEV_SPEC.config.size_px)
    grid = BEV_SPEC.config.size_px // config.scale
    batch = {"image": torch.rand(2, 3, 48, 64), "lidar": torch.rand(2, 4, grid, grid),
             "radar": torch.rand(2, 2, grid, grid)}
    out = model(batch)
    assert out["seg"].shape == (2, len(SEG_CHANNELS), 192, 192)
    assert out["heatmap"].shape == (2, len(DETECTION_CLASSES), grid, grid) and out["box"].shape == (2, 8, grid, grid)
    assert ("light" in out) == ("camera" in inputs)
    if "camera" in inputs:
        assert out["light"].shape == (2, len(LIGHT_CLASSES))


def test_a_bad_input_set_or_key_is_one_clear_error():
    with pytest.raises(ValueError, match="subset"):
        ModelConfig(inputs=("sonar",))
    with pytest.raises(ConfigError, match="widht"):
        load_perception_config({"model": {"widht": 3}})


def test_samples_carry_inputs_and_targets(dataset):
    from av_stack.data.dataset import DrivingDataset
    from av_stack.perception.learned.features import InputBuilder

    config = PerceptionConfig.model_validate(SMALL)
    calibration, spec = dataset_geometry(dataset)
    builder = InputBuilder(config.model, calibration, spec)
    samples = PerceptionSamples(DrivingDataset(dataset, "train"), builder, spec)
    item = samples[0]
    grid = spec.config.size_px // 4
    assert item["image"].shape == (3, 72, 96) and 0 <= item["image"].min() and item["image"].max() <= 1
    assert item["lidar"].shape == (4, grid, grid) and item["lidar"][0].max() > 0
    assert item["radar"].shape == (2, grid, grid)
    assert item["seg"].shape == (len(SEG_CHANNELS), 192, 192) and item["seg"][0].mean() > 0.05  # some road
    assert item["heatmap"].shape == (2, grid, grid) and item["light"] in range(len(LIGHT_CLASSES))
    grid_uv, mask = builder.ground_grid()
    assert grid_uv.shape == (grid, grid, 2) and mask.any()


def test_training_lowers_the_loss_on_a_fixed_batch(dataset):
    """Twenty steps on one batch: the summed loss falls by more than a third."""
    from av_stack.data.dataset import DrivingDataset
    from av_stack.perception.learned.features import InputBuilder

    config = PerceptionConfig.model_validate(SMALL)
    calibration, spec = dataset_geometry(dataset)
    builder = InputBuilder(config.model, calibration, spec)
    samples = PerceptionSamples(DrivingDataset(dataset, "train"), builder, spec)
    batch = {k: torch.as_tensor(np.stack([samples[0][k], samples[1][k]])) for k in samples[0]}
    torch.manual_seed(0)
    model = FusionNet(config.model, spec.config.size_px)
    model.set_camera(*builder.ground_grid())
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = None
    for _ in range(20):
        total = sum(losses(model(batch), batch).values())
        first = float(total) if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert float(total) < 0.66 * first


def test_train_command_checkpoints_and_resumes(dataset, tmp_path):
    config = PerceptionConfig.model_validate(SMALL)
    out = tmp_path / "run"
    record = train_perception(config, out, data_root=dataset, max_steps=3)
    model, loaded_config, spec, state = load_checkpoint(out / "last.pt")
    assert state["step"] == 3 and loaded_config == config and spec.channels == BEV_SPEC.channels
    assert record["step"] == 3
    first_weights = {k: v.clone() for k, v in model.state_dict().items()}
    record = train_perception(config, out, data_root=dataset)  # resumes: finishes the 2 epochs
    _, _, _, state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 2 * (8 // 2)
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert lines[-1]["epoch"] == 2 and "loss_seg" in lines[-1]
    model2, *_ = load_checkpoint(out / "last.pt")
    assert any(not torch.equal(first_weights[k], v) for k, v in model2.state_dict().items())
    assert (out / "tb").is_dir()


def test_checkpoint_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no perception checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a perception checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    config = PerceptionConfig()
    save_checkpoint(tmp_path / "ok.pt", FusionNet(config.model, 192), config, BEV_SPEC)
    model, loaded, spec, _ = load_checkpoint(tmp_path / "ok.pt")
    assert loaded == config and not model.training
