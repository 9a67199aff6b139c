"""A trained Stable-Baselines3 policy as an agent of ``avsim/Driving-v0``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class PolicyAgent:
    """A Stable-Baselines3 model (``.zip``) acting deterministically."""

    def __init__(self, path: str | Path, algorithm: str = "PPO") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy checkpoint {path} does not exist")
        import stable_baselines3

        cls = getattr(stable_baselines3, algorithm, None)
        if cls is None:
            raise ValueError(f"unknown SB3 algorithm {algorithm!r}")
        self.model = cls.load(str(path), device="cpu")

    def reset(self, env) -> None:
        """Nothing to reset."""

    def __call__(self, obs, env) -> np.ndarray:
        action, _ = self.model.predict(self._fit(obs), deterministic=True)
        return action

    def _fit(self, obs):
        """The env's observation as the model takes it: a BEV policy of ``avsim train policy`` sees the BEV
        max-pooled (:mod:`av_stack.planning.rl.observation`)."""
        space = getattr(self.model.observation_space, "spaces", {}).get("bev")
        if space is None or not isinstance(obs, dict) or obs["bev"].shape == space.shape:
            return obs
        from av_stack.planning.rl.observation import pool_to

        return {**obs, "bev": pool_to(obs["bev"], space.shape)}
