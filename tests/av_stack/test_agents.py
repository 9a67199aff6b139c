"""Agents by name: the expert, random actions and a trained SB3 policy, with clear errors on bad names and files."""

from __future__ import annotations

import numpy as np
import pytest

from av_stack.agents import RandomAgent, make_agent
from av_stack.planning.expert import RouteFollower
from av_stack.planning.sb3_policy import PolicyAgent
from sim.env.driving import DrivingEnv

CONFIG = dict(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
              routes={"min_length_m": 60, "max_length_m": 100}, episode={"max_steps": 50})


def test_names_build_the_right_agents():
    assert isinstance(make_agent("route_follower"), RouteFollower)
    assert isinstance(make_agent("random", seed=3), RandomAgent)
    with pytest.raises(ValueError, match="unknown agent 'best'.*route_follower, random, policy"):
        make_agent("best")


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


def test_expert_drives_forward_along_its_route():
    env = DrivingEnv(**CONFIG)
    agent = RouteFollower()
    obs, _ = env.reset(seed=2)
    agent.reset(env)
    for _ in range(40):
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        if terminated or truncated:
            break
    assert info["route_completion"] > 0.05
    assert not info["infractions"]
