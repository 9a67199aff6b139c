"""``avsim collect --ray``: one Ray task per log on a local two-worker cluster gives the single-process logs and
manifest (but for the timing: each log's ``seconds``, the stack's latency messages and so the file sizes)."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from av_stack.data.collect import collect
from av_stack.data.config import CollectConfig
from av_stack.data.manifest import read_manifest
from av_stack.logs import topics as T
from av_stack.logs.reader import LogReader
from launch.collect_cli import collect as collect_command

ray = pytest.importorskip("ray")

MIX = {"towns": [{"map": "Town01"}], "traffic": [{"vehicles": 2, "walkers": 0}], "frames": 12, "frames_per_log": 6,
       "noise": {"start_probability": 0.3, "duration_s": [0.2, 0.4]}}
TIMED = ("seconds", "bytes")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs for this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _messages(path):
    return [(m.topic, m.t_s, m.schema, m.value) for m in LogReader(path).messages() if m.topic != T.STACK_LATENCY]


def test_collecting_on_ray_gives_the_single_process_logs_and_manifest(cluster, tmp_path):
    local = tmp_path / "local"
    collect(CollectConfig.model_validate(MIX), local, show_progress=False)
    app = typer.Typer()
    app.command("collect")(collect_command)
    app.command("other")(lambda: None)
    out, config = tmp_path / "ray", tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump(MIX))
    result = CliRunner().invoke(app, ["collect", "--config", str(config), "--out", str(out), "--ray", "auto",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["new_logs"] == 2 and summary["frames"] == 12
    ours, theirs = read_manifest(out), read_manifest(local)
    assert ours["config"] == theirs["config"]
    assert [{k: v for k, v in log.items() if k not in TIMED} for log in ours["logs"]] == \
        [{k: v for k, v in log.items() if k not in TIMED} for log in theirs["logs"]]
    assert [log["seed"] for log in ours["logs"]] == [0, 1]
    for log in ours["logs"]:
        assert log["bytes"] == (out / log["file"]).stat().st_size
        mine = _messages(out / log["file"])
        assert len(mine) > 100 and mine == _messages(local / log["file"])
    assert not list(out.glob("*.part"))
    again = collect(CollectConfig.model_validate(MIX), out, show_progress=False, ray="auto")
    assert again["new_logs"] == 0 and again["skipped_logs"] == 2
