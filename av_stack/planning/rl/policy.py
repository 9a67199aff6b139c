"""Building, saving and loading the policy: an SB3 ``MultiInputActorCriticPolicy`` with :class:`BevFeatures`,
kept in SB3's own ``.zip`` format (``PPO.load`` reads it; the zip holds the network, its measurement
normalisation and the observation and action spaces). ``config.json`` beside the zip's policy records the
model config and the training command's config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from av_stack.planning.rl.config import ModelConfig
from av_stack.planning.rl.features import BevFeatures
from av_stack.planning.rl.target import TargetSpec
from sim.env.observations import MEASUREMENT_NAMES

__all__ = ["SpacesEnv", "load_policy", "new_ppo", "policy_kwargs", "save_policy", "target_spec_of"]

ACTION_ATTRIBUTE = "avsim_target"
"""The model attribute (saved in SB3's zip with the others) holding a ``target`` policy's
:class:`~av_stack.planning.rl.target.TargetSpec` as a dict; absent or None: the actions are controls."""


def policy_kwargs(model: ModelConfig) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` of ``model``."""
    ignore = tuple(MEASUREMENT_NAMES.index(name) for name in model.ignore_measurements)
    return {"features_extractor_class": BevFeatures,
            "features_extractor_kwargs": {"features_dim": model.features_dim, "width": model.width,
                                          "ignore": ignore},
            "net_arch": {"pi": list(model.net_arch), "vf": list(model.net_arch)},
            "log_std_init": model.init_log_std}


class SpacesEnv(gymnasium.Env):
    """An env that only has spaces: lets SB3 build and save a model without a simulator."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """A sampled observation (never used for learning)."""
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        """Not an environment: raises."""
        raise RuntimeError("SpacesEnv has no dynamics; it only carries spaces")


def new_ppo(env, model: ModelConfig, seed: int = 0, **ppo_kwargs: Any):
    """An SB3 PPO on ``env`` (an env, a vec env, or a :class:`SpacesEnv`) with the policy of ``model``."""
    from stable_baselines3 import PPO

    ppo = PPO("MultiInputPolicy", env, policy_kwargs=policy_kwargs(model), seed=seed, device="cpu", verbose=0,
              **ppo_kwargs)
    setattr(ppo, ACTION_ATTRIBUTE, model.target.model_dump() if model.action == "target" else None)
    return ppo


def target_spec_of(model) -> TargetSpec | None:
    """The :class:`TargetSpec` of a ``target`` policy (an SB3 model built by :func:`new_ppo` or loaded by
    :func:`load_policy`); None for a policy whose actions are controls (every checkpoint before the mode)."""
    spec = getattr(model, ACTION_ATTRIBUTE, None)
    return TargetSpec.model_validate(spec) if spec is not None else None


def save_policy(policy, observation_space: spaces.Space, action_space: spaces.Space, model: ModelConfig,
                path: str | Path) -> Path:
    """Write ``policy`` (the SB3 policy module) as an SB3 PPO ``.zip`` at ``path``."""
    holder = new_ppo(SpacesEnv(observation_space, action_space), model, n_steps=8, batch_size=8)
    holder.policy.load_state_dict(policy.state_dict())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    holder.save(path)
    return path.with_suffix(".zip") if path.suffix != ".zip" else path


def load_policy(path: str | Path):
    """The SB3 PPO model at ``path`` (CPU); ``FileNotFoundError`` naming it if missing, ``ValueError`` if it is
    not a policy of this project (no BEV features extractor)."""
    from stable_baselines3 import PPO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy checkpoint {path} does not exist")
    try:
        model = PPO.load(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - SB3 raises many kinds on a bad zip; name the file once
        raise ValueError(f"policy checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(model.policy.features_extractor, BevFeatures):
        raise ValueError(f"policy checkpoint {path} is not a BEV policy of av_stack.planning.rl")
    return model


def obs_tensor(obs: dict[str, np.ndarray], batched: bool = False) -> dict[str, torch.Tensor]:
    """A policy observation (one, or a batch with ``batched``) as torch tensors SB3's policy takes."""
    out = {key: torch.as_tensor(np.asarray(value)) for key, value in obs.items()}
    return out if batched else {key: value.unsqueeze(0) for key, value in out.items()}
