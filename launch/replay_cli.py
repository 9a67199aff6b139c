"""``avsim replay``: replay a run log open loop through one stage, or closed loop with a new agent.

Open loop (:mod:`av_stack.replay.open_loop`)::

    avsim replay outputs/run/run.mcap --stage perception --json
    avsim replay outputs/run/run.mcap --stage localization --name oracle
    avsim replay outputs/run/run.mcap --stage perception --config configs/stack/oracle.yaml

feeds the logged sensor frames to the stage (``--name``: an implementation
with its default keys; ``--config``: the stage's section of a stack config;
neither: the section the logged run used) and scores it against the logged
ground truth.

Closed loop (:mod:`av_stack.replay.closed_loop`)::

    avsim replay outputs/run/run.mcap --closed-loop --agent expert [--reactive] --json

re-drives the logged routes with the agent on the map rebuilt from the log,
the other actors on their logged trajectories (``--reactive``: vehicles on the
simulator's traffic model), with ``avsim eval driving``'s scores.

``avsim replay --update-references`` rewrites the process-replay references
(:mod:`av_stack.logs.regression`) of the committed regression log (or of LOG:
then into LOG's folder, ``reference/``).

``--json`` prints one JSON object (the result) as the last line. A missing
log, a file that is not an avsim MCAP log, an unknown stage or implementation
each give one error line and exit status 2. A log cut part-way (a killed
run) is replayed and scored as far as it was read: a warning line names the
cut, the result has ``complete: false``, and the exit status is 0.

The command function is :func:`replay` (registered on the ``avsim`` app by
``launch.cli``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from launch.errors import console, error_text as _error_text, fail as _fail

REPLAY_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError, KeyError)
"""What a replay reports as one error line (log, config, stage, route, map and spawn errors are all of these)."""




def _section(stage: str, config: str | None, name: str | None) -> dict[str, Any] | None:
    """The stage section an open-loop replay builds (None: the logged run's)."""
    if config and name:
        raise ValueError("give --config or --name, not both")
    if name:
        return {"name": name}
    if config:
        from av_stack.replay.open_loop import check_stage
        from av_stack.stack import load_stack_config

        return dict(getattr(load_stack_config(config), check_stage(stage)))
    return None


def _print_open_loop(result: dict[str, Any]) -> None:
    m = result["metrics"]
    console.print(f"{result['stage']} ({result['implementation']}) on {result['frames']} frames of "
                  f"{result['log']}", highlight=False)
    if result["stage"] == "perception":
        d = m["detection"]["all"]
        console.print(f"  detections: precision {d['precision']}  recall {d['recall']}  "
                      f"centre error {d['mean_center_error_m']} m", highlight=False)
        console.print(f"  BEV mIoU {m['bev_miou']}  light accuracy {m['light_accuracy']}", highlight=False)
    else:
        p, y = m["position_error_m"], m["yaw_error_deg"]
        console.print(f"  position error mean {p['mean']} m  p95 {p['p95']} m; yaw error mean {y['mean']} deg  "
                      f"p95 {y['p95']} deg", highlight=False)


def _print_closed_loop(result: dict[str, Any]) -> None:
    stats = {r["route_id"]: r for r in result["replay"]["routes"]}
    for record in result["routes"]:
        s = stats.get(record["route_id"], {})
        console.print(f"{record['route_id']:>22}  DS {record['driving_score']:6.2f}  "
                      f"RC {record['route_completion']:6.2f}  IP {record['infraction_penalty']:.3f}  {record['termination']}  ({s.get('actors', 0)} logged "
                      f"actors, ego {(s.get('ego_divergence_m') or {}).get('max')} m from the log at most)",
                      highlight=False)
    g = result["global"] or {}
    if g:
        console.print(f"{'global':>22}  DS {g['driving_score']:6.2f}  RC {g['route_completion']:6.2f}  "
                      f"IP {g['infraction_penalty']:.3f}", highlight=False)


def replay(
    log: Path | None = typer.Argument(None, help="The run log (run.mcap of an `avsim run`)."),
    stage: str | None = typer.Option(None, "--stage", help="Open loop: the stage to replay (perception or "
                                     "localization)."),
    name: str | None = typer.Option(None, "--name", help="Open loop: the stage implementation by name (e.g. "
                                    "oracle), with its default keys."),
    config: str | None = typer.Option(None, "--config", help="Open loop: a stack config (path or shipped name) "
                                      "whose stage section is replayed. Closed loop: the agent env's base."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Open loop: every frame the stack saw, not only "
                                    "those with recorded sensor data."),
    closed_loop: bool = typer.Option(False, "--closed-loop", help="Re-drive the logged routes with --agent."),
    agent: str = typer.Option("expert", "--agent", help="Closed loop: the agent, as `avsim eval driving --agent` "
                              "takes it (a planner such as expert, a stack config, random, policy:<zip>)."),
    reactive: bool = typer.Option(False, "--reactive", help="Closed loop: other vehicles on the simulator's traffic "
                                  "model from their logged states (default: on their logged trajectories)."),
    route: list[str] = typer.Option(None, "--route", help="Closed loop: a logged route id (repeatable; default: "
                                    "all)."),
    max_ticks: int | None = typer.Option(None, "--max-ticks", min=1, help="Closed loop: end each route after "
                                         "this many ticks (default: the route's time budget)."),
    observation: str | None = typer.Option(None, help="Closed loop: override the agent env's observation mode "
                                           "(bev, state or sensors)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Closed loop: episode seed of the first route."),
    update_references: bool = typer.Option(False, "--update-references", help="Rewrite the process-replay "
                                           "reference outputs of the regression log (LOG, default the "
                                           "committed one) and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Replay a run log: one stage open loop against the logged ground truth, or a new agent closed loop."""
    if update_references:
        from av_stack.logs.regression import update

        try:
            written = update(log, None if log is None else log.parent / "reference")
        except REPLAY_ERRORS as exc:
            _fail(_error_text(exc))
            return
        for path in written:
            console.print(f"wrote {path}", highlight=False)
        if as_json:
            print(json.dumps({"references": [str(p) for p in written]}))
        return
    if log is None:
        _fail("give the run log to replay (LOG)")
        return
    if closed_loop == (stage is not None):
        _fail("give --stage perception|localization (open loop) or --closed-loop (with --agent), one of them")
        return
    try:
        if closed_loop:
            if name:
                raise ValueError("--name picks an open-loop stage; the closed loop takes --agent")
            from av_stack.replay.closed_loop import replay_closed_loop
            from av_stack.runner import ProgressBar, progress_bar

            with progress_bar(console) as progress:
                result = replay_closed_loop(log, agent, reactive=reactive, route_ids=route or (), seed=seed,
                                            max_ticks=max_ticks, config=config, observation=observation,
                                            observers=lambda n: [ProgressBar(progress, n)])
            error = result["replay"]["error"]
        else:
            from av_stack.replay.open_loop import check_stage, replay_open_loop

            check_stage(stage)
            result = replay_open_loop(log, stage, _section(stage, config, name), all_frames=all_frames)
            error = result["error"]
    except REPLAY_ERRORS as exc:
        _fail(_error_text(exc))
        return
    if error:
        console.print(f"[yellow]warning:[/] {error}; the replay covers what was read before it", soft_wrap=True,
                      highlight=False)
    if closed_loop:
        _print_closed_loop(result)
    else:
        _print_open_loop(result)
    if as_json:
        print(json.dumps(result))
