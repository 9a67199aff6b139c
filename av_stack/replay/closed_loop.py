"""Closed-loop replay: a new agent re-drives the routes of a log on the embedded simulator (nuPlan-style).

>>> result = replay_closed_loop("outputs/run/run.mcap", agent="expert", reactive=False)
>>> result["driving_score"], result["replay"]["routes"][0]["ego_divergence_m"]

For every route of the log the env is built on the map **rebuilt from the
log's attached OpenDRIVE text** (not the original file) with the **logged
route** (re-planned on that map and checked against the logged points), the
logged tick length and ego vehicle, and no traffic of its own. The ego starts
where the logged ego started (the route's start, at rest) and the agent
(any name ``avsim eval driving --agent`` takes, :func:`av_stack.agents.make_agent`)
drives it; the scores are those of ``avsim eval driving`` (Leaderboard 2.0
DS / RC / IP through the env's own termination and metrics).

The other actors come from the log's world states (``/ground_truth/world``):

- *non-reactive* (default): every vehicle and pedestrian follows its logged
  trajectory: spawned when it first appears, placed on its logged pose and
  speed before every tick (one tick's motion earlier, so that the tick
  brings it to the logged pose), removed when it leaves the log;
- *reactive*: vehicles start from their first logged state on the
  simulator's own traffic model (the embedded world's IDM autopilot, which
  reacts to the ego); a vehicle the traffic model cannot take (off the
  driving lanes, e.g. parked at the kerb) and every pedestrian follow the log.

Traffic lights are held in their logged states in both modes. When the agent
needs longer than the log lasted, logged actors stop where the log left them
(reactive vehicles drive on) and the lights go back to their own cycles.

The actors are driven through the env's scenario hook (``sim.scenarios.library``):
a scenario class registered for the replay's duration spawns them before the
episode's first tick and moves them before every tick, with the world calls
of :class:`sim.api.World` only (spawn, teleport, autopilot, destroy, lights).

A cut log is replayed as far as it was read (``complete: false`` and
``error`` name the cut); a log without routes or map is a :class:`ReplayError`.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from av_stack.replay.logged import LoggedEpisode, ReplayError, log_map, logged_route, open_log, read_episodes
from sim.api import ActorKind, Pose, SpawnError, World, WorldSnapshot
from sim.scenarios.library import SCENARIOS, Scenario
from sim.scenarios.routes import write_route_file

REPLAY_ROLE = "replay"
"""Role name of the vehicles spawned from the log."""
DEFAULT_BLUEPRINT = "vehicle.lincoln.mkz_2020"
"""A logged vehicle whose blueprint this simulator lacks is replayed as this one."""


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "max": None}
    return {"mean": round(float(np.mean(values)), 4), "max": round(float(np.max(values)), 4)}


@dataclass
class RouteReplayStats:
    """What the replay of one route measured: how many logged actors it placed (and failed to place), how far
    log-following actors were from their logged positions after each tick, and how far the new ego drove
    from the logged ego (over the ticks the log covers)."""

    log_ticks: int
    actors: set[int] = field(default_factory=set)
    spawn_failures: set[int] = field(default_factory=set)
    autopilot: set[int] = field(default_factory=set)
    actor_errors: list[float] = field(default_factory=list)
    ego_errors: list[float] = field(default_factory=list)

    def to_dict(self, route_id: str, logged: dict[str, Any]) -> dict[str, Any]:
        """Plain JSON values."""
        return {"route_id": route_id, "log_ticks": self.log_ticks, "actors": len(self.actors),
                "actors_on_autopilot": len(self.autopilot),
                "actors_not_placed": len(self.spawn_failures - self.actors),
                "actor_sync_error_m": _stats(self.actor_errors), "ego_divergence_m": {
                    **_stats(self.ego_errors),
                    "at_log_end": round(self.ego_errors[-1], 4) if len(self.ego_errors) > self.log_ticks else None},
                "logged": logged}


class ActorReplay:
    """Drives the logged actors of one route in a world (see the module docstring): call :meth:`step` with
    index ``k`` before the tick that is to bring the world to the ``k``-th logged state (0: before the
    episode's first tick), and :meth:`measure` with the snapshot that tick produced (:class:`SyncProbe`)."""

    def __init__(self, world: World, ego_id: int, episode: LoggedEpisode, reactive: bool, dt_s: float,
                 stats: RouteReplayStats) -> None:
        self.world, self.ego_id, self.episode = world, ego_id, episode
        self.reactive, self.dt_s, self.stats = reactive, dt_s, stats
        self.ids: dict[int, int] = {}  # logged id -> replay id
        self.follows_log: set[int] = set()  # logged ids placed from the log every tick
        self.forced: dict[int, int] = {}
        self.frozen = False

    @property
    def last(self) -> int:
        """Index of the last logged state."""
        return len(self.episode.worlds) - 1

    # -------------------------------------------------------------- placing actors
    def _target(self, state: dict[str, Any], row: int, exact: bool) -> tuple[Pose, float]:
        """Where to put an actor so that one tick brings it to its logged pose (``exact``: the pose itself,
        at rest), and its speed along its heading."""
        x, y, z = (float(v) for v in state["location_m"][row])
        yaw = float(state["rotation_rad"][row][1])
        vx, vy = (float(v) for v in state["velocity_mps"][row][:2])
        if exact:
            return Pose(x, y, z, yaw), 0.0
        if int(state["kind"][row]) == ActorKind.WALKER:
            speed = math.hypot(vx, vy)
            if speed > 0.05:
                yaw = math.atan2(vy, vx)  # a placed walker walks straight along its yaw
            return Pose(x - vx * self.dt_s, y - vy * self.dt_s, z, yaw), speed
        speed = vx * math.cos(yaw) + vy * math.sin(yaw)
        return Pose(x - speed * math.cos(yaw) * self.dt_s, y - speed * math.sin(yaw) * self.dt_s, z, yaw), speed

    def _spawn(self, logged_id: int, state: dict[str, Any], row: int, pose: Pose, speed: float) -> None:
        world = self.world
        try:
            if int(state["kind"][row]) == ActorKind.WALKER:
                actor = world.spawn_walker_at(pose)
                world.teleport(actor, pose, speed)
                self.follows_log.add(logged_id)
            else:
                blueprint = str(state["type_id"][row])
                actor = None
                if self.reactive:
                    try:
                        actor = self._spawn_vehicle(blueprint, pose, speed, autopilot=True)
                        self.stats.autopilot.add(logged_id)
                    except SpawnError as exc:
                        if "occupied" in str(exc):
                            raise
                if actor is None:
                    actor = self._spawn_vehicle(blueprint, pose, speed, autopilot=False)
                    self.follows_log.add(logged_id)
        except (SpawnError, ValueError):
            self.stats.spawn_failures.add(logged_id)  # tried again next tick
            return
        self.ids[logged_id] = actor
        self.stats.actors.add(logged_id)

    def _spawn_vehicle(self, blueprint: str, pose: Pose, speed: float, autopilot: bool) -> int:
        try:
            return self.world.spawn_vehicle(blueprint, pose, autopilot=autopilot, role_name=REPLAY_ROLE,
                                            speed_mps=max(speed, 0.0))
        except ValueError as exc:
            if isinstance(exc, SpawnError) or blueprint == DEFAULT_BLUEPRINT:
                raise
            return self.world.spawn_vehicle(DEFAULT_BLUEPRINT, pose, autopilot=autopilot, role_name=REPLAY_ROLE,
                                            speed_mps=max(speed, 0.0))

    def step(self, k: int) -> None:
        """Place the actors and lights for the ``k``-th logged state."""
        if k > self.last:
            self._freeze()
            return
        state = self.episode.worlds[k]
        ego = self.episode.ego_id
        rows = {int(a): r for r, a in enumerate(state["actor_id"]) if int(a) != ego}
        gone = [logged for logged in self.ids if logged not in rows]
        if gone:
            self.world.destroy([self.ids.pop(logged) for logged in gone])
            self.follows_log.difference_update(gone)
        for logged, row in rows.items():
            pose, speed = self._target(state, row, exact=False)
            if logged not in self.ids:
                self._spawn(logged, state, row, pose, speed)
            elif logged in self.follows_log:
                self.world.teleport(self.ids[logged], pose, speed)
        self._force_lights(state.get("light_state") or [])

    def _force_lights(self, states: list[int]) -> None:
        if len(states) != self.world.signals.num_lights:
            return  # not this map's lights: leave them on their cycles
        for light, state in enumerate(states):
            if self.forced.get(light) != int(state):
                self.world.lights.force_state(light, int(state))
                self.forced[light] = int(state)

    def _freeze(self) -> None:
        """After the log: log-following actors stop where it left them; the lights go back to their cycles."""
        if self.frozen:
            return
        self.frozen = True
        state = self.episode.worlds[self.last]
        rows = {int(a): r for r, a in enumerate(state["actor_id"])}
        for logged in self.follows_log:
            if logged in rows and logged in self.ids:
                pose, _ = self._target(state, rows[logged], exact=True)
                self.world.teleport(self.ids[logged], pose, 0.0)
        self.release_lights()

    def release_lights(self) -> None:
        """Hand every forced light back to its cycle."""
        for light in self.forced:
            self.world.lights.force_state(light, None)
        self.forced.clear()

    # -------------------------------------------------------------- measuring
    def measure(self, snapshot: WorldSnapshot, k: int) -> None:
        """Distances of the log-following actors and of the ego from their ``k``-th logged positions."""
        if k > self.last:
            return
        state = self.episode.worlds[k]
        rows = {int(a): r for r, a in enumerate(state["actor_id"])}
        where = {int(a): r for r, a in enumerate(snapshot.actor_id.tolist())}
        ego_row = rows.get(self.episode.ego_id)
        if ego_row is not None and self.ego_id in where:
            logged = state["location_m"][ego_row]
            here = snapshot.location_m[where[self.ego_id]]
            self.stats.ego_errors.append(math.hypot(here[0] - logged[0], here[1] - logged[1]))
        for logged_id in self.follows_log:
            actor = self.ids.get(logged_id)
            if actor in where and logged_id in rows:
                logged = state["location_m"][rows[logged_id]]
                here = snapshot.location_m[where[actor]]
                self.stats.actor_errors.append(math.hypot(here[0] - logged[0], here[1] - logged[1]))


class LoggedActorsScenario(Scenario):
    """The env scenario that runs an :class:`ActorReplay` for the route being driven (subclassed per replay with
    the log's routes in :attr:`episodes`)."""

    name: ClassVar[str] = "log_replay"
    episodes: ClassVar[dict[str, LoggedEpisode]] = {}
    stats: ClassVar[dict[str, RouteReplayStats]] = {}
    reactive: ClassVar[bool] = False

    def setup(self) -> None:
        route_id = self.ctx.route.route_id
        episode = self.episodes[route_id]
        stats = self.stats[route_id] = RouteReplayStats(len(episode.worlds) - 1)
        self.replay = ActorReplay(self.ctx.world, self.ctx.ego_id, episode, self.reactive, self.ctx.world.dt_s,
                                  stats)
        self.k = 0
        self.replay.step(0)

    def tick(self, snapshot: WorldSnapshot, ego_s_m: float) -> None:
        self.k += 1
        self.replay.step(self.k)

    def cleanup(self) -> None:
        self.replay.release_lights()


class SyncProbe:
    """A :func:`av_stack.runner.drive` observer that measures, after the episode's first tick and after every
    step, how far the world is from the log (:meth:`ActorReplay.measure`)."""

    def __init__(self) -> None:
        self.replay: ActorReplay | None = None
        self.world: World | None = None

    def route_started(self, index: int, route_id: str, env) -> None:
        """Find this route's replay among the env's scenarios; measure the start."""
        scenario = next((s for s in env.scenarios if isinstance(s, LoggedActorsScenario)), None)
        self.replay, self.world = (scenario.replay if scenario else None), env.world
        if self.replay is not None:
            self.replay.measure(self.world.snapshot(), 0)

    def tick(self, tick) -> None:
        """Measure the world the step reached."""
        if self.replay is not None:
            self.replay.measure(self.world.snapshot(), tick.step)

    def route_finished(self, record: dict) -> None:
        """Nothing to add."""


def _unique_ids(episodes: list[LoggedEpisode]) -> dict[str, LoggedEpisode]:
    """Episodes by route id; a route driven twice in one log gets ``@2``, ``@3``... appended."""
    out: dict[str, LoggedEpisode] = {}
    for episode in episodes:
        route_id = episode.route_id
        n = 1
        while route_id in out:
            n += 1
            route_id = f"{episode.route_id}@{n}"
        episode.episode = {**episode.episode, "route_id": route_id}
        out[route_id] = episode
    return out


def replay_closed_loop(log: str | Path, agent: str = "expert", *, reactive: bool = False,
                       route_ids: Iterable[str] = (), seed: int = 0, max_ticks: int | None = None,
                       config: str | None = None, observation: str | None = None,
                       observers: Callable[[int], Iterable[Any]] | None = None) -> dict[str, Any]:
    """Re-drive the routes of ``log`` with ``agent`` (see the module docstring); the result of
    :func:`av_stack.runner.evaluate_driving` plus ``replay`` (per route: actors placed, their sync error, the
    ego's divergence from the logged ego, the logged run's own ending) and ``complete`` / ``error`` for a cut
    log. ``max_ticks``: the episode limit (default: the env's route time budget); ``config`` and
    ``observation``: the agent's env base and observation mode, as ``avsim eval driving`` takes them."""
    from av_stack.agents import is_stack_agent, make_agent, stack_config_of
    from av_stack.runner import DEFAULT_ENV, STAGES, LatencyRecorder, drive, env_spec, metrics_of, stack_env_spec

    reader = open_log(log)
    episodes, error = read_episodes(reader)
    if not episodes:
        raise ReplayError(f"{reader.path} holds no route to replay" + (f" ({error})" if error else ""))
    the_map = log_map(reader)
    by_id = _unique_ids(episodes)
    wanted = list(route_ids) or list(by_id)
    unknown = [r for r in wanted if r not in by_id]
    if unknown:
        raise ReplayError(f"{reader.path}: routes {unknown} are not in the log; it has {sorted(by_id)}")
    routes = [logged_route(the_map.lanes, by_id[r].episode, str(reader.path)) for r in wanted]
    stack = stack_config_of(agent) if is_stack_agent(agent) else None
    spec = (stack_env_spec(stack, f"agent {agent}", base=config) if stack is not None
            else env_spec({"base": config or DEFAULT_ENV}, f"env config {config or DEFAULT_ENV}"))
    name = f"log_replay_{uuid.uuid4().hex[:12]}"
    scenario = type("LogReplayScenario", (LoggedActorsScenario,),
                    {"name": name, "episodes": {r: by_id[r] for r in wanted}, "stats": {}, "reactive": reactive})
    SCENARIOS[name] = scenario
    try:
        with tempfile.TemporaryDirectory(prefix="avsim-replay-") as scratch:
            map_name = reader.map_name or "logged_map"
            map_path = Path(scratch) / f"{map_name}.xodr"
            map_path.write_text(the_map.source.xodr_text)
            route_path = Path(scratch) / "routes.yaml"
            write_route_file(route_path, map_name, routes, f"the routes of {reader.path.name}")
            overrides: dict[str, Any] = {
                "world": {"map": str(map_path), "dt_s": reader.dt_s}, "traffic": {"vehicles": 0, "walkers": 0},
                "scenarios": [name], "routes": {"source": "file", "file": str(route_path), "ids": None}}
            if reader.run.get("ego_blueprint"):
                overrides["ego_blueprint"] = str(reader.run["ego_blueprint"])
            if max_ticks is not None:
                overrides["episode"] = {"max_steps": int(max_ticks)}
            if observation:
                overrides["observation"] = {"modes": [observation]}
            env = spec.with_overrides(overrides).build()
        try:
            policy = make_agent(agent, seed)
            latency = LatencyRecorder(policy if stack is not None else None)
            extra = list(observers(len(wanted))) if observers is not None else []
            summary = drive(env, policy, wanted, seed, [latency, SyncProbe(), *extra])
        finally:
            env.close()
    finally:
        SCENARIOS.pop(name, None)
    per_route = []
    for route_id in wanted:
        episode = by_id[route_id]
        last = episode.steps[-1] if episode.steps else {}
        logged = {"ticks": len(episode.steps), "route_completion": last.get("route_completion"),
                  "termination": last.get("termination")}
        stats = scenario.stats.get(route_id) or RouteReplayStats(len(episode.worlds) - 1)
        per_route.append(stats.to_dict(route_id, logged))
    stages = {s: str(getattr(stack, s)["name"]) for s in STAGES} if stack is not None else None
    return {"evaluation": "leaderboard-2.0", "agent": agent,
            **metrics_of(summary, stack=stages, map=reader.map_name, seed=seed, latency_ms=latency.summary()),
            "global": summary["global"],
            "replay": {"mode": "closed_loop", "reactive": reactive, "log": str(reader.path), "complete": error is None,
                       "error": error, "routes": per_route}}
