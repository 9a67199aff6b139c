"""``avsim eval perception``'s scoring: AP by centre distance, IoU per channel, light accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from av_stack.perception.evaluate import average_precision, evaluate_perception


def test_average_precision_of_perfect_half_and_no_detections():
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == pytest.approx(1.0)
    assert average_precision(np.array([0.9, 0.8]), np.array([True, False]), 2) == pytest.approx(51 / 101)
    assert average_precision(np.array([0.9, 0.8]), np.array([False, True]), 2) == pytest.approx(0.5 * 51 / 101)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert np.isnan(average_precision(np.zeros(0), np.zeros(0, bool), 0))


def test_the_oracle_scores_perfectly(dataset):
    result = evaluate_perception({"name": "oracle"}, dataset, assemble="off")
    assert result["frames"] == 8 and result["towns"] == ["Town01"]
    assert result["iou"]["road"] == 1.0 and result["iou"]["lane_broken"] in (1.0, None), result
    assert result["ap"]["vehicle@0.5m/30m"] == 1.0 and result["ap"]["vehicle@1.0m/50m"] == 1.0
    assert result["light_accuracy_any_range"] == 1.0 and result["velocity_error_mps"] == pytest.approx(0.0, abs=1e-9)
    assert result["ms_per_frame"] > 0


def test_eval_perception_command_prints_the_json_last(dataset, tmp_path):
    from launch.cli import app

    result = CliRunner().invoke(app, ["eval", "perception", "--data", str(dataset), "--name", "oracle",
                                      "--max-frames", "3", "--assemble", "off", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("iou", "ap", "light_accuracy", "ms_per_frame", "model"):
        assert key in scores
    assert scores["frames"] == 3 and scores["model"] == {"name": "oracle"}
    missing = CliRunner().invoke(app, ["eval", "perception", "--data", str(tmp_path / "none"), "--json"])
    assert missing.exit_code == 2 and "none" in missing.output


def test_eval_perception_passes_stage_options_and_names_a_bad_one(dataset):
    from launch.cli import app

    base = ["eval", "perception", "--data", str(dataset), "--name", "classical", "--max-frames", "2", "--assemble",
            "off", "--json"]
    result = CliRunner().invoke(app, [*base, "--option", "light_range_m=25"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["model"] == {"name": "classical", "light_range_m": 25}
    bad = CliRunner().invoke(app, [*base, "--option", "no_such_key=1"])
    assert bad.exit_code != 0 and "no_such_key" in bad.output
    malformed = CliRunner().invoke(app, [*base, "--option", "velocity"])
    assert malformed.exit_code != 0 and "KEY=VALUE" in malformed.output
