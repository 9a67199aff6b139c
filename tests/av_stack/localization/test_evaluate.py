"""``avsim eval localization`` end to end on a tiny collected dataset (``conftest.py``), and its noise."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from av_stack.localization.evaluate import Corruption, evaluate_localization, inject_gnss_noise
from av_stack.messages import EgoSignals, SensorCalibration, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE
from av_stack.registry import StageConfigError
from launch.localization_cli import eval_localization
from sim.api import Pose

FIELDS = ("rms_lateral_m", "rms_longitudinal_m", "rms_yaw_deg", "ate_m", "share_over_1m", "ms_per_frame")


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(eval_localization)
    app.callback()(lambda: None)
    return app


def test_the_cli_prints_every_method_and_field_as_json(dataset):
    result = CliRunner().invoke(_app(), ["eval-localization", "--data", str(dataset), "--methods", "ekf,oracle",
                                         "--gnss-noise", "1.0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    print(json.dumps(report["methods"]))
    assert report["frames"] == 60 and set(report["methods"]) == {"ekf", "oracle"}
    for scores in report["methods"].values():
        assert all(key in scores for key in FIELDS)
    oracle, ekf = report["methods"]["oracle"], report["methods"]["ekf"]
    assert oracle["ate_m"] == 0.0 and oracle["frames_scored"] == 60
    assert ekf["frames"] == 60 and 0 < ekf["frames_scored"] <= 60
    assert 0.0 < ekf["ate_m"] < 1.0  # noise of 1 m per axis, filtered


def test_the_noise_is_seeded_and_the_same_for_every_method(dataset):
    kwargs = {"gnss_noise_m": 2.0, "max_frames": 25}
    one = evaluate_localization({"a": {"name": "ekf"}, "b": {"name": "ekf"}}, dataset, **kwargs)
    two = evaluate_localization({"a": {"name": "ekf"}}, dataset, **kwargs)
    assert one["frames"] == 25
    for key in ("ate_m", "rms_lateral_m", "rms_yaw_deg"):
        assert one["methods"]["a"][key] == one["methods"]["b"][key] == two["methods"]["a"][key]


def test_bad_methods_and_splits_are_clear_errors(dataset):
    with pytest.raises(StageConfigError, match="nope"):
        evaluate_localization({"x": {"name": "nope"}}, dataset)
    with pytest.raises(StageConfigError, match="gnss_std"):
        evaluate_localization({"x": {"name": "ekf", "gnss_std": 1.0}}, dataset)
    result = CliRunner().invoke(_app(), ["eval-localization", "--data", str(dataset), "--split", "test"])
    assert result.exit_code == 2 and "no test logs" in result.output


def test_injected_noise_has_the_asked_bias_and_spread():
    frame = SensorFrame(0, 0.0, EgoSignals(1.0, gnss=np.array([0.001, 0.002, 5.0])))
    rng = np.random.default_rng(0)
    moved = np.array([(inject_gnss_noise(frame, rng, 0.5, 1.0).ego.gnss[:2] - frame.ego.gnss[:2])
                      * METRES_PER_DEGREE for _ in range(2000)])
    assert np.allclose(moved.mean(axis=0), 1.0, atol=0.05) and np.allclose(moved.std(axis=0), 0.5, atol=0.05)
    assert inject_gnss_noise(frame, rng, 0.0, 0.0) is frame
    nan = SensorFrame(0, 0.0, EgoSignals(1.0))
    assert np.isnan(inject_gnss_noise(nan, rng, 1.0, 0.0).ego.gnss).all()


def test_icp_without_a_map_builds_leave_one_out_maps_and_says_so(dataset):
    report = evaluate_localization({"icp": {"name": "icp"}}, dataset, gnss_noise_m=1.0, max_frames=40)
    assert report["prior_map"] == "leave-one-out from 1 log"
    icp = report["methods"]["icp"]
    assert all(key in icp for key in FIELDS) and "icp_accepted" in icp and icp["frames"] == 40


def test_icp_with_a_folder_of_per_log_maps(dataset, tmp_path):
    from av_stack.localization.prior_map import build_prior_map, save_prior_map

    folder = tmp_path / "maps"
    for log in dataset.glob("*.mcap"):  # each log's own map: the plumbing, not a benchmark
        save_prior_map(build_prior_map(log), folder / f"{log.stem}.npz")
    result = CliRunner().invoke(_app(), ["eval-localization", "--data", str(dataset), "--methods", "ekf,icp",
                                         "--prior-map", str(folder), "--gnss-noise", "2.0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    icp, ekf = report["methods"]["icp"], report["methods"]["ekf"]
    assert report["prior_map"] == str(folder) and icp["icp_accepted"] > 0.8 * icp["icp_fits"]
    assert icp["ate_m"] < 0.1 < ekf["ate_m"]
    result = CliRunner().invoke(_app(), ["eval-localization", "--data", str(dataset), "--methods", "icp",
                                         "--prior-map", str(tmp_path / "none.npz")])
    assert result.exit_code == 2 and "no prior map at" in result.output


def test_corruption_drops_gnss_for_the_window_and_noises_the_odometry():
    frame = SensorFrame(0, 0.0, EgoSignals(5.0, gyroscope_rad_s=np.zeros(3), compass_rad=1.0,
                                           gnss=np.array([0.001, 0.002, 5.0])))
    rng = np.random.default_rng(0)
    cut = Corruption(gnss_dropout_s=10.0, gnss_dropout_start_s=3.0)
    for since_start, dropped in ((2.9, False), (3.0, True), (12.9, True), (13.0, False)):
        assert np.isnan(cut.apply(frame, rng, since_start).ego.gnss).all() == dropped, since_start
    noisy = Corruption(speed_noise_mps=0.2, gyro_noise_rad_s=0.01, gyro_bias_rad_s=0.005, compass_noise_deg=2.0)
    out = [noisy.apply(frame, rng, 0.0).ego for _ in range(2000)]
    assert abs(np.std([e.speed_mps for e in out]) - 0.2) < 0.02
    assert abs(np.mean([e.gyroscope_rad_s[2] for e in out]) - 0.005) < 0.001
    assert abs(np.degrees(np.std([e.compass_rad for e in out])) - 2.0) < 0.2
    assert Corruption().apply(frame, rng, 0.0) is frame
    sweep = np.tile(np.array([[3.0, 4.0, 0.0, 1.0]], np.float32), (4000, 1))
    lidar = SensorFrame(0, 0.0, frame.ego, {"l": sweep}, {"l": SensorCalibration("l", "sensor.lidar.ray_cast", Pose())})
    moved = Corruption(lidar_noise_m=0.05).apply(lidar, rng, 0.0).data["l"]
    ranges = np.linalg.norm(moved[:, :3], axis=1)
    assert abs(ranges.std() - 0.05) < 0.005 and np.allclose(moved[:, :3] / ranges[:, None], [0.6, 0.8, 0.0], atol=1e-5)
    truth = SimpleNamespace(x_m=10.0, y_m=20.0, z_m=0.5, yaw_rad=0.2)
    wrong = Corruption(init_error_m=5.0, init_error_deg=10.0).initial_pose(truth)
    assert abs(math.hypot(wrong.x_m - 10.0, wrong.y_m - 20.0) - 5.0) < 1e-9
    assert abs(math.degrees(wrong.yaw_rad - 0.2) - 10.0) < 1e-9 and Corruption().initial_pose(truth) is None
    with pytest.raises(ValueError, match="speed_noise_mps"):
        Corruption(speed_noise_mps=-1.0).check()
