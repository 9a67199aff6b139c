"""``avsim``: the command-line interface.

Commands: ``run --config STACK`` (an AV stack drives its route set in closed
loop: metrics.json and a video; without ``--config``, the autopilot demo),
``eval driving`` (an agent or a stack over a route set, Leaderboard scores),
``bench world`` / ``bench sensors`` / ``bench env`` (speed), ``map check`` /
``map info`` / ``map generate``, ``routes generate``, ``serve`` (the embedded
simulator behind CARLA 0.9.16's client-server protocol).
Every benchmark and evaluation command takes ``--json`` and then prints one
JSON object as its last line. A ``--config`` is a path or the name of a config
shipped with avsim (``env/default.yaml``, or ``default`` where the command
knows the kind), found relative to the installed package, never the current
directory (:mod:`sim.resources`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from av_stack.distributed import RAY_HELP
from launch.ablation_cli import eval_stack_ablation as _eval_stack_ablation
from launch.collect_cli import collect as _collect  # light modules: heavy imports inside the commands
from launch.errors import console, error_text as _error_text, fail as _fail, key_values
from launch.localization_cli import eval_localization as _eval_localization
from launch.localization_train_cli import train_localization as _train_localization
from launch.policy_cli import train_policy_command as _train_policy
from launch.prior_map_cli import build_prior as _build_prior
from launch.replay_cli import replay as _replay

app = typer.Typer(help="Autonomous-driving simulator: embedded CARLA-compatible world, env and AV stack.",
                  no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Speed benchmarks (results recorded under benchmarks/).", no_args_is_help=True)
map_app = typer.Typer(help="Inspect, validate and generate OpenDRIVE maps.", no_args_is_help=True)
routes_app = typer.Typer(help="Route sets for evaluation (shipped: configs/routes/*.yaml).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(map_app, name="map")
app.add_typer(routes_app, name="routes")
eval_app = typer.Typer(help="Evaluate agents: `avsim eval driving` (Leaderboard 2.0 scores over a route set).",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")
train_app = typer.Typer(help="Train learned stages: `avsim train perception`.", no_args_is_help=True)
app.add_typer(train_app, name="train")

app.command("collect")(_collect)
app.command("replay")(_replay)
eval_app.command("localization")(_eval_localization)
eval_app.command("stack-ablation")(_eval_stack_ablation)
map_app.command("build-prior")(_build_prior)
train_app.command("localization")(_train_localization)
train_app.command("policy")(_train_policy)



MAX_ACTORS = 5000
"""Upper bound of the ``--vehicles`` / ``--walkers`` options (beyond it memory, not the map, is the limit)."""


def _seed_option(default: int | None = 0, help: str = "Seed: the same seed gives the same result.") -> Any:
    """A ``--seed`` option, >= 0 (a negative one: Typer's usage error naming ``--seed``, exit 2)."""
    return typer.Option(default, "--seed", min=0, help=help)


class _OneLineWarnings:
    """Show Python warnings (e.g. an env that spawns no walkers on a map without sidewalks) as one console line."""

    def __enter__(self) -> None:
        import warnings

        self._saved = warnings.showwarning
        warnings.showwarning = lambda message, category, *args, **kwargs: console.print(
            f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)

    def __exit__(self, *exc_info: object) -> None:
        import warnings

        warnings.showwarning = self._saved


STACK_RUN_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError, KeyError)
"""What a stack run or an evaluation reports as one error line (config, route, map, spawn, sensor and stage
errors are all of these kinds)."""



