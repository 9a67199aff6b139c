"""Open-loop replay: feed a log's sensor frames to one perception or localization stage and score it against the
logged ground truth (:mod:`av_stack.replay.metrics`).

>>> result = replay_open_loop("outputs/run/run.mcap", "perception", {"name": "oracle"})
>>> result["metrics"]["detection"]["all"]["recall"]

The stage is built from its registry like :meth:`av_stack.stack.Stack.from_config`
builds it: a section ``{name: ..., **keys}`` (default: the section the logged
run used, from the log's attached config). It gets the logged route's
:class:`~av_stack.messages.Mission` (the map rebuilt from the log) at each
route's start, then, in log order, every frame whose sensors were recorded
(every ``record.sensors_every``-th frame: sensor data, the privileged BEV and
the boxes), or every frame the stack saw with ``all_frames`` (the ground
truth and ego signals are logged every tick; sensor data only on recorded
frames).

A log that is cut or corrupt part-way (a run that was killed) is scored on
what was read before the damage: the result then has ``complete: false`` and
``error`` holds the reader's message naming the file and the last good time.
A missing file, a file that is not an avsim MCAP log, an unknown stage or
implementation name raise one clear error before anything is scored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.logs import topics as T
from av_stack.logs.reader import LogError, LogReader, LoggedFrame
from av_stack.replay.logged import ReplayError, log_map, mission_of, open_log, stage_frames
from av_stack.replay.metrics import DEFAULT_RANGE_M, SCORES, LocalizationScore, PerceptionScore

OPEN_LOOP_STAGES = tuple(SCORES)
"""The stages open-loop replay scores: perception and localization."""


def check_stage(stage: str) -> str:
    """``stage`` if open-loop replay scores it; :class:`ReplayError` listing the ones it does."""
    if stage not in OPEN_LOOP_STAGES:
        raise ReplayError(f"open-loop replay scores the stages {', '.join(OPEN_LOOP_STAGES)}; got {stage!r}")
    return stage


def stage_section(log: LogReader, stage: str, section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stage section to build: ``section``, else the logged run's own (from its attached config), else the
    oracle."""
    if section is not None:
        return dict(section)
    logged = log.config.get(stage)
    return dict(logged) if isinstance(logged, Mapping) and "name" in logged else {"name": "oracle"}


def build_stage(stage: str, section: Mapping[str, Any]):
    """The stage implementation a section names, from the stage's registry; ``StageConfigError`` (one line
    listing the valid names) for an unknown name or key."""
    from av_stack.stack import REGISTRIES

    return REGISTRIES[check_stage(stage)].build(section, stage)


def is_recorded(frame: LoggedFrame) -> bool:
    """Whether the sensors were recorded at this frame (sensor data, or with an empty suite the BEV / boxes)."""
    return frame.has_sensor_data or T.GT_BEV in frame.messages or T.GT_BOXES in frame.messages


def replay_open_loop(log: str | Path | LogReader, stage: str, section: Mapping[str, Any] | None = None, *,
                     implementation: Any = None, all_frames: bool = False, range_m: float = DEFAULT_RANGE_M,
                     max_frames: int | None = None) -> dict[str, Any]:
    """Run one stage open loop over a log and score it (see the module docstring).

    ``section``: the stage's config section (``{"name": "oracle"}``); ``implementation``: an already built
    stage object instead (then ``section`` only labels it). ``range_m``: the detection scoring range.
    Returns ``{"replay": "open_loop", "stage", "implementation", "log", "frames", "routes", "complete",
    "error", "metrics", "latency_ms"}``.
    """
    check_stage(stage)
    reader = open_log(log)
    section = stage_section(reader, stage, section)
    impl = implementation if implementation is not None else build_stage(stage, section)
    score: PerceptionScore | LocalizationScore = (PerceptionScore(range_m) if stage == "perception"
                                                  else LocalizationScore())
    the_map = None
    routes = frames = 0
    latency: list[float] = []
    error = None
    started = False
    try:
        for kind, logged in stage_frames(reader):
            if kind == "episode":
                the_map = the_map or log_map(reader)
                impl.reset(mission_of(reader, the_map, logged.messages[T.EPISODE],
                                      logged.messages.get(T.GT_WORLD)))
                routes += 1
                started = True
                continue
            if not started:
                raise ReplayError(f"{reader.path}: a sensor frame comes before any {T.EPISODE} record")
            if not (all_frames or is_recorded(logged)):
                continue
            if max_frames is not None and frames >= max_frames:
                break
            frame = logged.sensor_frame
            t0 = time.perf_counter()
            output = impl.step(frame)
            latency.append((time.perf_counter() - t0) * 1e3)
            score.add(frame, output)
            frames += 1
    except LogError as exc:
        if not started:
            raise
        error = str(exc)
    if frames == 0 and error is None:
        raise ReplayError(f"{reader.path} has no {'sensor' if all_frames else 'recorded sensor'} frames to replay"
                          + ("" if all_frames else " (all_frames replays every frame the stack saw)"))
    lat = np.asarray(latency) if latency else np.zeros(1)
    return {"replay": "open_loop", "stage": stage, "implementation": str(section.get("name")),
            "log": str(reader.path), "map": reader.map_name, "frames": frames, "routes": routes,
            "complete": error is None, "error": error, "metrics": score.result(),
            "latency_ms": {"mean": round(float(lat.mean()), 4), "p95": round(float(np.percentile(lat, 95)), 4)}}
