"""Baseline agents for ``avsim/Driving-v0``: a privileged route follower, random actions, a trained SB3 policy.

An agent is a callable ``agent(obs, env) -> action`` plus ``reset(env)``.
``route_follower`` reads the environment's privileged state (route, progress,
hazards, next light) rather than the observation: it is the reference a
learned policy is compared with, and a check that routes are drivable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from sim.api import TrafficLightState
from sim.scenarios.library import steer_towards


class Agent(Protocol):
    """What the evaluation loop needs from an agent."""

    def reset(self, env) -> None:
        """Called after every ``env.reset``."""

    def __call__(self, obs, env) -> np.ndarray:
        """The action for this observation (``env`` is the unwrapped :class:`DrivingEnv`)."""


class RouteFollower:
    """Pure pursuit on the route at ``speed_mps``, slowing for hazards and stopping for red or yellow lights.

    Only for the ``acc_steer`` action space.
    """

    def __init__(self, speed_mps: float = 6.0, lookahead_points: int = 6, steer_gain: float = 1.5) -> None:
        self.speed_mps = speed_mps
        self.lookahead_points = lookahead_points
        self.steer_gain = steer_gain

    def reset(self, env) -> None:
        """Nothing to reset."""

    def __call__(self, obs, env) -> np.ndarray:
        snapshot = env.world.snapshot()
        row = snapshot.index_of(env.ego_id)
        route, progress = env.route, env._progress
        x, y = snapshot.location_m[row, :2]
        target = route.points_xy[min(progress.index + self.lookahead_points, route.points_xy.shape[0] - 1)]
        steer = steer_towards(x, y, float(snapshot.rotation_rad[row, 1]), target, self.steer_gain)
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        hazard = env._hazard_distance(snapshot, row, progress)
        wanted = self.speed_mps if hazard > 15.0 else max(0.0, (hazard - 5.0) / 10.0 * self.speed_mps)
        light, light_m = env._next_light(snapshot, progress)
        if light in (TrafficLightState.RED, TrafficLightState.YELLOW) and light_m < 12.0:
            wanted = 0.0
        acc = 0.5 * (wanted - speed) - (1.0 if hazard < 5.0 or wanted == 0.0 else 0.0)
        return np.array([np.clip(acc, -1, 1), steer], dtype=np.float32)


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
        action, _ = self.model.predict(obs, deterministic=True)
        return action


def make_agent(spec: str, seed: int = 0) -> Agent:
    """``route_follower``, ``random`` or ``policy:<path to an SB3 .zip>``."""
    if spec == "route_follower":
        return RouteFollower()
    if spec == "random":
        return RandomAgent(seed)
    if spec.startswith("policy:"):
        return PolicyAgent(spec.split(":", 1)[1])
    raise ValueError(f"unknown agent {spec!r}; valid: route_follower, random, policy:<checkpoint.zip>")
