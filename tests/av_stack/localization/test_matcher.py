"""The learned localization: the map-matching network's shapes and geometry, a tiny training run, the
checkpoint round trip and its errors, and the ``learned`` stage on logged frames (with bad inputs)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from av_stack.localization.learned.model import GRID, IN_CHANNELS, CheckpointError, MatchNet, compose, \
    gaussian_nll, load_checkpoint, relative_pose, save_checkpoint
from av_stack.localization.learned.train import load_matcher_config, train_matcher

TINY = {"model": {"width": 4, "lidar": "lidar"},
        "train": {"epochs": 1, "batch_size": 4, "val_samples": 8, "checkpoint_every_steps": 1}}


def test_the_network_maps_rasters_to_a_correction_and_its_spread():
    model = MatchNet(16).eval()
    size = GRID.config.size_px
    mean, log_var = model(torch.zeros(2, IN_CHANNELS, size, size))
    assert mean.shape == (2, 3) and log_var.shape == (2, 3)
    delta, std = model.predict(torch.zeros(1, IN_CHANNELS, size, size))
    assert delta.shape == (1, 3) and (std > 0).all()
    assert sum(p.numel() for p in model.parameters()) * 4 < 2e6  # under 2 MB of float32 weights


def test_relative_pose_and_compose_are_inverse():
    prior, truth = np.array([10.0, -4.0, 3.0]), np.array([11.0, -6.0, -3.1])
    delta = relative_pose(prior, truth)
    assert np.allclose(compose(prior, delta)[:2], truth[:2])
    assert math.isclose(math.remainder(compose(prior, delta)[2] - truth[2], 2 * math.pi), 0.0, abs_tol=1e-12)
    ahead = relative_pose(np.array([0.0, 0.0, math.pi / 2]), np.array([0.0, 2.0, math.pi / 2]))
    assert np.allclose(ahead, [2.0, 0.0, 0.0])  # facing +y, a point 2 m along +y is 2 m ahead


def test_gaussian_nll_prefers_an_honest_spread():
    target = torch.ones(1, 3)
    mean = torch.zeros(1, 3)
    assert gaussian_nll(mean, torch.zeros(1, 3), target) < gaussian_nll(mean, torch.full((1, 3), -4.0), target)


def _raster(points_ego: np.ndarray) -> np.ndarray:
    from av_stack.perception.learned.geometry import lidar_raster

    return lidar_raster(points_ego, np.ones(len(points_ego)), GRID)


@pytest.mark.parametrize("shift", [(1.0, -2.0 / 3.0, 0.0), (0.4, 1.3, math.radians(4.0))])
def test_a_moved_ego_sees_its_scan_warped_as_if_recorded_there(shift):
    from av_stack.localization.learned.train import shift_scan

    rng = np.random.default_rng(0)
    # Walls of points along both axes (a scan with structure), in the recorded ego frame.
    along = rng.uniform(-18, 18, 3000)
    points = np.concatenate([np.stack([along, np.full_like(along, 4.2), rng.uniform(0, 2, 3000)], 1),
                             np.stack([np.full_like(along, -7.9), along, rng.uniform(0, 2, 3000)], 1)])
    shift = np.array(shift)
    cos, sin = math.cos(shift[2]), math.sin(shift[2])
    # The same points in the moved ego's frame: q = R(-yaw) (p - t).
    d = points[:, :2] - shift[:2]
    moved = np.concatenate([np.stack([cos * d[:, 0] + sin * d[:, 1], -sin * d[:, 0] + cos * d[:, 1]], 1),
                            points[:, 2:]], 1)
    expected, warped = _raster(moved)[0] > 0, shift_scan(_raster(points), shift)[0] > 0
    overlap = (expected & warped).sum() / (expected | warped).sum()
    # Whole cells: exact but at the border. Turned: one-cell walls lose half their overlap to nearest-cell
    # rounding (a move the wrong way scores under 0.1).
    assert overlap > (0.99 if shift[2] == 0 else 0.4)
    if shift[2] != 0:  # nearest-cell rounding moves a cell by at most one: dilated, the warp covers the truth
        import cv2

        grown = cv2.dilate(warped.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert (expected & ~grown).sum() <= 0.01 * expected.sum()
    unshifted = _raster(points)
    assert np.array_equal(shift_scan(unshifted, np.zeros(3)), unshifted)


def test_moved_draws_keep_within_their_bounds_and_share():
    from av_stack.localization.learned.train import draw_shifts

    config = load_matcher_config({"train": {"shift_share": 0.5, "shift_lateral_m": 1.5}}).train
    shifts = draw_shifts(np.random.default_rng(0), 4000, config)
    moved = np.any(shifts != 0, axis=1)
    assert 0.45 < moved.mean() < 0.55
    assert np.abs(shifts[:, 1]).max() <= 1.5 and np.abs(shifts[:, 1][moved]).max() > 1.4
    assert np.abs(shifts[:, 2]).max() <= math.radians(config.shift_yaw_deg)
    assert not np.any(draw_shifts(np.random.default_rng(0), 10, config, share=0.0))


def test_a_tiny_training_run_lowers_the_loss_and_resumes(dataset, tmp_path):
    from av_stack.localization.learned.train import draw_offsets, load_samples

    config = load_matcher_config(TINY)
    samples = load_samples(dataset, "train", "lidar", limit=8)
    torch.manual_seed(0)
    model = MatchNet(4)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    x, target = samples.batch(np.arange(8), draw_offsets(np.random.default_rng(0), 8, config.train))
    losses = []
    for _ in range(25):
        loss = gaussian_nll(*model(x), target / model.scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5

    out = tmp_path / "run"
    train_matcher(config, out, dataset, max_steps=1, limit=12)
    assert load_checkpoint(out / "last.pt")[1]["step"] == 1
    record = train_matcher(config, out, dataset, limit=12)  # resumes and finishes the epoch
    assert record["step"] == 3 and record["epoch"] == 1
    assert (out / "train_log.jsonl").read_text().count("\n") == 2
    assert any((out / "tb").iterdir())


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model = MatchNet(4).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, {"model": {"width": 4}}, {"step": 7})
    loaded, saved = load_checkpoint(path)
    x = torch.rand(1, IN_CHANNELS, GRID.config.size_px, GRID.config.size_px)
    assert torch.allclose(model(x)[0], loaded(x)[0]) and saved["step"] == 7
    with pytest.raises(CheckpointError, match="no localization checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"kind": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a localization matcher"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A (barely trained) width-4 checkpoint whose predictions are sure enough to be fused."""
    model = MatchNet(4).eval()
    with torch.no_grad():
        model.head[-1].bias[3:] = -6.0  # std = scale * e^-3: about 0.15 m, so the stage fuses it
    return save_checkpoint(tmp_path_factory.mktemp("matcher") / "m.pt", model, {}, {})


