"""``avsim replay`` (launch.replay_cli.replay) on a local Typer app: JSON results open and closed loop, one
error line for each bad input, a warning for a cut log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from launch.replay_cli import replay

LOG = Path(__file__).resolve().parents[2] / "data" / "logs" / "regression.mcap"

app = typer.Typer()


@app.callback()
def _group() -> None:
    """A group, so that the command is called by its name as under ``avsim``."""


app.command("replay")(replay)


def invoke(*args: str):
    return CliRunner().invoke(app, ["replay", *args])


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_open_loop_prints_the_metrics_as_json():
    result = invoke(str(LOG), "--stage", "perception", "--name", "oracle", "--json")
    assert result.exit_code == 0, result.output
    data = last_json(result.stdout)
    assert data["replay"] == "open_loop" and data["stage"] == "perception" and data["frames"] == 20
    assert data["metrics"]["detection"]["all"]["recall"] == 1.0
    result = invoke(str(LOG), "--stage", "localization", "--config", "stack/oracle.yaml", "--all-frames", "--json")
    assert result.exit_code == 0, result.output
    data = last_json(result.stdout)
    assert data["implementation"] == "oracle" and data["frames"] == 80
    assert data["metrics"]["position_error_m"]["max"] == 0.0


def test_closed_loop_prints_the_driving_scores_as_json():
    result = invoke(str(LOG), "--closed-loop", "--agent", "expert", "--reactive", "--observation", "bev",
                    "--max-ticks", "20", "--json")
    assert result.exit_code == 0, result.output
    data = last_json(result.stdout)
    assert data["evaluation"] == "leaderboard-2.0" and data["agent"] == "expert" and data["ticks"] == 20
    assert data["replay"]["reactive"] and data["replay"]["routes"][0]["actors_on_autopilot"] > 0
    assert 0.0 < data["route_completion"] < 10.0


def test_a_cut_log_is_a_warning_and_a_partial_result(tmp_path):
    cut = tmp_path / "cut.mcap"
    data = LOG.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    result = invoke(str(cut), "--stage", "perception", "--json")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "cut or corrupt after t =" in result.stderr
    assert last_json(result.stdout)["complete"] is False


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nowhere.mcap", "--stage", "perception"], "no log file at"),
    (["{tmp}/notes.mcap", "--stage", "perception"], "is not a readable MCAP log"),
    (["{log}", "--stage", "planning"], "scores the stages perception, localization; got 'planning'"),
    (["{log}", "--stage", "perception", "--name", "cnn"], "unknown implementation 'cnn'; valid:"),
    (["{log}", "--stage", "perception", "--name", "oracle", "--config", "stack/oracle.yaml"], "not both"),
    (["{log}"], "give --stage perception|localization (open loop) or --closed-loop"),
    (["{log}", "--stage", "perception", "--closed-loop"], "one of them"),
    (["{log}", "--closed-loop", "--agent", "nobody"], "unknown agent 'nobody'"),
])
def test_bad_input_is_one_error_line(tmp_path, args, message):
    (tmp_path / "notes.mcap").write_text("not a log\n" * 50)
    result = invoke(*(a.format(tmp=tmp_path, log=LOG) for a in args))
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in " ".join(result.stderr.split())


def test_update_references_writes_next_to_a_given_log(tmp_path):
    log = tmp_path / "my.mcap"
    log.write_bytes(LOG.read_bytes())
    result = invoke(str(log), "--update-references", "--json")
    assert result.exit_code == 0, result.output
    written = last_json(result.stdout)["references"]
    assert sorted(Path(p).name for p in written) == ["control.json", "localization.json", "perception.json",
                                                     "planning.json"]
    assert all(Path(p).parent == tmp_path / "reference" for p in written)