@app.command()
def run(
    config: str | None = typer.Option(None, "--config", help="An AV stack config (configs/stack/NAME.yaml: a path "
                                      "or a shipped name such as oracle): drive the stack over its route set. "
                                      "Without it: the autopilot demo."),
    out: Path = typer.Option(Path("outputs/demo"), help="Folder for the metrics (or summary) and the video."),
    routes: str | None = typer.Option(None, "--routes", help="Stack run: the route set instead of the config's: a "
                                      "route file, a shipped set (town01, town02, town10hd) or random:N."),
    route: list[str] = typer.Option(None, "--route", help="Stack run: a route id to drive (repeatable; default: "
                                    "all of the route set)."),
    map_name: str | None = typer.Option(None, "--map", help="Shipped town name or path to an .xodr file (demo "
                                        "default: Town10HD; stack run: the config's map)."),
    vehicles: int | None = typer.Option(None, min=0, max=MAX_ACTORS,
                                        help="NPC vehicles (demo default: 30; stack run: the config's)."),
    walkers: int | None = typer.Option(None, min=0, max=MAX_ACTORS,
                                       help="Pedestrians (demo default: 20 where the map has sidewalks, else 0; "
                                            "stack run: the config's)."),
    seconds: float | None = typer.Option(None, min=0.05, max=86400.0,
                                         help="Demo only: simulated duration in seconds (default 30)."),
    seed: int = _seed_option(help="Seed: the same seed gives the same run (stack run: route k uses seed + k)."),
    video: bool | None = typer.Option(None, "--video/--no-video",
                                      help="Write the MP4 (default: on for the demo, the config's run.video for a "
                                           "stack run)."),
    record: bool | None = typer.Option(None, "--record/--no-record",
                                       help="Stack run: write the run log OUT/run.mcap (default: the config's "
                                            "record.enabled, on)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary (or metrics) as one JSON object last."),
) -> None:
    """Drive in closed loop and write a video.

    With ``--config``: an AV stack (perception, localization, planning,
    control) drives its route set; writes OUT/metrics.json (driving score,
    route completion, infraction penalty, infractions per km, per-route
    results, per-stage latency), OUT/video.mp4 (camera, ground-truth BEV
    and the stack's BEV side by side) and the run log OUT/run.mcap (every
    sensor, stage output and ground truth; opens in Foxglove). Without ``--config``: the autopilot demo
    (the ego on the simulator's autopilot through traffic; OUT/summary.json and
    a top-down OUT/topdown.mp4).
    """
    if config is None:
        for name, value in (("--routes", routes), ("--route", route)):
            if value:
                _fail(f"{name} needs --config (a stack run); the autopilot demo drives for --seconds")
        _run_demo(map_name or "Town10HD", 30 if vehicles is None else vehicles, walkers,
                  30.0 if seconds is None else seconds, seed, out, True if video is None else video, as_json)
        return
    if seconds is not None:
        _fail("--seconds is for the autopilot demo (avsim run without --config); a stack run drives whole routes")
    _run_stack(config, out, routes, route or [], map_name, vehicles, walkers, seed, video, as_json, record)


def _run_demo(map_name: str, vehicles: int, walkers: int | None, seconds: float, seed: int, out: Path,
              video: bool, as_json: bool) -> None:
    """``avsim run`` without ``--config``: the autopilot demo."""
    from launch.demo import DemoError, run_demo

    try:
        summary = run_demo(map_name, vehicles, walkers, seconds, seed, out, video, console)
    except DemoError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            console.print(f"{key:>24}: {value}")


def _run_stack(config: str, out: Path, routes: str | None, route: list[str], map_name: str | None,
               vehicles: int | None, walkers: int | None, seed: int, video: bool | None, as_json: bool,
               record: bool | None = None) -> None:
    """``avsim run --config``: the stack over its route set (:func:`av_stack.runner.run_stack`)."""
    import time

    from av_stack.runner import RunOptions, run_stack

    traffic = {key: value for key, value in (("vehicles", vehicles), ("walkers", walkers)) if value is not None}
    options = RunOptions(routes=routes, route_ids=tuple(route), map=map_name, seed=seed, video=video,
                         env_overrides={"traffic": traffic} if traffic else None, record=record)
    started = time.time()
    try:
        with _OneLineWarnings(), _sigterm_interrupts():
            metrics = run_stack(config, out, options, console)
    except KeyboardInterrupt:
        console.print(f"interrupted: the routes driven so far are in {out / 'metrics.json'}, the log up to the "
                      f"last tick in {out / 'run.mcap'}")
        raise typer.Exit(130)
    except STACK_RUN_ERRORS as exc:
        metrics_file = out / "metrics.json"
        kept = metrics_file.is_file() and metrics_file.stat().st_mtime >= started - 1.0
        _fail(_error_text(exc) + (f" (the routes driven so far are in {metrics_file})" if kept else ""))
        return
    if as_json:
        print(json.dumps(metrics))
    else:
        written = [out / "metrics.json"] + [out / metrics[key]["path"] for key in ("video", "log") if metrics.get(key)]
        console.print("wrote " + ", ".join(str(path) for path in written))


