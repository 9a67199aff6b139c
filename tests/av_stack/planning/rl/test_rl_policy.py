"""The policy network and its checkpoints: shapes, normalisation carried in the zip, identical actions after
reload, clear errors on bad files and configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from av_stack.planning.rl.config import load_policy_config
from av_stack.planning.rl.policy import load_policy
from sim.config import ConfigError


def test_features_have_the_configured_size_and_ignore_the_previous_action(untrained_policy, tiny_env):
    model = load_policy(untrained_policy)
    extractor = model.policy.features_extractor
    obs, _ = tiny_env.reset(seed=1)
    batch = {k: torch.as_tensor(np.stack([v, v])) for k, v in obs.items()}
    batch["bev"] = batch["bev"].float() / 255.0
    features = extractor(batch)
    assert features.shape == (2, 256)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["measurements"][:, 2:4] += 5.0  # previous acceleration and steer: ignored by default
    torch.testing.assert_close(extractor(changed), features)
    changed["measurements"][:, 0] += 1.0  # speed: seen
    assert not torch.allclose(extractor(changed), features)


def test_reload_gives_identical_actions_and_keeps_the_normalisation(untrained_policy, tiny_env, tmp_path):
    model = load_policy(untrained_policy)
    torch.testing.assert_close(model.policy.features_extractor.measurement_scale[:2], torch.tensor([0.5, 0.625]))
    again = load_policy(untrained_policy)
    obs, _ = tiny_env.reset(seed=2)
    for _ in range(3):
        np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], again.predict(obs, deterministic=True)[0])
        obs, *_ = tiny_env.step(np.array([0.5, 0.0], dtype=np.float32))


def test_bad_checkpoints_are_one_clear_error(tmp_path, tiny_env):
    with pytest.raises(FileNotFoundError, match="nope.zip does not exist"):
        load_policy(tmp_path / "nope.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.zip cannot be read"):
        load_policy(tmp_path / "junk.zip")
    from stable_baselines3 import PPO

    from sim.env.driving import DrivingEnv

    PPO("MlpPolicy", DrivingEnv(map="Town01", observation={"modes": ["state"]}), n_steps=8, batch_size=8,
        device="cpu").save(tmp_path / "mlp.zip")
    with pytest.raises(ValueError, match="mlp.zip is not a BEV policy"):
        load_policy(tmp_path / "mlp.zip")


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ppo: {total_step: 10}\n")
    with pytest.raises(ConfigError, match="(?s)bad.yaml.*ppo.total_step.*Extra inputs"):
        load_policy_config(bad)
    with pytest.raises(ConfigError, match="ignore_measurements: unknown \\['brake'\\]"):
        load_policy_config({"model": {"ignore_measurements": ["brake"]}})
    with pytest.raises(ConfigError, match="reward"):
        load_policy_config({"env": {"reward": {"name": "nope"}}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy_config(tmp_path / "missing.yaml")
    assert load_policy_config("policy/bev_ppo.yaml").model.pool == 3
