"""A trained Stable-Baselines3 policy as an agent of ``avsim/Driving-v0``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class PolicyAgent:
    """A Stable-Baselines3 model (``.zip``) acting deterministically. A ``target`` policy of ``avsim train
    policy`` (:mod:`av_stack.planning.rl.target`) drives through the controller it was trained with."""

    def __init__(self, path: str | Path, algorithm: str = "PPO") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy checkpoint {path} does not exist")
        import stable_baselines3

        cls = getattr(stable_baselines3, algorithm, None)
        if cls is None:
            raise ValueError(f"unknown SB3 algorithm {algorithm!r}")
        self.model = cls.load(str(path), device="cpu")
        from av_stack.planning.rl.policy import target_spec_of
        from av_stack.planning.rl.target import TargetDriver

        spec = target_spec_of(self.model)
        self.driver = TargetDriver(spec) if spec is not None else None

    def reset(self, env) -> None:
        """Start a new episode (a target policy's driver takes the route)."""
        if self.driver is not None:
            self.driver.reset(env)

    def __call__(self, obs, env) -> np.ndarray:
        action, _ = self.model.predict(self._fit(obs), deterministic=True)
        return action if self.driver is None else self.driver(action, env)

    def _fit(self, obs):
        """The env's observation as the model takes it: a BEV policy of ``avsim train policy`` sees the BEV
        max-pooled (:mod:`av_stack.planning.rl.observation`)."""
        space = getattr(self.model.observation_space, "spaces", {}).get("bev")
        if space is None or not isinstance(obs, dict) or obs["bev"].shape == space.shape:
            return obs
        from av_stack.planning.rl.observation import pool_to

        return {**obs, "bev": pool_to(obs["bev"], space.shape)}
