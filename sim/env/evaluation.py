"""Closed-loop evaluation: run an agent over a route set and report Leaderboard metrics per route and overall.

``avsim eval`` is the command-line front end. Every route runs once, in file
order, with the environment's episode rules (by default the Leaderboard's:
collisions and red lights are penalised, not ending the route; deviation,
blocked and timeout end it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from sim.env.driving import DrivingEnv
from sim.env.metrics import aggregate, route_record


class Agent(Protocol):
    """What the evaluation loop needs from an agent."""

    def reset(self, env) -> None:
        """Called after every ``env.reset``."""

    def __call__(self, obs, env) -> np.ndarray:
        """The action for this observation (``env`` is the unwrapped :class:`DrivingEnv`)."""


LEADERBOARD_EPISODE = {"terminate_on": ["route_deviation", "blocked"]}
"""Episode rules matching the Leaderboard: infractions are penalised, only deviation / blocked / timeout end a route."""


def evaluate(env: DrivingEnv, agent: Agent, route_ids: list[str] | None = None, seed: int = 0,
             on_route: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run ``agent`` once on each route of ``env``'s route file; returns per-route and aggregated scores."""
    if not env.route_ids:
        raise ValueError("evaluation needs an env with routes.source: file (a route set)")
    ids = route_ids or list(env.route_ids)
    results, per_route = [], []
    start = time.perf_counter()
    for k, route_id in enumerate(ids):
        obs, _ = env.reset(seed=seed + k, options={"route_id": route_id})
        agent.reset(env)
        steps, done, info = 0, False, {}
        while not done:
            obs, _, terminated, truncated, info = env.step(agent(obs, env))
            steps += 1
            done = terminated or truncated
        result = env.route_result(info["termination_reason"])
        results.append(result)
        record = route_record(result, steps)
        per_route.append(record)
        if on_route is not None:
            on_route(record)
    elapsed = time.perf_counter() - start
    total_steps = sum(r["steps"] for r in per_route)
    return {"routes": per_route, "global": aggregate(results).to_dict(), "episodes": len(results),
            "steps": total_steps, "wall_s": round(elapsed, 2),
            "steps_per_s": round(total_steps / max(elapsed, 1e-9), 1)}
