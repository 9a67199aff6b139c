"""Driving score of the privileged expert (``av_stack.planning.expert``) on shipped route sets and procedural towns.

    python -m benchmarks.expert_eval [--town Town01 --town Town02 ...] [--route ID ...]
                                     [--procedural-seed 0 ...] [--procedural-routes 10]
                                     [--fixed-traffic] [--json]

The expert runs as the oracle stack (``av_stack.bridge.expert_agent``: oracle
perception and localization from the env's ground truth, the expert planner,
Stanley control). Shipped towns run their route file
(``configs/routes/<town>.yaml``) with the Leaderboard episode rules and the
scenarios of ``configs/env/leaderboard_town01.yaml`` (leading vehicle brake,
occluded pedestrian, red-light runner). Procedural towns
(``world.map: procedural``, a 3 x 3 grid with the given seed) run
``--procedural-routes`` random routes of 150-400 m with the same rules and
scenarios (``--all-scenarios``: all five, adding the parked car and the dense
junction). Traffic: Town01's Leaderboard config has 30 NPC vehicles and 20
walkers on 6.4 km of driving lanes; every map gets that density
(:data:`VEHICLES_PER_KM`, :data:`WALKERS_PER_KM`: Town02's 2.9 km get 14
and 9), or with ``--fixed-traffic`` 30 and 20 everywhere. Every route runs
once with episode seed ``seed + k``. ``--json`` prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from statistics import fmean
from typing import Any

from av_stack.bridge import StackAgent, expert_agent
from sim.env.driving import DrivingEnv
from sim.env.metrics import score_route
from sim.scenarios.routes import load_route_file

SHIPPED_TOWNS = {"Town01": "configs/routes/town01.yaml", "Town02": "configs/routes/town02.yaml",
                 "Town10HD": "configs/routes/town10hd.yaml"}
ROUTE_SET_SCENARIOS = ("leading_vehicle_brake", "pedestrian_crossing_occluded", "red_light_runner")
ALL_SCENARIOS = ("leading_vehicle_brake", "pedestrian_crossing_occluded", "red_light_runner",
                 "parked_car_blocking", "dense_junction")
VEHICLES_PER_KM = 30 / 6.4
"""NPC vehicles per km of driving lane: 30 on Town01's 6.4 km (``configs/env/leaderboard_town01.yaml``)."""
WALKERS_PER_KM = 20 / 6.4
"""Walkers per km of driving lane, likewise."""
COMMON = {"traffic": {"vehicles": 30, "walkers": 20}, "action": {"mode": "vehicle_control"},
          "observation": {"mode": "state", "ground_truth": True, "ground_truth_radius_m": 60.0},
          "episode": {"terminate_on": ["route_deviation", "blocked"]}}


def town_config(town: str, route_ids: list[str] | None = None) -> dict[str, Any]:
    """Env keywords for a shipped town's route set."""
    if town not in SHIPPED_TOWNS:  # also checked by argparse; this guards direct callers
        raise ValueError(f"unknown town {town!r}; valid: {', '.join(SHIPPED_TOWNS)}")
    return {**COMMON, "world": {"map": town},
            "routes": {"source": "file", "file": SHIPPED_TOWNS[town], "ids": route_ids or None},
            "scenarios": list(ROUTE_SET_SCENARIOS)}


def procedural_config(seed: int, scenarios: tuple[str, ...] = ROUTE_SET_SCENARIOS) -> dict[str, Any]:
    """Env keywords for random routes on a procedural town of ``seed``."""
    return {**COMMON, "world": {"map": "procedural", "procedural": {"seed": seed, "block_length_jitter": 0.2}},
            "routes": {"source": "random", "min_length_m": 150.0, "max_length_m": 400.0},
            "scenarios": list(scenarios)}


