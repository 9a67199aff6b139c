"""``avsim train policy`` end to end on a tiny town: demonstrations, behaviour cloning that lowers its loss,
a DAgger round, PPO, checkpoints; resuming does no work twice; a changed config is refused."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from av_stack.planning.rl.bc import behaviour_clone, set_normalisation
from av_stack.planning.rl.demos import load_shards
from av_stack.planning.rl.policy import SpacesEnv, load_policy, new_ppo
from av_stack.planning.rl.train import PolicyRunError, train_policy
from launch.cli import app


@pytest.fixture(scope="module")
def tiny_run(tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train_policy(tiny_config, out, workers=1)
    return out, summary


def test_every_phase_writes_its_files(tiny_run):
    out, summary = tiny_run
    assert summary["policy"].endswith("policy.zip")
    for name in ("config.json", "bc_round0.zip", "bc_round1.zip", "ppo/last.zip", "policy.zip"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "demos").glob("*.npz")) == ["round0_0000.npz", "round0_0001.npz",
                                                                     "round1_0000.npz"]
    phases = [json.loads(line)["phase"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert phases.count("bc_round0") == 2 and "bc_round0_eval" in phases and "bc_round1_eval" in phases
    assert "ppo_eval" in phases and phases[-1] == "done"
    assert load_policy(out / "ppo" / "last.zip").num_timesteps >= 64
    assert list((out / "tb").rglob("events.out.tfevents*"))


def test_resuming_a_finished_run_does_nothing_again_and_a_changed_config_is_refused(tiny_run, tiny_config):
    out, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.zip")} | \
        {p: p.stat().st_mtime_ns for p in (out / "demos").iterdir()}
    train_policy(tiny_config, out, workers=1)
    after = {p: p.stat().st_mtime_ns for p in before}
    changed = [p.name for p in before if before[p] != after[p] and p.name != "policy.zip"]
    assert not changed
    wider = tiny_config.model_copy(update={"model": tiny_config.model.model_copy(update={"width": 8})})
    with pytest.raises(PolicyRunError, match="another config \\(sections \\['model'\\] differ\\)"):
        train_policy(wider, out, workers=1)



def test_more_dagger_rounds_extend_a_run_but_ppo_will_not_resume_from_an_older_policy(tiny_run, tiny_config,
                                                                                     tmp_path):
    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    fewer = tiny_config.model_copy(update={"bc": tiny_config.bc.model_copy(update={"dagger_rounds": 0})})
    with pytest.raises(PolicyRunError, match="may grow, not shrink to 0"):
        train_policy(fewer, out, workers=1)
    more = tiny_config.model_copy(update={"bc": tiny_config.bc.model_copy(update={"dagger_rounds": 2})})
    with pytest.raises(PolicyRunError, match="bc_round1.zip, but .* now end at bc_round2.zip"):
        train_policy(more, out, workers=1)
    assert (out / "bc_round2.zip").is_file() and list((out / "demos").glob("round2_*.npz"))
    assert json.loads((out / "config.json").read_text())["bc"]["dagger_rounds"] == 2

def test_behaviour_cloning_lowers_the_action_loss(tiny_run, tiny_config):
    out, _ = tiny_run
    demos = load_shards(sorted((out / "demos").glob("round0_*.npz")))
    model = new_ppo(SpacesEnv(*_spaces(tiny_config)), tiny_config.model, n_steps=8, batch_size=8)
    set_normalisation(model.policy, demos)
    history = behaviour_clone(model.policy, demos, tiny_config.bc, epochs=4, seed=0)
    assert history[-1]["action_loss"] < 0.6 * history[0]["action_loss"]


def _spaces(config):
    from av_stack.planning.rl.observation import PolicyObservation
    from sim.env.driving import DrivingEnv

    env = PolicyObservation(DrivingEnv(config.env_overrides(config.towns[0])), config.model.pool)
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def test_the_command_reports_bad_configs_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bc: {demo_step: 5}\n")
    result = CliRunner().invoke(app, ["train", "policy", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "bc.demo_step" in result.output
    assert not (tmp_path / "run").exists()
