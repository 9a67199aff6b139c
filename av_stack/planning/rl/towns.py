"""One env over several towns: each episode drives a town drawn at random (seeded), so one worker of a
vectorised env sees them all. Towns are built when first drawn and kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np

from sim.env import ENV_ID

__all__ = ["TownMixEnv", "make_driving_env"]


def make_driving_env(config: dict[str, Any]) -> gymnasium.Env:
    """An ``avsim/Driving-v0`` env (unwrapped) of env config ``config`` (built through Gymnasium's registry, so
    the stack never imports a backend)."""
    return gymnasium.make(ENV_ID, config=config).unwrapped


class TownMixEnv(gymnasium.Env):
    """``avsim/Driving-v0`` over the towns whose env configs are ``configs`` (they must share observation and
    action spaces); ``current`` is the town's env of this episode."""

    metadata = {"render_modes": []}

    def __init__(self, configs: Sequence[dict[str, Any]], wrap: Callable[[gymnasium.Env], gymnasium.Env] | None = None,
                 seed: int = 0) -> None:
        if not configs:
            raise ValueError("TownMixEnv needs at least one town")
        self.configs = list(configs)
        self.wrap = wrap or (lambda env: env)
        self._envs: dict[int, gymnasium.Env] = {}
        self._rng = np.random.default_rng(seed)
        self._index = 0
        first = self._env(0)
        self.observation_space = first.observation_space
        self.action_space = first.action_space

    def _env(self, index: int) -> gymnasium.Env:
        if index not in self._envs:
            env = self.wrap(make_driving_env(self.configs[index]))
            if self._envs and env.observation_space != self.observation_space:
                raise ValueError(f"town {index} has observation space {env.observation_space}, the others "
                                 f"{self.observation_space}: the towns' env configs must match")
            self._envs[index] = env
        return self._envs[index]

    @property
    def current(self) -> gymnasium.Env:
        """This episode's env (wrapped)."""
        return self._env(self._index)

    @property
    def driving_env(self):
        """This episode's ``DrivingEnv`` (unwrapped): what the expert reads."""
        return self.current.unwrapped

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Draw a town and start an episode in it."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._index = int(self._rng.integers(len(self.configs)))
        return self.current.reset(seed=int(self._rng.integers(2**31 - 1)), options=options)

    def step(self, action):
        """Step this episode's town."""
        return self.current.step(action)

    def close(self) -> None:
        """Close every town built."""
        for env in self._envs.values():
            env.close()
