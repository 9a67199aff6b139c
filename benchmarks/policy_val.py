"""The RL policy's validation score: an agent on seeded random routes of the training config's evaluation town
(procedural seed 3, never trained on), Leaderboard env, BEV observations. Used to choose which checkpoint ships;
never a test set.

    python -m benchmarks.policy_val --agent STACK_OR_AGENT [--routes 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from av_stack.runner import evaluate_driving
from sim.maps.procedural import ProceduralTownConfig, write_town

VALIDATION_TOWN = ProceduralTownConfig(seed=3, grid_rows=2, grid_cols=3, block_length_jitter=0.1)
"""The evaluation town of configs/policy/bev_ppo.yaml."""


def main(argv: list[str] | None = None) -> dict:
    """Command line (see the module docstring); returns the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="rl", help="as avsim eval driving --agent (default: the shipped rl)")
    parser.add_argument("--routes", type=int, default=20, help="random routes (seeded)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if args.routes < 1:
        parser.error("--routes must be >= 1")
    with tempfile.TemporaryDirectory() as folder:
        town = write_town(VALIDATION_TOWN, Path(folder) / "val_seed3.xodr")
        result = evaluate_driving(args.agent, f"random:{args.routes}", str(town), (), None, "bev", 0,
                                  {"vehicles": 20, "walkers": 15})
    out = {"agent": args.agent, "driving_score": result["driving_score"],
           "route_completion": result["route_completion"], "infraction_penalty": result["infraction_penalty"],
           "infractions_per_km": {k: round(v, 3) for k, v in (result["infractions_per_km"] or {}).items() if v},
           "terminations": result["termination_counts"],
           "routes": [[r["route_id"], round(r["driving_score"], 1)] for r in result["routes"]]}
    print(f"{args.agent}: DS {out['driving_score']:.1f}  RC {out['route_completion']:.1f}")
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
