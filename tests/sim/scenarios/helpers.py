"""Shared by the scenario tests: an empty-town env with given scenarios, driven by the privileged expert."""

from __future__ import annotations

from av_stack.bridge import expert_agent
from sim.env.driving import DrivingEnv


def make_env(*names: str) -> DrivingEnv:
    """Town01, no traffic, state observations, a 150-250 m random route with ``names`` placed along it."""
    return DrivingEnv(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                      action={"mode": "vehicle_control"},
                      scenarios=list(names), routes={"min_length_m": 150, "max_length_m": 250},
                      episode={"terminate_on": []})


def drive(env: DrivingEnv, steps: int):
    """Drive with the expert for up to ``steps`` steps (stops when the episode ends); yields (snapshot, info)."""
    agent = expert_agent()
    agent.reset(env)
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(agent(None, env))
        yield env.world.snapshot(), info
        if terminated or truncated:
            return


def runner_env():
    """A ``red_light_runner`` env reset on the first seed (1..5) whose route places a runner; (env, scenario)."""
    env = make_env("red_light_runner")
    for seed in range(1, 6):
        env.reset(seed=seed)
        scenario = env.scenarios[0]
        if scenario.runner is not None:
            return env, scenario
    raise AssertionError("no route with a signalised junction in 5 seeds")