def test_the_stage_scores_on_logged_frames_and_flags_bad_inputs(dataset, checkpoint):
    from av_stack.localization import LOCALIZATION
    from av_stack.localization.evaluate import evaluate_localization
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import log_map, mission_of

    result = evaluate_localization({"learned": {"name": "learned", "checkpoint": str(checkpoint)}}, dataset,
                                   gnss_noise_m=2.0, max_frames=30)
    scores = result["methods"]["learned"]
    assert scores["frames"] == 30 and scores["match_fits"] > 0 and scores["ms_per_frame"] > 0

    log = LogReader(sorted(dataset.glob("*.mcap"))[0])
    stage = LOCALIZATION.build({"name": "learned", "checkpoint": str(checkpoint)})
    mission = None
    frames = []
    for logged in log.frames():
        episode = logged.messages.get(T.EPISODE)
        if episode is not None and mission is None:
            mission = mission_of(log, log_map(log), episode, logged.messages.get(T.GT_WORLD))
        if logged.sensor_frame is not None and logged.sensor_frame.ground_truth is not None:
            frames.append(logged.sensor_frame)
        if len(frames) == 6:
            break
    stage.reset(mission)
    for frame in frames[:3]:
        stage.step(frame)
    assert stage.fits >= 1  # the map and the sweep were matched
    frame = frames[3]
    empty = {name: (np.zeros((0, 4), np.float32) if name == "lidar" else value) for name, value in frame.data.items()}
    estimate = stage.step(dataclasses.replace(frame, data=empty))
    assert "empty scan" in stage.status and np.isfinite(estimate.pose.x_m)
    nan_gnss = dataclasses.replace(frames[4], ego=dataclasses.replace(frames[4].ego, gnss=np.full(3, np.nan)))
    estimate = stage.step(nan_gnss)
    assert np.isfinite([estimate.pose.x_m, estimate.pose.y_m, estimate.pose.yaw_rad]).all()
    nan_scan = {name: (np.full((50, 4), np.nan, np.float32) if name == "lidar" else value)
                for name, value in frames[5].data.items()}
    stage.step(dataclasses.replace(frames[5], data=nan_scan))
    assert "empty scan" in stage.status


def test_a_missing_checkpoint_is_one_clear_error(tmp_path):
    from av_stack.localization import LOCALIZATION

    with pytest.raises(CheckpointError, match="nowhere.pt"):
        LOCALIZATION.build({"name": "learned", "checkpoint": str(tmp_path / "nowhere.pt")})


