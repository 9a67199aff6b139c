"""Run logs end to end: ``run_stack`` writes run.mcap, it validates with the mcap reader, holds Foxglove's
schemas, and reads back into the frames the stack saw; cut, corrupt, missing and interrupted logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader

from av_stack.logs import topics as T
from av_stack.logs.reader import LogError, LogReader
from av_stack.logs.writer import LogWriter
from av_stack.messages import Mission, PerceptionOutput, SensorFrame
from av_stack.perception import PERCEPTION
from av_stack.perception.oracle import OraclePerception
from av_stack.runner import RunOptions, run_stack

REPO = Path(__file__).resolve().parents[3]
TICKS = 60
SEEN: list[SensorFrame] = []

SUITE = """sensors:
  - {name: cam, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 96, image_size_y: 64, fov: 90}}
  - {name: depth, blueprint: sensor.camera.depth, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 96, image_size_y: 64, fov: 90}}
  - {name: sem, blueprint: sensor.camera.semantic_segmentation, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 96, image_size_y: 64, fov: 90}}
  - {name: lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 8, points_per_second: 16000, rotation_frequency: 20, range: 50}}
  - {name: radar, blueprint: sensor.other.radar, transform: {x: 2.6, z: 1.0}, attributes: {points_per_second: 400}}
  - {name: gnss, blueprint: sensor.other.gnss}
  - {name: imu, blueprint: sensor.other.imu}
  - {name: collision, blueprint: sensor.other.collision}
"""


class RecordingPerception(OraclePerception):
    """The oracle, keeping every frame it is given (to compare with what the log gives back)."""

    def step(self, frame: SensorFrame) -> PerceptionOutput:
        SEEN.append(frame)
        return super().step(frame)


if "_test_recording" not in PERCEPTION.names():
    PERCEPTION.register("_test_recording")(RecordingPerception)


def stack_config(tmp_path: Path, sensors_every: int = 2, ticks: int = TICKS, planning: str = "expert") -> dict:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    return {"env": {"base": "env/leaderboard_town01.yaml", "traffic": {"vehicles": 4, "walkers": 2},
                    "scenarios": [], "routes": {"ids": ["town01_short_00"]}, "episode": {"max_steps": ticks},
                    "action": {"mode": "vehicle_control"}, "sensors": str(suite),
                    "observation": {"modes": ["sensors", "bev"], "ground_truth": True}},
            "perception": {"name": "_test_recording"}, "planning": {"name": planning},
            "run": {"video": False}, "record": {"sensors_every": sensors_every}}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One short recorded run and the frames its perception saw."""
    tmp_path = tmp_path_factory.mktemp("log")
    SEEN.clear()
    metrics = run_stack(stack_config(tmp_path), tmp_path / "run", RunOptions(seed=1))
    return tmp_path / "run" / "run.mcap", metrics, list(SEEN)


def test_the_log_validates_and_holds_foxglove_schemas(recorded):
    path, metrics, _ = recorded
    assert metrics["log"] == {"path": "run.mcap", "ticks": TICKS, "bytes": path.stat().st_size}
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        schemas = {channel.topic: summary.schemas[channel.schema_id].name for channel in summary.channels.values()}
        attachments = {a.name for a in reader.iter_attachments()}
        metadata = {m.name for m in reader.iter_metadata()}
        messages = sum(1 for _ in reader.iter_messages())
        profile = reader.get_header().profile
    assert profile == "avsim"
    assert schemas["/sensors/cam"] == schemas["/sensors/depth"] == "foxglove.CompressedImage"
    assert schemas["/sensors/lidar"] == schemas["/sensors/radar"] == "foxglove.PointCloud"
    assert schemas["/sensors/gnss"] == "foxglove.LocationFix"
    assert schemas[T.TF] == "foxglove.FrameTransforms"
    assert schemas[T.GT_BOXES] == schemas[T.PERCEPTION_BOXES] == "foxglove.SceneUpdate"
    assert schemas[T.GT_BEV] == "foxglove.CompressedImage"
    for topic in (T.STACK_PERCEPTION, T.STACK_LOCALIZATION, T.STACK_PLAN, T.STACK_CONTROL, T.GT_WORLD, T.GT_FRAME,
                  T.ENV_STEP, T.EPISODE, "/sensors/imu"):
        assert schemas[topic].startswith("avsim."), topic
    assert attachments == {T.CONFIG_ATTACHMENT, T.MAP_ATTACHMENT} and T.RUN_METADATA in metadata
    assert messages == summary.statistics.message_count > 0


