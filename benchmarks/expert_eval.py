"""Driving score of the expert (``av_stack.planning.expert`` with oracle stages) on shipped route sets and on
random routes of procedural towns it has never seen; ``--agent rl`` scores the RL policy the same way.

    python -m benchmarks.expert_eval [--town Town01 --town Town02 ...] [--route ID ...]
                                     [--procedural-seed 0 ...] [--procedural-routes 10]
                                     [--fixed-traffic] [--seed 0] [--agent expert|rl|...] [--json]

Every set runs through :func:`av_stack.runner.evaluate_driving`, the code
behind ``avsim eval driving``, so each set's figures are reproduced by the
command printed next to it (``command`` in the JSON). The agent is ``expert``:
the oracle stack (``configs/stack/oracle.yaml``: oracle perception and
localization from the env's ground truth, the expert planner, Stanley
control) with ``state`` observations (the oracle stages read the ground
truth; the camera only feeds the video). Its env is
``configs/env/leaderboard_town01.yaml``'s: Leaderboard episode rules
(infractions penalised; route deviation, blocked 180 s and the route's time
budget end a route) and three scenarios (leading vehicle brake, occluded
pedestrian, red-light runner).

- Shipped towns: their route file (``--routes town01`` ...).
- Procedural towns: ``configs/world/procedural_grid.yaml`` (3 x 3 signalised
  grid, jittered blocks) with seed S, written as OpenDRIVE (``avsim map
  generate``), then ``--routes random:N`` on it: N seeded random routes.

Traffic: Town01's config has 30 NPC vehicles and 20 walkers on 6.4 km of
driving lanes; every map gets that density (:data:`VEHICLES_PER_KM`,
:data:`WALKERS_PER_KM`: Town02's 2.9 km get 14 and 9), or with
``--fixed-traffic`` 30 and 20 everywhere. Route k runs with episode seed
``seed + k``. ``--json`` prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from av_stack.runner import evaluate_driving
from sim.config import load_yaml_config
from sim.maps.lanes import build_lane_graph
from sim.maps.loader import load_carla_map, resolve_map
from sim.maps.procedural import ProceduralTownConfig, write_town
from sim.resources import resolve_config

SHIPPED_TOWNS = {"Town01": "town01", "Town02": "town02", "Town10HD": "town10hd"}
"""Shipped towns and their route sets (``configs/routes/<set>.yaml``)."""
PROCEDURAL_CONFIG = "world/procedural_grid.yaml"
VEHICLES_PER_KM = 30 / 6.4
"""NPC vehicles per km of driving lane: 30 on Town01's 6.4 km (``configs/env/leaderboard_town01.yaml``)."""
WALKERS_PER_KM = 20 / 6.4
"""Walkers per km of driving lane, likewise."""


def traffic_for(map_name: str, fixed: bool = False) -> dict[str, int]:
    """NPC vehicles and walkers for ``map_name`` (a town or an .xodr path): Town01's density per km of driving
    lane, or 30 and 20 with ``fixed``."""
    if fixed:
        return {"vehicles": 30, "walkers": 20}
    source = resolve_map(map_name)
    km = float(build_lane_graph(load_carla_map(source), source.xodr_text).length_m.sum()) / 1000.0
    return {"vehicles": round(VEHICLES_PER_KM * km), "walkers": round(WALKERS_PER_KM * km)}


def observation_for(agent: str) -> str:
    """The observation mode an agent's stages read: the RL policy (``rl``, or a stack config whose planner is
    ``rl``) needs the BEV, the expert only the ground truth (``state`` is the cheapest)."""
    from av_stack.agents import is_stack_agent, stack_config_of

    if agent == "rl" or (is_stack_agent(agent) and stack_config_of(agent).planning["name"] == "rl"):
        return "bev"
    return "state"


