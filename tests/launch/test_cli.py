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
    assert abs(record["efficiency"] - record["fps"] / record["raycast_reference_fps"]) < 0.002
    assert record["rays_per_tick"] == 400 * 300 + 32 * 1024 + 75


def test_eval_json_scores_routes(tmp_path):
    config = tmp_path / "env.yaml"
    config.write_text("map: Town01\ntraffic: {vehicles: 0, walkers: 0}\nobservation: {mode: state}\n"
                      "routes: {source: file, file: configs/routes/town01.yaml}\n")
    result = avsim("eval", "--config", str(config), "--route", "town01_short_02", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["agent"] == "route_follower" and record["episodes"] == 1
    assert record["routes"][0]["route_id"] == "town01_short_02"
    assert record["global"]["driving_score"] == record["routes"][0]["driving_score"] == 100.0


def test_eval_bad_inputs_exit_2():
    result = avsim("eval", "--config", "configs/env/nope.yaml")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = avsim("eval", "--agent", "policy:missing.zip", "--observation", "state")
    assert result.returncode == 2 and "missing.zip" in result.stderr
    result = avsim("eval", "--route", "no_such_route", "--observation", "state")
    assert result.returncode == 2 and "no_such_route" in result.stderr


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
