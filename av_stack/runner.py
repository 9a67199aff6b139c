"""The closed-loop runner: an AV stack drives routes through ``avsim/Driving-v0``; Leaderboard scores, per-stage
latency, a video.

``avsim run --config configs/stack/NAME.yaml --out DIR`` is :func:`run_stack`;
``avsim eval driving`` uses :func:`make_env`, :func:`drive` and the route sets
of :func:`route_set_overrides`.

- *The env*: a stack config's ``env`` section is ``base`` (an env config: a
  path or a shipped name such as ``env/leaderboard_town01.yaml``; left out:
  the env's defaults) plus overrides of any :class:`~sim.env.config.EnvConfig`
  key. :func:`make_env` builds it through Gymnasium's registry (the runner
  never imports a simulator backend).
- *Route sets*: a route file path, a shipped set by name (``town01``,
  ``town02``, ``town10hd``: ``configs/routes/<name>.yaml``), or ``random:N``:
  N routes drawn on the env's map with the generator behind ``avsim routes
  generate`` (seeded, any map, procedural towns included).
- *The loop* (:func:`drive`): each route once, route ``k`` with episode seed
  ``seed + k``, scored as ``sim.env.evaluation.evaluate`` scores it
  (:meth:`DrivingEnv.route_result`, :func:`sim.env.metrics.score_route` and
  :func:`~sim.env.metrics.aggregate`).
- *Outputs* of :func:`run_stack`: ``DIR/metrics.json`` (:func:`metrics_of`)
  and ``DIR/video.mp4`` (:mod:`av_stack.video`), also when the run stops
  early (then ``complete`` is false and ``error`` says why); nothing is
  written before the config, the env and the stack are built.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from av_stack.bridge import StackAgent, mission_of
from av_stack.files import write_text_atomically
from av_stack.stack import STAGES, Stack, StackConfig, load_stack_config
from sim.config import ConfigError
from sim.env import ENV_ID
from sim.env.config import WORLD_SHORTHANDS, EnvConfig, load_env_config, merge_overrides
from sim.env.metrics import aggregate, route_record
from sim.resources import locate_config, resolve_config, shipped_configs

DEFAULT_ENV = "env/leaderboard_town01.yaml"
"""The env of agents that are not stacks (random actions, an SB3 policy) unless another is given."""

MAX_RANDOM_ROUTES = 1000
"""Upper bound of N in a ``random:N`` route set."""

MAX_VIDEO_FRAMES = 3000
RUN_LOG = "run.mcap"
"""The video stops recording after this many frames (5 minutes at 10 frames/s), so it stays small."""


# ---------------------------------------------------------------------------------------------- the env
def _world_keys_inside(section: Mapping[str, Any]) -> dict[str, Any]:
    """``section`` with the top-level world shorthands (``map``, ``seed``, ...) moved into ``world``, so that
    overrides from several places merge without a shorthand/long-form clash."""
    section = dict(section)
    moved = {key: section.pop(key) for key in WORLD_SHORTHANDS if key in section}
    if moved:
        world = section.get("world") or {}
        if not isinstance(world, Mapping):
            raise ConfigError(f"world: expected a mapping, got {type(world).__name__}")
        section["world"] = {**world, **moved}
    return section


@dataclass(frozen=True)
class EnvSpec:
    """An env to build: the base env config file (``None``: the env's defaults) and the overrides on top;
    ``base_name`` is the base as the config or the user named it (a shipped name or a path)."""

    base: Path | None
    overrides: dict[str, Any]
    label: str = "env"
    base_name: str | None = None

    def load(self) -> EnvConfig:
        """The validated :class:`EnvConfig`; ``ConfigError`` naming ``label`` and the key."""
        try:
            return load_env_config(self.base, **self.overrides)
        except ConfigError as exc:
            raise ConfigError(f"{self.label}: {exc}") from None

    def with_overrides(self, overrides: Mapping[str, Any]) -> EnvSpec:
        """This spec with more overrides merged on top."""
        return EnvSpec(self.base, merge_overrides(self.overrides, _world_keys_inside(overrides)), self.label, self.base_name)

    def build(self):
        """The :class:`~sim.env.driving.DrivingEnv` (unwrapped), after validating the config."""
        self.load()
        env = gymnasium.make(ENV_ID, config=str(self.base) if self.base else None, **self.overrides)
        return env.unwrapped


def env_spec(section: Mapping[str, Any], label: str = "env", base: str | None = None) -> EnvSpec:
    """The :class:`EnvSpec` of an ``env`` section (``base`` plus overrides); ``base`` replaces the section's."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{label}: expected a mapping with 'base' and env config keys, got {section!r}")
    overrides = dict(section)
    name = overrides.pop("base", None)
    name = base or name
    if name is not None and not isinstance(name, (str, os.PathLike)):
        raise ConfigError(f"{label}: base must be an env config path or shipped name, got {name!r}")
    path = resolve_config(str(name), "env") if name is not None else None
    try:
        return EnvSpec(path, _world_keys_inside(overrides), label, str(name) if name is not None else None)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def stack_env_spec(config: StackConfig, label: str = "stack config", base: str | None = None) -> EnvSpec:
    """The :class:`EnvSpec` of a stack config's ``env`` section."""
    return env_spec(config.env, f"{label}: env", base)


def make_env(config: str | Path | dict | StackConfig, *, base: str | None = None, label: str | None = None,
             **overrides: Any):
    """The env a stack config describes (its ``env`` section, with ``base`` and ``overrides`` on top);
    ``ConfigError`` naming the config and the key for a bad section."""
    label = label or (str(config) if isinstance(config, (str, Path)) else "stack config")
    spec = stack_env_spec(load_stack_config(config), label, base)
    return spec.with_overrides(overrides).build()


# ---------------------------------------------------------------------------------------------- route sets
def named_route_sets() -> dict[str, str]:
    """The shipped route sets by name (``town01`` -> ``routes/town01.yaml``)."""
    return {Path(name).stem: name for name in shipped_configs("routes")}


def parse_random_routes(spec: str) -> int | None:
    """N of a ``random:N`` route set (None if ``spec`` is not one); ``ConfigError`` unless 1 <= N <= 1000."""
    if not spec.startswith("random:"):
        return None
    text = spec.split(":", 1)[1]
    if not re.fullmatch(r"\d+", text.strip()) or not 1 <= int(text) <= MAX_RANDOM_ROUTES:
        raise ConfigError(f"route set {spec!r}: random:N needs a whole number N from 1 to {MAX_RANDOM_ROUTES}")
    return int(text)


def _map_source(world):
    """The :class:`~sim.maps.loader.MapSource` of a world config (a shipped town, a file or a procedural town)."""
    from sim.maps.loader import PROCEDURAL, procedural_source, resolve_map

    return procedural_source(world.procedural) if world.map == PROCEDURAL else resolve_map(world.map)


def random_route_file(world, count: int, seed: int, path: Path) -> Path:
    """Write ``count`` seeded random routes on ``world``'s map (a :class:`~sim.config.WorldConfig`) to ``path``.

    The routes come from :func:`sim.scenarios.routes.generate_route_set` with the map's own classes
    (:func:`~sim.scenarios.routes.map_route_classes`): the first route short, then medium, long, short, ...
    """
    from sim.maps.lanes import build_lane_graph
    from sim.maps.loader import load_carla_map
    from sim.scenarios.routes import generate_route_set, map_route_classes, write_route_file

    source = _map_source(world)
    lanes = build_lane_graph(load_carla_map(source), source.xodr_text)
    classes = map_route_classes(lanes)
    names = list(classes)
    counts = [count // len(names) + (k < count % len(names)) for k in range(len(names))]
    by_class = [generate_route_set(lanes, source.name, seed=seed, per_class=n, classes={name: classes[name]},
                                   relax_turns=True) if n else [] for name, n in zip(names, counts)]
    ordered = [route for group in zip_longest(*by_class) for route in group if route is not None]
    write_route_file(path, source.name, ordered,
                     f"{count} random route{'s' if count != 1 else ''} on {source.name} (seed {seed}), drawn by "
                     "the av_stack runner (random:N).")
    return path


def route_set_overrides(spec: str, env: EnvConfig, seed: int, folder: Path, map_given: bool = False
                        ) -> dict[str, Any]:
    """Env overrides that make ``env`` run route set ``spec`` (see the module docstring).

    A ``random:N`` set is written to ``folder/routes.yaml``. A route file for a shipped town other than the
    env's map switches the map to that town unless ``map_given``. ``ConfigError`` for an unknown set.
    """
    from sim.maps.loader import shipped_town_names
    from sim.scenarios.routes import load_route_file

    count = parse_random_routes(spec)
    if count is not None:
        path = random_route_file(env.world, count, seed, Path(folder) / "routes.yaml")
        return {"routes": {"source": "file", "file": str(path), "ids": None}}
    named = named_route_sets()
    path = Path(spec)
    if not path.is_file():
        shipped = named.get(spec.lower())
        path = locate_config(shipped or spec, "routes")
        if not path.is_file():
            raise ConfigError(f"route set {spec!r} is not a route file, a shipped set ({', '.join(named)}) or "
                              f"random:N")
    overrides: dict[str, Any] = {"routes": {"source": "file", "file": str(path), "ids": None}}
    town = load_route_file(path).town
    shipped_towns = {name.lower(): name for name in shipped_town_names()}
    current = Path(env.world.map).stem.lower()
    if not map_given and town.lower() != current and town.lower() in shipped_towns:
        overrides["world"] = {"map": shipped_towns[town.lower()]}
    return overrides


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class Tick:
    """What a :func:`drive` observer sees after each env step."""

    route_index: int
    route_id: str
    step: int
    info: dict
    agent_ms: float
    env_ms: float


class Observer:
    """Hooks of :func:`drive` (all optional): a route starts, a tick, a route ends with its record."""

    def route_started(self, index: int, route_id: str, env) -> None:
        """After the env's reset and the agent's."""

    def tick(self, tick: Tick) -> None:
        """After every env step."""

    def route_finished(self, record: dict) -> None:
        """With the route's score record."""


class RouteLog:
    """The routes driven so far: their :class:`~sim.env.metrics.RouteResult` and score records."""

    def __init__(self) -> None:
        self.results: list = []
        self.records: list[dict] = []
        self.wall_s = 0.0

    def summary(self) -> dict[str, Any]:
        """``sim.env.evaluation.evaluate``'s result: per-route records, global scores, steps and speed."""
        steps = sum(r["steps"] for r in self.records)
        return {"routes": list(self.records),
                "global": aggregate(self.results).to_dict() if self.results else None,
                "episodes": len(self.results), "steps": steps, "wall_s": round(self.wall_s, 2),
                "steps_per_s": round(steps / max(self.wall_s, 1e-9), 1)}


def drive(env, agent, route_ids: Iterable[str] | None = None, seed: int = 0,
          observers: Iterable[Observer] = (), log: RouteLog | None = None) -> dict[str, Any]:
    """Run ``agent`` once on each route of ``env``'s route set, route ``k`` with seed ``seed + k``; the same
    result as ``sim.env.evaluation.evaluate``. ``log`` (given by the caller) keeps what finished if a route
    raises."""
    if not env.route_ids:
        raise ConfigError("driving a route set needs an env with routes.source: file")
    ids = list(route_ids or env.route_ids)
    observers = list(observers)
    log = log if log is not None else RouteLog()
    clock = time.perf_counter
    start = clock()
    try:
        for k, route_id in enumerate(ids):
            obs, _ = env.reset(seed=seed + k, options={"route_id": route_id})
            agent.reset(env)
            for observer in observers:
                observer.route_started(k, route_id, env)
            steps, done, info = 0, False, {}
            while not done:
                t0 = clock()
                action = agent(obs, env)
                t1 = clock()
                obs, _, terminated, truncated, info = env.step(action)
                t2 = clock()
                steps += 1
                done = terminated or truncated
                tick = Tick(k, route_id, steps, info, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
                for observer in observers:
                    observer.tick(tick)
            result = env.route_result(info["termination_reason"])
            record = route_record(result, steps)
            log.results.append(result)
            log.records.append(record)
            for observer in observers:
                observer.route_finished(record)
    finally:
        log.wall_s = clock() - start
    return log.summary()


# ---------------------------------------------------------------------------------------------- latency
def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return {"mean": math.nan, "p50": math.nan, "p95": math.nan}
    return {"mean": round(float(array.mean()), 4), "p50": round(float(np.percentile(array, 50)), 4),
            "p95": round(float(np.percentile(array, 95)), 4)}


class LatencyRecorder(Observer):
    """Per-tick wall times [ms]: each stage, ``bev_assembly`` (when the stack assembles its BEV), the ``stack``
    step as :meth:`Stack.step` times it, the stack's ``overhead`` (the stack agent's whole step as the runner
    times it, minus the stack step: building
    the :class:`SensorFrame` from the observation, the messages, the stage dispatch, the action) and the
    simulator (``env_step``: the env's step, scoring and observation included)."""

    KEYS = (*STAGES, "bev_assembly", "stack", "overhead", "env_step")

    def __init__(self, agent: StackAgent | None) -> None:
        self.agent = agent
        self.samples: dict[str, list[float]] = {key: [] for key in self.KEYS}

    def tick(self, tick: Tick) -> None:
        """Record this tick's times."""
        self.samples["env_step"].append(tick.env_ms)
        outputs = self.agent.outputs if self.agent is not None else None
        if outputs is None:
            return
        latency = outputs.latency_ms
        for stage in STAGES:
            self.samples[stage].append(latency[stage])
        self.samples["stack"].append(latency["stack"])
        if "bev_assembly" in latency:
            self.samples["bev_assembly"].append(latency["bev_assembly"])
        self.samples["overhead"].append(max(0.0, tick.agent_ms - latency["stack"]))

    def summary(self) -> dict[str, dict[str, float]]:
        """``{key: {mean, p50, p95}}`` in ms for the keys that have samples."""
        return {key: _stats(values) for key, values in self.samples.items() if values}


# ---------------------------------------------------------------------------------------------- video
class VideoRecorder(Observer):
    """Feeds :class:`av_stack.video.StackVideo` the stack agent's frame and outputs every tick; counts the
    time spent drawing and encoding."""

    def __init__(self, agent: StackAgent, video) -> None:
        self.agent, self.video = agent, video
        self.ms: list[float] = []

    def route_started(self, index: int, route_id: str, env) -> None:
        """Record each route's first tick; outline this route's ego."""
        self.video.new_route(mission_of(env).vehicle.extent_m)

    def tick(self, tick: Tick) -> None:
        """Maybe add this tick's frame."""
        if self.agent.frame is None or self.agent.outputs is None or self.video.full:
            return
        start = time.perf_counter()
        if self.video.add(self.agent.frame, self.agent.outputs, tick.route_id):
            self.ms.append((time.perf_counter() - start) * 1e3)


# ---------------------------------------------------------------------------------------------- progress
class ProgressBar(Observer):
    """A rich progress bar: routes done, and the current route's completion and ticks."""

    def __init__(self, progress, total_routes: int) -> None:
        self.progress = progress
        self.total = total_routes
        self.done = 0
        self.routes = progress.add_task(f"routes 0/{total_routes}", total=total_routes)
        self.route = progress.add_task("route", total=100.0)

    def route_started(self, index: int, route_id: str, env) -> None:
        """Reset the route bar."""
        self.progress.reset(self.route, total=100.0, description=route_id)

    def tick(self, tick: Tick) -> None:
        """Advance the route bar to the route completion."""
        completion = float(tick.info.get("route_completion", 0.0))
        self.progress.update(self.route, completed=100.0 * max(0.0, min(completion, 1.0)),
                             description=f"{tick.route_id} tick {tick.step}")

    def route_finished(self, record: dict) -> None:
        """One more route done."""
        self.done += 1
        self.progress.update(self.routes, advance=1, description=f"routes {self.done}/{self.total}")


def progress_bar(console):
    """The rich progress display that :class:`ProgressBar` draws on (transient: gone when done)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description:<34}"), BarColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


# ---------------------------------------------------------------------------------------------- metrics
def metrics_of(summary: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``metrics.json`` object of a :func:`drive` summary: the global Leaderboard scores at the top level
    (``driving_score``, ``route_completion``, ``infraction_penalty``, ``km_driven``, ``infractions_per_km`` by
    type, ``termination_counts``), then ``routes`` (per-route records), then ``extra``."""
    g = summary.get("global") or {}
    top = {key: g.get(key) for key in ("driving_score", "route_completion", "infraction_penalty", "km_driven",
                                       "infractions_per_km", "outside_route_lanes_km", "termination_counts")}
    return {**top, "num_routes": summary["episodes"], "routes": summary["routes"], "ticks": summary["steps"],
            "wall_s": summary["wall_s"], "ticks_per_s": summary["steps_per_s"], **extra}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, so that a reader never sees half a file."""
    write_text_atomically(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def _camera_of(env, camera: str | None, label: str) -> tuple[str | None, tuple[int, int] | None]:
    """The video's camera and its image size; ``ConfigError`` if the run names a camera the env lacks."""
    if not camera:
        return None, None
    suite = env.sensor_suite
    names = [spec.name for spec in suite] if suite is not None else []
    spec = next((s for s in suite or () if s.name == camera), None)
    if spec is None:
        have = f"the env's sensors are {', '.join(names)}" if names else \
            "the env has no sensors (add 'sensors' to env.observation.modes and set env.sensors)"
        raise ConfigError(f"{label}: run.camera {camera!r} is not a sensor of the env ({have}); "
                          "set run.camera: null for a video without a camera panel")
    if not spec.blueprint_id.startswith("sensor.camera."):
        raise ConfigError(f"{label}: run.camera {camera!r} is a {spec.blueprint_id}, not a camera")
    return camera, (int(spec.attributes["image_size_x"]), int(spec.attributes["image_size_y"]))


@dataclass(frozen=True)
class RunOptions:
    """What ``avsim run --config`` may change about a stack config's run: the route set (``routes``: see
    :func:`route_set_overrides`), route ids, the map, the seed, the video (``None``: the config's
    ``run.video``) and further env overrides."""

    routes: str | None = None
    route_ids: tuple[str, ...] = ()
    map: str | None = None
    seed: int = 0
    video: bool | None = None
    env_overrides: Mapping[str, Any] | None = None
    record: bool | None = None
    """Write the run log ``run.mcap`` (``None``: the config's ``record.enabled``)."""


def _float_clean(value: Any) -> Any:
    """NaN-free JSON: NaN and inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _float_clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_clean(v) for v in value]
    return value


def prepare_env(spec: EnvSpec, routes: str | None = None, map_name: str | None = None, seed: int = 0,
                folder: Path | None = None, extra: Mapping[str, Any] | None = None, route_ids: Iterable[str] = ()):
    """The env of ``spec`` with ``extra`` overrides, ``map_name``, the route set ``routes`` (a random set is
    written to ``folder``) and only the routes ``route_ids`` (any of the set's; default: the config's
    choice) on top."""
    return prepare_spec(spec, routes, map_name, seed, folder, extra, route_ids).build()


def prepare_spec(spec: EnvSpec, routes: str | None = None, map_name: str | None = None, seed: int = 0,
                 folder: Path | None = None, extra: Mapping[str, Any] | None = None, route_ids: Iterable[str] = ()
                 ) -> EnvSpec:
    """The :class:`EnvSpec` that :func:`prepare_env` builds."""
    overrides: dict[str, Any] = dict(extra or {})
    if map_name:
        overrides = merge_overrides(overrides, {"world": {"map": map_name}})
    spec = spec.with_overrides(overrides)
    if routes:
        if folder is None:
            raise ValueError("a route set needs a folder for its route file")
        spec = spec.with_overrides(route_set_overrides(routes, spec.load(), seed, folder, map_given=bool(map_name)))
    ids = tuple(route_ids)
    if ids:
        spec = spec.with_overrides({"routes": {"ids": ids}})
    return spec


def run_stack(config: str | Path | dict | StackConfig, out: str | Path, options: RunOptions = RunOptions(),
              console=None) -> dict[str, Any]:
    """Drive the stack of ``config`` over its route set in closed loop; write ``out/metrics.json`` and (if
    ``run.video``) ``out/video.mp4``; print a summary table on ``console``; return the metrics.

    Errors in the config, the env or the stages raise before anything is written (``ConfigError`` and the
    env's own errors, each naming what is wrong). An error during the drive is raised after the video is
    closed and ``metrics.json`` is written with the routes finished so far (``complete: false``).
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    label = str(config) if isinstance(config, (str, Path)) else "stack config"
    stack_config = load_stack_config(config)
    spec = stack_env_spec(stack_config, label)
    stack = Stack.from_config(stack_config)
    with tempfile.TemporaryDirectory(prefix="avsim-run-") as scratch:
        env = prepare_env(spec, options.routes, options.map, options.seed, Path(scratch), options.env_overrides,
                          options.route_ids)
        generated = Path(scratch) / "routes.yaml"
        route_file_text = generated.read_text() if generated.is_file() else None
    try:
        ids = list(env.route_ids)
        run = stack_config.run
        video_on = run.video if options.video is None else options.video
        camera, camera_size = _camera_of(env, run.camera, label) if video_on else (None, None)
        return _run(stack, stack_config, env, ids, Path(out), video_on, camera, camera_size, route_file_text,
                    options, label, spec.base_name, console)
    finally:
        env.close()


def _run(stack: Stack, stack_config: StackConfig, env, ids: list[str], out: Path, video_on: bool,
         camera: str | None, camera_size: tuple[int, int] | None, route_file_text: str | None,
         options: RunOptions, label: str, env_base: str | None, console) -> dict[str, Any]:
    """The drive of :func:`run_stack`, once everything is built."""
    from av_stack.bridge import bev_spec_of
    from av_stack.video import StackVideo

    out.mkdir(parents=True, exist_ok=True)
    if route_file_text is not None:
        (out / "routes.yaml").write_text(route_file_text)
    agent = StackAgent(stack)
    latency = LatencyRecorder(agent)
    observers: list[Observer] = [latency]
    video = recorder = None
    run = stack_config.run
    if video_on:
        fps = 1.0 / (env.world.dt_s * run.video_every)
        video = StackVideo(out / "video.mp4", bev_spec_of(env), camera, camera_size, fps=fps,
                           every=run.video_every, max_frames=MAX_VIDEO_FRAMES)
        recorder = VideoRecorder(agent, video)
        observers.append(recorder)
    run_log = None
    if stack_config.record.enabled if options.record is None else options.record:
        from av_stack.logs.recorder import RunRecorder

        run_log = RunRecorder(out / RUN_LOG, env, agent, stack_config.model_dump(mode="json"), stack_config.record)
        observers.append(run_log)
    log = RouteLog()
    error: BaseException | None = None
    try:
        with progress_bar(console) as progress:
            observers.append(ProgressBar(progress, len(ids)))
            drive(env, agent, ids, options.seed, observers, log)
    except BaseException as exc:  # also Ctrl-C: keep what was driven
        error = exc
        raise
    finally:
        if video is not None:
            video.close()
        if run_log is not None:
            run_log.close()
        summary = log.summary()
        video_info = None
        if video is not None:
            video_info = {"path": "video.mp4", "frames": video.frames_written, "every": run.video_every,
                          "fps": round(1.0 / (env.world.dt_s * run.video_every), 3), "size": list(video.size),
                          "camera": camera, "ms_per_frame": _stats(recorder.ms)}
        metrics = metrics_of(
            summary, complete=error is None and len(log.records) == len(ids),
            error=None if error is None else (str(error) or type(error).__name__),
            config=label, stack=stack.names, env=env_base, map=env.world.source.name, seed=options.seed,
            route_set=options.routes or env.config.routes.file, route_ids=ids,
            routes_file="routes.yaml" if route_file_text is not None else None,
            latency_ms=latency.summary(), video=video_info,
            log=None if run_log is None else {"path": RUN_LOG, "ticks": run_log.ticks,
                                              "bytes": (out / RUN_LOG).stat().st_size})
        _write_json(out / "metrics.json", _float_clean(metrics))
    print_summary(metrics, console)
    return metrics


def print_summary(metrics: dict[str, Any], console) -> None:
    """The per-route scores, the global scores and the per-stage latency as rich tables."""
    from rich.table import Table

    table = Table(title="Leaderboard 2.0 scores", title_justify="left")
    for column in ("route", "DS", "RC", "IP", "ticks", "termination"):
        table.add_column(column, justify="left" if column in ("route", "termination") else "right")
    for r in metrics["routes"]:
        table.add_row(r["route_id"], f"{r['driving_score']:.2f}", f"{r['route_completion']:.2f}",
                      f"{r['infraction_penalty']:.3f}", str(r["steps"]), r["termination"])
    if metrics.get("driving_score") is not None:
        table.add_row("[bold]global", f"[bold]{metrics['driving_score']:.2f}", f"{metrics['route_completion']:.2f}",
                      f"{metrics['infraction_penalty']:.3f}", str(metrics["ticks"]), "")
    console.print(table)
    latency = metrics.get("latency_ms") or {}
    if latency:
        lat = Table(title="Latency per tick [ms]", title_justify="left")
        for column in ("", "mean", "p50", "p95"):
            lat.add_column(column, justify="left" if not column else "right")
        for key, stats in latency.items():
            lat.add_row(key, *(f"{stats[s]:.3f}" if stats[s] is not None else "-" for s in ("mean", "p50", "p95")))
        console.print(lat)


# ---------------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class RouteJob:
    """Routes of a drive that one worker runs with its own env and agent (:func:`drive_job`): the env spec,
    the text of its route file (so a worker needs no file the driver wrote), the agent (``stack``: the stack
    config a stack agent runs), the routes, the first route's episode seed (route k of the job: ``seed + k``)
    and the agent's seed."""

    spec: EnvSpec
    route_file: str | None
    agent: str
    stack: StackConfig | None
    route_ids: tuple[str, ...]
    seed: int
    agent_seed: int


def drive_job(job: RouteJob) -> dict[str, Any]:
    """Run one :class:`RouteJob` in this process (a Ray task under ``--ray``): the routes' results (for
    :func:`~sim.env.metrics.aggregate`), score records, latency samples [ms] and wall time."""
    from av_stack.agents import make_agent

    with tempfile.TemporaryDirectory(prefix="avsim-job-") as scratch:
        spec = job.spec
        if job.route_file is not None:
            path = Path(scratch) / "routes.yaml"
            path.write_text(job.route_file)
            spec = spec.with_overrides({"routes": {"file": str(path)}})
        env = spec.build()
    try:
        agent = StackAgent(Stack.from_config(job.stack)) if job.stack is not None \
            else make_agent(job.agent, job.agent_seed)
        latency = LatencyRecorder(agent if job.stack is not None else None)
        log = RouteLog()
        drive(env, agent, job.route_ids, job.seed, [latency], log)
        return {"results": log.results, "records": log.records, "latency": latency.samples, "wall_s": log.wall_s}
    finally:
        env.close()


@dataclass(frozen=True)
class DrivingPlan:
    """A drive of ``avsim eval driving`` split into :class:`RouteJob` s (one per route; one for all routes
    when the agent carries state from route to route, as ``random``'s action sampler does), with what the
    result reports about the env (:func:`driving_result` puts the jobs' outputs together)."""

    agent: str
    stages: dict[str, str] | None
    env: str | None
    route_set: str | None
    map: str
    seed: int
    traffic: dict[str, Any]
    jobs: tuple[RouteJob, ...]


def _driving_spec(agent: str, routes: str | None, map_name: str | None, route_ids: Iterable[str],
                  config: str | None, observation: str | None, seed: int, traffic: Mapping[str, int] | None,
                  stack: StackConfig | None, folder: Path) -> tuple[EnvSpec, EnvSpec, StackConfig | None]:
    """(the env spec as configured, the prepared spec with the route set, the stack config or None)."""
    from av_stack.agents import is_stack_agent, stack_config_of

    overrides: dict[str, Any] = {"observation": {"modes": [observation]}} if observation else {}
    if traffic:
        overrides["traffic"] = dict(traffic)
    if stack is None and is_stack_agent(agent):
        stack = stack_config_of(agent)
    spec = (stack_env_spec(stack, f"agent {agent}", base=config) if stack is not None
            else env_spec({"base": config or DEFAULT_ENV}, f"env config {config or DEFAULT_ENV}"))
    return spec, prepare_spec(spec, routes, map_name, seed, folder, overrides, route_ids), stack


def plan_driving(agent: str = "expert", routes: str | None = None, map_name: str | None = None,
                 route_ids: Iterable[str] = (), config: str | None = None, observation: str | None = None,
                 seed: int = 0, traffic: Mapping[str, int] | None = None, stack: StackConfig | None = None
                 ) -> DrivingPlan:
    """The :class:`DrivingPlan` of :func:`evaluate_driving`'s arguments (``stack``: the stack config to run
    instead of the one ``agent`` names). Builds the env once to learn its routes and map."""
    from av_stack.agents import make_agent

    with tempfile.TemporaryDirectory(prefix="avsim-eval-") as scratch:
        spec, prepared, stack = _driving_spec(agent, routes, map_name, route_ids, config, observation, seed,
                                              traffic, stack, Path(scratch))
        env = prepared.build()
        route_file = Path(env.config.routes.file).read_text() if env.config.routes.file else None
    try:
        if stack is None:
            make_agent(agent, seed)  # a bad agent name or a missing checkpoint fails here, not on a worker
        ids = list(env.route_ids)
        common = dict(spec=prepared, route_file=route_file, agent=agent, stack=stack, agent_seed=seed)
        if agent == "random":  # its action sampler is seeded once and runs on from route to route
            jobs = (RouteJob(route_ids=tuple(ids), seed=seed, **common),)
        else:
            jobs = tuple(RouteJob(route_ids=(route_id,), seed=seed + k, **common) for k, route_id in enumerate(ids))
        stages = {name: str(getattr(stack, name)["name"]) for name in STAGES} if stack is not None else None
        return DrivingPlan(agent, stages, spec.base_name, routes or env.config.routes.file, env.world.source.name,
                           seed, env.config.traffic.model_dump(), jobs)
    finally:
        env.close()


def _result(agent: str, stages: dict[str, str] | None, env: str | None, route_set: str | None, map_name: str,
            seed: int, traffic: dict[str, Any], summary: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """The object ``avsim eval driving`` prints (the same for a local and a distributed drive)."""
    return {"evaluation": "leaderboard-2.0", "agent": agent,
            **metrics_of(summary, stack=stages, env=env, route_set=route_set, map=map_name, seed=seed,
                         traffic=traffic, latency_ms=latency),
            "global": summary["global"], "episodes": summary["episodes"], "steps": summary["steps"],
            "steps_per_s": summary["steps_per_s"]}


def driving_result(plan: DrivingPlan, outputs: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """:func:`evaluate_driving`'s result from the :func:`drive_job` outputs of ``plan.jobs`` (in job order):
    the routes' records in route order, the global scores aggregated over all routes as a single drive does,
    the latency over all ticks; ``wall_s`` is the whole drive's."""
    log = RouteLog()
    samples: dict[str, list[float]] = {}
    for output in outputs:
        log.results.extend(output["results"])
        log.records.extend(output["records"])
        for key, values in output["latency"].items():
            samples.setdefault(key, []).extend(values)
    log.wall_s = wall_s
    latency = {key: _stats(values) for key, values in samples.items() if values}
    return _result(plan.agent, plan.stages, plan.env, plan.route_set, plan.map, plan.seed, plan.traffic,
                   log.summary(), latency)


def evaluate_driving(agent: str = "expert", routes: str | None = None, map_name: str | None = None,
                     route_ids: Iterable[str] = (), config: str | None = None, observation: str | None = None,
                     seed: int = 0, traffic: Mapping[str, int] | None = None,
                     observers: Callable[[int], Iterable[Observer]] | None = None,
                     ray: str | None = None) -> dict[str, Any]:
    """What ``avsim eval driving`` runs: ``agent`` (a stack config, a planner with oracle stages, ``random``,
    ``policy:<zip>``) over a route set (``routes``: a file, a shipped set or ``random:N``) on ``map_name``,
    with ``traffic`` (``vehicles`` / ``walkers``) and the ``observation`` mode overridden if given; the result
    object (global Leaderboard scores at the top, per-route records, latency per stage). ``observers``: called
    with the number of routes, gives more per-tick observers (a progress bar).

    ``ray`` (``local[:N]``, ``auto`` or a cluster address; :mod:`av_stack.distributed`): each route is a Ray
    task that builds its own env and agent and drives the route with the episode seed the single-process
    drive gives it; the result is the single-process one but for the timing fields (``wall_s``,
    ``ticks_per_s``, ``steps_per_s``, ``latency_ms``). Observers then see only ``route_finished``."""
    if ray is not None:
        from av_stack.distributed import check_ray_option

        check_ray_option(ray)
        return _evaluate_distributed(plan_driving(agent, routes, map_name, route_ids, config, observation, seed,
                                                  traffic), observers, ray)
    from av_stack.agents import make_agent

    with tempfile.TemporaryDirectory(prefix="avsim-eval-") as scratch:
        spec, prepared, stack = _driving_spec(agent, routes, map_name, route_ids, config, observation, seed,
                                              traffic, None, Path(scratch))
        env = prepared.build()
    try:
        policy = make_agent(agent, seed)
        latency = LatencyRecorder(policy if stack is not None else None)
        ids = list(env.route_ids)
        extra = list(observers(len(ids))) if observers is not None else []
        summary = drive(env, policy, ids, seed, [latency, *extra])
        stages = {name: str(getattr(stack, name)["name"]) for name in STAGES} if stack is not None else None
        return _result(agent, stages, spec.base_name, routes or env.config.routes.file, env.world.source.name, seed,
                       env.config.traffic.model_dump(), summary, latency.summary())
    finally:
        env.close()


def _evaluate_distributed(plan: DrivingPlan, observers: Callable[[int], Iterable[Observer]] | None,
                          ray: str) -> dict[str, Any]:
    from av_stack.distributed import run_jobs

    extra = list(observers(sum(len(job.route_ids) for job in plan.jobs))) if observers is not None else []

    def finished(index: int, output: dict[str, Any]) -> None:
        for record in output["records"]:
            for observer in extra:
                observer.route_finished(record)

    start = time.perf_counter()
    outputs = run_jobs(drive_job, plan.jobs, ray, on_result=finished)
    return driving_result(plan, outputs, time.perf_counter() - start)
