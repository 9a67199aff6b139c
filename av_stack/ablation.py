"""The stage-by-stage ablation: which learned stage costs how much driving score.

:func:`ablation_configs` takes a stack config whose perception, localization and planning are learned
(default ``stack/learned.yaml``) and builds every mix of it with the oracle stages (oracle perception,
oracle localization, the expert planner): all oracle, each learned stage alone, each pair, all learned.
:func:`run_ablation` drives each mix over one route set (``av_stack.runner.evaluate_driving``, same
seeds, same env) and returns one row per mix: driving score, route completion, infraction penalty,
infractions per km by type, terminations and per-stage latency. With ``ray`` (:mod:`av_stack.distributed`)
every (mix, route) pair is one Ray task; the rows are the single-process ones but for the latency.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from av_stack.stack import StackConfig, load_stack_config

__all__ = ["ABLATED", "ORACLE_STAGES", "ablation_configs", "run_ablation"]

ABLATED = ("perception", "localization", "planning")
"""The stages the ablation swaps between learned and oracle."""
ORACLE_STAGES: dict[str, dict[str, Any]] = {"perception": {"name": "oracle"}, "localization": {"name": "oracle"},
                                            "planning": {"name": "expert"}}
"""Each ablated stage's oracle (the expert is the planner with privileged-quality inputs)."""


def ablation_configs(learned: str | Path | dict | StackConfig = "stack/learned.yaml",
                     stages: tuple[str, ...] = ABLATED, only: tuple[str, ...] = (),
                     expert: Mapping[str, Any] | None = None) -> list[tuple[str, StackConfig]]:
    """(name, stack config) of every mix: ``oracle``, each stage of ``stages`` learned alone, each pair, ...,
    ``all learned``. The env, control, BEV assembly and run sections are the learned config's. ``only``: just
    the mixes of these names (a table run in parts); a name that is no mix is a ``ValueError`` listing them.
    ``expert``: settings of the expert planner wherever it stands in for the learned planner (e.g.
    ``light_stop_margin_m``: a camera that must keep the light in view to see it turn green needs the ego to
    wait before the line); a bad key is the planner config's own error."""
    unknown = sorted(set(stages) - set(ABLATED))
    if unknown or not stages:
        raise ValueError(f"ablation stages must be a non-empty subset of {list(ABLATED)}, got {list(stages)}")
    if only:
        every = [name for name, _ in _mixes(load_stack_config(learned), stages, expert)]
        missing = [name for name in only if name not in every]
        if missing:
            raise ValueError(f"no ablation mix named {missing}; the mixes are {every}")
        return [(name, config) for name, config in ablation_configs(learned, stages, (), expert) if name in only]
    return _mixes(load_stack_config(learned), stages, expert)


def _mixes(base: StackConfig, stages: tuple[str, ...], expert: Mapping[str, Any] | None = None
           ) -> list[tuple[str, StackConfig]]:
    oracles = {**ORACLE_STAGES, "planning": {**ORACLE_STAGES["planning"], **dict(expert or {})}}
    out = []
    for size in range(len(stages) + 1):
        for chosen in itertools.combinations(stages, size):
            data = base.model_dump()
            for stage in ABLATED:
                if stage not in chosen:
                    data[stage] = dict(oracles[stage])
            name = "oracle" if not chosen else "all learned" if len(chosen) == len(ABLATED) else "+".join(chosen)
            out.append((name, load_stack_config(data)))
    return out


def _row(name: str, config: StackConfig, result: dict[str, Any]) -> dict[str, Any]:
    latency = result.get("latency_ms", {})
    return {"name": name, "stages": {stage: getattr(config, stage)["name"] for stage in ABLATED},
            "driving_score": result["driving_score"], "route_completion": result["route_completion"],
            "infraction_penalty": result["infraction_penalty"], "km_driven": result["km_driven"],
            "infractions_per_km": result["infractions_per_km"], "termination_counts": result["termination_counts"],
            "latency_ms_p50": {key: value["p50"] for key, value in latency.items()},
            "routes": [{"route_id": r["route_id"], "driving_score": r["driving_score"],
                        "termination": r["termination"], "steps": r["steps"],
                        "infractions": {kind: n for kind, n in r["infractions"].items() if n},
                        "min_speed_percent": r.get("min_speed_percent", [])}
                       for r in result.get("routes", [])]}


