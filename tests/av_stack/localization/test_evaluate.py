"""``avsim eval localization`` end to end on a tiny collected dataset (GNSS + IMU only), and its noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from av_stack.data.collect import collect
from av_stack.data.config import CollectConfig
from av_stack.localization.evaluate import evaluate_localization, inject_gnss_noise
from av_stack.messages import EgoSignals, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE
from av_stack.registry import StageConfigError
from launch.localization_cli import eval_localization

SUITE = """sensors:
  - {name: gnss, blueprint: sensor.other.gnss, transform: {x: 0.0}}
  - {name: imu, blueprint: sensor.other.imu, transform: {x: 0.0}}
"""
FIELDS = ("rms_lateral_m", "rms_longitudinal_m", "rms_yaw_deg", "ate_m", "share_over_1m", "ms_per_frame")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Sixty frames of Town01 in two logs, with a GNSS and an IMU."""
    root = tmp_path_factory.mktemp("localization_data")
    (root / "suite.yaml").write_text(SUITE)
    mix = {"towns": [{"map": "Town01"}], "traffic": [{"vehicles": 0, "walkers": 0}], "frames": 60,
           "frames_per_log": 30, "sensors": str(root / "suite.yaml"), "noise": {"enabled": False},
           "split": {"val": [], "test": []}}
    collect(CollectConfig.model_validate(mix), root / "data", show_progress=False)
    return root / "data"


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