def test_the_shipped_checkpoint_loads_is_small_and_runs_fast():
    import time
    from pathlib import Path

    from av_stack.localization.learned.stage import DEFAULT_CHECKPOINT
    from av_stack.shipped import shipped_file

    path = shipped_file(DEFAULT_CHECKPOINT)
    if not Path(path).is_file():
        pytest.skip("no shipped checkpoint in this checkout")
    assert Path(path).stat().st_size < 20e6
    model, saved = load_checkpoint(path)
    assert "optimizer" not in saved and saved["config"]["model"]["lidar"] == "roof_lidar"
    x = torch.zeros(1, IN_CHANNELS, GRID.config.size_px, GRID.config.size_px)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            model(x)
            start = time.perf_counter()
            for _ in range(5):
                model(x)
        assert (time.perf_counter() - start) / 5 < 0.05  # about 5 ms alone; generous for a busy machine
    finally:
        torch.set_num_threads(threads)


def test_the_commands_give_one_clear_error(dataset, tmp_path):
    import typer
    from typer.testing import CliRunner

    from launch.localization_cli import eval_localization
    from launch.localization_train_cli import train_localization

    app = typer.Typer()
    app.command("train")(train_localization)
    app.command("eval")(eval_localization)
    (tmp_path / "bad.yaml").write_text("model: {widht: 8}\n")
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o"),
                                      "--data", str(dataset)])
    assert result.exit_code == 2 and "widht" in result.output
    result = CliRunner().invoke(app, ["eval", "--data", str(dataset), "--methods", "learned", "--checkpoint",
                                      str(tmp_path / "none.pt"), "--json"])
    assert result.exit_code == 2 and "none.pt" in result.output



def test_the_stage_keeps_its_matches_to_the_position_by_default(dataset, checkpoint, monkeypatch):
    from av_stack.localization import LOCALIZATION
    from av_stack.localization.evaluate import evaluate_localization

    calls = []
    for heading in (None, True):
        section = {"name": "learned", "checkpoint": str(checkpoint)}
        if heading is not None:
            section["heading_from_position"] = heading
        stage = LOCALIZATION.build(section)
        assert stage.config.heading_from_position is bool(heading)
    from av_stack.localization.ekf import EkfLocalization

    original = EkfLocalization.update_pose

    def spy(self, pose, covariance, gate_chi2=0.0, heading_from_position=True):
        calls.append(heading_from_position)
        return original(self, pose, covariance, gate_chi2, heading_from_position)

    monkeypatch.setattr(EkfLocalization, "update_pose", spy)
    scores = evaluate_localization({"learned": {"name": "learned", "checkpoint": str(checkpoint)}}, dataset,
                                   gnss_noise_m=2.0, max_frames=30)["methods"]["learned"]
    assert calls and not any(calls) and scores["match_accepted"] > 0


class _OracleNet:
    """A stand-in for the network that answers with the true pose in the prior's frame, sure of it across the
    road only (``sure``: std 0.05 m across, 1 m along, as on a straight road), or says it cannot tell."""

    def __init__(self, stage, sure: bool) -> None:
        self.stage, self.sure, self.truth = stage, sure, None

    def predict(self, x):
        truth = np.array([self.truth.x_m, self.truth.y_m, self.truth.yaw_rad])
        delta = relative_pose(np.array(self.stage.ekf.s[:3]), truth)
        std = np.array([1.0, 0.05, 0.5]) if self.sure else np.array([1.0, 1.0, 0.5])
        return torch.tensor(delta[None], dtype=torch.float32), torch.tensor(std[None], dtype=torch.float32)


def _logged_route(dataset):
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import log_map, mission_of

    log = LogReader(sorted(dataset.glob("*.mcap"))[0])
    mission, frames = None, []
    for logged in log.frames():
        episode = logged.messages.get(T.EPISODE)
        if episode is not None and mission is None:
            mission = mission_of(log, log_map(log), episode, logged.messages.get(T.GT_WORLD))
        if logged.sensor_frame is not None and logged.sensor_frame.ground_truth is not None:
            frames.append(logged.sensor_frame)
    return mission, frames


def _replay(stage, net, mission, frames, gnss_noise_m, start_off=None, no_gnss_frames=0):
    from av_stack.localization.evaluate import inject_gnss_noise

    stage.reset(mission)
    stage.model = net
    if start_off is not None:
        stage.set_initial_pose(start_off)
    rng = np.random.default_rng(0)
    errors, valid, ekf_valid = [], [], []
    for frame in frames:
        net.truth = frame.ground_truth.ego
        noisy = inject_gnss_noise(frame, rng, gnss_noise_m, 0.0)
        if len(errors) < no_gnss_frames:
            noisy = dataclasses.replace(noisy, ego=dataclasses.replace(noisy.ego, gnss=np.full(3, np.nan)))
        estimate = stage.step(noisy)
        errors.append(math.hypot(estimate.pose.x_m - net.truth.x_m, estimate.pose.y_m - net.truth.y_m))
        valid.append(estimate.valid)
        ekf_valid.append(stage.ekf.estimate(frame).valid)
    return np.array(errors), np.array(valid), np.array(ekf_valid)


