"""The policy as the stack's planning stage: inside a stack of oracle stages it sees exactly what the policy
sees in the env, and acts as the policy does; clear errors when perception gives no usable BEV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_stack.agents import make_agent
from av_stack.bridge import StackAgent, mission_of
from av_stack.messages import BevSpec, Detections, LightObservation, PerceptionOutput
from av_stack.planning.rl.observation import pool_bev
from av_stack.planning.rl.policy import load_policy
from av_stack.planning.rl.stage import RLPlanner
from av_stack.stack import Stack
from sim.env.bev import BevConfig
from sim.env.driving import DrivingEnv


def test_in_a_mixed_stack_the_stage_sees_and_does_what_the_policy_does_in_the_env(untrained_policy, tiny_config):
    env = DrivingEnv(tiny_config.env_overrides(tiny_config.towns[0]))
    agent = StackAgent(Stack.from_config({"planning": {"name": "rl", "checkpoint": str(untrained_policy)}}))
    assert agent.stack.names["perception"] == "oracle" and agent.stack.names["planning"] == "rl"
    model = load_policy(untrained_policy)
    obs, _ = env.reset(seed=3)
    agent.reset(env)
    threads = torch.get_num_threads()
    for _ in range(25):
        action = agent(obs, env)
        assert torch.get_num_threads() == threads, "the stage restores torch's thread count"
        seen = agent.stack.planner.last_observation
        np.testing.assert_array_equal(seen["bev"], pool_bev(obs["bev"], 3))
        np.testing.assert_allclose(seen["measurements"], obs["measurements"], atol=1e-5)
        expected = np.clip(model.predict(seen, deterministic=True)[0], -1.0, 1.0)
        np.testing.assert_allclose(action, expected, atol=1e-6)
        assert agent.outputs.plan.control is not None
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    env.close()


def test_an_rl_agent_by_name_and_errors_without_a_bev(untrained_policy, tiny_config, tmp_path):
    custom = tmp_path / "rl_stack.yaml"
    custom.write_text(f"planning: {{name: rl, checkpoint: {untrained_policy}}}\n")
    assert isinstance(make_agent(str(custom)).stack.planner, RLPlanner)
    planner = RLPlanner(RLPlanner.Config(checkpoint=str(untrained_policy)))
    env = DrivingEnv(tiny_config.env_overrides(tiny_config.towns[0]))
    obs, _ = env.reset(seed=0)
    agent = StackAgent(Stack.from_config({}))
    agent.reset(env)
    agent(obs, env)
    pose = agent.outputs.pose
    planner.reset(mission_of(env))
    no_bev = PerceptionOutput(0, 0.0, Detections.empty(), LightObservation())
    with pytest.raises(ValueError, match="needs a BEV from perception"):
        planner.step(no_bev, pose)
    small = BevSpec(BevConfig(size_px=100, history_steps=(0,)))
    wrong = PerceptionOutput(0, 0.0, Detections.empty(), LightObservation(),
                             np.zeros(small.shape, dtype=np.float32), small)
    with pytest.raises(ValueError, match="perception.s BEV: the policy takes 14 BEV channels of 64 x 64 px.*has 10 channels of 100 x 100 px"):
        planner.step(wrong, pose)
    env.close()


def test_a_policy_agent_pools_the_env_bev_for_a_bev_policy(untrained_policy, tiny_config):
    env = DrivingEnv(tiny_config.env_overrides(tiny_config.towns[0]))
    obs, _ = env.reset(seed=4)
    agent = make_agent(f"policy:{untrained_policy}")
    model = load_policy(untrained_policy)
    expected = model.predict({"bev": pool_bev(obs["bev"], 3), "measurements": obs["measurements"]},
                             deterministic=True)[0]
    np.testing.assert_array_equal(agent(obs, env), expected)
    env.close()
