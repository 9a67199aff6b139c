"""Fixtures of the RL policy tests: a tiny town's env config and an untrained policy saved as a zip."""

from __future__ import annotations

import pytest

pytest.importorskip("stable_baselines3")

from av_stack.planning.rl.config import load_policy_config  # noqa: E402
from av_stack.planning.rl.observation import PolicyObservation  # noqa: E402
from av_stack.planning.rl.policy import new_ppo, save_policy  # noqa: E402
from sim.env.driving import DrivingEnv  # noqa: E402

TINY = {"towns": [{"procedural": {"seed": 5, "grid_rows": 2, "grid_cols": 2, "highway": False}}],
        "traffic": {"vehicles": 3, "walkers": 2},
        "env": {"routes": {"min_length_m": 60, "max_length_m": 120}, "episode": {"max_steps": 150}},
        "bc": {"demo_steps": 300, "shard_steps": 150, "dagger_rounds": 1, "dagger_steps": 150, "epochs": 2,
               "dagger_epochs": 1, "batch_size": 32},
        "ppo": {"total_steps": 64, "n_envs": 1, "n_steps": 32, "batch_size": 32, "n_epochs": 1,
                "checkpoint_every_steps": 32, "vec_env": "dummy"},
        "eval": {"town": {"procedural": {"seed": 6, "grid_rows": 2, "grid_cols": 2, "highway": False}},
                 "routes": 1, "every_steps": 64}}


@pytest.fixture(scope="session")
def tiny_config():
    """A policy config of one small procedural town and a few hundred steps per phase."""
    return load_policy_config(TINY)


@pytest.fixture(scope="session")
def tiny_env(tiny_config):
    """The tiny town's env with the policy's observations."""
    env = PolicyObservation(DrivingEnv(tiny_config.env_overrides(tiny_config.towns[0])), tiny_config.model.pool)
    yield env
    env.close()


@pytest.fixture(scope="session")
def untrained_policy(tmp_path_factory, tiny_config, tiny_env):
    """An untrained policy (random weights, a set measurement normalisation) saved as an SB3 zip."""
    import torch

    model = new_ppo(tiny_env, tiny_config.model, n_steps=8, batch_size=8)
    n = tiny_env.observation_space["measurements"].shape[0]
    model.policy.features_extractor.set_normalisation(torch.linspace(-0.5, 0.5, n), torch.linspace(0.5, 2.0, n))
    path = tmp_path_factory.mktemp("policy") / "policy.zip"
    save_policy(model.policy, model.observation_space, model.action_space, tiny_config.model, path)
    return path

