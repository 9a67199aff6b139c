"""``avsim eval stack-ablation``: the stack with each stage learned and the others oracle, then pairs, then all
learned, over one route set (:mod:`av_stack.ablation`)::

    avsim eval stack-ablation --routes town02 --json

The command function is :func:`eval_stack_ablation` (registered on ``avsim eval`` by ``launch.cli``).
"""

from __future__ import annotations

import json

import typer

from av_stack.distributed import RAY_HELP
from launch.errors import console, error_text as _error_text, fail as _fail, key_values


def eval_stack_ablation(
    routes: str = typer.Option(..., "--routes", help="Route set: a route file, a shipped set (town01, town02, "
                               "town10hd) or random:N (with --map)."),
    map_name: str | None = typer.Option(None, "--map", help="The map (default: the route file's town)."),
    learned: str = typer.Option("stack/learned.yaml", "--learned", help="The all-learned stack config (a path or "
                                "a shipped name): its perception, localization and planning are swapped in."),
    stages: str = typer.Option("perception,localization,planning", "--stages", help="Comma-separated stages to "
                               "ablate."),
    mix: list[str] = typer.Option(None, "--mix", help="Only this mix (repeatable, e.g. --mix oracle --mix "
                                  "'perception+planning'; default: all), to run the table in parts."),
    route: list[str] = typer.Option(None, "--route", help="Route id to run (repeatable; default: all)."),
    vehicles: int | None = typer.Option(None, min=0, max=500, help="NPC vehicles (default: the env config's)."),
    walkers: int | None = typer.Option(None, min=0, max=500, help="Pedestrians (default: the env config's)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first route's episode (same for every mix)."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " Each (mix, route) pair is one task; the rows "
                                   "are the single-process ones but for the latency."),
    expert_option: list[str] = typer.Option([], "--expert-option", help="KEY=VALUE: a setting of the expert "
                                            "planner wherever it stands in for the learned planner, e.g. "
                                            "light_stop_margin_m=8 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Which learned stage costs how much: the driving-score table of every learned / oracle mix."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from av_stack.ablation import run_ablation
    from av_stack.registry import StageConfigError
    from sim.config import ConfigError

    traffic = {key: value for key, value in (("vehicles", vehicles), ("walkers", walkers)) if value is not None}
    chosen = tuple(s.strip() for s in stages.split(",") if s.strip())
    expert = key_values(expert_option, "--expert-option")
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("mixes", total=None)

            def tick(name: str, done: int, total: int) -> None:
                progress.update(task, description=f"mix: {name}", completed=done, total=total)

            result = run_ablation(routes, map_name, learned, chosen, tuple(route or ()), seed, traffic, tick, ray,
                                  only=tuple(mix or ()), expert=expert)
    except (ConfigError, StageConfigError, ValueError, RuntimeError, OSError, KeyError) as exc:
        _fail(_error_text(exc))
        return
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"{'mix':>32}  {'DS':>6}  {'RC':>6}  {'IP':>5}  latency p50 [ms]")
    for row in result["rows"]:
        latency = ", ".join(f"{k} {v:.1f}" for k, v in row["latency_ms_p50"].items() if k in
                            ("perception", "localization", "planning", "stack"))
        console.print(f"{row['name']:>32}  {row['driving_score']:6.2f}  {row['route_completion']:6.2f}  "
                      f"{row['infraction_penalty']:5.3f}  {latency}")
