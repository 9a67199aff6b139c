"""Scale-out on Ray: jobs in this process or as Ray tasks in job order, one-line errors when Ray is missing or
the cluster is unreachable, and ``avsim eval driving`` / the stack ablation on a local two-worker Ray cluster
giving the single-process result (but for the timing fields)."""

from __future__ import annotations

import json
import operator
import sys

import pytest
import yaml
from typer.testing import CliRunner

from av_stack.distributed import DistributedError, check_ray_option, run_jobs
from av_stack.runner import evaluate_driving, parse_random_routes
from launch.cli import app
from sim.config import ConfigError

ray = pytest.importorskip("ray")

TIMING = ("wall_s", "ticks_per_s", "steps_per_s", "latency_ms")
ROUTES = ("town01_short_00", "town01_short_01")
# Dense traffic: the episode seed (route k: seed + k) changes what the expert meets, so a wrong seed shows.
STACK = {"env": {"base": "env/leaderboard_town01.yaml", "episode": {"max_steps": 200},
                 "traffic": {"vehicles": 100, "walkers": 10}, "observation": {"modes": ["bev"], "ground_truth": True},
                 "action": {"mode": "vehicle_control"}},
         "perception": {"name": "oracle"}, "localization": {"name": "oracle"}, "planning": {"name": "expert"},
         "run": {"video": False, "camera": None}}


def _untimed(result: dict) -> dict:
    return {key: value for key, value in result.items() if key not in TIMING}


# Before the cluster fixture: these need Ray not initialised in this process.
def test_an_unreachable_cluster_is_one_clear_error_without_waiting():
    assert not ray.is_initialized()
    with pytest.raises(DistributedError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        run_jobs(operator.neg, [1], ray="127.0.0.1:1")
    with pytest.raises(DistributedError, match="expected local, local:N, auto"):
        run_jobs(operator.neg, [1], ray="localhost")
    with pytest.raises(DistributedError, match="at least 1 CPU"):
        check_ray_option("local:0")
    result = CliRunner().invoke(app, ["eval", "driving", "--agent", "expert", "--routes", "town01", "--route",
                                      ROUTES[0], "--ray", "127.0.0.1:1"])
    assert result.exit_code == 2 and "cannot reach the Ray cluster at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_missing_ray_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(DistributedError, match=r"needs Ray, which is not installed: pip install 'ray>=2.9'"):
        run_jobs(operator.neg, [1], ray="local:2")
    result = CliRunner().invoke(app, ["eval", "stack-ablation", "--routes", "town01", "--ray", "local:2"])
    assert result.exit_code == 2 and "pip install 'ray>=2.9' (avsim's 'distributed' extra)" in result.output
    assert run_jobs(operator.neg, [1, 2]) == [-1, -2]  # without --ray, Ray is never imported


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs (two workers) for this module; `run_jobs` uses it whatever --ray says."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_jobs_run_on_ray_and_come_back_in_job_order(cluster):
    seen = []
    assert run_jobs(operator.neg, list(range(6)), ray="auto", on_result=lambda k, r: seen.append((k, r))) == \
        [0, -1, -2, -3, -4, -5]
    assert sorted(seen) == [(k, -k) for k in range(6)]
    with pytest.raises(ConfigError, match="random:N needs a whole number"):  # the job's own exception
        run_jobs(parse_random_routes, ["random:1", "random:x"], ray="auto")


def test_eval_driving_on_ray_gives_the_single_process_result(cluster, tmp_path):
    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump(STACK))
    local = evaluate_driving(str(config), "town01", route_ids=ROUTES, seed=3)
    runner = CliRunner()
    out = runner.invoke(app, ["eval", "driving", "--agent", str(config), "--routes", "town01", "--route", ROUTES[0],
                              "--route", ROUTES[1], "--seed", "3", "--ray", "auto", "--json"])
    assert out.exit_code == 0, out.output
    distributed = json.loads(out.output.strip().splitlines()[-1])
    assert [r["route_id"] for r in distributed["routes"]] == list(ROUTES)
    assert _untimed(distributed) == json.loads(json.dumps(_untimed(local)))
    assert distributed["latency_ms"].keys() == local["latency_ms"].keys()
    # Route k keeps its seed (seed + k): route 1 alone with seed 4 is route 1 of the drive above.
    second = evaluate_driving(str(config), "town01", route_ids=ROUTES[1:], seed=4, ray="auto")
    assert second["routes"] == local["routes"][1:]


def test_the_ablation_on_ray_gives_the_single_process_rows(cluster):
    from av_stack.ablation import run_ablation

    learned = {**STACK, "env": {**STACK["env"], "episode": {"max_steps": 60}}, "localization": {"name": "ekf"}}
    local = run_ablation("town01", learned=learned, stages=("localization",), route_ids=ROUTES[:1])
    distributed = run_ablation("town01", learned=learned, stages=("localization",), route_ids=ROUTES[:1],
                               ray="auto")
    untimed = [{k: v for k, v in row.items() if k != "latency_ms_p50"} for row in distributed["rows"]]
    assert untimed == [{k: v for k, v in row.items() if k != "latency_ms_p50"} for row in local["rows"]]
    assert [row["name"] for row in distributed["rows"]] == ["oracle", "localization"]
    assert {k: v for k, v in distributed.items() if k != "rows"} == {k: v for k, v in local.items() if k != "rows"}