def drive(env: DrivingEnv, agent: StackAgent, seed: int, options: dict | None = None) -> dict[str, Any]:
    """One episode with ``agent``; the route's score record."""
    obs, _ = env.reset(seed=seed, options=options)
    agent.reset(env)
    done, info, steps = False, {}, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        steps += 1
        done = terminated or truncated
    result = env.route_result(info["termination_reason"])
    score = score_route(result).to_dict()
    infractions = {k: v for k, v in score.get("infractions", {}).items() if v}
    return {"route": env.route.route_id, "driving_score": round(score["driving_score"], 1),
            "route_completion": round(score["route_completion"], 1), "infractions": infractions,
            "termination": result.termination, "length_m": round(env.route.length_m, 1), "steps": steps}


def run_set(name: str, config: dict[str, Any], episodes: list[tuple[int, dict | None]],
            density: bool = True) -> dict[str, Any]:
    """Drive every (seed, reset options) episode of one env; per-route records and the mean driving score.
    ``density``: scale the traffic to the map's lane length (:data:`VEHICLES_PER_KM`, :data:`WALKERS_PER_KM`)."""
    env = DrivingEnv(**config)
    if density:  # NPCs in proportion to the map's driving lanes (Town01's Leaderboard config's density)
        km = float(env.lanes.length_m.sum()) / 1000.0
        traffic = {"vehicles": round(VEHICLES_PER_KM * km), "walkers": round(WALKERS_PER_KM * km)}
        env.close()
        env = DrivingEnv(**{**config, "traffic": traffic})
    agent = expert_agent()
    routes = []
    for seed, options in episodes:
        record = drive(env, agent, seed, options)
        routes.append(record)
        print(f"{name:>14} {record['route']:>20} DS {record['driving_score']:6.1f} RC {record['route_completion']:6.1f}"
              f" {record['termination']:>16} {record['infractions']}", flush=True)
    env.close()
    return {"set": name, "traffic": env.config.traffic.model_dump(), "mean_driving_score": round(fmean(r["driving_score"] for r in routes), 1),
            "mean_route_completion": round(fmean(r["route_completion"] for r in routes), 1), "routes": routes}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry point; returns the result object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--town", action="append", choices=list(SHIPPED_TOWNS),
                        help=f"shipped town(s): {', '.join(SHIPPED_TOWNS)} (default all)")
    parser.add_argument("--route", action="append", help="route id(s) of the towns' route files (default all)")
    parser.add_argument("--procedural-seed", type=int, action="append",
                        help="procedural town seed(s) (default 0 1 2; -1 skips procedural towns)")
    parser.add_argument("--procedural-routes", type=int, default=10, help="random routes per procedural town")
    parser.add_argument("--fixed-traffic", action="store_true",
                        help="30 vehicles and 20 walkers on every map (default: Town01's density per km of lane)")
    parser.add_argument("--all-scenarios", action="store_true",
                        help="procedural towns also get parked_car_blocking and dense_junction")
    parser.add_argument("--seed", type=int, default=0, help="episode seed of the first route (route k: seed + k)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if args.seed < 0 or args.procedural_routes < 0:
        parser.error("--seed and --procedural-routes must be >= 0")
    towns = args.town or list(SHIPPED_TOWNS)
    seeds = args.procedural_seed if args.procedural_seed is not None else [0, 1, 2]
    start = time.perf_counter()
    sets = []
    for town in towns:
        ids = [spec.route_id for spec in load_route_file(SHIPPED_TOWNS[town]).routes
               if not args.route or spec.route_id in args.route]
        if not ids:
            continue
        config = town_config(town, ids)
        sets.append(run_set(town, config, [(args.seed + k, {"route_id": rid}) for k, rid in enumerate(ids)],
                            density=not args.fixed_traffic))
    for seed in (s for s in seeds if s >= 0):
        scenarios = ALL_SCENARIOS if args.all_scenarios else ROUTE_SET_SCENARIOS
        sets.append(run_set(f"procedural_{seed}", procedural_config(seed, scenarios),
                            [(args.seed + k, None) for k in range(args.procedural_routes)],
                            density=not args.fixed_traffic))
    result = {"benchmark": "expert_eval", "agent": "expert (oracle perception and localization, Stanley control)", "sets": sets,
              "wall_s": round(time.perf_counter() - start, 1),
              "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    for s in sets:
        print(f"{s['set']:>14}: mean DS {s['mean_driving_score']:6.1f}  mean RC {s['mean_route_completion']:6.1f}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
