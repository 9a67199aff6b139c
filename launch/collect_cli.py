"""``avsim collect``: collect a driving dataset (:mod:`av_stack.data.collect`). Registered in
``launch/cli.py`` as ``app.command("collect")(collect)``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from av_stack.distributed import RAY_HELP


def _towns(map_name: str) -> list[dict]:
    """``--map``: a shipped town, an .xodr path, ``procedural`` or ``procedural:SEED``, or a procedural town
    config YAML (``world/procedural_grid.yaml``: ProceduralTownConfig keys)."""
    if map_name == "procedural" or map_name.startswith("procedural:"):
        seed = map_name.partition(":")[2]
        return [{"procedural": {"seed": int(seed)} if seed else {}}]
    if map_name.endswith((".yaml", ".yml")):
        from sim.config import load_yaml_config
        from sim.maps.procedural import ProceduralTownConfig
        from sim.resources import resolve_config

        town = load_yaml_config(resolve_config(map_name, "world"), ProceduralTownConfig)
        return [{"procedural": town.model_dump()}]
    return [{"map": map_name}]


def collect(
    map_name: str | None = typer.Option(None, "--map", help="Town: a shipped town, an .xodr path, 'procedural[:SEED]' "
                                        "or a procedural town YAML (world/procedural_grid.yaml). Default: Town01, "
                                        "or the config's towns."),
    frames: int | None = typer.Option(None, "--frames", min=1, help="Frames per setting (town x traffic x "
                                      "scenarios), split into logs of --frames-per-log (default 200)."),
    out: Path = typer.Option(..., "--out", help="Dataset directory (re-running resumes: finished logs are kept)."),
    config: str | None = typer.Option(None, "--config", help="A collection mix YAML (configs/collect/NAME.yaml: "
                                      "a path or a shipped name such as small_mix)."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="First seed (log k of a setting: seed + k)."),
    vehicles: int | None = typer.Option(None, "--vehicles", min=0, max=500, help="NPC vehicles (replaces the "
                                        "config's traffic list)."),
    walkers: int | None = typer.Option(None, "--walkers", min=0, max=500, help="Pedestrians (likewise)."),
    frames_per_log: int | None = typer.Option(None, "--frames-per-log", min=1, help="Frames per log."),
    cache: bool = typer.Option(False, "--cache", help="Then build the dataset's decode-once cache (DIR/cache/) for "
                               "fast loading (av_stack.data.cache.build_cache)."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " Each log is one task; its file comes back "
                                   "to --out (no shared file system needed); logs and manifest as without Ray."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Collect a dataset: the expert drives with noise injection, every frame recorded (MCAP logs + manifest)."""
    from pydantic import ValidationError
    from rich.console import Console

    from av_stack.data.collect import collect as run_collect
    from av_stack.data.config import CollectConfig, config_error, load_collect_config
    from av_stack.data.manifest import DatasetError
    from sim.config import ConfigError

    console = Console(stderr=True)
    try:
        base = load_collect_config(config) if config else CollectConfig()
        updates = base.model_dump(mode="json")
        if map_name:
            updates["towns"] = _towns(map_name)
        if frames is not None:
            updates["frames"] = frames
        if frames_per_log is not None:
            updates["frames_per_log"] = frames_per_log
        if seed is not None:
            updates["seed"] = seed
        if vehicles is not None or walkers is not None:
            first = updates["traffic"][0]
            updates["traffic"] = [{"vehicles": first["vehicles"] if vehicles is None else vehicles,
                                   "walkers": first["walkers"] if walkers is None else walkers}]
        try:
            cfg = CollectConfig.model_validate(updates)
        except ValidationError as exc:
            raise config_error(exc, "collect options") from None
        summary = run_collect(cfg, out, console, ray=ray)
        if cache:
            from av_stack.data.cache import build_cache

            start = time.perf_counter()
            build_cache(out, progress=True)
            summary["cache_seconds"] = round(time.perf_counter() - start, 2)
            summary["seconds"] = round(summary["seconds"] + summary["cache_seconds"], 2)
    except (ConfigError, DatasetError, ValueError, RuntimeError, OSError) as exc:
        console.print(f"[bold red]error:[/] {' '.join(str(exc).split())}", soft_wrap=True, highlight=False)
        raise typer.Exit(code=2) from None
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"{summary['dataset']}: {summary['logs']} logs, {summary['frames']} frames "
                      f"({summary['new_logs']} new, {summary['skipped_logs']} already there) in "
                      f"{summary['seconds']:.1f} s; splits {summary['splits']}")
