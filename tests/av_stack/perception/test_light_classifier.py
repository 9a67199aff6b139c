"""The traffic-light classifier (av_stack/perception/learned/light.py, light_train.py): shapes and size, a tiny
training run on synthetic lamps that lowers the loss, the checkpoint round trip and resume, clear errors, and
the learned stage reading the light with it."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from av_stack.messages import EgoSignals
from av_stack.perception.classical import METRES_PER_DEGREE
from av_stack.perception.learned.light import (
    LightCheckpointError,
    LightConfig,
    LightNet,
    LightReader,
    load_light_checkpoint,
    load_light_config,
    save_light_checkpoint,
)
from av_stack.perception.learned.light_train import accuracy_by_distance, fit, jitter_pose
from sim.config import ConfigError

COLOURS = ((255, 40, 30), (255, 190, 0), (40, 255, 100))  # red, yellow, green lamps


pytestmark = pytest.mark.usefixtures("one_thread")


def lamp_patches(n: int, crops: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, crops, 24, 48, 3) grey patches with a small lit lamp of the label's colour somewhere (the network
    takes any patch size; small ones keep the test fast)."""
    rng = np.random.default_rng(seed)
    patches = rng.integers(40, 90, (n, crops, 24, 48, 3)).astype(np.uint8)
    labels = rng.integers(0, 3, n)
    for i in range(n):
        for k in range(crops):
            r, c = rng.integers(2, 20), rng.integers(2, 44)
            patches[i, k, r:r + 2, c:c + 2] = COLOURS[labels[i]]
    return patches, labels.astype(np.int64)


def small_config(**train) -> LightConfig:
    return LightConfig.model_validate({"model": {"width": 8}, "train": {"batch_size": 16, "learning_rate": 0.01,
                                                                         **train}})


def test_shapes_size_and_speed():
    model = LightNet(16).eval()
    assert 3_000 <= sum(p.numel() for p in model.parameters()) <= 100_000
    with torch.no_grad():
        out = model(torch.zeros(5, 3, 48, 96, dtype=torch.uint8))
        assert out.shape == (5, 3)
        assert model(torch.zeros(1, 3, 40, 70)).shape == (1, 3)  # any patch size: global pooling


def test_a_tiny_training_run_lowers_the_loss_and_learns_the_colours(tmp_path):
    patches, labels = lamp_patches(128)
    config = small_config(epochs=8)
    model = LightNet(8)
    record = fit(model, patches, labels, config, tmp_path, epochs=8)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 8 and log[-1]["loss"] < 0.5 * log[0]["loss"]
    test, truth = lamp_patches(60, crops=1, seed=1)
    assert accuracy_by_distance(model, test[:, 0], truth, np.full(60, 15.0))["accuracy_10_20m"] >= 0.9
    assert record["epoch"] == 8


def test_checkpoint_round_trip_and_resume(tmp_path):
    patches, labels = lamp_patches(32)
    config = small_config(epochs=2)
    model = LightNet(8)
    fit(model, patches, labels, config, tmp_path, epochs=1)
    loaded, loaded_config, state = load_light_checkpoint(tmp_path / "last.pt")
    assert loaded_config == config and state["epoch"] == 1 and not loaded.training
    x = torch.from_numpy(patches[:4, 0].transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-5)
    reader = LightReader.from_checkpoint(tmp_path / "last.pt")  # folded batch norms, channels-last: same output
    for k in range(4):
        with torch.no_grad():
            expected = torch.softmax(model(x[k:k + 1])[0], dim=0).numpy()
        np.testing.assert_allclose(reader.classify(patches[k, 0]), expected, atol=1e-5)
    fit(LightNet(8), patches, labels, config, tmp_path)  # resumes at epoch 1, runs the second only
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 2
    assert load_light_checkpoint(tmp_path / "last.pt")[2]["epoch"] == 2


