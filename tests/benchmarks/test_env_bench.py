"""The env benchmark on tiny settings: record fields, the peer ratio, bad input and the CLI's exit code."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from benchmarks import env_bench
from benchmarks.env_bench import BenchError, run_env_bench
from launch.cli import app

TINY = {"map_name": "Town01", "vehicles": 2, "walkers": 0, "steps": 30, "observation": "state", "seed": 0,
        "vector": False, "warmup": 5}


def test_record_without_peer_or_vector():
    record = run_env_bench(**TINY, peer=False)
    assert record["benchmark"] == "env" and record["env"] == "avsim/Driving-v0"
    assert (record["map"], record["vehicles"], record["walkers"]) == ("Town01", 2, 0)
    assert record["observation"] == "state" and record["steps"] == 30
    assert record["terminate_on"] == ["route_deviation"]
    assert isinstance(record["steps_per_s"], float) and record["steps_per_s"] > 0
    assert record["ms_per_step"] == pytest.approx(1000.0 / record["steps_per_s"], rel=1e-3)
    assert isinstance(record["resets"], int) and record["resets"] >= 0
    assert 0.0 <= record["reset_time_share"] <= 1.0
    assert record["peer"] is None and record["peer_steps_per_s"] is None and record["ratio"] is None
    assert record["vector_steps_per_s"] is None
    assert set(record["machine"]) == {"cpu", "cores", "python", "system"}
    json.dumps(record)  # the record must be JSON as it is


def test_peer_timed_in_the_same_run_and_ratio_consistent():
    pytest.importorskip("highway_env")
    record = run_env_bench(**TINY, peer=True)
    assert record["peer"] == "highway-fast-v0"
    assert isinstance(record["peer_steps_per_s"], float) and record["peer_steps_per_s"] > 0
    assert record["ratio"] == pytest.approx(record["steps_per_s"] / record["peer_steps_per_s"], rel=0.01)


def test_missing_peer_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "highway_env" else real(name, *a))
    with pytest.raises(BenchError, match=r"pip install '\.\[bench\]'"):
        run_env_bench(**TINY, peer=True)


@pytest.mark.parametrize(("changes", "message"), [
    ({"observation": "sensors"}, "observation must be one of"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"vehicles": 501}, "traffic.vehicles"),
])
def test_bad_settings_raise_bench_error(changes, message):
    with pytest.raises(BenchError, match=message):
        run_env_bench(**{**TINY, **changes}, peer=False)


def test_cli_unknown_map_exits_2_with_clear_error():
    result = CliRunner().invoke(app, ["bench", "env", "--map", "Nowhere", "--no-vector", "--json"])
    assert result.exit_code == 2
    assert "Nowhere" in result.output and "neither a shipped town" in result.output
    assert "Traceback" not in result.output


def test_cli_json_is_the_last_line():
    pytest.importorskip("highway_env")
    result = CliRunner().invoke(app, ["bench", "env", "--map", "Town01", "--vehicles", "2", "--walkers", "0",
                                      "--steps", "20", "--observation", "state", "--no-vector", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["steps"] == 20 and record["peer"] == "highway-fast-v0" and record["vector_steps_per_s"] is None


@pytest.mark.slow
def test_vector_workers_each_build_their_env(monkeypatch):
    monkeypatch.setattr(env_bench, "VECTOR_WORKERS", (2,))
    record = run_env_bench(**{**TINY, "vector": True}, peer=False)
    assert set(record["vector_steps_per_s"]) == {"2"} and record["vector_steps_per_s"]["2"] > 0
    assert record["vector_context"] == "spawn"
