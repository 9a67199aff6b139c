"""World tick rate of the embedded simulator: NPC traffic, pedestrians, lights, collisions, snapshots.

Run through ``avsim bench world`` (``--json`` prints one JSON object last).
Measures ticks per second on one core after a warm-up (the median of five
timed chunks), for a given map and
number of NPC vehicles (all on autopilot, as in CARLA's own benchmark with
the Traffic Manager) and pedestrians. Results are recorded in
``benchmarks/world_results.md``.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from sim.maps.loader import MapLoadError
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld

CARLA_REFERENCE_FPS = {0: 729, 10: 98, 50: 26, 100: 15, 250: 6}
"""CARLA's own figures with physics and Traffic Manager, no sensors, GTX 1080 Ti (CARLA docs)."""


CHUNKS = 5


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


def machine_info() -> dict:
    """The machine a figure came from: CPU model, cores, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.system()}


def _pin_one_core() -> bool:
    try:
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
        return True
    except (AttributeError, OSError):
        return False


def run_world_bench(map_name: str = "Town10HD", vehicles: int = 50, walkers: int = 30, ticks: int = 2000,
                    warmup: int = 200, seed: int = 0, one_core: bool = True) -> dict:
    """Build a world, fill it, warm up, then time ``ticks`` ticks; returns the result record."""
    pinned = _pin_one_core() if one_core else False
    try:
        t0 = time.perf_counter()
        world = EmbeddedWorld(map=map_name, seed=seed)
        load_s = time.perf_counter() - t0
        world.spawn_traffic(vehicles)
        if walkers:
            world.spawn_walkers(walkers)
    except (MapLoadError, SpawnError, ValueError) as exc:
        raise BenchError(str(exc)) from exc
    for _ in range(warmup):
        world.tick()
    # Timed in chunks; the median chunk is robust to a stray process taking the core for a moment.
    chunks = max(1, min(CHUNKS, ticks // 100))
    per_chunk = ticks // chunks
    rates = []
    for _ in range(chunks):
        start = time.perf_counter()
        for _ in range(per_chunk):
            world.tick()
        rates.append(per_chunk / (time.perf_counter() - start))
    tps = float(np.median(rates))
    reference = CARLA_REFERENCE_FPS.get(vehicles)
    return {
        "benchmark": "world", "map": world.source.name, "vehicles": vehicles, "walkers": walkers,
        "ticks": per_chunk * chunks, "ticks_per_s": round(tps, 1),
        "ticks_per_s_min": round(min(rates), 1), "ticks_per_s_max": round(max(rates), 1), "ms_per_tick": round(1000.0 / tps, 4),
        "map_load_s": round(load_s, 3), "one_core": pinned,
        "carla_reference_fps": reference, "ratio_vs_carla": round(tps / reference, 1) if reference else None,
        "gridlock_relocations": world.relocations, "machine": machine_info(),
    }
