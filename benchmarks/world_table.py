"""Record the world tick-rate table: vehicles 0/10/50/100/250 (+30 walkers) next to CARLA's figures.

Usage: ``python -m benchmarks.world_table [--map Town10HD] [--ticks 2000] [--json]``.
Each size runs in a fresh process (pinned to one core) so sizes don't share
caches or warm-up; the table is printed as Markdown, ``--json`` prints one
JSON object last.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.world_bench import CARLA_REFERENCE_FPS, machine_info

SIZES = (0, 10, 50, 100, 250)


def measure(map_name: str, vehicles: int, walkers: int, ticks: int) -> dict:
    """One `avsim bench world` run in a child process."""
    out = subprocess.run([sys.executable, "-m", "launch.cli", "bench", "world", "--map", map_name,
                          "--vehicles", str(vehicles), "--walkers", str(walkers), "--ticks", str(ticks), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--map", default="Town10HD")
    parser.add_argument("--walkers", type=int, default=30)
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(args.map, n, args.walkers, args.ticks) for n in SIZES]
    print("| vehicles | walkers | ticks/s | ms/tick | us per actor | CARLA FPS | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        actors = r["vehicles"] + r["walkers"]
        per_actor = 1e3 * r["ms_per_tick"] / actors if actors else float("nan")
        print(f"| {r['vehicles']} | {r['walkers']} | {r['ticks_per_s']:.0f} | {r['ms_per_tick']:.3f} | "
              f"{per_actor:.1f} | {CARLA_REFERENCE_FPS[r['vehicles']]} | {r['ratio_vs_carla']:.0f}x |")
    if args.json:
        print(json.dumps({"map": args.map, "rows": rows, "machine": machine_info()}))


if __name__ == "__main__":
    main()
