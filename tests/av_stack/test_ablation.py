"""The stage-by-stage ablation: every learned / oracle mix, the same routes for each, one row per mix."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from av_stack.ablation import ablation_configs, run_ablation
from launch.cli import app

LEARNED = {"env": {"base": "env/leaderboard_town01.yaml", "episode": {"max_steps": 40},
                   "traffic": {"vehicles": 2, "walkers": 0}, "observation": {"modes": ["sensors", "bev"],
                                                                          "ground_truth": True},
                   "action": {"mode": "vehicle_control"}, "sensors": "configs/sensors/benchmark.yaml"},
           "perception": {"name": "oracle"}, "localization": {"name": "ekf"},
           "planning": {"name": "expert", "cruise_mps": 5.0}, "run": {"video": False, "camera": None}}


def test_every_mix_of_learned_and_oracle_stages():
    mixes = ablation_configs("stack/learned.yaml")
    assert [name for name, _ in mixes] == ["oracle", "perception", "localization", "planning",
                                           "perception+localization", "perception+planning",
                                           "localization+planning", "all learned"]
    by_name = dict(mixes)
    assert by_name["oracle"].perception["name"] == "oracle" and by_name["oracle"].planning["name"] == "expert"
    assert by_name["perception"].perception["name"] == "learned"
    assert by_name["perception"].localization["name"] == "oracle"
    learned = dict(mixes)["all learned"]
    assert learned.model_dump() == ablation_configs("stack/learned.yaml")[-1][1].model_dump()
    with pytest.raises(ValueError, match="subset of \\['perception', 'localization', 'planning'\\], got \\['control'\\]"):
        ablation_configs("stack/learned.yaml", ("control",))



def test_a_table_in_parts_picks_mixes_by_name():
    part = ablation_configs("stack/learned.yaml", only=("all learned", "perception+planning"))
    assert [name for name, _ in part] == ["perception+planning", "all learned"]  # the table's order
    assert part[1][1].model_dump() == ablation_configs("stack/learned.yaml")[-1][1].model_dump()
    with pytest.raises(ValueError, match="no ablation mix named \\['planning\\+perception'\\]; the mixes are "
                                         "\\['oracle', 'perception'"):
        ablation_configs("stack/learned.yaml", only=("planning+perception",))

def test_expert_settings_reach_every_mix_where_the_expert_plans():
    mixes = dict(ablation_configs("stack/learned.yaml", expert={"light_stop_margin_m": 8.0}))
    for name in ("oracle", "perception", "perception+localization"):
        assert mixes[name].planning == {"name": "expert", "light_stop_margin_m": 8.0}, name
    assert mixes["all learned"].planning["name"] == "rl" and "light_stop_margin_m" not in mixes["planning"].planning
    from sim.config import ConfigError

    with pytest.raises(ConfigError, match="no_such_setting: unknown key"):
        ablation_configs("stack/learned.yaml", expert={"no_such_setting": 1})


def test_the_ablation_drives_each_mix_on_the_same_routes():
    result = run_ablation("town01", learned=LEARNED, stages=("localization",), route_ids=("town01_short_00",))
    assert [row["name"] for row in result["rows"]] == ["oracle", "localization"]
    oracle, ekf = result["rows"]
    assert oracle["stages"]["localization"] == "oracle" and ekf["stages"]["localization"] == "ekf"
    for row in result["rows"]:
        assert 0.0 <= row["driving_score"] <= 100.0 and row["km_driven"] > 0.0
        assert row["latency_ms_p50"]["localization"] >= 0.0
        assert [route["route_id"] for route in row["routes"]] == ["town01_short_00"]  # each route's outcome
        assert row["routes"][0]["termination"] in ("completed", "route_timeout", "agent_blocked", "route_deviation")
    assert result["map"] == "Town01"


def test_the_command_prints_json_last_and_rejects_unknown_stages(tmp_path):
    config = tmp_path / "learned.yaml"
    config.write_text(yaml.safe_dump(LEARNED))
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "stack-ablation", "--routes", "town01", "--learned", str(config),
                              "--stages", "control"])
    assert bad.exit_code == 2 and "subset of" in bad.output
    good = runner.invoke(app, ["eval", "stack-ablation", "--routes", "town01", "--route", "town01_short_00",
                               "--learned", str(config), "--stages", "localization", "--expert-option",
                               "light_stop_margin_m=6", "--json"])
    assert good.exit_code == 0, good.output
    result = json.loads(good.output.strip().splitlines()[-1])
    assert result["evaluation"] == "stack-ablation" and len(result["rows"]) == 2
    assert result["expert"] == {"light_stop_margin_m": 6}
    malformed = runner.invoke(app, ["eval", "stack-ablation", "--routes", "town01", "--learned", str(config),
                                    "--expert-option", "light_stop_margin_m"])
    assert malformed.exit_code == 2 and "KEY=VALUE" in malformed.output
