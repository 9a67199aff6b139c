"""The main job for now: a closed-loop drive on the embedded simulator with a summary and a video."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sim.api import CollisionEvent
from sim.maps.loader import MapLoadError
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld


DEFAULT_WALKERS = 20
"""Pedestrians when ``walkers`` is not given, on a map with sidewalks (one without gets none)."""


class DemoError(RuntimeError):
    """The demo could not run; the message says why."""


def run_demo(map_name: str, vehicles: int, walkers: int | None, seconds: float, seed: int, out: Path,
             video: bool, console: Console | None = None) -> dict:
    """Drive a hero vehicle on autopilot for ``seconds``; return the summary (also written to summary.json).

    ``walkers`` None: :data:`DEFAULT_WALKERS` where the map has sidewalks, else
    none (said in one line on ``console``); a number of walkers on a map
    without sidewalks is a :class:`DemoError` naming ``--walkers 0``. Nothing
    is written before the world is set up. What was recorded is kept even if
    the run stops early: the video is closed and the summary written in every
    case.
    """
    console = console or Console(stderr=True)
    try:
        world = EmbeddedWorld(map=map_name, seed=seed)
        hero = world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
        world.spawn_traffic(vehicles)
        walkers = _spawn_walkers(world, walkers, console)
    except (MapLoadError, SpawnError, ValueError) as exc:
        raise DemoError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    ticks = max(1, int(round(seconds / world.dt_s)))
    writer = renderer = None
    video_path = out / "topdown.mp4"
    if video:
        from sim.render import TopDownRenderer, VideoWriter

        renderer = TopDownRenderer(world.geometry, pixels_per_m=5.0, view_size_px=(640, 640))
        writer = VideoWriter(video_path, fps=round(1.0 / world.dt_s))
    trail: list[tuple[float, float]] = []
    events: Counter[str] = Counter()
    hero_collisions = 0
    npc_pairs: set[tuple[int, int]] = set()
    distance = 0.0
    start = time.perf_counter()
    completed = 0
    try:
        with Progress(TextColumn("[bold]drive"), BarColumn(), TextColumn("{task.completed}/{task.total} ticks"),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("drive", total=ticks)
            for _ in range(ticks):
                snap = world.tick()
                completed += 1
                row = snap.index_of(hero)
                x, y = float(snap.location_m[row, 0]), float(snap.location_m[row, 1])
                if trail:
                    distance += math.hypot(x - trail[-1][0], y - trail[-1][1])
                trail.append((x, y))
                for event in snap.events:
                    events[type(event).__name__] += 1
                    if isinstance(event, CollisionEvent):
                        if event.actor_id == hero:
                            hero_collisions += 1
                        elif event.other_kind == "vehicle":
                            npc_pairs.add(tuple(sorted((event.actor_id, event.other_id))))
                if writer is not None:
                    frame = renderer.render(snap, hero_id=hero, trail_xy=np.asarray(trail[-400:]))
                    writer.write(frame)
                progress.advance(task)
    finally:
        if writer is not None:
            writer.close()
        wall = time.perf_counter() - start
        summary = {
            "map": world.source.name, "seed": seed, "vehicles": vehicles, "walkers": walkers,
            "simulated_s": round(completed * world.dt_s, 2), "ticks": completed, "wall_s": round(wall, 2),
            "ticks_per_s_with_video": round(completed / wall, 1) if wall > 0 else None,
            "hero_distance_m": round(distance, 1),
            "hero_mean_speed_mps": round(distance / max(completed * world.dt_s, 1e-9), 2),
            "hero_collision_ticks": hero_collisions, "npc_vehicle_collision_pairs": len(npc_pairs),
            "gridlock_relocations": world.relocations, "events": dict(events),
            "video": str(video_path) if video else None,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _spawn_walkers(world: EmbeddedWorld, walkers: int | None, console: Console) -> int:
    """Spawn the run's pedestrians (see :func:`run_demo`); how many there are."""
    try:
        if walkers is None:
            world.spawn_walkers(DEFAULT_WALKERS)
            return DEFAULT_WALKERS
        world.spawn_walkers(walkers)
        return walkers
    except SpawnError as exc:  # a map without sidewalks (a highway town)
        if walkers is None:
            console.print(f"note: {world.source.name} has no sidewalks: running with 0 walkers", highlight=False)
            return 0
        raise DemoError(f"--walkers {walkers}: {exc}; run with --walkers 0 (or leave --walkers out)") from exc

