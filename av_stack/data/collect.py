"""Collect a driving dataset: the privileged expert drives in closed loop with noise on its executed control,
every frame recorded into MCAP run logs, one log per (town, traffic, scenarios, seed) chunk.

>>> collect(load_collect_config("collect/small_mix.yaml"), "data/small_mix")

- *The drive*: :func:`av_stack.bridge.expert_agent` (oracle perception and localization, expert planner,
  Stanley) wrapped in :class:`~av_stack.data.noise.NoisyAgent`, on the embedded simulator with the config's
  sensor suite (default ``configs/sensors/default.yaml``), observation modes ``sensors`` + ``bev`` and the
  privileged ground truth. Routes: ``random:N`` on the town with the log's seed. With ``drift`` enabled the
  expert is handed a pose moved across its heading (:class:`~av_stack.data.noise.DriftedLocalization`): the car
  drives off the lane centre (pose-labelled data for the map-matching network).
- *The log*: :class:`~av_stack.logs.recorder.RunRecorder` with ``sensors_every`` (default 1: every frame),
  plus ``/collect/applied_control`` (the executed, noisy control, its noise, the clean one and the drift); the expert's
  clean control is ``/stack/control``. A log stops at its frame budget.
- *Resumable*: a log is written as ``NAME.mcap.part`` and renamed when finished, then the manifest
  (:mod:`av_stack.data.manifest`) is rewritten. Running the same command again skips finished logs and
  removes and redoes a half-written one; Ctrl-C loses nothing that finished.
- *Distributed* (``ray``: :mod:`av_stack.distributed`): each log is a Ray task that builds its own world,
  records into the worker's scratch folder and sends the finished file back; this process writes it into the
  dataset and rewrites the manifest as logs arrive, in the single-process order at the end. The logs and the
  manifest are those of a single-process collection (but for each log's ``seconds``); no shared file system
  is needed.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from av_stack.data.config import CollectConfig, TownSpec, TrafficSpec
from av_stack.data.manifest import (APPLIED_CONTROL, DatasetError, MANIFEST, empty_manifest, read_manifest,
                                    split_of, write_manifest)
from av_stack.data.noise import BRAKE, STEER, THROTTLE, NoisyAgent
from av_stack.runner import Observer, Tick, drive, env_spec, prepare_env
from sim.env.config import merge_overrides

PART = ".part"
FRAMES_PER_ROUTE_GUESS = 300
"""Frames a random route gives at least (short routes are 150-400 m at up to ~8 m/s): sizes the route set."""


@dataclass(frozen=True)
class LogJob:
    """One log to collect: a town, its traffic and scenarios, a seed and a frame budget."""

    town: TownSpec
    traffic: TrafficSpec
    scenarios: tuple[str, ...]
    seed: int
    frames: int

    @property
    def file(self) -> str:
        """The log's file name (unique per setting and seed)."""
        scenarios = "-".join(self.scenarios) if self.scenarios else "none"
        name = f"{self.town.label}_v{self.traffic.vehicles}w{self.traffic.walkers}_{scenarios}_seed{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) + ".mcap"

    def settings(self, config: CollectConfig) -> dict[str, Any]:
        """What determines the log's contents (compared when a collection resumes)."""
        return {"town": self.town.model_dump(mode="json"), "traffic": self.traffic.model_dump(),
                "scenarios": list(self.scenarios), "seed": self.seed, "frames": self.frames,
                "sensors": config.sensors, "sensors_every": config.sensors_every,
                "noise": config.noise.model_dump(mode="json"), "env": config.env,
                **({"drift": config.drift.model_dump(mode="json")} if config.drift.enabled else {})}


def plan_jobs(config: CollectConfig) -> list[LogJob]:
    """Every log of ``config``, in order: per town, traffic and scenarios, ``frames`` frames split into logs of
    ``frames_per_log`` with seeds ``seed``, ``seed + 1``, ..."""
    jobs = []
    chunks = math.ceil(config.frames / config.frames_per_log)
    for town in config.towns:
        for traffic in config.traffic:
            for scenarios in config.scenarios:
                for k in range(chunks):
                    frames = min(config.frames_per_log, config.frames - k * config.frames_per_log)
                    jobs.append(LogJob(town, traffic, tuple(scenarios), config.seed + k, frames))
    return jobs


def env_overrides(config: CollectConfig, job: LogJob) -> dict[str, Any]:
    """The env of a log: the town, seed, traffic, scenarios, sensor suite, ``sensors`` + ``bev`` observations
    with ground truth, ``vehicle_control`` actions (the expert may reverse), then the config's ``env`` keys."""
    from sim.resources import locate_config

    base = {"world": {**job.town.world_overrides(), "seed": job.seed},
            "traffic": job.traffic.model_dump(), "scenarios": list(job.scenarios),
            "sensors": str(locate_config(config.sensors, "sensors")),
            "observation": {"modes": ["sensors", "bev"], "ground_truth": True},
            "action": {"mode": "vehicle_control"},
            # A crash ends the route (no frames of pushing a wreck); a car stuck for a minute too.
            "episode": {"terminate_on": ["collision", "route_deviation", "blocked"], "blocked_s": 60.0}}
    return merge_overrides(base, config.env)


