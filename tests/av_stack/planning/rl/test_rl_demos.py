"""Demonstrations: the expert's labels, noise on the executed action, returns, and shard files."""

from __future__ import annotations

import numpy as np
import pytest

from av_stack.data.config import NoiseConfig
from av_stack.data.noise import NoiseSample
from av_stack.planning.rl.demos import (DemonstrationError, ExpertLabeler, ShardJob, discounted_returns,
                                        load_shards, perturb_acc_steer, record_shard)
from av_stack.planning.rl.towns import TownMixEnv


def test_noise_moves_the_steer_and_never_brakes_harder():
    action = np.array([-0.4, 0.1], dtype=np.float32)
    assert perturb_acc_steer(action, NoiseSample(False, 0.5, 0.5)).tolist() == pytest.approx([-0.4, 0.1])
    assert perturb_acc_steer(action, NoiseSample(True, 0.3, 0.2)).tolist() == pytest.approx([-0.2, 0.4])
    assert perturb_acc_steer(action, NoiseSample(True, 0.0, -0.5)).tolist() == pytest.approx([-0.4, 0.1])
    assert perturb_acc_steer(np.array([0.3, 0.9]), NoiseSample(True, 0.5, -0.5)).tolist() == pytest.approx([0.0, 1.0])


def test_discounted_returns():
    np.testing.assert_allclose(discounted_returns(np.array([1.0, 0.0, 2.0]), 0.5), [1.5, 1.0, 2.0])


@pytest.fixture(scope="module")
def shard(tiny_config, tmp_path_factory):
    env = TownMixEnv([tiny_config.env_overrides(t) for t in tiny_config.towns], seed=0)
    path = tmp_path_factory.mktemp("demos") / "round0_0000.npz"
    summary = record_shard(ShardJob(path, 120, seed=0, noise=NoiseConfig(start_probability=0.2)), env,
                           ExpertLabeler(), tiny_config.model.pool, 0.99)
    env.close()
    return path, summary


def test_a_shard_holds_whole_expert_episodes_in_the_policy_format(shard):
    path, summary = shard
    demos = load_shards([path])
    assert len(demos) == summary["steps"] >= 120 and summary["episodes"] >= 1
    assert demos.bev_shape == (14, 64, 64)
    bev = demos.bev(np.arange(3))
    assert bev.shape == (3, 14, 64, 64) and set(np.unique(bev)) <= {0, 255} and bev[:, 0].any()
    assert demos.measurements.shape == (len(demos), 13)
    assert np.abs(demos.action).max() <= 1.0 and demos.valid.all()
    assert demos.action[:, 0].max() > 0.3, "the expert accelerates from standstill"
    # Labels are the expert's clean action: the executed (noisy) one is the measurement of the next step.
    previous_executed = demos.measurements[1:, 2:4]
    assert np.abs(previous_executed - demos.action[:-1]).max() > 0.05, "noise was injected"


def test_a_corrupt_or_foreign_shard_is_one_clear_error(shard, tmp_path):
    path, _ = shard
    bad = tmp_path / "round0_0001.npz"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DemonstrationError, match="round0_0001.npz cannot be read"):
        load_shards([path, bad])
    with np.load(path) as data:
        arrays = dict(data)
    arrays["bev_shape"] = np.array([14, 32, 32])
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(DemonstrationError, match="other.npz has BEV shape \\(14, 32, 32\\)"):
        load_shards([path, tmp_path / "other.npz"])
    with pytest.raises(DemonstrationError, match="no demonstration files"):
        load_shards([])