def test_the_log_gives_back_the_frames_the_stack_saw(recorded):
    path, _, seen = recorded
    log = LogReader(path)
    assert log.map_name == "Town01" and log.dt_s == pytest.approx(0.05)
    assert set(log.sensor_names) == {"cam", "depth", "sem", "lidar", "radar", "gnss", "imu", "collision"}
    assert "<OpenDRIVE>" in log.map_xodr and log.config["perception"]["name"] == "_test_recording"
    frames = [f for f in log.frames() if f.sensor_frame is not None]
    assert [f.sensor_frame.frame for f in frames] == [s.frame for s in seen]
    with_data = [f for f in frames if f.has_sensor_data]
    assert len(with_data) == TICKS // 2  # every 2nd frame
    for logged, live in zip(frames, seen):
        got = logged.sensor_frame
        assert got.timestamp_s == pytest.approx(live.timestamp_s) and got.ego == live.ego
        assert got.ground_truth.ego == live.ground_truth.ego
        assert np.array_equal(got.ground_truth.actors.actor_id, live.ground_truth.actors.actor_id)
        assert np.allclose(got.ground_truth.actors.center_m, live.ground_truth.actors.center_m)
        assert got.ground_truth.light.state == live.ground_truth.light.state
        if not logged.has_sensor_data:
            continue
        assert np.array_equal(got.privileged_bev, live.privileged_bev)
        for name in ("sem", "lidar", "radar", "gnss", "imu"):
            assert np.array_equal(got.sensor(name), live.sensor(name), equal_nan=True), name
        assert np.abs(got.sensor("depth") - live.sensor("depth")).max() < 1e-4
        assert np.abs(got.sensor("cam").astype(int) - live.sensor("cam")).mean() < 4.0
        assert set(got.calibration) == set(live.calibration)
        assert np.allclose(got.calibration["cam"].intrinsics, live.calibration["cam"].intrinsics)


def test_stage_outputs_and_world_are_logged_every_tick(recorded):
    path, _, seen = recorded
    log = LogReader(path)
    controls = [m.value for m in log.messages([T.STACK_CONTROL])]
    worlds = [m.value for m in log.messages([T.GT_WORLD])]
    assert [c["frame"] for c in controls] == [s.frame for s in seen]
    assert len(worlds) == TICKS + 1  # the route's first frame, then one per tick
    assert all(w["ego_id"] in w["actor_id"] for w in worlds)
    (episode,) = [m.value for m in log.messages([T.EPISODE])]
    assert episode["route_id"] == "town01_short_00" and len(episode["route"]["points_xy"]) > 10


def test_a_log_cut_at_two_thirds_gives_its_earlier_messages_then_one_clear_error(recorded, tmp_path):
    path, _, _ = recorded
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    log = LogReader(cut)
    frames = []
    with pytest.raises(LogError, match=r"cut\.mcap is cut or corrupt after t = \d+\.\d+ s"):
        for frame in log.frames():
            frames.append(frame)
    assert len(frames) > 0 and frames[-1].t_s > frames[0].t_s


def test_a_corrupt_chunk_is_a_clear_error(recorded, tmp_path):
    path, _, _ = recorded
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(4096)
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(bytes(data))
    with pytest.raises(LogError, match="bad.mcap is cut or corrupt"):
        for _ in LogReader(bad).frames():
            pass


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(LogError, match="no log file at"):
        LogReader(tmp_path / "nothing.mcap")
    text = tmp_path / "notes.mcap"
    text.write_text("not a log")
    with pytest.raises(LogError, match="not a readable MCAP log"):
        LogReader(text)
    foreign = tmp_path / "foreign.mcap"
    with LogWriter(foreign) as writer:
        writer.write_json("/x", "Thing", {"a": 1}, 0.0)
    with pytest.raises(LogError, match="no 'avsim.run' metadata"):
        LogReader(foreign)