def run_ablation(routes: str | None, map_name: str | None = None, learned: str | Path | dict = "stack/learned.yaml",
                 stages: tuple[str, ...] = ABLATED, route_ids: tuple[str, ...] = (), seed: int = 0,
                 traffic: Mapping[str, int] | None = None,
                 progress: Callable[[str, int, int], None] | None = None, ray: str | None = None,
                 only: tuple[str, ...] = (), expert: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Drive every mix of :func:`ablation_configs` (or ``only`` those named) over ``routes``; the table
    (``rows``) and the setting. ``ray``: drive every (mix, route) pair as a Ray task (``local[:N]``, ``auto``
    or a cluster address)."""
    from av_stack.runner import evaluate_driving

    mixes = ablation_configs(learned, stages, only, expert)
    if ray is not None:
        from av_stack.distributed import check_ray_option

        check_ray_option(ray)
        return _run_distributed(mixes, routes, map_name, learned, route_ids, seed, traffic, progress, ray, expert)
    rows = []
    with tempfile.TemporaryDirectory(prefix="avsim-ablation-") as scratch:
        for k, (name, config) in enumerate(mixes):
            if progress is not None:
                progress(name, k, len(mixes))
            path = Path(scratch) / f"mix{k}.yaml"
            path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
            result = evaluate_driving(str(path), routes, map_name, route_ids, None, None, seed, traffic)
            rows.append(_row(name, config, result))
            setting = {"route_set": result.get("route_set"), "map": result.get("map"), "seed": seed,
                       "traffic": result.get("traffic")}
    if progress is not None:
        progress("done", len(mixes), len(mixes))
    return {"evaluation": "stack-ablation", **setting, "learned": str(learned), "expert": dict(expert or {}),
            "rows": rows}


def _run_distributed(mixes: list[tuple[str, StackConfig]], routes: str | None, map_name: str | None,
                     learned: str | Path | dict, route_ids: tuple[str, ...], seed: int,
                     traffic: Mapping[str, int] | None, progress: Callable[[str, int, int], None] | None,
                     ray: str, expert: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`run_ablation` with every (mix, route) pair a Ray task, all mixes in one batch."""
    import dataclasses
    import json
    import time

    from av_stack.distributed import run_jobs
    from av_stack.runner import DrivingPlan, driving_result, drive_job, plan_driving

    plans: list[DrivingPlan] = []
    by_env: dict[str, DrivingPlan] = {}  # the mixes share the learned config's env: plan (build) it once
    for name, config in mixes:
        key = json.dumps(config.env, sort_keys=True, default=str)
        if key not in by_env:
            by_env[key] = plan_driving(name, routes, map_name, route_ids, None, None, seed, traffic, stack=config)
        plan = by_env[key]
        plans.append(dataclasses.replace(
            plan, agent=name, stages={stage: str(getattr(config, stage)["name"]) for stage in plan.stages or {}},
            jobs=tuple(dataclasses.replace(job, stack=config) for job in plan.jobs)))
    jobs = [job for plan in plans for job in plan.jobs]
    done = 0

    def finished(index: int, output: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(f"{done}/{len(jobs)} routes", done, len(jobs))

    if progress is not None:
        progress(f"0/{len(jobs)} routes", 0, len(jobs))
    start = time.perf_counter()
    outputs = run_jobs(drive_job, jobs, ray, on_result=finished)
    wall_s = time.perf_counter() - start
    rows, first = [], 0
    for (name, config), plan in zip(mixes, plans):
        result = driving_result(plan, outputs[first:first + len(plan.jobs)], wall_s)
        first += len(plan.jobs)
        rows.append(_row(name, config, result))
    plan = plans[-1]
    return {"evaluation": "stack-ablation", "route_set": plan.route_set, "map": plan.map, "seed": seed,
            "traffic": plan.traffic, "learned": str(learned), "expert": dict(expert or {}), "rows": rows}
