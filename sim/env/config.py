"""Validated configuration of the driving environment (``configs/env/*.yaml``); unknown keys are errors.

Every field can also be given as a keyword to ``gymnasium.make``::

    gymnasium.make("avsim/Driving-v0", map="Town02", traffic={"vehicles": 40})
    gymnasium.make("avsim/Driving-v0", config="configs/env/default.yaml", seed=3)
    gymnasium.make("avsim/Driving-v0", world={"map": "procedural", "procedural": {"grid_rows": 3},
                                              "traffic": {"lane_changes": True}})

Keywords override the file; nested sections given as dicts are merged key by
key into the file's (or the defaults').

The world the env drives in is the ``world`` section, the same
``sim.config.WorldConfig`` a world is built from (map, seed, step, dynamics,
light timing, traffic behaviour, procedural town). The env's default map is
Town01. Shorthands, in a file or as keywords: ``map``, ``seed``, ``dt_s`` and
``dynamics`` at the top level fill ``world.map``, ``world.seed``,
``world.dt_s`` and ``world.dynamics``; ``observation.mode: x`` is
``observation.modes: [x]``. Within one file or one set of keywords, a
shorthand and a different value of the key it fills are a ``ConfigError``
naming both. (``traffic`` at the top level is how many NPCs the env spawns;
``world.traffic`` is how they drive.)
"""

from __future__ import annotations

from collections.abc import Mapping

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.config import CarlaConfig, ConfigError, WorldConfig, read_yaml
from sim.env.rewards import REWARDS, RewardParams, RoachParams, reward_params

INFRACTION_EVENTS = ("collision", "red_light", "stop_sign", "off_road", "route_deviation", "blocked")
"""Infractions that can end an episode (``terminate_on``)."""

DEFAULT_MAP = "Town01"
"""The env's map when neither ``map`` nor ``world.map`` is given."""

WORLD_SHORTHANDS = ("map", "seed", "dt_s", "dynamics")
"""Top-level keys that fill the same key of ``world``."""

OBSERVATION_MODES = ("bev", "state", "sensors")
"""What an observation can hold (``observation.modes``)."""


