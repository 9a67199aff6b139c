"""The avsim command line, run as a user would (subprocess), on small settings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[2]


def avsim(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_run_demo_writes_summary_and_video(tmp_path):
    out = tmp_path / "demo"
    result = avsim("run", "--map", "Town01", "--vehicles", "5", "--walkers", "3", "--seconds", "2",
                   "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ticks"] == 40 and summary["map"] == "Town01"
    assert json.loads((out / "summary.json").read_text()) == summary
    meta = next(imageio_ffmpeg.read_frames(str(out / "topdown.mp4")))
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["size"] == (640, 640)
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "topdown.mp4"))[0] == 40


def test_bench_world_json_fields():
    start = time.perf_counter()
    result = avsim("bench", "world", "--map", "Town02", "--vehicles", "10", "--walkers", "5", "--ticks", "100",
                   "--warmup", "10", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("ticks_per_s", "map", "vehicles", "walkers", "machine"):
        assert key in record
    assert record["vehicles"] == 10 and record["walkers"] == 5 and record["ticks_per_s"] > 0
    # The timed ticks ran inside the command: the rate cannot claim they took longer than the whole command did.
    assert 100 / record["ticks_per_s"] < time.perf_counter() - start


def test_bench_world_on_a_user_file(tmp_path):
    path = tmp_path / "mytown.xodr"
    path.write_text((ROOT / "sim/maps/data/Town02.xodr").read_text())
    result = avsim("bench", "world", "--map", str(path), "--vehicles", "5", "--walkers", "0", "--ticks", "50",
                   "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["map"] == "mytown"


def test_malformed_map_exits_2_with_clear_error(tmp_path):
    bad = tmp_path / "broken.xodr"
    bad.write_text("<OpenDRIVE><header/><road id='1'")
    for args in (("map", "check", str(bad)), ("bench", "world", "--map", str(bad), "--json"),
                 ("run", "--map", str(bad), "--seconds", "1")):
        result = avsim(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "broken.xodr" in result.stderr and "Traceback" not in result.stderr


def test_missing_map_and_bad_option():
    result = avsim("map", "info", "nowhere.xodr")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = avsim("bench", "world", "--vehicles", "-3")
    assert result.returncode != 0 and "vehicles" in result.stderr


def test_map_info_json():
    result = avsim("map", "info", "Town10HD", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["traffic_lights"] == 17 and info["stop_signs"] >= 3 and info["spawn_points"] > 100


def test_bench_sensors_json_fields():
    result = avsim("bench", "sensors", "--map", "Town02", "--vehicles", "5", "--walkers", "5", "--ticks", "10",
                   "--warmup", "2", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("fps", "ms_per_sensor", "raycast_reference_fps", "efficiency", "machine"):
        assert key in record
    assert set(record["ms_per_sensor"]) == {"rgb", "depth", "semantic", "lidar", "radar", "gnss", "imu",
                                            "collision", "lane_invasion"}
    assert abs(record["efficiency"] - record["fps"] / record["raycast_reference_fps"]) <= 0.002 + 1e-9  # each rounded to 3 decimals
    assert record["rays_per_tick"] == 400 * 300 + 32 * 1024 + 75


QUIET_TOWN = "map: Town01\ntraffic: {vehicles: 0, walkers: 0}\nscenarios: []\n"
"""An env config without traffic: what `--config` gives `avsim eval driving` in these tests."""

TINY_STACK = """\
env:
  base: env/leaderboard_town01.yaml
  traffic: {vehicles: 2, walkers: 0}
  scenarios: []
  routes: {ids: [town01_short_00]}
  episode: {max_steps: 30}
  action: {mode: vehicle_control}
  observation: {modes: [bev], ground_truth: true}
