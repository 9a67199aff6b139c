"""The map matcher's pull towards the lane centre, offline: with the prior at the true pose, the network's
answer across the heading (which should be 0) against how far the car is from its lane's centre.

    python -m benchmarks.localization_lane_pull --data data/localization --split test --json
    python -m benchmarks.localization_lane_pull --checkpoint runs/localization/matcher/last.pt --json

A network that learned "the car is on the lane centre" answers about minus the car's offset: the slope of
its error against the offset is near -1 (0: no pull). The lane centre is the nearest driving lane's
(``carla.Map.get_waypoint`` on the town's OpenDRIVE, shipped towns only). Use a dataset whose car leaves the
lane centre (``configs/collect/localization.yaml``, collected with ``drift``). The JSON (printed last) holds
``frames``, ``off_centre_frames`` (more than 0.5 m off), ``slope``, and the RMS error across the heading on
all frames the network is sure of (std <= 0.3 m) and on the off-centre ones.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from av_stack.localization.learned.model import load_checkpoint, relative_pose
from av_stack.localization.learned.stage import DEFAULT_CHECKPOINT
from av_stack.localization.learned.train import load_samples
from av_stack.shipped import shipped_file
from sim.maps.loader import DATA_DIR


def lane_offsets(poses: np.ndarray, towns: np.ndarray) -> np.ndarray:
    """Each pose's signed distance [m] from its nearest driving lane's centre, across that lane's heading."""
    import carla

    offsets = np.full(len(poses), np.nan)
    for town in sorted(set(towns.tolist())):
        xodr = DATA_DIR / f"{town}.xodr"
        if not xodr.is_file():
            continue
        world_map = carla.Map(town, xodr.read_text())
        for k in np.flatnonzero(towns == town):
            x, y, _ = poses[k]
            centre = world_map.get_waypoint(carla.Location(x=float(x), y=float(y), z=0.0)).transform
            lane = np.array([centre.location.x, centre.location.y, math.radians(centre.rotation.yaw)])
            offsets[k] = relative_pose(lane, poses[k])[1]
    return offsets


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; the result dict (also printed as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/localization", help="an `avsim collect` dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--lidar", default="roof_lidar")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    samples = load_samples(Path(args.data), args.split, args.lidar)
    offsets = lane_offsets(samples.poses, samples.towns)
    known = np.isfinite(offsets)
    if not known.any():
        raise SystemExit(f"no frame of {args.data} ({args.split}) is in a town with a shipped OpenDRIVE file")
    model, _ = load_checkpoint(shipped_file(args.checkpoint))
    rows = np.flatnonzero(known)
    answers, spreads = [], []
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            x, _ = samples.batch(chunk, np.zeros((len(chunk), 3)))
            delta, std = model.predict(x)
            answers.append(delta.numpy()[:, 1])
            spreads.append(std.numpy()[:, 1])
    error, std, offset = np.concatenate(answers), np.concatenate(spreads), offsets[rows]
    sure, off = std <= 0.3, np.abs(offset) > 0.5
    result = {"benchmark": "localization_lane_pull", "data": args.data, "split": args.split,
              "checkpoint": args.checkpoint, "frames": int(len(rows)), "off_centre_frames": int(off.sum()),
              "sure_share": round(float(sure.mean()), 3),
              "slope": round(float(np.polyfit(offset[sure], error[sure], 1)[0]), 3),
              "rms_lateral_error_m": round(float(np.sqrt(np.mean(error[sure] ** 2))), 3),
              "rms_lateral_error_off_centre_m": round(float(np.sqrt(np.mean(error[sure & off] ** 2))), 3)
              if (sure & off).any() else None}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