def _command(routes: str, map_name: str | None, traffic: dict[str, int], seed: int,
             route_ids: list[str] | None, agent: str = "expert") -> str:
    parts = [f"avsim eval driving --agent {agent} --observation {observation_for(agent)}", f"--routes {routes}"]
    if map_name:
        parts.append(f"--map {map_name}")
    parts += [f"--vehicles {traffic['vehicles']}", f"--walkers {traffic['walkers']}", f"--seed {seed}"]
    parts += [f"--route {r}" for r in route_ids or []]
    return " ".join(parts + ["--json"])


def run_set(name: str, routes: str, map_name: str | None, traffic: dict[str, int], seed: int,
            route_ids: list[str] | None = None, shown_map: str | None = None, agent: str = "expert"
            ) -> dict[str, Any]:
    """One set through ``evaluate_driving``; its per-route records and means, and the reproducing command."""
    result = evaluate_driving(agent, routes, map_name, route_ids or (), observation=observation_for(agent),
                              seed=seed, traffic=traffic)
    records = []
    for r in result["routes"]:
        infractions = {k: v for k, v in r["infractions"].items() if v}
        records.append({"route": r["route_id"], "driving_score": round(r["driving_score"], 1),
                        "route_completion": round(r["route_completion"], 1), "infractions": infractions,
                        "termination": r["termination"], "length_m": r["route_length_m"], "steps": r["steps"]})
        print(f"{name:>14} {r['route_id']:>20} DS {r['driving_score']:6.1f} RC {r['route_completion']:6.1f}"
              f" {r['termination']:>16} {infractions}", flush=True)
    return {"set": name, "map": result["map"], "traffic": traffic,
            "mean_driving_score": round(result["driving_score"], 1),
            "mean_route_completion": round(result["route_completion"], 1),
            "infraction_penalty": round(result["infraction_penalty"], 3), "routes": records,
            "latency_ms": result.get("latency_ms", {}),
            "command": _command(routes, shown_map or map_name, traffic, seed, route_ids, agent)}


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
    parser.add_argument("--seed", type=int, default=0, help="episode seed of the first route (route k: seed + k)")
    parser.add_argument("--agent", default="expert", help="the agent (avsim eval driving --agent): expert, rl, ...")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if args.seed < 0 or args.procedural_routes < 1:
        parser.error("--seed must be >= 0 and --procedural-routes >= 1")
    towns = args.town or list(SHIPPED_TOWNS)
    seeds = [s for s in (args.procedural_seed or [0, 1, 2]) if s >= 0]
    start = time.perf_counter()
    sets = []
    for town in towns:
        sets.append(run_set(town, SHIPPED_TOWNS[town], None, traffic_for(town, args.fixed_traffic), args.seed,
                            args.route, agent=args.agent))
    town_config = load_yaml_config(resolve_config(PROCEDURAL_CONFIG, "world"), ProceduralTownConfig)
    with tempfile.TemporaryDirectory(prefix="expert-eval-") as folder:
        for seed in seeds:
            path = write_town(town_config.model_copy(update={"seed": seed}), Path(folder) / f"grid_seed{seed}.xodr")
            sets.append(run_set(f"procedural_{seed}", f"random:{args.procedural_routes}", str(path),
                                traffic_for(str(path), args.fixed_traffic), args.seed,
                                shown_map=f"grid_seed{seed}.xodr", agent=args.agent))
    for s in sets:
        print(f"{s['set']:>14}: DS {s['mean_driving_score']:6.1f}  RC {s['mean_route_completion']:6.1f}  "
              f"traffic {s['traffic']}   {s['command']}", flush=True)
    agent = "expert (oracle perception and localization, Stanley control)" if args.agent == "expert" else \
        f"{args.agent} (oracle perception and localization)"
    result = {"benchmark": "expert_eval", "agent": agent,
              "sets": sets, "wall_s": round(time.perf_counter() - start, 1),
              "machine": {"python": platform.python_version(), "cpu": platform.machine()}}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
