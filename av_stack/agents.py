"""Agents for ``avsim/Driving-v0`` by name: the privileged expert, random actions, a trained SB3 policy.

An agent is a callable ``agent(obs, env) -> action`` plus ``reset(env)``
(``sim.env.evaluation.Agent``); ``avsim eval --agent NAME`` builds one with
:func:`make_agent`.
"""

from __future__ import annotations

import numpy as np

from av_stack.planning.expert import RouteFollower
from av_stack.planning.sb3_policy import PolicyAgent


class RandomAgent:
    """Uniform random actions from the action space (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._seeded = False

    def reset(self, env) -> None:
        """Seed the action space once."""
        if not self._seeded:
            env.action_space.seed(self.seed)
            self._seeded = True

    def __call__(self, obs, env) -> np.ndarray:
        return env.action_space.sample()


def make_agent(spec: str, seed: int = 0) -> RouteFollower | RandomAgent | PolicyAgent:
    """``route_follower``, ``random`` or ``policy:<path to an SB3 .zip>``."""
    if spec == "route_follower":
        return RouteFollower()
    if spec == "random":
        return RandomAgent(seed)
    if spec.startswith("policy:"):
        return PolicyAgent(spec.split(":", 1)[1])
    raise ValueError(f"unknown agent {spec!r}; valid: route_follower, random, policy:<checkpoint.zip>")
