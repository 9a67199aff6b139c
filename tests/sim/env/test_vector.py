"""Vector environments: gymnasium's Sync/AsyncVectorEnv and SB3's SubprocVecEnv, each worker with its own world."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import sim.env  # noqa: F401  (registers avsim/Driving-v0)

KWARGS = dict(map="Town01", traffic={"vehicles": 3, "walkers": 2}, observation={"mode": "state"})


def make():
    return gymnasium.make("avsim/Driving-v0", **KWARGS)


@pytest.mark.parametrize("vector_cls", [gymnasium.vector.SyncVectorEnv, gymnasium.vector.AsyncVectorEnv])
def test_gymnasium_vector_envs_step_and_differ_per_worker(vector_cls):
    envs = vector_cls([make, make])
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs.shape == (2, *envs.single_observation_space.shape)
        assert not np.array_equal(obs[0], obs[1])  # different seeds: different routes and traffic
        for _ in range(10):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and np.isfinite(reward).all()
    finally:
        envs.close()


def test_async_matches_sync_for_the_same_seeds():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(15, 2, 2)).astype(np.float32)
    results = []
    for vector_cls in (gymnasium.vector.SyncVectorEnv, gymnasium.vector.AsyncVectorEnv):
        envs = vector_cls([make, make])
        try:
            obs, _ = envs.reset(seed=[3, 4])
            trace = [obs]
            for action in actions:
                trace.append(envs.step(action)[0])
            results.append(np.stack(trace))
        finally:
            envs.close()
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.slow  # spawns two fresh interpreters (about 4 s)
def test_sb3_subproc_vec_env():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    envs = SubprocVecEnv([make, make], start_method="spawn")
    try:
        envs.seed(0)
        obs = envs.reset()
        assert obs.shape == (2, *envs.observation_space.shape)
        obs, reward, done, info = envs.step(np.zeros((2, 2), dtype=np.float32))
        assert reward.shape == (2,) and "route_completion" in info[0]
    finally:
        envs.close()
