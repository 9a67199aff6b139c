"""The localization stage's pose error in closed loop: one ablation mix driven over routes, the stage's
estimate compared with the ground-truth pose on every tick.

    python -m benchmarks.localization_closed_loop --mix localization --route town02_short_00 --json
    python -m benchmarks.localization_closed_loop --mix localization+planning --gnss-bias-std 0 --json
    python -m benchmarks.localization_closed_loop --checkpoint runs/localization/matcher/last.pt --json

The mix is one of ``avsim eval stack-ablation``'s (the stack of ``configs/stack/learned.yaml`` with the other
stages oracle); ``--gnss-bias-std`` overrides the learned stage's ``ekf.gnss_bias_std_m``. The JSON (printed
last) holds the mix's driving score, and the lateral, longitudinal and yaw error of the estimate (RMS, 95th
percentile, max, in the ground-truth ego frame), the share of ticks the stage called valid, the share of
valid ticks over 1 m, and the first tick over 0.5 m.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import yaml

from av_stack import stack as stack_module
from av_stack.ablation import run_ablation
from av_stack.localization.learned.model import relative_pose

LEARNED = Path(__file__).resolve().parents[1] / "configs" / "stack" / "learned.yaml"


def _record_errors(records: list[tuple[float, float, float, bool]]) -> None:
    """Make every stack built from now on append (longitudinal, lateral, yaw error, valid) per tick."""
    original = stack_module.Stack.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        step = self.localization.step

        def recorded(frame):
            estimate = step(frame)
            truth = frame.ground_truth
            if truth is not None:
                ego, pose = truth.ego, estimate.pose
                along, across, yaw = relative_pose(np.array([ego.x_m, ego.y_m, ego.yaw_rad]),
                                                   np.array([pose.x_m, pose.y_m, pose.yaw_rad]))
                records.append((along, across, math.degrees(yaw), bool(estimate.valid)))
            return estimate

        self.localization.step = recorded

    stack_module.Stack.__init__ = init


def _stats(values: np.ndarray) -> dict[str, float]:
    magnitude = np.abs(values)
    return {"rms": round(float(np.sqrt(np.mean(values ** 2))), 3), "p95": round(float(np.percentile(magnitude, 95)), 3),
            "max": round(float(magnitude.max()), 3)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; the result dict (also printed as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mix", default="localization", help="an ablation mix with the learned localization")
    parser.add_argument("--routes", default="town02", help="a route set")
    parser.add_argument("--route", action="append", help="route ids (default: town02_short_00)")
    parser.add_argument("--gnss-bias-std", type=float, default=None, help="the learned stage's ekf.gnss_bias_std_m")
    parser.add_argument("--checkpoint", default=None, help="the learned stage's checkpoint (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    learned = yaml.safe_load(LEARNED.read_text())
    localization = dict(learned["localization"])
    if args.gnss_bias_std is not None:
        localization["ekf"] = {"gnss_bias_std_m": args.gnss_bias_std}
    if args.checkpoint is not None:
        localization["checkpoint"] = args.checkpoint
    learned["localization"] = localization
    records: list[tuple[float, float, float, bool]] = []
    _record_errors(records)
    routes = tuple(args.route or ["town02_short_00"])
    row = run_ablation(args.routes, learned=learned, route_ids=routes, only=(args.mix,))["rows"][0]
    if not records:
        raise SystemExit(f"mix {args.mix!r} recorded no pose: is its localization stage learned?")
    errors = np.array([r[:3] for r in records])
    valid = np.array([r[3] for r in records])
    distance = np.hypot(errors[:, 0], errors[:, 1])
    over = np.flatnonzero(distance > 0.5)
    result = {"benchmark": "localization_closed_loop", "mix": args.mix, "routes": list(routes),
              "gnss_bias_std_m": args.gnss_bias_std, "checkpoint": args.checkpoint, "driving_score": round(row["driving_score"], 2),
              "terminations": row["termination_counts"], "ticks": len(records),
              "longitudinal_m": _stats(errors[:, 0]), "lateral_m": _stats(errors[:, 1]), "yaw_deg": _stats(errors[:, 2]),
              "valid_share": round(float(valid.mean()), 3),
              "valid_over_1m": round(float(np.mean(distance[valid] > 1.0)) if valid.any() else 0.0, 3),
              "first_tick_over_0_5m": int(over[0]) if len(over) else None}
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