class _sigterm_interrupts:
    """Within the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so a run stopped either way closes its
    video and log and writes its metrics (the previous handler comes back on leaving)."""

    def __enter__(self) -> None:
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        self._previous = signal.signal(signal.SIGTERM, interrupt)

    def __exit__(self, *exc_info) -> None:
        import signal

        signal.signal(signal.SIGTERM, self._previous)


def _run_bench(bench, args: tuple, as_json: bool, summary) -> None:
    """Run a benchmark; a BenchError exits 2 with its message; print JSON last or a one-line summary."""
    from benchmarks.world_bench import BenchError

    try:
        result = bench(*args)
    except BenchError as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(result))
    else:
        console.print(summary(result))


@bench_app.command("world")
def bench_world(
    map_name: str = typer.Option("Town10HD", "--map", help="Shipped town name or path to an .xodr file."),
    vehicles: int = typer.Option(50, min=0, max=MAX_ACTORS, help="NPC vehicles on autopilot."),
    walkers: int = typer.Option(30, min=0, max=MAX_ACTORS, help="Pedestrians."),
    ticks: int = typer.Option(2000, min=1, help="Measured ticks (after warm-up)."),
    warmup: int = typer.Option(200, min=0, help="Ticks run before measuring."),
    seed: int = _seed_option(),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """World ticks per second (traffic, pedestrians, lights, collisions, snapshot) on one core."""
    from benchmarks.world_bench import run_world_bench

    _run_bench(run_world_bench, (map_name, vehicles, walkers, ticks, warmup, seed), as_json,
               lambda r: f"{r['ticks_per_s']:.0f} ticks/s on {r['map']} with {vehicles} vehicles "
                         f"+ {walkers} walkers ({r['machine']['cpu']})")


@bench_app.command("sensors")
def bench_sensors(
    map_name: str = typer.Option("Town10HD", "--map", help="Shipped town name, .xodr path or 'procedural'."),
    vehicles: int = typer.Option(50, min=0, max=MAX_ACTORS, help="NPC vehicles on autopilot."),
    walkers: int = typer.Option(30, min=0, max=MAX_ACTORS, help="Pedestrians."),
    ticks: int = typer.Option(300, min=5, help="Measured ticks (after warm-up)."),
    warmup: int = typer.Option(30, min=0, help="Ticks run before measuring."),
    seed: int = _seed_option(),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """World + full sensor suite frames per second, against a bare Open3D raycast of the same rays."""
    from benchmarks.sensors_bench import run_sensor_bench

    _run_bench(run_sensor_bench, (map_name, vehicles, walkers, ticks, warmup, seed), as_json,
               lambda r: f"{r['fps']:.1f} FPS (world + all sensors), reference raycast "
                         f"{r['raycast_reference_fps']:.1f}/s, efficiency {r['efficiency']:.2f}")


@bench_app.command("env")
def bench_env(
    map_name: str = typer.Option("Town10HD", "--map", help="Shipped town name, .xodr path or 'procedural'."),
    vehicles: int = typer.Option(50, min=0, max=MAX_ACTORS, help="NPC vehicles on autopilot."),
    walkers: int = typer.Option(30, min=0, max=MAX_ACTORS, help="Pedestrians."),
    steps: int = typer.Option(2000, min=1, help="Measured env steps (after 50 warm-up steps)."),
    observation: str = typer.Option("bev", help="Observation mode: bev or state."),
    seed: int = _seed_option(),
    vector: bool = typer.Option(True, "--vector/--no-vector", help="Also time AsyncVectorEnv with 2 and 4 workers."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Env steps per second with random actions, against highway-env's highway-fast-v0 in the same run."""
    from benchmarks.env_bench import run_env_bench

    _run_bench(run_env_bench, (map_name, vehicles, walkers, steps, observation, seed, vector, True), as_json,
               lambda r: f"{r['steps_per_s']:.0f} env steps/s ({r['observation']}, {r['resets']} resets), "
                         f"{r['peer']} {r['peer_steps_per_s']:.1f}/s, ratio {r['ratio']:.1f}"
                         + (f"; vector (workers: steps/s) {r['vector_steps_per_s']}" if r["vector_steps_per_s"]
                            else ""))


@bench_app.command("log")
def bench_log(
    map_name: str = typer.Option("Town01", "--map", help="A town with a shipped route set: Town01, Town02, Town10HD."),
    vehicles: int = typer.Option(20, min=0, max=MAX_ACTORS, help="NPC vehicles on autopilot."),
    walkers: int = typer.Option(10, min=0, max=MAX_ACTORS, help="Pedestrians."),
    ticks: int = typer.Option(1200, min=20, help="Measured ticks (1200: 60 s of simulated time)."),
    sensors_every: int = typer.Option(4, min=1, help="record.sensors_every of the log."),
    repeats: int = typer.Option(2, min=1, help="Runs with and without the log, alternately."),
    seed: int = _seed_option(),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """What the run log costs: FPS of the oracle stack with the default suite with and without run.mcap, and its size."""
    from benchmarks.log_bench import run_log_bench

    _run_bench(run_log_bench, (map_name, vehicles, walkers, ticks, sensors_every, seed, repeats), as_json,
               lambda r: f"{r['fps_without_log']} FPS without the log, {r['fps_with_log']} with (ratio "
                         f"{r['fps_ratio']}); recording {100 * r['recording_share']:.1f} % of the run; "
                         f"{r['mb_per_60s']} MB per 60 s")


@bench_app.command("serve")
def bench_serve(
    map_name: str = typer.Option("Town01", "--map", help="Shipped town name or .xodr path."),
    ticks: int = typer.Option(200, min=1, help="Measured frames (after warm-up)."),
    warmup: int = typer.Option(20, min=1, help="Frames before measuring (sensor streams subscribe asynchronously)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Client FPS through `avsim serve` (400x300 camera + 32-channel LiDAR), against the same work in-process."""
    from benchmarks.serve_bench import run_serve_bench

    _run_bench(run_serve_bench, (map_name, ticks, warmup), as_json,
               lambda r: f"{r['fps']:.1f} FPS through the protocol, {r['inprocess_fps']:.1f} in-process, "
                         f"ratio {r['ratio']:.2f}")


@map_app.command("check")
def map_check(path: str = typer.Argument(..., help="Town name or .xodr path.")) -> None:
    """Check that every command can use a map (parsed and its lane graph built in a child process); exit 2 with
    the same one-line error the other commands give if not."""
    from sim.maps.loader import MapLoadError, check_opendrive_text, resolve_map, validate_in_child

    try:
        source = resolve_map(path)
        label = str(source.path or source.name)
        check_opendrive_text(source.xodr_text, label)
        check = validate_in_child(source.xodr_text, label, name=source.name)
    except MapLoadError as exc:
        _fail(str(exc))
        return
    console.print(f"[green]ok[/]: {label}: {check.topology_edges} topology edges, {check.waypoints} waypoints at 2 m, "
                  f"{check.lanes} driving lanes ({check.main_component_share:.0%} in the main component), "
                  f"{check.spawn_points} spawn points")


@map_app.command("info")
def map_info(path: str = typer.Argument(..., help="Town name or .xodr path."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Lanes, junctions, lights, stop signs and spawn points of a map."""
    from sim.maps.loader import MapLoadError
    from sim.embedded.world import EmbeddedWorld

    try:
        world = EmbeddedWorld(map=path)
    except MapLoadError as exc:
        _fail(str(exc))
        return
    lanes = world.lanes
    info = {
        "map": world.source.name, "lanes": lanes.num_lanes,
        "lane_length_km": round(float(lanes.length_m.sum()) / 1000, 3),
        "junctions": int(len(set(lanes.junction_id[lanes.junction_id >= 0].tolist()))),
        "traffic_lights": world.signals.num_lights, "lights_generated": world.signals.generated,
        "stop_signs": int(world.signals.stop_id.size), "spawn_points": len(world.spawn_points),
        "main_component_share": round(float(lanes.in_main_component.mean()), 3),
    }
    if as_json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            console.print(f"{key:>22}: {value}")


@map_app.command("generate")
def map_generate(
    out: Path = typer.Argument(..., help="Where to write the .xodr."),
    config: str | None = typer.Option(None, help="YAML with ProceduralTownConfig fields: a path or a shipped name "
                                                  "(world/procedural_small.yaml, or procedural_small)."),
    seed: int | None = _seed_option(None, help="Override the config's seed."),
) -> None:
    """Generate a procedural town as OpenDRIVE (same config and seed, same bytes)."""
    from sim.config import ConfigError, load_yaml_config
    from sim.maps.procedural import ProceduralTownConfig, write_town
    from sim.resources import resolve_config

    try:
        cfg = ProceduralTownConfig()
        if config:
            cfg = load_yaml_config(resolve_config(config, "world"), ProceduralTownConfig)
    except ConfigError as exc:
        _fail(str(exc))
        return
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    path = write_town(cfg, out)
    console.print(f"wrote {path}")


@eval_app.command("perception")
def eval_perception(
    data: Path = typer.Option(..., "--data", help="A dataset directory written by `avsim collect`."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="A perception checkpoint (default: the "
                                          "shipped one) for the learned stage."),
    name: str = typer.Option("learned", "--name", help="The perception implementation: learned or oracle."),
    split: str | None = typer.Option(None, "--split", help="train, val or test (default: every log)."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
    assemble: str = typer.Option("map", "--assemble", help="The BEV scored: assembled after localization with "
                                 "road and markings from the map (map) or the stage (perception), or the "
                                 "stage's BEV as it is (off)."),
    localization: str = typer.Option("ekf", "--localization", help="The localization stage whose pose the "
                                     "BEV is assembled at."),
    light_range_m: float = typer.Option(40.0, "--light-range-m", min=0.0, help="A governing light farther "
                                        "along the route than this counts as none."),
    option: list[str] = typer.Option([], "--option", help="KEY=VALUE: one of the stage's own config keys "
                                     "(YAML value), e.g. velocity=tracker; repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Score a perception stage on a dataset: BEV IoU per channel, detection AP, velocity error, light
    accuracy, ms per frame."""
    if assemble not in ("map", "perception", "off"):
        _fail(f"--assemble must be map, perception or off, not {assemble!r}")
    from av_stack.data.manifest import DatasetError
    from av_stack.perception.evaluate import evaluate_perception
    from av_stack.registry import StageConfigError

    section: dict[str, Any] = {"name": name}
    if name == "learned":
        section["threads"] = threads
        if checkpoint:
            section["checkpoint"] = checkpoint
    elif checkpoint:
        _fail(f"--checkpoint is for --name learned, not {name}")
    section.update(key_values(option, "--option"))
    import torch

    torch.set_num_threads(threads)
    try:
        with _progress_counter("frames") as tick:
            result = evaluate_perception(section, data, split, max_frames, progress=tick, assemble=assemble,
                                         localization={"name": localization}, light_range_m=light_range_m)
    except (DatasetError, StageConfigError, *STACK_RUN_ERRORS) as exc:
        _fail(_error_text(exc))
        return
    if as_json:
        print(json.dumps(result))
    else:
        console.print_json(json.dumps(result))


@train_app.command("perception")
def train_perception_command(
    config: str = typer.Option("perception/fusion.yaml", "--config", help="A perception config (a path or a "
                               "shipped name under configs/perception)."),
    out: Path = typer.Option(Path("runs/perception/fusion"), "--out", help="Run folder: last.pt, "
                             "train_log.jsonl, TensorBoard curves (tb/); an existing run is resumed."),
    data: Path | None = typer.Option(None, "--data", help="Dataset directory (default: the config's train.data)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps in all."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads (a GPU is used when present)."),
) -> None:
    """Train the perception network on a collected dataset (resumes OUT/last.pt when it is there)."""
    from av_stack.data.manifest import DatasetError
    from av_stack.perception.learned.checkpoint import CheckpointError
    from av_stack.perception.learned.config import load_perception_config
    from av_stack.perception.learned.train import train_perception
    from sim.config import ConfigError
    import torch

    torch.set_num_threads(threads)
    try:
        perception_config = load_perception_config(config)
        with _progress_counter("steps") as tick:
            record = train_perception(perception_config, out, data, max_steps,
                                      progress=lambda step, total, terms: tick(step, total))
    except (ConfigError, DatasetError, CheckpointError, *STACK_RUN_ERRORS) as exc:
        _fail(_error_text(exc))
        return
    console.print(f"{out / 'last.pt'}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in record.items()))


@train_app.command("perception-light")
def train_perception_light_command(
    config: str = typer.Option("perception/light.yaml", "--config", help="A light config (a path or a shipped "
                               "name under configs/perception)."),
    out: Path = typer.Option(Path("runs/perception/light"), "--out", help="Run folder: last.pt, train_log.jsonl, "
                             "the extracted patches; an existing run is resumed."),
    data: Path | None = typer.Option(None, "--data", help="Dataset directory (default: the config's train.data)."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
) -> None:
    """Train the traffic-light classifier on camera crops where the map puts the governing light."""
    from av_stack.data.manifest import DatasetError
    from av_stack.perception.learned.light import LightCheckpointError, load_light_config
    from av_stack.perception.learned.light_train import train_light
    from sim.config import ConfigError
    import torch

    torch.set_num_threads(threads)
    try:
        light_config = load_light_config(config)
        with _progress_counter("logs, then steps") as tick:
            record = train_light(light_config, out, data, progress=lambda stage, done, total: tick(done, total))
    except (ConfigError, DatasetError, LightCheckpointError, ValueError, *STACK_RUN_ERRORS) as exc:
        _fail(_error_text(exc))
        return
    console.print(f"{out / 'last.pt'}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in record.items()))


class _progress_counter:
    """A rich progress bar fed by ``tick(done, total=None)``."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(self.unit), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.progress.__enter__()
        self.task = self.progress.add_task(self.unit, total=None)

        def tick(done: int, total: int | None = None) -> None:
            self.progress.update(self.task, completed=done, total=total)

        return tick

    def __exit__(self, *exc_info) -> None:
        self.progress.__exit__(*exc_info)


@eval_app.command("driving")
def eval_driving(
    agent: str = typer.Option("expert", "--agent", help="A stack config (a path or a shipped name: oracle), a "
                              "planner with oracle stages (expert), random, or policy:<SB3 checkpoint .zip>."),
    routes: str | None = typer.Option(None, "--routes", help="Route set: a route file, a shipped set (town01, "
                                      "town02, town10hd) or random:N (N seeded random routes on the map). "
                                      "Default: the env config's."),
    map_name: str | None = typer.Option(None, "--map", help="The map: a shipped town or an .xodr path (default: "
                                        "the env config's, or the route file's town)."),
    route: list[str] = typer.Option(None, "--route", help="Route id to run (repeatable; default: all)."),
    config: str | None = typer.Option(None, "--config", help="Env config (a path or a shipped name): the env of "
                                      "random and policy agents (default env/leaderboard_town01.yaml); for a "
                                      "stack, it replaces the base of the stack's env section."),
    observation: str | None = typer.Option(None, help="Override the env's observation modes with one: bev, "
                                           "state or sensors."),
    vehicles: int | None = typer.Option(None, min=0, max=500, help="NPC vehicles (default: the env config's)."),
    walkers: int | None = typer.Option(None, min=0, max=500, help="Pedestrians (default: the env config's)."),
    seed: int = _seed_option(help="Seed of the first route's episode (route k uses seed + k) and of random:N."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " Each route is one task; the result is the "
                                   "single-process one but for the timing fields."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Drive an agent over a route set; Leaderboard 2.0 scores per route and aggregated.

    E.g. ``avsim eval driving --agent expert --routes town02 --json``, or on
    any town ``avsim eval driving --agent oracle --map TOWN.xodr --routes random:10``;
    ``--ray local:8`` (or a cluster address) drives the routes in parallel.
    """
    from av_stack.runner import ProgressBar, evaluate_driving, progress_bar

    traffic = {key: value for key, value in (("vehicles", vehicles), ("walkers", walkers)) if value is not None}
    try:
        with _OneLineWarnings(), progress_bar(console) as progress:
            result = evaluate_driving(agent, routes, map_name, route or (), config, observation, seed, traffic,
                                      observers=lambda n: [ProgressBar(progress, n)], ray=ray)
    except STACK_RUN_ERRORS as exc:
        _fail(_error_text(exc))
        return
    if as_json:
        print(json.dumps(result))
        return
    for record in result["routes"]:
        console.print(f"{record['route_id']:>22}  DS {record['driving_score']:6.2f}  RC {record['route_completion']:6.2f}"
                      f"  IP {record['infraction_penalty']:.3f}  {record['termination']}")
    g = result["global"]
    console.print(f"{'global':>22}  DS {g['driving_score']:6.2f}  RC {g['route_completion']:6.2f}"
                  f"  IP {g['infraction_penalty']:.3f}  ({result['steps_per_s']} steps/s)")


def _parse_lengths(value: str | None) -> list[tuple[float, float]] | None:
    """``--lengths``: 1 to 3 comma-separated ``MIN-MAX`` ranges in metres (short, medium, long)."""
    if value is None:
        return None
    ranges = []
    for part in value.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            pair = (float(low), float(high)) if sep else None
        except ValueError:
            pair = None
        if pair is None or not (0 < pair[0] <= pair[1] < float("inf")):
            raise typer.BadParameter(f"{part.strip()!r} is not a range MIN-MAX of metres with 0 < MIN <= MAX "
                                     "(e.g. --lengths 50-100,100-200,200-400)")
        ranges.append(pair)
    if not 1 <= len(ranges) <= 3:
        raise typer.BadParameter(f"give 1 to 3 ranges (short, medium, long), got {len(ranges)}")
    return ranges


def _parse_turns(value: str | None) -> list[int] | None:
    """``--min-turns``: one count for every class, or one per class, comma-separated."""
    if value is None:
        return None
    try:
        turns = [int(part) for part in value.split(",")]
    except ValueError:
        turns = [-1]
    if any(t < 0 or t > 100 for t in turns):
        raise typer.BadParameter(f"{value!r}: give whole numbers 0..100, one for all classes or one per class "
                                 "(e.g. --min-turns 0 or --min-turns 1,2,3)")
    return turns


@routes_app.command("generate")
def routes_generate(
    town: str = typer.Argument(..., help="Shipped town name or .xodr path."),
    out: Path = typer.Argument(..., help="Route file to write (YAML)."),
    per_class: int = typer.Option(4, "--per-class", "--count", min=1, max=100, help="Routes per class."),
    lengths: str = typer.Option(None, "--lengths", callback=_parse_lengths, metavar="MIN-MAX,...",
                                help="Length classes in metres, 1 to 3 (short, medium, long), e.g. 50-100,100-200. "
                                     "Default: the standard 150-300,300-600,600-1000 scaled to the map."),
    min_turns: str = typer.Option(None, "--min-turns", callback=_parse_turns, metavar="N[,N,N]",
                                  help="Junction turns each route makes at least: one for all classes or one per "
                                       "class. Default: 1,2,3 capped at the map's turning junctions, lowered where "
                                       "the map cannot give them."),
    seed: int = _seed_option(),
) -> None:
    """Generate a benchmark route set: short, medium and long routes with junction turns, adapted to the map.

    The default classes follow the map (``sim.scenarios.routes.map_route_classes``):
    lengths shrink on small maps and the turns asked for never exceed the junctions
    that have turns (0 on a ring road), so any town that has a drivable loop gets
    a route set; ``--lengths`` and ``--min-turns`` set them instead.
    """
    from sim.maps.loader import MapLoadError
    from sim.embedded.world import EmbeddedWorld
    from sim.scenarios.routes import (ROUTE_CLASSES, RouteError, generate_route_set, map_extent, map_route_classes,
                                      route_starts, write_route_file)

    ranges: list[tuple[float, float]] | None = lengths  # parsed by the callbacks
    turns: list[int] | None = min_turns
    if turns is not None and ranges is not None and len(turns) not in (1, len(ranges)):
        _fail(f"--min-turns: give one count or one per --lengths range ({len(ranges)}), got {len(turns)}")
    try:
        world = EmbeddedWorld(map=town, seed=seed)
        route_starts(world.lanes)  # RouteError: the map truly cannot host a route
    except (MapLoadError, RouteError, ValueError) as exc:
        _fail(str(exc))
        return
    try:
        extent = map_extent(world.lanes)
        if ranges is None:
            classes = map_route_classes(world.lanes)
        else:
            classes = {name: (low, high, min(ROUTE_CLASSES[name][2], extent.turning_junctions))
                       for name, (low, high) in zip(ROUTE_CLASSES, ranges)}
        if turns is not None:
            if len(turns) not in (1, len(classes)):
                _fail(f"--min-turns: give one count or one per class ({', '.join(classes)}), got {len(turns)}")
            per = turns * len(classes) if len(turns) == 1 else turns
            classes = {name: (low, high, t) for (name, (low, high, _)), t in zip(classes.items(), per)}
        routes = generate_route_set(world.lanes, world.source.name, seed=seed, per_class=per_class,
                                    classes=classes, relax_turns=turns is None)
    except RouteError as exc:
        _fail(f"{exc} (set the classes with --lengths / --min-turns, or fewer routes with --count)")
        return
    # Turns each class's routes make at least: as asked, or fewer where the map could not give them.
    got = {name: min(asked, *(r.turns for r in routes if r.route_id.split("_")[-2] == name))
           for name, (_, _, asked) in classes.items()}
    for name, (_, _, asked) in classes.items():
        if got[name] < asked:
            console.print(f"note: {world.source.name} gave no {per_class} {name} routes with >= {asked} turns: "
                          f"kept routes with >= {got[name]}", soft_wrap=True, highlight=False)
    summary = ", ".join(f"{per_class} {name} ({low:.0f}-{high:.0f} m, >= {got[name]} turns)"
                        for name, (low, high, _) in classes.items())
    header = (f"Benchmark routes on {world.source.name}: {summary}.\n"
              f"The map's main lane component: {extent.lane_length_m:.0f} m of driving lanes, "
              f"{extent.turning_junctions} junctions with turns.\n"
              f"Generated by `avsim routes generate` (seed {seed}). Waypoints are world metres (CARLA frame);\n"
              "the env plans the dense route through them.")
    write_route_file(out, world.source.name, routes, header)
    console.print(f"wrote {len(routes)} routes to {out}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (only this one)."),
    port: int = typer.Option(2000, min=0, max=65534, help="RPC port; streams use PORT + 1. 0 picks a free pair."),
    map_name: str = typer.Option("Town01", "--map", help="Shipped town name or path to an .xodr file."),
    delta_seconds: float = typer.Option(0.05, "--delta-seconds", min=0.001, max=1.0,
                                        help="The world's fixed step in seconds (fixed_delta_seconds must match it)."),
    seed: int = _seed_option(help="Seed of the embedded world."),
) -> None:
    """Serve the embedded simulator over CARLA 0.9.16's protocol, for the unmodified carla client."""
    from sim.carla_server.process import exit_with_parent, wait_for_stop_signal
    from sim.carla_server.server import CarlaServer
    from sim.maps.loader import MapLoadError

    exit_with_parent()

    try:
        server = CarlaServer(map_name, host, port, delta_seconds=delta_seconds, seed=seed)
    except (MapLoadError, OSError, ValueError) as exc:
        _fail(f"cannot serve {map_name} on {host}:{port}: {exc}")
        return
    with server:
        # One line on stdout when ready (scripts and tests wait for it; port 0 shows the chosen port).
        print(f"avsim serve: {server.world.source.name} on {host}:{server.port} (streams on {server.stream_port})",
              flush=True)
        wait_for_stop_signal()
    console.print("avsim serve: stopped")


def main() -> None:
    """Entry point for ``python -m launch.cli``."""
    app()


if __name__ == "__main__":
    main()