def test_nan_is_written_as_null_and_a_bad_compression_is_refused(tmp_path):
    with LogWriter(tmp_path / "n.mcap", compression="lz4") as writer:
        writer.write_json("/x", "Thing", {"a": float("nan"), "b": np.array([1.0, np.inf])}, 0.0)
    with open(tmp_path / "n.mcap", "rb") as stream:
        (_, _, message), = make_reader(stream).iter_messages()
    assert json.loads(message.data) == {"a": None, "b": [1.0, None]}
    with pytest.raises(ValueError, match="compression 'gzip'"):
        LogWriter(tmp_path / "g.mcap", compression="gzip")


class InterruptingPlanner:
    """Raises KeyboardInterrupt (as Ctrl-C does) at its 10th step."""

    from av_stack.registry import StageParams as Config

    def __init__(self, config) -> None:
        self.steps = 0

    def reset(self, mission: Mission) -> None:
        self.steps = 0

    def step(self, perception, pose):
        self.steps += 1
        if self.steps == 10:
            raise KeyboardInterrupt
        from av_stack.messages import Plan, VehicleControl

        return Plan(perception.frame, perception.timestamp_s, control=VehicleControl(throttle=0.3))


def test_an_interrupted_run_leaves_a_valid_log_up_to_the_last_tick(tmp_path):
    from av_stack.planning import PLANNING

    if "_test_interrupt" not in PLANNING.names():
        PLANNING.register("_test_interrupt")(InterruptingPlanner)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_stack(stack_config(tmp_path, planning="_test_interrupt"), out, RunOptions())
    with open(out / "run.mcap", "rb") as stream:  # finished: the summary section is there
        summary = make_reader(stream).get_summary()
    assert summary is not None and summary.statistics.message_count > 0
    controls = [m.value for m in LogReader(out / "run.mcap").messages([T.STACK_CONTROL])]
    assert len(controls) == 9
    assert json.loads((out / "metrics.json").read_text())["complete"] is False


@pytest.mark.skipif(sys.platform != "linux", reason="signals")
def test_sigterm_on_avsim_run_closes_the_log(tmp_path):
    """``avsim run`` stopped with SIGTERM: exit code 130, and run.mcap is a finished log."""
    config = stack_config(tmp_path, ticks=100000)
    config["perception"] = {"name": "oracle"}
    (tmp_path / "stack.yaml").write_text(json.dumps(config))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--config", str(tmp_path / "stack.yaml"),
                             "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    first_size = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # wait for a few chunks of ticks
            if (out / "run.mcap").is_file():
                size = (out / "run.mcap").stat().st_size
                first_size = first_size or size
                if size > first_size + 600_000:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-2000:]
    assert "interrupted" in output
    with open(out / "run.mcap", "rb") as stream:
        summary = make_reader(stream).get_summary()
    assert summary is not None and summary.statistics.message_count > 0
    assert sum(1 for _ in LogReader(out / "run.mcap").messages([T.STACK_CONTROL])) > 0


def test_a_run_without_recording_writes_no_log(tmp_path):
    config = stack_config(tmp_path, ticks=3)
    config["record"] = {"enabled": False}
    metrics = run_stack(config, tmp_path / "run", RunOptions())
    assert metrics["log"] is None and not (tmp_path / "run" / "run.mcap").exists()


def test_a_wrong_record_key_is_one_clear_error(tmp_path):
    from sim.config import ConfigError

    config = stack_config(tmp_path, ticks=3)
    config["record"] = {"sensor_every": 3}
    with pytest.raises((ConfigError, ValueError), match="sensor_every"):
        run_stack(config, tmp_path / "run", RunOptions())
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
