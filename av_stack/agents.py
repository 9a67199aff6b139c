"""Agents for ``avsim/Driving-v0`` by name: an AV stack, random actions, a trained SB3 policy.

An agent is a callable ``agent(obs, env) -> action`` plus ``reset(env)``
(``sim.env.evaluation.Agent``); ``avsim eval driving --agent NAME`` builds one
with :func:`make_agent`. Names, tried in this order:

- ``random``: uniform random actions (seeded);
- ``policy:<path to an SB3 .zip>``: a trained Stable-Baselines3 policy;
- a registered planner (``expert``): the oracle stack
  (:data:`ORACLE_STACK`) with that planner;
- a stack config: a path, or a shipped name (``oracle``, ``stack/oracle.yaml``).

A stack agent drives in the env its stack config's ``env`` section describes
(:func:`stack_config_of` gives that config; ``av_stack.runner.make_env``
builds the env).
"""

from __future__ import annotations

import numpy as np

from av_stack.bridge import StackAgent
from av_stack.planning import PLANNING
from av_stack.planning.sb3_policy import PolicyAgent
from av_stack.stack import Stack, StackConfig, load_stack_config
from sim.resources import locate_config, shipped_configs

ORACLE_STACK = "stack/oracle.yaml"
"""The shipped stack a planner name runs in: oracle perception and localization, its controller."""


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


class UnknownAgentError(ValueError):
    """An agent name that is none of the kinds :func:`make_agent` knows; the message lists them."""


def valid_agents() -> str:
    """The agent names :func:`make_agent` takes, for messages and help."""
    stacks = ", ".join(name.removeprefix("stack/").removesuffix(".yaml") for name in shipped_configs("stack"))
    return (f"random, policy:<checkpoint.zip>, a planner with oracle stages ({', '.join(PLANNING.names())}), "
            f"or a stack config (a path or a shipped name: {stacks or 'none'})")


def is_stack_agent(spec: str) -> bool:
    """True if ``spec`` names a stack (a planner or a stack config), not ``random`` or ``policy:``."""
    return spec != "random" and not spec.startswith("policy:")


def stack_config_of(spec: str) -> StackConfig:
    """The stack config agent ``spec`` runs: a planner name gives :data:`ORACLE_STACK` with that planner, else
    ``spec`` is a stack config path or shipped name. :class:`UnknownAgentError` listing the valid names if it
    is neither; ``ConfigError`` naming the file and key if the config is invalid."""
    if not is_stack_agent(spec):
        raise UnknownAgentError(f"agent {spec!r} is not a stack")
    if spec in PLANNING.names():
        oracle = load_stack_config(ORACLE_STACK).model_dump()
        return load_stack_config({**oracle, "planning": {"name": spec}})
    if not spec or not locate_config(spec, "stack").is_file():
        raise UnknownAgentError(f"unknown agent {spec!r} (no planner of that name, no such stack config file or "
                                f"shipped stack config); valid: {valid_agents()}")
    return load_stack_config(spec)


def make_agent(spec: str, seed: int = 0) -> RandomAgent | PolicyAgent | StackAgent:
    """The agent ``spec`` names (see the module docstring); :class:`UnknownAgentError` listing the valid names,
    ``FileNotFoundError`` for a missing policy checkpoint, ``ConfigError`` for an invalid stack config."""
    if spec == "random":
        return RandomAgent(seed)
    if spec.startswith("policy:"):
        return PolicyAgent(spec.split(":", 1)[1])
    return StackAgent(Stack.from_config(stack_config_of(spec)))
