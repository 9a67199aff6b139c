"""Collecting a dataset: the logs and manifest, the split by town, noisy executed vs clean labelled control,
resuming after an interrupt, redoing half-written logs, and clear errors (a few frames per log)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import av_stack.data.collect as collect_module
from av_stack.data.collect import collect, plan_jobs
from av_stack.data.config import CollectConfig, load_collect_config
from av_stack.data.manifest import APPLIED_CONTROL, DatasetError, read_manifest, split_of
from av_stack.logs import topics as T
from av_stack.logs.reader import LogReader
from launch.collect_cli import collect as collect_command
from sim.config import ConfigError

from tests.av_stack.data.mix import MIX, PROCEDURAL

def test_manifest_lists_every_log_with_its_town_seed_frames_and_split(dataset):
    out, summary = dataset
    manifest = read_manifest(out)
    logs = manifest["logs"]
    assert summary["logs"] == 4 and summary["new_logs"] == 4 and summary["frames"] == 24
    assert [(log["town"], log["seed"], log["split"]) for log in logs] == [
        ("Town01", 0, "train"), ("Town01", 1, "train"), (PROCEDURAL, 0, "val"), (PROCEDURAL, 1, "val")]
    for log in logs:
        assert (out / log["file"]).is_file() and log["frames"] == 6 and log["samples"] == 6
        assert log["map"] == log["town"] and log["bytes"] == (out / log["file"]).stat().st_size
    assert not list(out.glob("*.part"))
    assert manifest["config"]["frames_per_log"] == 6


def test_logs_label_the_clean_control_and_record_the_noisy_executed_one(dataset):
    out, _ = dataset
    noisy = clean = 0
    for log in read_manifest(out)["logs"]:
        reader = LogReader(out / log["file"])
        assert reader.map_name == log["town"]
        frames = [f for f in reader.frames() if f.sensor_frame is not None]
        assert len(frames) == 6 and all(f.has_sensor_data for f in frames)
        assert set(reader.sensor_names) >= {"front_rgb", "front_depth", "front_semantic", "roof_lidar",
                                            "front_radar", "gnss", "imu"}
        for f in frames:
            applied, label = f.messages[APPLIED_CONTROL], f.messages[T.STACK_CONTROL]
            assert applied["frame"] == label["frame"] == f.sensor_frame.frame
            assert f.sensor_frame.privileged_bev is not None and f.sensor_frame.ground_truth is not None
            assert applied["clean"]["steer"] == pytest.approx(label["steer"], abs=1e-6)
            if applied["noise"]["active"]:
                noisy += 1
                assert applied["steer"] == pytest.approx(np.clip(label["steer"] + applied["noise"]["steer"], -1, 1),
                                                         abs=1e-6)
            else:
                clean += 1
                assert applied["steer"] == pytest.approx(label["steer"], abs=1e-6)
    assert noisy > 0 and clean > 0


def test_split_rule_is_stable_and_follows_the_config():
    assert split_of("Town05", None) == split_of("Town05", None)
    assert {split_of(f"town{k}", None) for k in range(200)} == {"train", "val", "test"}
    cfg = CollectConfig.model_validate(MIX)
    assert split_of(PROCEDURAL, cfg.split) == "val" and split_of("Town01", cfg.split) == "train"


def _cli(args: list[str]):
    app = typer.Typer()
    app.command("collect")(collect_command)
    app.command("other")(lambda: None)  # two commands: 'collect' stays a subcommand, as in avsim
    return CliRunner().invoke(app, ["collect", *args])


def test_an_interrupted_collection_resumes_without_redoing_or_losing_logs(tmp_path, monkeypatch):
    out = tmp_path / "data"
    options = ["--map", "Town01", "--frames", "4", "--frames-per-log", "2", "--vehicles", "1", "--walkers", "0"]
    config = CollectConfig.model_validate({"towns": [{"map": "Town01"}], "frames": 4, "frames_per_log": 2,
                                           "traffic": [{"vehicles": 1, "walkers": 0}]})
    first, second = (job.file for job in plan_jobs(config))
    real_drive = collect_module.drive
    calls = []

    class CtrlC(collect_module.Observer):
        def tick(self, tick):
            raise KeyboardInterrupt

    def interrupted_drive(env, agent, ids, seed, observers, log=None):
        calls.append(seed)
        extra = [CtrlC()] if len(calls) == 2 else []
        return real_drive(env, agent, ids, seed, [*observers, *extra], log)

    monkeypatch.setattr(collect_module, "drive", interrupted_drive)
    with pytest.raises(KeyboardInterrupt):
        collect(config, out, show_progress=False)
    assert [log["file"] for log in read_manifest(out)["logs"]] == [first]
    assert (out / (second + ".part")).is_file() and not (out / second).exists()
    kept = (out / first).read_bytes()

    calls.clear()
    monkeypatch.setattr(collect_module, "drive", lambda *a, **k: (calls.append(a[3]), real_drive(*a, **k))[1])
    result = _cli([*options, "--out", str(out), "--cache", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["new_logs"] == 1 and summary["skipped_logs"] == 1 and summary["logs"] == 2
    assert summary["frames"] == 4 and summary["dataset"] == str(out) and summary["seconds"] > 0
    assert calls == [1]  # only the interrupted log (seed 1) was driven again
    assert summary["cache_seconds"] > 0 and (out / "cache" / "fields.json").is_file()
    assert (out / first).read_bytes() == kept and not (out / (second + ".part")).exists()
    assert len(list(LogReader(out / second).frames())) > 0

    # A log renamed but not yet in the manifest (killed in between) is half-written too: redone.
    manifest = read_manifest(out)
    manifest["logs"] = manifest["logs"][:1]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / second).write_bytes((out / second).read_bytes()[:1000])
    calls.clear()
    assert collect(config, out, show_progress=False)["new_logs"] == 1 and calls == [1]
    assert [log["file"] for log in read_manifest(out)["logs"]] == [first, second]
    assert sum(1 for f in LogReader(out / second).frames() if f.has_sensor_data) == 2

    calls.clear()
    assert collect(config, out, show_progress=False)["new_logs"] == 0 and calls == []

    changed = config.model_copy(update={"noise": config.noise.model_copy(update={"steer_max": 0.1})})
    with pytest.raises(DatasetError, match=f"{first} was collected with other settings"):
        collect(changed, out, show_progress=False)


def test_bad_configs_and_options_give_one_clear_error(tmp_path):
    bad = tmp_path / "mix.yaml"
    bad.write_text("towns: [{map: Town01}]\nnoise: {steer_maximum: 0.2}\n")
    with pytest.raises(ConfigError, match=r"mix.yaml: \('noise', 'steer_maximum'\): Extra inputs"):
        load_collect_config(bad)
    with pytest.raises(ValueError, match="exactly one of 'map'"):
        CollectConfig.model_validate({"towns": [{"map": "Town01", "procedural": {"seed": 1}}]})
    with pytest.raises(ValueError, match="appear twice"):
        CollectConfig.model_validate({"towns": [{"map": "Town01"}, {"map": "Town01"}]})
    result = _cli(["--config", str(bad), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "steer_maximum" in result.output and not (tmp_path / "x").exists()
    result = _cli(["--map", "NoSuchTown", "--frames", "1", "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "NoSuchTown" in result.output
    assert not (tmp_path / "y").exists()


def test_the_shipped_mix_plans_its_logs():
    config = load_collect_config("collect/small_mix.yaml")
    jobs = plan_jobs(config)
    assert len(jobs) == 4 * 2 * 2 * 2 and len({job.file for job in jobs}) == len(jobs)
    assert {split_of(t.label, config.split) for t in config.towns} == {"train", "val", "test"}


def test_a_drifted_expert_is_handed_the_pose_moved_by_the_logged_drift(tmp_path):
    import math

    config = CollectConfig.model_validate({
        "towns": [{"procedural": {"seed": 1, "grid_rows": 2, "grid_cols": 2}}], "traffic": [{"vehicles": 0,
                                                                                            "walkers": 0}],
        "frames": 40, "frames_per_log": 40, "sensors_every": 10, "noise": {"enabled": False},
        "drift": {"enabled": True, "lateral_max_m": 1.0, "segment_s": [0.2, 0.5]}})
    collect(config, tmp_path, show_progress=False)
    log = read_manifest(tmp_path)["logs"][0]
    assert log["settings"]["drift"]["lateral_max_m"] == 1.0
    drifts = []
    for frame in LogReader(tmp_path / log["file"]).frames():
        if frame.sensor_frame is None or APPLIED_CONTROL not in frame.messages:
            continue
        truth, handed = frame.sensor_frame.ground_truth.ego, frame.messages[T.STACK_LOCALIZATION]["pose"]
        dx, dy = handed["x_m"] - truth.x_m, handed["y_m"] - truth.y_m
        across = -math.sin(truth.yaw_rad) * dx + math.cos(truth.yaw_rad) * dy
        along = math.cos(truth.yaw_rad) * dx + math.sin(truth.yaw_rad) * dy
        drift = frame.messages[APPLIED_CONTROL]["drift_m"]
        assert across == pytest.approx(drift, abs=1e-6) and along == pytest.approx(0.0, abs=1e-6)
        drifts.append(drift)
    assert len(drifts) >= 30 and max(abs(d) for d in drifts) > 0.1