planning: {name: expert}
control: {name: stanley}
run: {video: true, camera: null, video_every: 3}
"""
"""A stack config on one short route, cut at 30 ticks, with a video of the BEVs only."""


def _last_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eval_driving_json_scores_a_route_of_a_route_file(tmp_path):
    config = tmp_path / "env.yaml"
    config.write_text(QUIET_TOWN)
    result = avsim("eval", "driving", "--agent", "expert", "--config", str(config), "--observation", "state",
                   "--routes", "configs/routes/town01.yaml", "--route", "town01_short_00", "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result)
    assert record["agent"] == "expert" and record["episodes"] == 1 and record["map"] == "Town01"
    assert record["stack"] == {"perception": "oracle", "localization": "oracle", "planning": "expert",
                               "control": "stanley"}
    assert [r["route_id"] for r in record["routes"]] == ["town01_short_00"]
    assert record["driving_score"] == record["routes"][0]["driving_score"] == 100.0
    assert record["route_completion"] == 100.0 and record["infraction_penalty"] == 1.0
    assert {"perception", "planning", "overhead", "env_step"} <= set(record["latency_ms"])


def test_eval_driving_random_routes_on_a_procedural_town(tmp_path):
    config = tmp_path / "env.yaml"
    config.write_text(QUIET_TOWN + "episode: {max_steps: 40}\n")
    result = avsim("eval", "driving", "--agent", "oracle", "--config", str(config), "--observation", "state",
                   "--map", "procedural", "--routes", "random:1", "--seed", "4", "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result)
    for key in ("driving_score", "route_completion", "infraction_penalty", "routes", "agent"):
        assert key in record
    assert record["agent"] == "oracle" and record["route_set"] == "random:1" and record["seed"] == 4
    assert record["map"].startswith("procedural_")
    (route,) = record["routes"]
    assert route["route_id"].startswith(record["map"].lower() + "_short_") and route["steps"] == 40
    assert record["driving_score"] == route["driving_score"]


def test_eval_driving_bad_inputs_are_one_error_line_exit_2():
    result = avsim("eval", "driving", "--agent", "best_driver", "--observation", "state")
    assert result.returncode == 2 and "unknown agent 'best_driver'" in result.stderr
    message = " ".join(result.stderr.split())
    assert "random, policy:<checkpoint.zip>" in message and "expert" in message and "oracle" in message
    for spec in ("random:0", "random:x"):
        result = avsim("eval", "driving", "--routes", spec, "--observation", "state")
        assert result.returncode == 2 and f"route set '{spec}': random:N needs a whole number" in result.stderr
    result = avsim("eval", "driving", "--agent", "random", "--config", "configs/env/nope.yaml")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = avsim("eval", "driving", "--agent", "policy:missing.zip", "--observation", "state")
    assert result.returncode == 2 and "missing.zip" in result.stderr
    result = avsim("eval", "driving", "--route", "no_such_route", "--observation", "state")
    assert result.returncode == 2 and "no_such_route" in result.stderr
    for result in (avsim("eval", "--agent", "expert"), avsim("eval")):
        assert result.returncode == 2 and "Traceback" not in result.stderr


def test_run_config_writes_metrics_and_video_and_prints_json_last(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_STACK)
    out = tmp_path / "out"
    result = avsim("run", "--config", str(config), "--out", str(out), "--seed", "2", "--json")
    assert result.returncode == 0, result.stderr
    metrics = _last_json(result)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["config"] == str(config) and metrics["seed"] == 2 and metrics["ticks"] == 30
    assert [r["route_id"] for r in metrics["routes"]] == ["town01_short_00"]
    meta = next(imageio_ffmpeg.read_frames(str(out / "video.mp4")))
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert list(meta["size"]) == metrics["video"]["size"] and metrics["video"]["frames"] == 10
    assert "Leaderboard 2.0 scores" in result.stderr and "town01_short_00" in result.stderr

    again = tmp_path / "again"
    result = avsim("run", "--config", str(config), "--out", str(again), "--no-video", "--route", "town01_short_01")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["video"] is None and not (again / "video.mp4").exists()
    assert [r["route_id"] for r in metrics["routes"]] == ["town01_short_01"]


def test_run_config_errors_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    result = avsim("run", "--config", str(tmp_path / "nope.yaml"), "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "nope.yaml does not exist" in message and "stack/oracle.yaml" in message
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_STACK.replace("control: {name: stanley}", "control: {name: mpc}"))
    result = avsim("run", "--config", str(bad), "--out", str(out))
    assert result.returncode == 2 and "control: unknown implementation 'mpc'; valid: pure_pursuit, stanley" in \
        " ".join(result.stderr.split())
    result = avsim("run", "--config", str(bad).replace("bad", "tiny"), "--seconds", "3", "--out", str(out))
    assert result.returncode == 2 and "--seconds is for the autopilot demo" in result.stderr
    result = avsim("run", "--routes", "town01", "--out", str(out))
    assert result.returncode == 2 and "--routes needs --config" in result.stderr
    assert not out.exists()


def test_routes_generate_writes_a_loadable_route_set(tmp_path):
    from sim.scenarios.routes import load_route_file

    out = tmp_path / "routes.yaml"
    result = avsim("routes", "generate", "Town02", str(out), "--per-class", "1")
    assert result.returncode == 0, result.stderr
    routes = load_route_file(out)
    assert routes.town == "Town02" and [r.route_id for r in routes.routes] == [
        "town02_short_00", "town02_medium_00", "town02_long_00"]


def test_bench_serve_json_fields():
    result = avsim("bench", "serve", "--ticks", "5", "--warmup", "3", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["benchmark"] == "serve" and record["ticks"] == 5
    assert record["received"]["frames"] == 5


def test_routes_generate_unknown_town_exits_2(tmp_path):
    result = avsim("routes", "generate", "Town99", str(tmp_path / "r.yaml"))
    assert result.returncode == 2 and "Town99" in result.stderr
    assert not (tmp_path / "r.yaml").exists()
