"""``avsim/Driving-v0``: drive a route through traffic; observations, actions, reward and Leaderboard metrics.

>>> import gymnasium, sim.env
>>> env = gymnasium.make("avsim/Driving-v0", map="Town01", traffic={"vehicles": 20})
>>> obs, info = env.reset(seed=0)
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Each episode: the world is reset (map kept, actors gone, random streams
re-seeded from the episode seed), a route is chosen (at random on the map, or
the next one of a route file), the ego (role name ``hero``) is spawned at its
start, then NPC vehicles and pedestrians. One ``step`` is one simulator tick
(``dt_s``, 20 Hz by default). On a map without sidewalks (a highway town)
``traffic.walkers`` cannot be met: the first reset warns (``UserWarning``
naming ``traffic.walkers``) and the env runs without pedestrians.

Ends of an episode, kept apart as Gymnasium asks:

- ``terminated``: the route is completed (within 3 m of its end), or an
  infraction listed in ``episode.terminate_on`` happened (collision, red light,
  stop sign, off road, route deviation > ``route_deviation_m``, blocked: slower
  than 0.1 m/s for ``blocked_s``);
- ``truncated``: the time limit (``episode.max_steps``, by default the route's
  timeout, reported as the Leaderboard's route timeout: with
  ``episode.route_timeout: budget`` a fixed length / ``route_time_budget_mps``
  + 30 s; with ``leaderboard`` the Leaderboard 2.0's rule, 300 s plus the time
  each metre of progress takes at 10 % of the speed limit). With
  ``episode.min_speed: true`` the Leaderboard 2.0's minimum-speed test scores
  the ego's speed against the traffic's on each quarter of the route
  (:mod:`sim.env.route_rules`).

``info`` every step: ``rewards`` (each term), ``infractions`` (this step),
``action_clipped``, ``route_completion``, ``route_id``; at the end also
``termination_reason`` and ``route_score`` (Leaderboard 2.0 driving score,
route completion, infraction penalty and counts). With
``observation.ground_truth: true``, ``info["ground_truth"]`` at reset and
every step: a :class:`~sim.env.observations.GroundTruth` (ego pose and speed,
oriented boxes of the actors within ``observation.ground_truth_radius_m`` in
the ego frame, the light that governs the ego on its route).

Observations (``observation.modes``). One mode gives that mode's observation:

- ``bev``: Dict ``bev`` (C, H, W) uint8 (channels in ``sim.env.bev``) and
  ``measurements`` (``sim.env.observations``);
- ``state``: one float32 Box vector (``sim.env.observations``);
- ``sensors``: Dict of the suite's arrays by sensor name, plus
  ``<name>_count`` for LiDAR and radar (``sim.env.observations.sensor_space``).

Several modes give one Dict of all their entries: ``bev`` and
``measurements`` for bev, ``state`` (the state vector) for state, and every
sensor's entries for sensors; e.g. ``modes: [sensors, bev]`` gives
``{"bev", "measurements", "front_rgb", "roof_lidar", "roof_lidar_count", ...}``.
A sensor may not be named ``bev``, ``measurements`` or ``state`` then.

Privileged helpers for experts and ground truth (the env's own state, not the
observation): :attr:`DrivingEnv.progress`, :meth:`DrivingEnv.hazard_distance`,
:meth:`DrivingEnv.next_light`, :meth:`DrivingEnv.route_light` and
:meth:`DrivingEnv.ground_truth`.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from sim.api import (ActorKind, CollisionEvent, OffRoadEvent, Pose, RedLightEvent, SpawnError, StopSignEvent,
                     TrafficLightState, WorldSnapshot)
from sim.backends import make_sensor_rig, make_world
from sim.config import ConfigError
from sim.env.actions import action_mapping
from sim.env.config import EnvConfig, load_env_config
from sim.env.metrics import Infraction, InfractionKind, RouteResult, score_route
from sim.env.observations import (GroundTruth, LightGroundTruth, StateObserver, ground_truth, measurement_space,
                                  measurements)
from sim.env.rewards import RewardInput, make_reward
from sim.env.route_rules import MinSpeedCheck, RouteTimer
from sim.scenarios.routes import Route, RouteProgress, RouteTracker, load_route_file, plan_route, random_route
from sim.scenarios.library import check_scenario_names, place_scenarios
from sim.transforms import world_to_ego

HERO = "hero"
COMPLETION_DISTANCE_M = 3.0
"""The route counts as completed when the ego is this close to its end."""
BLOCKED_SPEED_MPS = 0.1
COLLISION_REPEAT_S = 1.0
"""Contacts with the same actor within this time are one collision (the simulator reports every tick)."""
HAZARD_RANGE_M = 30.0
HAZARD_CORRIDOR_M = 1.8

_COLLISION_KINDS = {"vehicle": InfractionKind.COLLISION_VEHICLE, "walker": InfractionKind.COLLISION_PEDESTRIAN,
                    "static": InfractionKind.COLLISION_STATIC}


class DrivingEnv(gymnasium.Env):
    """The driving environment; see the module docstring. Build it with keywords of :class:`EnvConfig`."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, config: str | EnvConfig | dict | None = None, render_mode: str | None = None,
                 **overrides: Any) -> None:
        self.config: EnvConfig = load_env_config(config, **overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        c = self.config
        self.world = self._make_world(c)
        self.lanes = self.world.lanes
        self.action_mapping = action_mapping(c.action.mode)
        self.action_space = self.action_mapping.space
        self.reward_fn = make_reward(c.reward.name, c.reward.params)
        self._route_specs = ()
        if c.routes.source == "file":
            route_file = load_route_file(c.routes.file)
            if route_file.town.lower() != self.world.source.name.lower():
                raise ConfigError(f"route file {c.routes.file} is for {route_file.town}, the map is "
                                  f"{self.world.source.name}")
            self._route_specs = route_file.select(c.routes.ids)
        self._route_cursor = 0
        self._walkers_fit = True  # False once the map refused pedestrians (no sidewalks)
        check_scenario_names(c.scenarios)
        self._scenarios: list = []
        action_size = self.action_space.shape[0]
        self._bev = None
        self._rig = None
        self._state = None
        self._sensor_space: spaces.Dict | None = None
        modes = c.observation.modes
        entries: dict[str, spaces.Space] = {}
        if "bev" in modes:
            from sim.env.bev import BevConfig, BevRenderer

            b = c.observation.bev
            self._bev = BevRenderer(self.lanes, self.world.geometry, self.world.signals,
                                    BevConfig(size_px=b.size_px, pixels_per_m=b.pixels_per_m,
                                              ego_from_bottom_px=b.ego_from_bottom_px,
                                              history_steps=tuple(b.history_steps)), self.world.area_raster)
            channels = len(self._bev.channel_names)
            entries["bev"] = spaces.Box(0, 255, shape=(channels, b.size_px, b.size_px), dtype=np.uint8)
            entries["measurements"] = measurement_space(action_size)
        if "state" in modes:
            self._state = StateObserver(c.observation.state, action_size)
            entries["state"] = self._state.space
        if "sensors" in modes:
            from sim.env.observations import sensor_space
            from sim.sensors.suite import load_suite

            self._suite = load_suite(c.sensors)
            self._sensor_space, self._padded = sensor_space(self._suite.sensors, self.world.dt_s)
            clash = sorted(set(self._sensor_space.spaces) & set(entries))
            if clash:
                raise ConfigError(f"sensor suite {c.sensors}: entries {clash} clash with the observation's "
                                  f"{', '.join(m for m in modes if m != 'sensors')} entries; rename the sensors")
            entries.update(self._sensor_space.spaces)
        # One mode keeps its own space (state: a Box); several share one Dict.
        self.observation_space = self._state.space if modes == ("state",) else \
            self._sensor_space if modes == ("sensors",) else spaces.Dict(entries)
        self._renderer = None
        self.ego_id = -1
        self.route: Route | None = None
        self._tracker: RouteTracker | None = None
        self._trail: deque[tuple[float, float]] = deque(maxlen=600)

    @property
    def route_ids(self) -> tuple[str, ...]:
        """Ids of the route file's routes this env runs (empty with random routes)."""
        return tuple(spec.route_id for spec in self._route_specs)

    @property
    def sensor_suite(self):
        """The ego's :class:`~sim.sensors.suite.SensorSuite` (``None`` unless the ``sensors`` mode is on)."""
        return getattr(self, "_suite", None)

    def _episode_scenarios(self, episode_seed: int) -> tuple[str, ...]:
        """The scenario names of this episode: all of ``scenarios``, or ``scenarios_per_route`` of them drawn."""
        names, count = self.config.scenarios, self.config.scenarios_per_route
        if count is None or count >= len(names):
            return names
        picked = np.sort(np.random.default_rng([episode_seed, 11]).choice(len(names), count, replace=False))
        return tuple(names[int(k)] for k in picked)

    @property
    def scenarios(self) -> tuple:
        """The scenarios placed along this episode's route (``sim.scenarios.library``), in route order."""
        return tuple(self._scenarios)

    @property
    def progress(self) -> RouteProgress:
        """Where the ego is along its route after the latest tick (privileged)."""
        if self._tracker is None:
            raise RuntimeError("call reset() before reading progress")
        return self._progress

    @property
    def time_limit_s(self) -> float:
        """The route's time limit so far [s] (``episode.route_timeout``; under the Leaderboard's rule it grows
        with progress); ``episode.max_steps`` overrides it."""
        if self._tracker is None:
            raise RuntimeError("call reset() before reading time_limit_s")
        if self._max_steps is not None:
            return self._max_steps * self.world.dt_s
        return self._timer.limit_s

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _make_world(c: EnvConfig):
        return make_world(c.backend, c.world, c.carla)

    def _make_rig(self):
        return make_sensor_rig(self.config.backend, self.world, self._suite)  # the town's props: fixed per map

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode. ``options``: ``route_id`` (a route of the route file) or ``route_index``."""
        super().reset(seed=seed)
        options = options or {}
        c = self.config
        episode_seed = int(self.np_random.integers(2**31 - 1))
        for scenario in self._scenarios:
            scenario.cleanup()
        self.world.reset(episode_seed)
        self.route = self._next_route(options, np.random.default_rng(episode_seed))
        start_xyz, start_yaw = self.lanes.interpolate(np.array([self.route.lane[0]]),
                                                      np.array([self._start_s()]))
        pose = Pose(float(self.route.points_xy[0, 0]), float(self.route.points_xy[0, 1]),
                    float(start_xyz[0, 2]), float(self.route.yaw_rad[0]))
        self.ego_id = self.world.spawn_vehicle(c.ego_blueprint, pose, role_name=HERO)
        self._scenarios = place_scenarios(self._episode_scenarios(episode_seed), self.world, self.ego_id,
                                          self.route, np.random.default_rng([episode_seed, 7]))
        if c.traffic.vehicles:
            self.world.spawn_traffic(c.traffic.vehicles)
        if c.traffic.walkers and self._walkers_fit:
            try:
                self.world.spawn_walkers(c.traffic.walkers)
            except SpawnError as exc:  # a map without sidewalks (a highway town): no pedestrians on it
                self._walkers_fit = False
                warnings.warn(f"traffic.walkers is {c.traffic.walkers} but {exc}: this env spawns no walkers "
                              "(set traffic.walkers: 0 for this map)", UserWarning, stacklevel=2)
        self._tracker = RouteTracker(self.route)
        if self._bev is not None:
            self._bev.reset()
            self._bev.set_route(self.route.points_xy)
        if self._sensor_space is not None:
            # The rig keeps its static scene across episodes (the map is kept); reset re-attaches
            # the sensors to this episode's ego and re-seeds their noise from the episode seed.
            if self._rig is None:
                self._rig = self._make_rig()
            self._rig.reset(episode_seed)
        self._light_of_junction = self._route_lights(self.route)
        self._steps = 0
        self._max_steps = c.episode.max_steps
        self._timer = RouteTimer(c.episode.route_timeout, self.route.length_m, c.episode.route_time_budget_mps,
                                 self.world.dt_s)
        self._min_speed = MinSpeedCheck(self.route.length_m) if c.episode.min_speed else None
        self._previous_action = np.zeros(self.action_space.shape, dtype=np.float32)
        self._previous_steer = 0.0
        self._slow_s = 0.0
        self._deviated = False
        self._infractions: list[Infraction] = []
        self._last_collision: dict[int, float] = {}
        self._distance_m = 0.0
        self._trail.clear()
        snapshot = self.world.tick()
        row = snapshot.index_of(self.ego_id)
        progress = self._tracker.update(*snapshot.location_m[row, :2], float(snapshot.rotation_rad[row, 1]))
        self._previous_completion = progress.completion
        self._snapshot, self._progress = snapshot, progress
        self._trail.append(tuple(snapshot.location_m[row, :2]))
        info = {"route_id": self.route.route_id, "route_length_m": self.route.length_m, "episode_seed": episode_seed,
                "route_completion": progress.completion,
                "speed_mps": float(np.hypot(*snapshot.velocity_mps[row, :2]))}
        if c.observation.ground_truth:
            info["ground_truth"] = self.ground_truth()
        return self._observe(snapshot, row, progress), info

    def step(self, action):
        """Apply ``action`` for one tick; see the module docstring for what comes back."""
        if self._tracker is None:
            raise RuntimeError("call reset() before step()")
        control, clipped, applied = self.action_mapping.to_control(action)
        c = self.config
        self.world.apply_control(self.ego_id, control)
        for scenario in self._scenarios:
            scenario.tick(self._snapshot, self._progress.s_m)
        snapshot = self.world.tick()
        self._steps += 1
        row = snapshot.index_of(self.ego_id)
        x, y = (float(v) for v in snapshot.location_m[row, :2])
        yaw = float(snapshot.rotation_rad[row, 1])
        progress = self._tracker.update(x, y, yaw)
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        self._distance_m += math.hypot(x - self._trail[-1][0], y - self._trail[-1][1])
        self._trail.append((x, y))

        events = self._step_infractions(snapshot, row, progress, speed)
        completed = self.route.length_m - progress.s_m <= COMPLETION_DISTANCE_M
        ending = next((e for e in events if e in c.episode.terminate_on), None)
        terminated = completed or ending is not None
        speed_limit = float(self.lanes.speed_limit_mps[self.route.lane[progress.index]])
        self._timer.advance(progress.s_m, speed_limit)
        out_of_time = self._timer.expired(self._steps) if self._max_steps is None else self._steps >= self._max_steps
        truncated = not terminated and out_of_time
        if self._min_speed is not None:
            self._check_min_speed(snapshot, row, progress, speed, (x, y), terminated or truncated)
        hazard = self.hazard_distance(snapshot, row, progress)
        reward, terms = self.reward_fn(RewardInput(
            speed_mps=speed, speed_limit_mps=speed_limit, lateral_m=progress.lateral_m,
            heading_error_rad=progress.heading_error_rad, steer=control.steer, previous_steer=self._previous_steer,
            completion=progress.completion, previous_completion=self._previous_completion,
            hazard_distance_m=hazard, ending_infraction=ending, completed=completed))
        self._previous_steer = control.steer
        self._previous_completion = progress.completion
        self._previous_action = applied
        self._snapshot, self._progress = snapshot, progress
        info: dict[str, Any] = {"rewards": terms, "infractions": events, "action_clipped": clipped,
                                "route_completion": progress.completion, "route_id": self.route.route_id,
                                "speed_mps": speed}
        if terminated or truncated:
            reason = "completed" if completed else ending if ending is not None else "route_timeout"
            if reason == "route_timeout":
                self._infractions.append(Infraction(InfractionKind.ROUTE_TIMEOUT, snapshot.frame, (x, y, 0.0)))
            info["termination_reason"] = reason
            info["route_score"] = score_route(self.route_result(reason)).to_dict()
        if c.observation.ground_truth:
            info["ground_truth"] = self.ground_truth()
        return self._observe(snapshot, row, progress), float(reward), terminated, truncated, info

    def ground_truth(self) -> GroundTruth:
        """Privileged ground truth of the latest tick: ego pose, nearby actors' boxes, the governing light.

        Actors within ``observation.ground_truth_radius_m`` of the ego; see
        :class:`~sim.env.observations.GroundTruth`. What ``info["ground_truth"]`` holds.
        """
        if self._tracker is None:
            raise RuntimeError("call reset() before ground_truth()")
        snapshot, progress = self._snapshot, self._progress
        index, distance = self.route_light(progress)
        state = TrafficLightState(int(snapshot.light_state[index])) if index >= 0 else None
        return ground_truth(snapshot, snapshot.index_of(self.ego_id), self.config.observation.ground_truth_radius_m,
                            LightGroundTruth(index, state, distance))

    def route_result(self, termination: str) -> RouteResult:
        """The episode so far as a Leaderboard :class:`RouteResult`."""
        completion = 1.0 if termination == "completed" else float(min(max(self._progress.completion, 0.0), 1.0))
        return RouteResult(self.route.route_id, self.route.length_m, completion, tuple(self._infractions),
                           termination, self._steps * self.world.dt_s, self._distance_m)

    def render(self):
        """A top-down colour image around the ego with the route, actors, lights and the ego's recent path."""
        if self.render_mode != "rgb_array":
            return None
        if self._tracker is None:
            raise RuntimeError("call reset() before render()")
        if self._renderer is None:
            from sim.render import TopDownRenderer

            self._renderer = TopDownRenderer(self.world.geometry, pixels_per_m=5.0, view_size_px=(512, 512))
        return self._renderer.render(self._snapshot, hero_id=self.ego_id, route_xy=self.route.points_xy,
                                     trail_xy=np.asarray(self._trail))

    def close(self) -> None:
        """Release the sensor threads and forced lights; the world is dropped with the env."""
        for scenario in self._scenarios:
            scenario.cleanup()
        if self._rig is not None:
            self._rig.close()
            self._rig = None
        if self.config.backend == "carla":
            self.world.close()  # destroys what it spawned, restores the server's settings

    # ------------------------------------------------------------------ episode pieces
    def _next_route(self, options: dict, rng: np.random.Generator) -> Route:
        c = self.config
        if self._route_specs:
            if "route_id" in options:
                spec = next((s for s in self._route_specs if s.route_id == options["route_id"]), None)
                if spec is None:
                    raise ValueError(f"route_id {options['route_id']!r} is not among this env's routes: "
                                     f"{list(self.route_ids)}")
            else:
                index = int(options.get("route_index", self._route_cursor)) % len(self._route_specs)
                spec = self._route_specs[index]
                self._route_cursor = index + 1
            return plan_route(self.lanes, np.asarray(spec.waypoints_xy), spec.route_id)
        if "route_id" in options or "route_index" in options:
            raise ValueError("route_id / route_index need routes.source: file")
        return random_route(self.lanes, rng, c.routes.min_length_m, c.routes.max_length_m)

    def _start_s(self) -> float:
        xy = self.route.points_xy[0]
        lane = int(self.route.lane[0])
        points = self.lanes.lane_points(lane)
        k = int(np.argmin(np.hypot(points[:, 0] - xy[0], points[:, 1] - xy[1])))
        return float(self.lanes.s_m[int(self.lanes.offset[lane]) + k])

    def _route_lights(self, route: Route) -> dict[int, int]:
        """Route index of each junction entry -> index of the traffic light facing it (-1: none)."""
        lights = {}
        for index in route.junction_entries.tolist():
            before = int(route.lane[max(index - 1, 0)])
            lights[index] = int(self.world.signals.lane_light[before])
        return lights

    def route_light(self, progress: RouteProgress) -> tuple[int, float]:
        """The light that governs the ego on its route: the next one ahead of ``progress``.

        Its index into the world's ``signals`` and the distance along the route
        to its junction entry [m]; (-1, inf) when no light is ahead.
        """
        for index, light in self._light_of_junction.items():
            if index > progress.index and light >= 0:
                return light, float(self.route.s_m[index] - progress.s_m)
        return -1, math.inf

    def next_light(self, snapshot: WorldSnapshot, progress: RouteProgress) -> tuple[int | None, float]:
        """State (``TrafficLightState`` value) and distance of the next light on the route (None, inf: none ahead)."""
        light, distance = self.route_light(progress)
        if light < 0:
            return None, math.inf
        return int(snapshot.light_state[light]), distance

    def hazard_distance(self, snapshot: WorldSnapshot, row: int, progress: RouteProgress) -> float:
        """Distance to the nearest vehicle or pedestrian in the ego's corridor, or a red/yellow stop line."""
        yaw = float(snapshot.rotation_rad[row, 1])
        ahead, side = world_to_ego(snapshot.location_m[:, :2], snapshot.location_m[row, :2], yaw).T
        gap = ahead - snapshot.extent_m[row, 0] - snapshot.extent_m[:, 0]
        hit = (ahead > 0) & (gap < HAZARD_RANGE_M) & (np.abs(side) < HAZARD_CORRIDOR_M + snapshot.extent_m[:, 1])
        hit[row] = False
        hazard = float(max(gap[hit].min(), 0.0)) if hit.any() else math.inf
        state, distance = self.next_light(snapshot, progress)
        if state in (TrafficLightState.RED, TrafficLightState.YELLOW):
            hazard = min(hazard, max(distance - float(snapshot.extent_m[row, 0]), 0.0))
        return hazard

    def _step_infractions(self, snapshot, row: int, progress, speed: float) -> list[str]:
        """Infractions of this tick as env event names; Leaderboard ones are also logged for the metrics."""
        c = self.config
        events: list[str] = []
        now = snapshot.timestamp_s
        for event in snapshot.events_of(self.ego_id):
            where = tuple(float(v) for v in event.location_m)
            if isinstance(event, CollisionEvent):
                last = self._last_collision.get(event.other_id)
                self._last_collision[event.other_id] = now
                if last is not None and now - last <= COLLISION_REPEAT_S:
                    continue
                events.append("collision")
                self._infractions.append(Infraction(_COLLISION_KINDS[event.other_kind], snapshot.frame, where))
            elif isinstance(event, RedLightEvent):
                events.append("red_light")
                self._infractions.append(Infraction(InfractionKind.RED_LIGHT, snapshot.frame, where))
            elif isinstance(event, StopSignEvent):
                events.append("stop_sign")
                self._infractions.append(Infraction(InfractionKind.STOP_SIGN, snapshot.frame, where))
            elif isinstance(event, OffRoadEvent) and event.entered:
                events.append("off_road")
        location = (float(snapshot.location_m[row, 0]), float(snapshot.location_m[row, 1]), 0.0)
        if abs(progress.lateral_m) > c.episode.route_deviation_m and not self._deviated:
            self._deviated = True
            events.append("route_deviation")
            self._infractions.append(Infraction(InfractionKind.ROUTE_DEVIATION, snapshot.frame, location))
        self._slow_s = self._slow_s + snapshot.dt_s if speed < BLOCKED_SPEED_MPS else 0.0
        if self._slow_s >= c.episode.blocked_s:
            events.append("blocked")
            self._infractions.append(Infraction(InfractionKind.AGENT_BLOCKED, snapshot.frame, location))
            self._slow_s = 0.0
        return events

    def _check_min_speed(self, snapshot, row: int, progress, speed: float, xy: tuple[float, float],
                         ending: bool) -> None:
        """The Leaderboard's minimum-speed test: the ego's speed against the other vehicles' this tick."""
        others = snapshot.kind == ActorKind.VEHICLE
        others[row] = False
        traffic = float(np.hypot(*snapshot.velocity_mps[others, :2].T).mean()) if others.any() else None
        failed = [self._min_speed.update(progress.s_m, speed, traffic)]
        if ending:
            failed.append(self._min_speed.finish())
        for value in failed:
            if value is not None:
                self._infractions.append(Infraction(InfractionKind.MIN_SPEED, snapshot.frame, (*xy, 0.0), value=value))

    def _observe(self, snapshot, row: int, progress):
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        limit = float(self.lanes.speed_limit_mps[self.route.lane[progress.index]])
        vector = measurements(speed, limit, self._previous_action, progress)
        out: dict[str, np.ndarray] = {}
        if self._bev is not None:
            out["bev"] = self._bev.render(snapshot, self.ego_id)
            out["measurements"] = vector
        if self._state is not None:
            state, distance = self.next_light(snapshot, progress)
            out["state"] = self._state.observe(snapshot, row, self.route, progress, vector, state, distance)
            if self.config.observation.modes == ("state",):
                return out["state"]
        if self._sensor_space is not None:
            from sim.env.observations import sensor_arrays

            out.update(sensor_arrays(self._rig.measure(snapshot), self._sensor_space, self._padded))
        return out
