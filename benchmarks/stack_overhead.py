"""Overhead of the AV stack's frame per tick: messages, the bridge from the env, the Stack's bookkeeping.

    python -m benchmarks.stack_overhead [--steps 2000] [--vehicles 30] [--json]

Setting: Town01, ``--vehicles`` NPCs and 10 pedestrians, ``state`` observations
with the env's ground truth, ``vehicle_control`` actions, one process. Two
stacks drive the same episodes (seed 0, route by route until ``--steps``
ticks, resets outside the timing):

- the oracle stack (oracle perception and localization, the expert, Stanley):
  per tick, the wall time of the agent call (SensorFrame from the env,
  four stages, control to action), of each stage, and of the env step;
  ``overhead_ms`` = agent call - sum of the four stages' own times;
- a *null* stack whose stages return ready-made messages (no work): its
  agent call is the frame's whole overhead (``null_agent_ms``).

The reference run in the same process is the simulator: ``overhead_ratio``
is ``overhead_ms`` / the env step's mean time. ``--json`` prints one JSON
object last (fields ``overhead_ms``, ``overhead_p95_ms``, ``null_agent_ms``,
``env_step_ms``, ``overhead_ratio``, ``stage_ms``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from statistics import fmean
from typing import Any

import numpy as np

from av_stack.bridge import StackAgent
from av_stack.control.tracking import StanleyController
from av_stack.localization.oracle import OracleLocalization
from av_stack.messages import Detections, LightObservation, Mission, PerceptionOutput, Plan, PoseEstimate, \
    SensorFrame, VehicleControl
from av_stack.perception.oracle import OraclePerception
from av_stack.planning.expert import ExpertPlanner
from av_stack.stack import Stack
from sim.api import Pose
from sim.env.driving import DrivingEnv

STAGES = ("perception", "localization", "planning", "control")


class _Null:
    """A stage that returns one ready-made message and does nothing else."""

    def __init__(self, message) -> None:
        self.message = message

    def reset(self, mission: Mission) -> None:
        """Nothing to reset."""

    def step(self, *inputs):
        return self.message


def null_stack() -> Stack:
    """Four stages that cost (almost) nothing: what is left of an agent call is the frame's overhead."""
    perception = PerceptionOutput(0, 0.0, Detections.empty(), LightObservation())
    pose = PoseEstimate(0, 0.0, Pose(), np.zeros(3))
    plan = Plan(0, 0.0, np.zeros((2, 2)), np.zeros(2))
    return Stack(_Null(perception), _Null(pose), _Null(plan), _Null(VehicleControl(brake=1.0)))


def _drive(env: DrivingEnv, agent: StackAgent, steps: int) -> dict[str, list[float]]:
    """``steps`` timed ticks (resets untimed); per-tick agent, env and stage times [ms]."""
    times: dict[str, list[float]] = {"agent": [], "env": [], **{s: [] for s in STAGES}}
    seed, done = 0, True
    obs = None
    while len(times["agent"]) < steps:
        if done:
            obs, _ = env.reset(seed=seed)
            agent.reset(env)
            seed += 1
        t0 = time.perf_counter()
        action = agent(obs, env)
        t1 = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(action)
        t2 = time.perf_counter()
        done = terminated or truncated
        times["agent"].append((t1 - t0) * 1e3)
        times["env"].append((t2 - t1) * 1e3)
        for stage in STAGES:
            times[stage].append(agent.outputs.latency_ms[stage])
    return times


def run(steps: int = 2000, vehicles: int = 30) -> dict[str, Any]:
    """The benchmark (see the module docstring); the result object."""
    env = DrivingEnv(map="Town01", traffic={"vehicles": vehicles, "walkers": 10},
                     observation={"mode": "state", "ground_truth": True, "ground_truth_radius_m": 60.0},
                     action={"mode": "vehicle_control"}, episode={"terminate_on": ["route_deviation", "blocked"]})
    oracle = StackAgent(Stack(OraclePerception(), OracleLocalization(), ExpertPlanner(), StanleyController()))
    null = StackAgent(null_stack())
    _drive(env, oracle, 50)  # warm-up
    t = _drive(env, oracle, steps)
    n = _drive(env, null, steps)
    env.close()
    agent = np.array(t["agent"])
    stages = sum(np.array(t[s]) for s in STAGES)
    overhead = agent - stages
    env_ms = fmean(t["env"])
    return {"benchmark": "stack_overhead", "steps": steps, "vehicles": vehicles,
            "overhead_ms": round(float(overhead.mean()), 4),
            "overhead_p95_ms": round(float(np.percentile(overhead, 95)), 4),
            "null_agent_ms": round(fmean(n["agent"]), 4),
            "agent_ms": round(float(agent.mean()), 4), "env_step_ms": round(env_ms, 4),
            "overhead_ratio": round(float(overhead.mean()) / env_ms, 4),
            "stage_ms": {s: round(fmean(t[s]), 4) for s in STAGES},
            "machine": {"python": platform.python_version(), "cpu": platform.machine()}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the result object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="timed ticks per stack (>= 1)")
    parser.add_argument("--vehicles", type=int, default=30, help="NPC vehicles (>= 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.vehicles < 0:
        parser.error("--steps must be >= 1 and --vehicles >= 0")
    result = run(args.steps, args.vehicles)
    print(f"stack overhead {result['overhead_ms']:.3f} ms/tick (p95 {result['overhead_p95_ms']:.3f}), "
          f"null stack {result['null_agent_ms']:.3f} ms, env step {result['env_step_ms']:.2f} ms, "
          f"stages {result['stage_ms']}", flush=True)
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
