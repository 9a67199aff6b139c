"""The learned perception network: shapes per input set, a tiny training run that lowers the loss, checkpoint
round trip and resume, on a dataset collected here with a small sensor suite."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from av_stack.messages import BEV_SPEC
from av_stack.perception.learned.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from av_stack.perception.learned.config import (DETECTION_CLASSES, LIGHT_CLASSES, SEG_CHANNELS, ModelConfig,
                                                PerceptionConfig, load_perception_config)
from av_stack.perception.learned.model import FusionNet
from av_stack.perception.learned.train import PerceptionSamples, dataset_geometry, losses, train_perception
from sim.config import ConfigError

SMALL = {"model": {"image_width": 96, "width": 8, "camera_width": 8, "scale": 4},
         "train": {"batch_size": 2, "epochs": 2, "learning_rate": 5e-3, "checkpoint_every_steps": 2}}


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


def test_a_wide_network_detects_on_its_grid_and_segments_the_shared_one(tmp_path):
    from av_stack.perception.learned.geometry import network_grid

    config = ModelConfig(inputs=("lidar", "radar"), width=8, detection_range_m=30.0)
    with pytest.raises(ValueError, match="network grid"):
        FusionNet(config, BEV_SPEC.config.size_px)
    grid = network_grid(BEV_SPEC, config.scale, config.detection_range_m)
    model = FusionNet(config, BEV_SPEC.config.size_px, grid).eval()
    g = grid.cells
    out = model({"lidar": torch.rand(1, 4, g, g), "radar": torch.rand(1, 2, g, g)})
    assert out["seg"].shape == (1, len(SEG_CHANNELS), 192, 192) and out["heatmap"].shape == (1, 2, g, g) and g > 96
    full = PerceptionConfig(model=config)
    save_checkpoint(tmp_path / "wide.pt", model, full, BEV_SPEC)
    loaded, loaded_config, spec, _ = load_checkpoint(tmp_path / "wide.pt")
    assert loaded_config == full and spec == BEV_SPEC and loaded.grid_px == g
    batch = {"lidar": torch.rand(1, 4, g, g), "radar": torch.rand(1, 2, g, g)}
    with torch.no_grad():
        assert torch.equal(loaded(batch)["seg"], model(batch)["seg"])
    with pytest.raises(ValueError, match="detection_range_m"):
        ModelConfig(detection_range_m=-1.0)


def test_folding_the_batch_norms_keeps_the_outputs():
    import copy

    from av_stack.perception.learned.model import fold_batch_norms

    torch.manual_seed(0)
    model = FusionNet(ModelConfig(inputs=("lidar", "radar"), width=8), BEV_SPEC.config.size_px)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics as after training, not the identity
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(copy.deepcopy(model))
    model.eval()
    folded = fold_batch_norms(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    batch = {"lidar": torch.rand(1, 4, 96, 96), "radar": torch.rand(1, 2, 96, 96)}
    with torch.no_grad():
        a, b = model(batch), folded(batch)
    for key in ("seg", "heatmap", "box"):
        assert torch.allclose(a[key], b[key], atol=1e-4), key


def test_the_box_head_at_the_peaks_equals_the_full_box_map():
    from av_stack.perception.learned.targets import decode_detections

    torch.manual_seed(1)
    model = FusionNet(ModelConfig(inputs=("lidar", "radar"), width=8), BEV_SPEC.config.size_px).eval()
    batch = {"lidar": torch.rand(1, 4, 96, 96), "radar": torch.rand(1, 2, 96, 96)}
    with torch.no_grad():
        full = model(batch)
        part = model.infer(batch)
        rows, cols = torch.tensor([0, 5, 95, 40]), torch.tensor([0, 95, 3, 40])  # corners use the zero padding
        assert torch.allclose(model.boxes_at(part["features"], rows, cols), full["box"][0][:, rows, cols].T, atol=1e-5)
        assert model.boxes_at(part["features"], rows[:0], cols[:0]).shape == (0, 8)
        a = decode_detections(full["heatmap"][0], full["box"][0], BEV_SPEC, 2, threshold=0.05)
        b = decode_detections(part["heatmap"][0], lambda r, c: model.boxes_at(part["features"], r, c), BEV_SPEC, 2,
                              threshold=0.05)
    assert len(a) > 0 and np.array_equal(a.kind, b.kind) and np.allclose(a.center_m, b.center_m, atol=1e-5)
    assert np.allclose(a.score, b.score) and np.allclose(a.velocity_mps, b.velocity_mps, atol=1e-5)


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


def test_a_mirrored_sample_mirrors_inputs_and_targets(dataset):
    """With mirror probability 1 every sample is its unmirrored twin flipped left to right: the image flips
    exactly, the box targets' lateral offsets change sign, the label is mirrored about the ego's column."""
    from av_stack.data.dataset import DrivingDataset
    from av_stack.perception.learned.features import InputBuilder
    from av_stack.perception.learned.geometry import mirror_bev

    config = PerceptionConfig.model_validate(SMALL)
    calibration, spec = dataset_geometry(dataset)
    builder = InputBuilder(config.model, calibration, spec)
    data = DrivingDataset(dataset, "train")
    plain = PerceptionSamples(data, builder, spec)[3]
    mirrored = PerceptionSamples(data, builder, spec, mirror=1.0)[3]
    assert np.array_equal(mirrored["image"], plain["image"][:, :, ::-1])
    assert np.array_equal(mirrored["seg"], mirror_bev(plain["seg"], spec))
    assert mirrored["heatmap"].sum() == pytest.approx(plain["heatmap"].sum(), rel=0.2)
    assert not np.array_equal(mirrored["lidar"], plain["lidar"])
    assert mirrored["lidar"][0].sum() == pytest.approx(plain["lidar"][0].sum(), rel=0.05)


def test_dice_loss_is_zero_for_a_perfect_mask_and_high_for_a_missed_thin_class():
    from av_stack.perception.learned.targets import dice_loss

    target = torch.zeros(1, 2, 32, 32)
    target[:, 0, :16] = 1.0
    target[:, 1, 10, 10] = 1.0  # one pixel of a rare class
    perfect = torch.where(target > 0.5, 20.0, -20.0)
    assert float(dice_loss(perfect, target)) < 0.05
    missed = perfect.clone()
    missed[:, 1] = -20.0
    assert float(dice_loss(missed, target)) > 0.2  # half the mean: the rare channel counts fully


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


def test_a_run_starts_from_another_checkpoint_on_a_wider_grid(dataset, tmp_path):
    """``init_from``: a new run on the 30 m grid starts from a shared-grid run's weights (a near-zero learning
    rate keeps them); a checkpoint of another width or input set is one clear error."""
    base = PerceptionConfig.model_validate(SMALL)
    train_perception(base, tmp_path / "base", data_root=dataset, max_steps=2)
    source, *_ = load_checkpoint(tmp_path / "base" / "last.pt")
    wide = PerceptionConfig.model_validate(
        {"model": {**SMALL["model"], "detection_range_m": 30.0},
         "train": {**SMALL["train"], "learning_rate": 1e-12, "weight_decay": 0.0,
                   "init_from": str(tmp_path / "base" / "last.pt")}})
    train_perception(wide, tmp_path / "wide", data_root=dataset, max_steps=1)
    model, _, _, _ = load_checkpoint(tmp_path / "wide" / "last.pt")
    assert model.grid_px > source.grid_px
    started = model.state_dict()
    for name, value in source.state_dict().items():
        if value.dtype.is_floating_point and not name.startswith("ground_") and "running" not in name:
            assert torch.allclose(started[name], value, atol=1e-6), name
    other = PerceptionConfig.model_validate({"model": {**SMALL["model"], "width": 16},
                                             "train": {**SMALL["train"], "init_from": str(tmp_path / "base" / "last.pt")}})
    with pytest.raises(CheckpointError, match="do not fit"):
        train_perception(other, tmp_path / "other", data_root=dataset, max_steps=1)
    lidar_only = PerceptionConfig.model_validate({"model": {**SMALL["model"], "inputs": ["lidar"]},
                                                  "train": {**SMALL["train"],
                                                            "init_from": str(tmp_path / "base" / "last.pt")}})
    with pytest.raises(CheckpointError, match="inputs"):
        train_perception(lidar_only, tmp_path / "lidar", data_root=dataset, max_steps=1)


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


def test_the_stage_turns_a_logged_frame_into_a_perception_output(dataset, tmp_path):
    from av_stack.data.manifest import read_manifest
    from av_stack.logs.reader import LogReader
    from av_stack.perception import PERCEPTION

    config = PerceptionConfig.model_validate(SMALL)
    train_perception(config, tmp_path / "run", data_root=dataset, max_steps=2)
    stage = PERCEPTION.build({"name": "learned", "checkpoint": str(tmp_path / "run" / "last.pt"),
                              "score_threshold": 0.0})
    log = LogReader(dataset / read_manifest(dataset)["logs"][0]["file"])
    frames = [f.sensor_frame for f in log.frames() if f.has_sensor_data][:6]
    stage.reset(None)
    for frame in frames:
        out = stage.step(frame)
    assert out.frame == frames[-1].frame and out.bev.shape == frames[-1].bev_spec.shape
    channels = frames[-1].bev_spec.channels
    assert 0.0 <= out.bev.min() and out.bev.max() <= 1.0
    assert out.bev[channels.index("road")].max() > 0 and out.bev[channels.index("route")].max() == 0
    assert out.bev[channels.index("vehicles_t5")].max() > 0  # history from its own earlier frames
    assert (out.detections.track_id >= 0).all()  # tracked (tracking is on by default)
    assert len(out.detections.score) > 0 and out.light.state in (None, *list(__import__("sim.api").api.TrafficLightState))
    with pytest.raises(CheckpointError, match="no perception checkpoint"):
        PERCEPTION.build({"name": "learned", "checkpoint": str(tmp_path / "missing.pt")})
    boxes = PERCEPTION.build({"name": "learned", "checkpoint": str(tmp_path / "run" / "last.pt"),
                              "score_threshold": 0.0, "vehicle_layer": "boxes", "pedestrian_layer": "boxes"})
    boxes.reset(None)
    drawn = boxes.step(frames[-1])
    from av_stack.perception.drawing import draw_boxes
    from sim.api import ActorKind

    drawn_any = 0.0
    for name, kind in (("vehicles_t0", ActorKind.VEHICLE), ("pedestrians_t0", ActorKind.WALKER)):
        layer = drawn.bev[channels.index(name)]  # the detected boxes drawn, not the head's probabilities
        assert np.array_equal(layer, draw_boxes(drawn.detections, kind, frames[-1].bev_spec))
        drawn_any += layer.sum()
    assert drawn_any > 0


def test_the_history_warp_follows_the_ego_motion():
    """A mark 10 m ahead stays where the world put it: after driving 4 m it is 6 m ahead."""
    from av_stack.perception.learned.stage import LearnedPerception

    stage = LearnedPerception.__new__(LearnedPerception)
    stage.spec = BEV_SPEC
    matrix = stage._motion_matrix(4.0, 0.0)
    col, row = BEV_SPEC.ego_to_pixel(np.array([[10.0, 1.0]]))[0]
    new = matrix @ np.array([col, row, 1.0])
    assert np.allclose(new, BEV_SPEC.ego_to_pixel(np.array([[6.0, 1.0]]))[0], atol=1e-4)
    turned = stage._motion_matrix(0.0, math.pi / 2) @ np.array([col, row, 1.0])  # a quarter turn right
    assert np.allclose(turned, BEV_SPEC.ego_to_pixel(np.array([[1.0, -10.0]]))[0], atol=1e-4)
    # between two odometry poses anywhere: 4 m along a heading of 0.3 rad is 4 m forward in the ego frame
    then, yaw = (10.0, 5.0, 0.3), 0.3
    now = (10.0 + 4.0 * math.cos(yaw), 5.0 + 4.0 * math.sin(yaw), yaw)
    assert np.allclose(stage._relative_matrix(then, now) @ np.array([col, row, 1.0]), new, atol=1e-4)


def test_the_shipped_checkpoint_loads_and_runs(dataset):
    """``perception: {name: learned}`` with its default checkpoint (checkpoints/perception/bev_wide.pt)."""
    from av_stack.data.manifest import read_manifest
    from av_stack.logs.reader import LogReader
    from av_stack.perception import PERCEPTION

    stage = PERCEPTION.build({"name": "learned"})
    assert stage.model_config.model.inputs == ("lidar", "radar")  # the camera reads the light
    assert stage.model_config.model.detection_range_m == 30.0
    assert stage._light is not None
    log = LogReader(dataset / read_manifest(dataset)["logs"][0]["file"])
    frame = next(f.sensor_frame for f in log.frames() if f.has_sensor_data)
    stage.reset(None)
    out = stage.step(frame)
    assert out.bev.shape == frame.bev_spec.shape and np.isfinite(out.bev).all()
    assert (out.detections.track_id >= 0).all()
    from av_stack.perception.refine import refine_centres

    plain = PERCEPTION.build({"name": "learned", "refine_walkers": False, "vehicle_threshold": 0.5})
    plain.reset(None)
    plain_out = plain.step(frame)
    unrefined = plain_out.detections
    k = frame.bev_spec.channels.index("vehicles_t0")  # the head's 0.8 is the BEV's 0.5 by default
    head, shown = plain_out.bev[k], out.bev[k]
    np.testing.assert_allclose(shown, head * 0.2 / (head * 0.2 + (1 - head) * 0.8), atol=1e-5)
    mount = frame.calibration["roof_lidar"].mount
    expected = refine_centres(unrefined, stage._builder.lidar_points(frame.data)[0], (mount.x_m, mount.y_m))
    np.testing.assert_allclose(out.detections.center_m, expected.center_m)  # pedestrians refined on the LiDAR
    narrow = PERCEPTION.build({"name": "learned", "checkpoint": "checkpoints/perception/bev.pt"})
    assert narrow.model_config.model.detection_range_m is None
    regridded = PERCEPTION.build({"name": "learned", "detection_range_m": 24.0})  # same weights, smaller grid
    assert regridded.model.grid_px < stage.model.grid_px
    regridded.reset(None)
    assert regridded.step(frame).bev.shape == frame.bev_spec.shape
    fusion = PERCEPTION.build({"name": "learned", "checkpoint": "checkpoints/perception/fusion.pt"})
    assert fusion.model_config.model.inputs == ("camera", "lidar", "radar")  # the input-set ablation, shipped too
    fusion.reset(None)
    assert fusion.step(frame).bev.shape == frame.bev_spec.shape


def test_the_stage_upsamples_the_segmentation_as_the_network_would():
    """OpenCV's bilinear resize in the stage gives the probabilities of the network's own ``F.interpolate``."""
    from av_stack.perception import PERCEPTION

    stage = PERCEPTION.build({"name": "learned", "vehicle_threshold": 0.5})
    logits = torch.randn(1, 5, 96, 96).contiguous(memory_format=torch.channels_last)
    expected = torch.sigmoid(torch.nn.functional.interpolate(logits, size=(192, 192), mode="bilinear",
                                                             align_corners=False))[0].numpy()
    np.testing.assert_allclose(stage._probabilities(logits[0].clone()), expected, atol=1e-6)
