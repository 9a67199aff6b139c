"""``avsim``: the command-line interface.

Commands: ``run`` (a closed-loop drive on the embedded simulator), ``eval``
(an agent over a route set, Leaderboard scores), ``bench world`` / ``bench
sensors`` / ``bench env`` (speed), ``map check`` / ``map info`` / ``map
generate``, ``routes generate``, ``serve`` (the embedded simulator behind
CARLA 0.9.16's client-server protocol).
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
from rich.console import Console

app = typer.Typer(help="Autonomous-driving simulator: embedded CARLA-compatible world, env and AV stack.",
                  no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Speed benchmarks (results recorded under benchmarks/).", no_args_is_help=True)
map_app = typer.Typer(help="Inspect, validate and generate OpenDRIVE maps.", no_args_is_help=True)
routes_app = typer.Typer(help="Route sets for evaluation (shipped: configs/routes/*.yaml).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(map_app, name="map")
app.add_typer(routes_app, name="routes")
console = Console(stderr=True)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


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


@app.command()
def run(
    map_name: str = typer.Option("Town10HD", "--map", help="Shipped town name or path to an .xodr file."),
    vehicles: int = typer.Option(30, min=0, max=MAX_ACTORS, help="NPC vehicles on autopilot."),
    walkers: int | None = typer.Option(None, min=0, max=MAX_ACTORS,
                                       help="Pedestrians (default: 20 where the map has sidewalks, else 0)."),
    seconds: float = typer.Option(30.0, min=0.05, max=86400.0, help="Simulated duration in seconds."),
    seed: int = _seed_option(help="Seed: the same seed gives the same run."),
    out: Path = typer.Option(Path("outputs/demo"), help="Folder for the video and the summary."),
    video: bool = typer.Option(True, help="Write a top-down MP4 following the ego."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object last."),
) -> None:
    """Drive the ego on autopilot through traffic on the embedded simulator; write a summary and an MP4."""
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


@app.command("eval")
def evaluate_agent(
    config: str = typer.Option("env/leaderboard_town01.yaml",
                               help="Env config with a route set: a path or a shipped name (env/....yaml)."),
    agent: str = typer.Option("route_follower", help="route_follower, random, or policy:<SB3 checkpoint .zip>."),
    route: list[str] = typer.Option(None, "--route", help="Route id to run (repeatable; default: all)."),
    observation: str = typer.Option(None, help="Override the config's observation mode (bev, state, sensors)."),
    map_name: str = typer.Option(None, "--map", help="Override the config's map: a shipped town or an .xodr path."),
    routes_file: str = typer.Option(None, "--routes",
                                    help="Override the config's route file (e.g. one `avsim routes generate` wrote)."),
    seed: int = _seed_option(help="Seed of the first route's episode (route k uses seed + k)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Drive an agent over a route set; Leaderboard 2.0 scores per route and aggregated.

    On any town: ``avsim routes generate TOWN routes.yaml`` then
    ``avsim eval --map TOWN --routes routes.yaml``.
    """
    from rich.progress import Progress

    from sim.api import SpawnError
    from sim.config import ConfigError
    from sim.maps.loader import MapLoadError
    from av_stack.agents import make_agent
    from sim.env.driving import DrivingEnv
    from sim.env.evaluation import evaluate
    from sim.resources import resolve_config
    from sim.scenarios.routes import RouteError

    overrides: dict[str, Any] = {"observation": {"mode": observation}} if observation else {}
    if map_name:
        overrides["map"] = map_name
    if routes_file:
        overrides["routes"] = {"source": "file", "file": routes_file, "ids": None}
    try:
        with _OneLineWarnings():
            env = DrivingEnv(config=resolve_config(config, "env"), **overrides)
            policy = make_agent(agent, seed)
            ids = list(route) if route else list(env.route_ids)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("routes", total=len(ids))
                result = evaluate(env, policy, ids, seed, on_route=lambda record: progress.advance(task))
    except (ConfigError, RouteError, MapLoadError, SpawnError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    result = {"evaluation": "leaderboard-2.0", "config": str(config), "agent": agent, **result}
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
    import signal
    import threading

    from sim.carla_server.process import exit_with_parent
    from sim.carla_server.server import CarlaServer
    from sim.maps.loader import MapLoadError

    exit_with_parent()

    try:
        server = CarlaServer(map_name, host, port, delta_seconds=delta_seconds, seed=seed)
    except (MapLoadError, OSError, ValueError) as exc:
        _fail(f"cannot serve {map_name} on {host}:{port}: {exc}")
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        # One line on stdout when ready (scripts and tests wait for it; port 0 shows the chosen port).
        print(f"avsim serve: {server.world.source.name} on {host}:{server.port} (streams on {server.stream_port})",
              flush=True)
        while not stop.wait(0.2):
            pass
    console.print("avsim serve: stopped")


def main() -> None:
    """Entry point for ``python -m launch.cli``."""
    app()


if __name__ == "__main__":
    main()