def _apply_shorthands(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the world and observation shorthands moved into place; ``ConfigError`` on a conflict."""
    data = dict(data)
    moved = {key: data.pop(key) for key in WORLD_SHORTHANDS if key in data}
    if moved:
        world = data.get("world", {})
        if isinstance(world, WorldConfig):
            world = world.model_dump(exclude_unset=True)
        if isinstance(world, dict):
            world = dict(world)
            for key, value in moved.items():
                if key in world and world[key] != value:
                    raise ConfigError(f"{key} ({value!r}) and world.{key} ({world[key]!r}) conflict: give one of them")
                world[key] = value
            data["world"] = world
    if isinstance(data.get("observation"), dict):
        data["observation"] = _observation_shorthand(data["observation"])
    return data


def _observation_shorthand(observation: dict[str, Any]) -> dict[str, Any]:
    """``mode: x`` as ``modes: [x]``; ``ConfigError`` if both are given and differ."""
    if "mode" not in observation:
        return observation
    observation = dict(observation)
    mode = observation.pop("mode")
    if "modes" in observation and _as_modes(observation["modes"]) != [mode]:
        raise ConfigError(f"observation.mode ({mode!r}) and observation.modes ({observation['modes']!r}) "
                          "conflict: give one of them")
    observation["modes"] = [mode]
    return observation


def _as_modes(value: object) -> object:
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, (list, tuple)) else value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrafficSection(_Section):
    """NPC traffic around the ego."""

    vehicles: int = Field(20, ge=0, le=500)
    walkers: int = Field(10, ge=0, le=500)


class RouteSection(_Section):
    """Where the ego drives: random routes on the map, or routes from a route file."""

    source: Literal["random", "file"] = "random"
    file: str | None = None  # YAML route file (configs/routes/*.yaml) when source is "file"
    ids: tuple[str, ...] | None = None  # subset of the file's routes (default: all, in order)
    min_length_m: float = Field(150.0, gt=0)
    max_length_m: float = Field(400.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> RouteSection:
        if self.source == "file" and not self.file:
            raise ValueError("routes.file is required when routes.source is 'file'")
        if self.min_length_m > self.max_length_m:
            raise ValueError(f"routes.min_length_m ({self.min_length_m}) exceeds max_length_m ({self.max_length_m})")
        return self


class BevSection(_Section):
    """The bird's-eye-view raster (see ``sim.env.bev``)."""

    size_px: int = Field(192, ge=16, le=1024)
    pixels_per_m: float = Field(5.0, gt=0)
    ego_from_bottom_px: int = Field(40, ge=0)
    history_steps: tuple[int, ...] = (0, 5, 10)


class StateSection(_Section):
    """The compact ``state`` observation: nearest actors, route ahead, next light."""

    vehicles: int = Field(6, ge=0, le=64)
    walkers: int = Field(4, ge=0, le=64)
    route_points: int = Field(10, ge=1, le=100)
    route_spacing_m: float = Field(4.0, gt=0)
    radius_m: float = Field(50.0, gt=0)


class ObservationSection(_Section):
    """What the policy sees, and what ground truth ``info`` carries.

    ``modes``: one or more of ``bev`` (raster and measurements), ``state``
    (one vector) and ``sensors`` (the sensor suite's arrays); ``mode: x`` is
    short for ``modes: [x]``. With one mode the observation is that mode's
    alone; with several, one Dict of all their entries (see
    ``sim.env.driving``). ``ground_truth``: put the privileged ground truth
    (``sim.env.observations.GroundTruth``) in ``info["ground_truth"]`` at reset
    and every step, with the boxes of actors within ``ground_truth_radius_m``.
    """

    modes: tuple[Literal["bev", "state", "sensors"], ...] = ("bev",)
    bev: BevSection = BevSection()
    state: StateSection = StateSection()
    ground_truth: bool = False
    ground_truth_radius_m: float = Field(50.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _mode_shorthand(cls, data: Any) -> Any:
        return _observation_shorthand(data) if isinstance(data, dict) else data

    @field_validator("modes", mode="before")
    @classmethod
    def _check_modes(cls, value: Any) -> Any:
        value = _as_modes(value)
        if not isinstance(value, list):
            return value  # pydantic names the wrong type
        if not value:
            raise ConfigError(f"observation.modes is empty: name at least one of {', '.join(OBSERVATION_MODES)}")
        for mode in value:
            if mode not in OBSERVATION_MODES:
                raise ConfigError(f"observation.modes: unknown mode {mode!r} (valid: {', '.join(OBSERVATION_MODES)})")
        if len(set(value)) != len(value):
            raise ConfigError(f"observation.modes {value} names a mode twice")
        return value


class ActionSection(_Section):
    """``acc_steer``: Box [-1, 1]^2 (acceleration: + throttle / - brake, steer); ``throttle_brake_steer``; or
    ``vehicle_control`` (throttle, steer, brake, reverse: what the AV stack emits); see ``sim/env/actions.py``."""

    mode: Literal["acc_steer", "throttle_brake_steer", "vehicle_control"] = "acc_steer"


class RewardSection(_Section):
    """Which reward and its parameters, typed per reward (``RoachParams``, ``CarlParams`` in ``sim.env.rewards``).

    An unknown parameter is a ``ConfigError`` naming it and listing the reward's valid ones.
    """

    name: Literal["roach", "carl"] = "roach"
    params: RewardParams = RoachParams()

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, data: Any) -> Any:
        if isinstance(data, dict):
            name = data.get("name", "roach")
            if name in REWARDS:  # else the Literal names the valid rewards
                data = {**data, "params": reward_params(name, data.get("params"))}
        return data


class EpisodeSection(_Section):
    """When an episode ends."""

    max_steps: int | None = Field(None, ge=1)  # time limit (truncation); None: the route's time budget
    terminate_on: tuple[str, ...] = ("collision", "red_light", "route_deviation", "blocked")
    route_deviation_m: float = Field(30.0, gt=0)  # Leaderboard: off the route by more than 30 m
    blocked_s: float = Field(180.0, gt=0)  # Leaderboard: slower than 0.1 m/s for 180 s
    route_time_budget_mps: float = Field(2.0, gt=0)  # time budget = length / this speed + 30 s
    # budget: the fixed time budget above; leaderboard: the Leaderboard 2.0's rule (300 s, and progress buys
    # time at 10 % of the speed limit; sim/env/route_rules.py)
    route_timeout: Literal["budget", "leaderboard"] = "budget"
    min_speed: bool = False  # the Leaderboard 2.0's minimum-speed test (4 checkpoints; sim/env/route_rules.py)

    @model_validator(mode="after")
    def _check(self) -> EpisodeSection:
        unknown = sorted(set(self.terminate_on) - set(INFRACTION_EVENTS))
        if unknown:
            raise ValueError(f"episode.terminate_on has unknown events {unknown}; valid: {list(INFRACTION_EVENTS)}")
        return self


class EnvConfig(_Section):
    """Everything that defines a driving environment."""

    backend: Literal["embedded", "carla"] = "embedded"
    world: WorldConfig = WorldConfig(map=DEFAULT_MAP)
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    traffic: TrafficSection = TrafficSection()
    routes: RouteSection = RouteSection()
    sensors: str | None = None  # sensor suite YAML (configs/sensors/*.yaml): needed for observation mode sensors
    observation: ObservationSection = ObservationSection()
    action: ActionSection = ActionSection()
    reward: RewardSection = RewardSection()
    episode: EpisodeSection = EpisodeSection()
    scenarios: tuple[str, ...] = ()  # scenario names (see sim.scenarios.library), placed along each route
    scenarios_per_route: int | None = Field(None, ge=0, description=(
        "draw this many of ``scenarios`` for each episode (seeded by the episode, in their listed order); "
        "None: all of them on every route"))
    carla: CarlaConfig = CarlaConfig()

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _apply_shorthands(data)
        world = data.get("world", {})
        if isinstance(world, WorldConfig):
            world = world.model_dump(exclude_unset=True)
        if isinstance(world, dict) and "map" not in world:
            data["world"] = {**world, "map": DEFAULT_MAP}
        return data

    @model_validator(mode="after")
    def _check(self) -> EnvConfig:
        if "sensors" in self.observation.modes and not self.sensors:
            raise ValueError("observation mode 'sensors' needs a sensor suite: set sensors: configs/sensors/....yaml")
        return self


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested mappings key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    error = first.get("ctx", {}).get("error")
    if isinstance(error, ConfigError):  # raised by a validator with the key path in its message
        return f"{source}: {error}"
    where = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        model: type[BaseModel] = EnvConfig
        for part in first["loc"][:-1]:
            field = model.model_fields.get(str(part))
            annotation = getattr(field, "annotation", None)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
        message = f"unknown key (valid: {', '.join(model.model_fields)})"
    return f"{source}: {where}: {message}"


def load_env_config(config: str | Path | EnvConfig | dict | None = None, **overrides: Any) -> EnvConfig:
    """An :class:`EnvConfig` from a YAML path, a dict or a config, with keyword overrides; ``ConfigError`` if invalid."""
    source = "env config"
    if isinstance(config, EnvConfig):
        data = config.model_dump()
    elif config is None:
        data = {}
    elif isinstance(config, dict):
        data = config
    else:
        path = Path(config)
        source = f"env config {path}"
        data = read_yaml(path, "env config file")
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    # Shorthands are resolved per source, so a keyword map= overrides the file's world.map.
    try:
        data = _apply_shorthands(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        overrides = _apply_shorthands(overrides)
    except ConfigError as exc:
        raise ConfigError(f"env config keywords: {exc}") from None
    try:
        return EnvConfig.model_validate(merge_overrides(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
