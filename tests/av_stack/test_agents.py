"""Agents by name: stacks (a planner with oracle stages, a stack config), random actions and a trained SB3 policy,
with clear errors on bad names and files."""

from __future__ import annotations

import numpy as np
import pytest

from av_stack.agents import RandomAgent, UnknownAgentError, make_agent, stack_config_of
from av_stack.bridge import StackAgent
from av_stack.planning.expert import ExpertPlanner
from av_stack.planning.sb3_policy import PolicyAgent
from av_stack.runner import make_env
from sim.config import ConfigError
from sim.env.driving import DrivingEnv

CONFIG = dict(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
              routes={"min_length_m": 60, "max_length_m": 100}, episode={"max_steps": 50})


def test_names_build_the_right_agents(tmp_path):
    assert isinstance(make_agent("random", seed=3), RandomAgent)
    expert = make_agent("expert")
    assert isinstance(expert, StackAgent) and isinstance(expert.stack.planner, ExpertPlanner)
    assert expert.stack.names["perception"] == "oracle" and expert.stack.names["localization"] == "oracle"
    assert make_agent("oracle").stack.names == make_agent("stack/oracle.yaml").stack.names
    custom = tmp_path / "mine.yaml"
    custom.write_text("planning: {name: expert, cruise_mps: 4.0}\ncontrol: {name: pure_pursuit}\n")
    mine = make_agent(str(custom))
    assert mine.stack.names["control"] == "pure_pursuit" and mine.stack.planner.config.cruise_mps == 4.0
    assert stack_config_of("expert").env["base"] == "env/leaderboard_town01.yaml"


def test_unknown_names_and_bad_stack_configs_are_one_clear_error(tmp_path):
    with pytest.raises(UnknownAgentError, match="unknown agent 'best'.*valid: random, policy:<checkpoint.zip>, "
                                                "a planner with oracle stages \\(.*expert.*\\), or a stack config "
                                                "\\(a path or a shipped name: .*oracle\\)"):
        make_agent("best")
    with pytest.raises(UnknownAgentError, match="unknown agent 'route_follower'"):
        make_agent("route_follower")
    bad = tmp_path / "bad.yaml"
    bad.write_text("planning: {name: expert, cruise: 4.0}\n")
    with pytest.raises(ConfigError, match="bad.yaml: planning \\(expert\\): cruise: unknown key"):
        make_agent(str(bad))


def test_policy_agent_errors_name_the_file_and_algorithm(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        make_agent(f"policy:{tmp_path / 'nope.zip'}")
    checkpoint = tmp_path / "model.zip"
    checkpoint.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown SB3 algorithm 'PPQ'"):
        PolicyAgent(checkpoint, algorithm="PPQ")


def test_policy_agent_acts_like_the_saved_model(tmp_path):
    stable_baselines3 = pytest.importorskip("stable_baselines3")
    env = DrivingEnv(**CONFIG)
    model = stable_baselines3.PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.save(tmp_path / "ppo")
    agent = make_agent(f"policy:{tmp_path / 'ppo.zip'}")
    obs, _ = env.reset(seed=1)
    agent.reset(env)
    np.testing.assert_allclose(agent(obs, env), model.predict(obs, deterministic=True)[0])


def test_the_expert_agent_drives_forward_along_its_route_in_its_env():
    env = make_env(stack_config_of("expert"), traffic={"vehicles": 0, "walkers": 0}, scenarios=[],
                   observation={"modes": ["state"]}, routes={"ids": ["town01_short_00"]})
    agent = make_agent("expert")
    try:
        obs, _ = env.reset(seed=2, options={"route_id": "town01_short_00"})
        agent.reset(env)
        for _ in range(160):
            obs, _, terminated, truncated, info = env.step(agent(obs, env))
            if terminated or truncated:
                break
        assert info["route_completion"] > 0.05
        assert not info["infractions"]
    finally:
        env.close()
