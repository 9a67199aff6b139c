"""PPO on the BEV policy (the project's features extractor and observation) learns: a short run from random
weights on a small empty town raises the deterministic policy's return."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_stack.planning.rl.config import ModelConfig, load_policy_config
from av_stack.planning.rl.observation import PolicyObservation
from av_stack.planning.rl.policy import new_ppo
from av_stack.planning.rl.towns import make_driving_env

TOWN = {"procedural": {"seed": 5, "grid_rows": 2, "grid_cols": 2, "highway": False}}


def _env():
    config = load_policy_config({"towns": [TOWN], "traffic": {"vehicles": 0, "walkers": 0},
                                 "env": {"routes": {"min_length_m": 60, "max_length_m": 100}, "reward": {"name": "carl"},
                                         "episode": {"max_steps": 200, "route_deviation_m": 4.0,
                                                     "terminate_on": ["collision", "route_deviation", "off_road"]}}})
    return PolicyObservation(make_driving_env(config.env_overrides(config.towns[0])), 3)


def _mean_return(model, seeds=range(100, 104)) -> float:
    env = _env()
    total = 0.0
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
            total += reward
            done = terminated or truncated
    env.close()
    return total / len(seeds)


@pytest.mark.slow  # 10k PPO steps with the CNN: minutes on 2 cores
@pytest.mark.timeout(1800)
def test_ppo_raises_the_return_of_the_bev_policy():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = new_ppo(_env(), ModelConfig(init_log_std=-0.5), n_steps=512, batch_size=128, n_epochs=4,
                    learning_rate=3e-4)
    before = _mean_return(model)
    model.learn(10_240)
    after = _mean_return(model)
    assert after > before + 10.0, (before, after)
    assert np.isfinite(after)