# ---------------------------------------------------------------------------------------------- observers
class AppliedControlLog(Observer):
    """Writes ``/collect/applied_control`` at the time of the frame the agent acted on. It must run before the
    :class:`RunRecorder`'s tick: that one ends with the world of the next time, and the log reader groups
    messages by consecutive time stamps."""

    def __init__(self, agent: NoisyAgent, writer) -> None:
        self.agent, self.writer = agent, writer
        self.noisy_ticks = 0

    def tick(self, tick: Tick) -> None:
        """Log the applied control of this tick."""
        a, c, n = self.agent.applied, self.agent.clean, self.agent.noise
        frame = self.agent.frame
        self.noisy_ticks += int(n.active)
        self.writer.write_json(APPLIED_CONTROL, "AppliedControl", {
            "frame": frame.frame, "throttle": float(a[THROTTLE]), "steer": float(a[STEER]), "brake": float(a[BRAKE]),
            "reverse": bool(a[3] > 0.5) if len(a) > 3 else False,
            "clean": {"throttle": float(c[THROTTLE]), "steer": float(c[STEER]), "brake": float(c[BRAKE])},
            "noise": {"active": n.active, "steer": n.steer, "throttle": n.throttle},
            "drift_m": self.agent.drift_m}, frame.timestamp_s)


class _BudgetReached(Exception):
    """Raised by :class:`FrameBudget` to end the drive at the log's frame budget."""


class FrameBudget(Observer):
    """Counts ticks and recorded sensor frames, advances the progress bar, ends the drive at ``frames``."""

    def __init__(self, frames: int, sensors_every: int, progress=None, task=None) -> None:
        self.frames, self.every = frames, sensors_every
        self.progress, self.task = progress, task
        self.ticks = self.samples = self._in_route = 0
        self.routes: list[str] = []

    def route_started(self, index: int, route_id: str, env) -> None:
        """A route starts: the recorder's sensor stride restarts too."""
        self._in_route = 0
        self.routes.append(route_id)

    def tick(self, tick: Tick) -> None:
        """One more frame; stop at the budget."""
        self.samples += int(self._in_route % self.every == 0)
        self._in_route += 1
        self.ticks += 1
        if self.progress is not None:
            self.progress.advance(self.task)
        if self.ticks >= self.frames:
            raise _BudgetReached


# ---------------------------------------------------------------------------------------------- collection
def _finished(manifest: dict[str, Any], out: Path) -> dict[str, dict[str, Any]]:
    """The manifest's logs whose file is there, by file name."""
    return {log["file"]: log for log in manifest["logs"] if (out / log["file"]).is_file()}


def collect_log(job: LogJob, config: CollectConfig, out: Path, split: str, progress=None, task=None
                ) -> dict[str, Any]:
    """Drive and record one log to ``out/job.file`` (through ``.part``); its manifest entry."""
    from av_stack.bridge import expert_agent
    from av_stack.logs.config import RecordConfig
    from av_stack.logs.recorder import RunRecorder

    start = time.perf_counter()
    routes = config.routes_per_log or min(1000, math.ceil(job.frames / FRAMES_PER_ROUTE_GUESS) + 1)
    overrides = env_overrides(config, job)
    with tempfile.TemporaryDirectory(prefix="avsim-collect-") as scratch:
        env = prepare_env(env_spec({}, f"collect {job.file}"), f"random:{routes}", None, job.seed, Path(scratch),
                          overrides)
    part = out / (job.file + PART)
    recorder = None
    try:
        agent = NoisyAgent(expert_agent(), config.noise, job.seed, config.drift)
        record = RecordConfig(sensors_every=config.sensors_every, jpeg_quality=config.jpeg_quality,
                              compression=config.compression)
        run_config = {"collect": config.model_dump(mode="json"), "log": job.settings(config), "env": overrides}
        recorder = RunRecorder(part, env, agent.agent, run_config, record)
        applied = AppliedControlLog(agent, recorder.writer)
        budget = FrameBudget(job.frames, config.sensors_every, progress, task)
        try:
            drive(env, agent, None, job.seed, [applied, recorder, budget])
        except _BudgetReached:
            pass
        recorder.close()
        os.replace(part, out / job.file)
        return {"file": job.file, "town": job.town.label, "map": env.world.source.name, "split": split,
                "seed": job.seed, "frames": budget.ticks, "samples": budget.samples,
                "traffic": job.traffic.model_dump(), "scenarios": list(job.scenarios), "routes": budget.routes,
                "noise_share": round(applied.noisy_ticks / max(budget.ticks, 1), 4),
                "bytes": (out / job.file).stat().st_size, "seconds": round(time.perf_counter() - start, 2),
                "settings": job.settings(config)}
    finally:
        if recorder is not None:
            recorder.close()
        env.close()