def test_errors_are_clear(tmp_path):
    with pytest.raises(LightCheckpointError, match="no light checkpoint"):
        load_light_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "avsim.perception/1"}, tmp_path / "fusion.pt")
    with pytest.raises(LightCheckpointError, match="not a traffic-light checkpoint"):
        load_light_checkpoint(tmp_path / "fusion.pt")
    save_light_checkpoint(tmp_path / "wide.pt", LightNet(8), LightConfig())  # its config says width 16
    with pytest.raises(LightCheckpointError, match="do not fit"):
        load_light_checkpoint(tmp_path / "wide.pt")
    with pytest.raises(ConfigError, match="patch_widht"):
        load_light_config({"model": {"patch_widht": 64}})
    with pytest.raises(ValueError, match="no training patches"):
        fit(LightNet(8), np.zeros((0, 1, 48, 96, 3), np.uint8), np.zeros(0, np.int64), small_config())


def test_jitter_moves_the_pose_along_its_heading():
    rng = np.random.default_rng(0)
    moved = np.array([jitter_pose((0.0, 0.0, math.pi / 2), rng, 2.0, 0.0, 0.0) for _ in range(200)])
    assert np.abs(moved[:, 0]).max() < 1e-9 and moved[:, 1].std() > 1.0  # heading +y: only y moves


def test_the_stage_reads_the_light_with_the_classifier_and_without_camera_input(dataset, tmp_path):
    """The learned stage with a LiDAR + radar fusion checkpoint (no camera input) still reads the light from
    the camera through the light checkpoint: the reader follows the logged route; without a mission the light
    is none; ``light_checkpoint: null`` falls back to the fusion net's pooled head."""
    from av_stack.data.manifest import read_manifest
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.perception import PERCEPTION
    from av_stack.perception.learned.checkpoint import save_checkpoint
    from av_stack.perception.learned.config import PerceptionConfig
    from av_stack.perception.learned.model import FusionNet
    from av_stack.replay.logged import log_map, mission_of

    log = LogReader(dataset / read_manifest(dataset)["logs"][0]["file"])
    fusion = PerceptionConfig.model_validate({"model": {"inputs": ["lidar", "radar"], "width": 8, "scale": 4}})
    save_checkpoint(tmp_path / "bev.pt", FusionNet(fusion.model, log.bev_spec.config.size_px), fusion, log.bev_spec)
    save_light_checkpoint(tmp_path / "light.pt", LightNet(8), small_config())
    stage = PERCEPTION.build({"name": "learned", "checkpoint": str(tmp_path / "bev.pt"),
                              "light_checkpoint": str(tmp_path / "light.pt")})
    frames = list(log.frames())
    episode = next(f for f in frames if T.EPISODE in f.messages)
    stage.reset(mission_of(log, log_map(log), episode.messages[T.EPISODE], episode.messages.get(T.GT_WORLD)))
    # the test suite has no GNSS or IMU: give each frame the fix and compass of its true pose
    sensor_frames = [replace(f.sensor_frame, ego=EgoSignals(
        f.sensor_frame.ego.speed_mps, compass_rad=f.sensor_frame.ground_truth.ego.yaw_rad + math.pi / 2,
        gnss=np.array([f.sensor_frame.ground_truth.ego.y_m / METRES_PER_DEGREE,
                       f.sensor_frame.ground_truth.ego.x_m / METRES_PER_DEGREE, 0.0])))
        for f in frames if f.has_sensor_data]
    for frame in sensor_frames:
        out = stage.step(frame)
        assert out.light.state is None or out.light.distance_m <= 40.0
    assert stage._light.locator.s_m is not None  # it followed the route from the GNSS fixes
    stage.reset(None)
    out = stage.step(sensor_frames[0])
    assert out.light.state is None and math.isinf(out.light.distance_m)
    old = PERCEPTION.build({"name": "learned", "light_checkpoint": None})
    old.reset(None)
    assert math.isinf(old.step(sensor_frames[0]).light.distance_m)
    with pytest.raises(LightCheckpointError, match="no light checkpoint"):
        PERCEPTION.build({"name": "learned", "light_checkpoint": str(tmp_path / "missing.pt")})


def test_train_command_says_when_a_dataset_has_no_light_frames(dataset, tmp_path):
    """The shared test suite has no GNSS, so no frame has a located light: one clear error, exit status 2."""
    from typer.testing import CliRunner

    from launch.cli import app

    result = CliRunner().invoke(app, ["train", "perception-light", "--data", str(dataset), "--out",
                                      str(tmp_path / "run"), "--threads", "1"])
    assert result.exit_code == 2 and "no training patches" in result.output
    assert (tmp_path / "run" / "patches_train.npz").is_file()  # the (empty) extraction is kept
