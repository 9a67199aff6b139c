"""Speed of the Gymnasium environment ``avsim/Driving-v0``: env steps per second with random actions.

Run through ``avsim bench env`` (``--json`` prints one JSON object last).
The env drives the issue's setting (Town10HD, 50 NPC vehicles on autopilot,
30 pedestrians, ``bev`` observations) with uniformly random actions from the
seeded action space, in one process. Method, the same for every figure:

- build the env, ``reset(seed)``, run ``warmup`` steps (resetting when an
  episode ends);
- time ``steps`` further steps; when an episode ends the env is reset and the
  reset's time is *inside* the timing, so the figure is what a training loop
  gets. ``resets`` says how many there were.

Random actions crash often, and the default ``terminate_on`` (collision,
red light, route deviation, blocked) would make the figure mostly one of
resets; the bench passes ``episode.terminate_on = ["route_deviation"]``, so
episodes run until the route is done, the ego strays 30 m off it or the
route's time budget runs out, and the figure is the speed of a step. The
choice is recorded as ``terminate_on``.

In the same run:

- ``peer_steps_per_s``: highway-env's ``highway-fast-v0`` (its fast
  configuration, kinematics observation) with random actions, timed the same
  way; ``ratio`` = ``steps_per_s`` / ``peer_steps_per_s``.
- ``vector_steps_per_s``: the env in a Gymnasium ``AsyncVectorEnv`` with 2
  and 4 worker processes (each builds its own env from a picklable factory;
  sub-envs reset in the same step, ``AutoresetMode.SAME_STEP``), total env
  steps per second over all workers for the same number of env steps.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from typing import Any

import gymnasium

from benchmarks.world_bench import BenchError, machine_info
from sim.config import ConfigError
from sim.maps.loader import MapLoadError
from sim.api import SpawnError
from sim.env import ENV_ID

PEER_ID = "highway-fast-v0"
TERMINATE_ON = ("route_deviation",)
OBSERVATIONS = ("bev", "state")
VECTOR_WORKERS = (2, 4)
VECTOR_CONTEXT = "spawn"
"""Workers start fresh interpreters: safe whatever threads (OpenCV, BLAS) the parent has started."""


def env_kwargs(map_name: str, vehicles: int, walkers: int, observation: str) -> dict[str, Any]:
    """Keywords for ``gymnasium.make(ENV_ID, ...)`` in the benchmark's setting."""
    return {"map": map_name, "traffic": {"vehicles": vehicles, "walkers": walkers},
            "observation": {"mode": observation}, "episode": {"terminate_on": list(TERMINATE_ON)}}


def make_env(kwargs: dict[str, Any]) -> gymnasium.Env:
    """Build the driving env (a module-level function, so vector workers can unpickle the factory)."""
    return gymnasium.make(ENV_ID, **kwargs)


def _step_rate(env: gymnasium.Env, steps: int, warmup: int, seed: int) -> tuple[float, int, float]:
    """Reset, warm up, time ``steps`` random steps with resets inside the timing; (steps/s, resets, reset s)."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    for _ in range(warmup):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    resets, reset_s = 0, 0.0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            reset_start = time.perf_counter()
            env.reset()
            reset_s += time.perf_counter() - reset_start
            resets += 1
    return steps / (time.perf_counter() - start), resets, reset_s


def _vector_rate(kwargs: dict[str, Any], workers: int, steps: int, warmup: int, seed: int) -> tuple[float, int]:
    """Total env steps/s of ``workers`` async sub-envs for about ``steps`` env steps; (steps/s, resets)."""
    factory = functools.partial(make_env, kwargs)
    envs = gymnasium.vector.AsyncVectorEnv([factory] * workers, context=VECTOR_CONTEXT,
                                           autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP)
    try:
        envs.action_space.seed(seed)
        envs.reset(seed=seed)
        for _ in range(max(1, warmup // workers)):
            envs.step(envs.action_space.sample())
        calls = max(1, -(-steps // workers))
        resets = 0
        start = time.perf_counter()
        for _ in range(calls):
            _, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
            resets += int((terminated | truncated).sum())
        return calls * workers / (time.perf_counter() - start), resets
    finally:
        envs.close()


def run_env_bench(map_name: str = "Town10HD", vehicles: int = 50, walkers: int = 30, steps: int = 2000,
                  observation: str = "bev", seed: int = 0, vector: bool = True, peer: bool = True,
                  warmup: int = 50) -> dict:
    """Time the env (and, unless disabled, highway-env and the vector env); returns the result record."""
    if observation not in OBSERVATIONS:
        raise BenchError(f"observation must be one of {list(OBSERVATIONS)}, got {observation!r}")
    if steps < 1:
        raise BenchError(f"steps must be at least 1, got {steps}")
    kwargs = env_kwargs(map_name, vehicles, walkers, observation)
    try:
        start = time.perf_counter()
        env = make_env(kwargs)
        build_s = time.perf_counter() - start
        if peer and importlib.util.find_spec("highway_env") is None:
            raise BenchError(f"highway-env (the peer, {PEER_ID}) is not installed: pip install '.[bench]'")
        rate, resets, reset_s = _step_rate(env, steps, warmup, seed)
    except (MapLoadError, SpawnError, ConfigError) as exc:
        raise BenchError(str(exc)) from exc
    world_map = env.unwrapped.world.source.name
    env.close()
    peer_rate = peer_resets = peer_reset_s = None
    if peer:
        import highway_env  # noqa: F401  (registers the highway-env ids)

        peer_env = gymnasium.make(PEER_ID)
        peer_rate, peer_resets, peer_reset_s = _step_rate(peer_env, steps, warmup, seed)
        peer_env.close()
    vector_rates: dict[str, float] | None = None
    vector_resets: dict[str, int] | None = None
    if vector:
        vector_rates, vector_resets = {}, {}
        for workers in VECTOR_WORKERS:
            value, count = _vector_rate(kwargs, workers, steps, warmup, seed)
            vector_rates[str(workers)], vector_resets[str(workers)] = round(value, 1), count
    return {
        "benchmark": "env", "env": ENV_ID, "map": world_map, "vehicles": vehicles, "walkers": walkers,
        "observation": observation, "terminate_on": list(TERMINATE_ON), "steps": steps, "warmup": warmup,
        "seed": seed, "steps_per_s": round(rate, 1), "ms_per_step": round(1e3 / rate, 3), "resets": resets,
        "reset_time_share": round(reset_s * rate / steps, 3), "env_build_s": round(build_s, 2),
        "peer": PEER_ID if peer else None,
        "peer_steps_per_s": round(peer_rate, 1) if peer_rate is not None else None,
        "peer_resets": peer_resets,
        "peer_reset_time_share": round(peer_reset_s * peer_rate / steps, 3) if peer_rate is not None else None,
        "ratio": round(rate / peer_rate, 2) if peer_rate else None,
        "vector_steps_per_s": vector_rates, "vector_resets": vector_resets,
        "vector_context": VECTOR_CONTEXT if vector else None,
        "machine": machine_info(),
    }