def test_a_stage_started_far_off_is_invalid_until_its_error_is_small(dataset, checkpoint):
    from av_stack.localization import LOCALIZATION
    from sim.api import Pose

    mission, frames = _logged_route(dataset)
    # The unbiased GNSS model (no bias states): GNSS alone can then bring the position in along the road, which
    # the lateral-only matches cannot (the biased model is test_gnss_bias.py's).
    stage = LOCALIZATION.build({"name": "learned", "checkpoint": str(checkpoint),
                                "ekf": {"gnss_std_m": 0.5, "gnss_bias_std_m": 0.0}, "dither": 1})
    ego = frames[0].ground_truth.ego
    off = Pose(ego.x_m + 3.0, ego.y_m - 4.0, ego.z_m, ego.yaw_rad + math.radians(10.0))  # 5 m and 10 deg off
    # no GNSS for the first 10 frames: nothing but the wrong start; then a 0.5 m GNSS and the matches
    errors, valid, _ = _replay(stage, _OracleNet(stage, sure=True), mission, frames, 0.5, start_off=off,
                               no_gnss_frames=10)
    assert errors[:10].min() > 3.0 and not valid[:10].any()
    assert valid[-5:].all()  # GNSS and the matches bring it in within the route
    assert errors[valid].max() < 0.5, errors[valid].max()  # never valid while off
    first = int(np.argmax(valid))
    assert first >= 10 + stage.config.valid_min_matches - 1  # after the GNSS and enough matches


def test_a_converged_looking_ekf_without_confirming_matches_is_not_valid(dataset, checkpoint):
    from av_stack.localization import LOCALIZATION

    mission, frames = _logged_route(dataset)
    precise = {"gnss_std_m": 0.2, "gnss_bias_std_m": 0.0}  # the EKF told the GNSS is good to 0.2 m, unbiased
    stage = LOCALIZATION.build({"name": "learned", "checkpoint": str(checkpoint), "ekf": precise, "dither": 1})
    _, valid, ekf_valid = _replay(stage, _OracleNet(stage, sure=False), mission, frames, 0.2)
    assert ekf_valid[-5:].all()  # the EKF alone, on a 0.2 m GNSS, would claim the pose
    assert not valid.any() and stage.accepted == 0 and "matches fused" in stage.status
    # the same stage with the check off is the EKF's validity, with its own (stricter) std threshold
    stage = LOCALIZATION.build({"name": "learned", "checkpoint": str(checkpoint), "ekf": precise, "dither": 1,
                                "valid_min_matches": 0})
    _, valid, ekf_valid = _replay(stage, _OracleNet(stage, sure=False), mission, frames, 0.2)
    assert valid[-5:].all() and not (valid & ~ekf_valid).any()


def test_successive_matches_dither_the_prior_over_a_cell(dataset, checkpoint):
    from av_stack.localization import LOCALIZATION

    class Constant:
        """Answers 0.2 m ahead, 0.1 m right, 0.01 rad, whatever the rasters."""

        def predict(self, x):
            assert len(x) == 1
            return torch.tensor([[0.2, 0.1, 0.01]]), torch.tensor([[0.5, 0.05, 0.002]])

    mission, frames = _logged_route(dataset)
    stage = LOCALIZATION.build({"name": "learned", "checkpoint": str(checkpoint), "dither": 3})
    stage.reset(mission)
    stage.model = Constant()
    rendered = []
    view = stage._raster.view
    stage._raster.view = lambda x, y, yaw, spec: rendered.append((x, y, yaw)) or view(x, y, yaw, spec)
    ego = frames[0].ground_truth.ego
    prior = np.array([ego.x_m, ego.y_m, ego.yaw_rad])
    scan = np.zeros((4, GRID.config.size_px, GRID.config.size_px), np.float32)
    truths = []
    for fits in range(4):
        stage.fits = fits
        delta, std = stage._predict(scan, prior)
        truths.append(compose(prior, delta))
        assert np.allclose(std, [0.5, 0.05, 0.002])
    shifts = np.array([relative_pose(prior, np.array(p)) for p in rendered])
    assert np.allclose(shifts[:, 1], [-1 / 9, 0.0, 1 / 9, -1 / 9], atol=1e-9)  # across the heading, in turn
    assert np.allclose(shifts[:, [0, 2]], 0.0, atol=1e-9)
    # each answer is about the prior it was rendered at: the same answer lands where that prior says
    assert np.allclose([relative_pose(np.array(p), t) for p, t in zip(rendered, truths)], [0.2, 0.1, 0.01])