def check_towns(config: CollectConfig) -> None:
    """``MapLoadError`` naming the first town whose map is not a shipped town or a readable .xodr file."""
    from sim.maps.loader import resolve_map

    for town in config.towns:
        if town.map is not None:
            resolve_map(town.map)


@dataclass(frozen=True)
class RemoteLog:
    """One log for a worker (:func:`collect_remote`): the job, the collection config and the log's split."""

    job: LogJob
    config: CollectConfig
    split: str


def collect_remote(log: RemoteLog) -> tuple[dict[str, Any], bytes]:
    """Collect one log into a scratch folder (on a Ray worker); its manifest entry and the file's bytes."""
    with tempfile.TemporaryDirectory(prefix="avsim-collect-log-") as scratch:
        entry = collect_log(log.job, log.config, Path(scratch), log.split)
        return entry, (Path(scratch) / log.job.file).read_bytes()


def collect(config: CollectConfig, out: str | Path, console=None, show_progress: bool = True,
            ray: str | None = None) -> dict[str, Any]:
    """Collect every log of ``config`` into ``out`` that is not there yet (see the module docstring); the
    summary: dataset directory, logs, frames, new and skipped logs, seconds. ``ray``: one Ray task per log
    (``local[:N]``, ``auto`` or a cluster address)."""
    from rich.console import Console

    if ray is not None:
        from av_stack.distributed import check_ray_option

        check_ray_option(ray)
    out = Path(out)
    start = time.perf_counter()
    jobs = plan_jobs(config)
    check_towns(config)  # a wrong map name fails before anything is written
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(out) if (out / MANIFEST).exists() else empty_manifest({})
    manifest["config"] = config.model_dump(mode="json")
    finished = _finished(manifest, out)
    manifest["logs"] = list(finished.values())  # entries whose file was deleted are redone
    for job in jobs:
        done = finished.get(job.file)
        if done is not None and done.get("settings") != job.settings(config):
            raise DatasetError(f"{out / job.file} was collected with other settings than this config asks "
                               "for; collect into a new directory or delete that log")
    todo = [job for job in jobs if job.file not in finished]
    new = 0
    console = console or Console(stderr=True)
    with _progress(console, show_progress) as progress:
        task = progress.add_task("collect", total=sum(j.frames for j in jobs),
                                 completed=sum(j.frames for j in jobs if j.file in finished))
        if ray is not None and todo:
            new = _collect_distributed(todo, config, out, manifest, ray, progress, task)
            todo = []
        for job in todo:
            for stale in (out / (job.file + PART), out / job.file):  # a half-written log: redo it
                stale.unlink(missing_ok=True)
            progress.update(task, description=job.file[:40])
            entry = collect_log(job, config, out, split_of(job.town.label, config.split), progress, task)
            manifest["logs"].append(entry)
            write_manifest(out, manifest)
            new += 1
    if not new:
        write_manifest(out, manifest)
    logs = manifest["logs"]
    return {"dataset": str(out), "logs": len(logs), "new_logs": new, "skipped_logs": len(jobs) - new,
            "frames": sum(log["frames"] for log in logs),
            "splits": {s: sum(1 for log in logs if log["split"] == s) for s in ("train", "val", "test")},
            "seconds": round(time.perf_counter() - start, 2)}


def _collect_distributed(todo: list[LogJob], config: CollectConfig, out: Path, manifest: dict[str, Any], ray: str,
                         progress, task) -> int:
    """Collect the logs ``todo`` as Ray tasks into ``out``, adding them to ``manifest`` (rewritten as each
    arrives, in job order); the number of logs collected."""
    from av_stack.distributed import run_jobs

    before = list(manifest["logs"])
    entries: dict[int, dict[str, Any]] = {}
    for job in todo:
        for stale in (out / (job.file + PART), out / job.file):  # a half-written log: redo it
            stale.unlink(missing_ok=True)
    progress.update(task, description=f"{len(todo)} logs on Ray")

    def arrived(index: int, result: tuple[dict[str, Any], bytes]) -> None:
        entry, data = result
        part = out / (entry["file"] + PART)
        part.write_bytes(data)
        os.replace(part, out / entry["file"])
        entries[index] = entry
        manifest["logs"] = before + [entries[k] for k in sorted(entries)]
        write_manifest(out, manifest)
        progress.advance(task, todo[index].frames)

    jobs = [RemoteLog(job, config, split_of(job.town.label, config.split)) for job in todo]
    run_jobs(collect_remote, jobs, ray, on_result=arrived)
    return len(todo)


class _NoProgress:
    """A stand-in for a rich Progress when the bar is off."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, *args, **kwargs) -> None:
        return None

    def update(self, *args, **kwargs) -> None:
        return None


def _progress(console, show: bool):
    """A rich progress bar over frames (or a silent stand-in)."""
    if not show:
        return _NoProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("frames"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
