"""Validated configuration of the driving environment (``configs/env/*.yaml``); unknown keys are errors.

Every field can also be given as a keyword to ``gymnasium.make``::

    gymnasium.make("avsim/Driving-v0", map="Town02", traffic={"vehicles": 40})
    gymnasium.make("avsim/Driving-v0", config="configs/env/town01_bev.yaml", seed=3)

Keywords override the file; nested sections given as dicts are merged key by
key into the file's (or the defaults').
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.config import CarlaConfig, ConfigError, read_yaml

INFRACTION_EVENTS = ("collision", "red_light", "stop_sign", "off_road", "route_deviation", "blocked")
"""Infractions that can end an episode (``terminate_on``)."""


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
    """What the policy sees: ``bev``, ``sensors`` (the sensor suite's arrays) or ``state`` vectors."""

    mode: Literal["bev", "sensors", "state"] = "bev"
    bev: BevSection = BevSection()
    state: StateSection = StateSection()


class ActionSection(_Section):
    """``acc_steer``: Box [-1, 1]^2 (acceleration: + throttle / - brake, steer); or ``throttle_brake_steer``."""

    mode: Literal["acc_steer", "throttle_brake_steer"] = "acc_steer"


class RewardSection(_Section):
    """Which reward and its parameters (validated by the reward itself, see ``sim.env.rewards``)."""

    name: Literal["roach", "carl"] = "roach"
    params: dict[str, Any] = Field(default_factory=dict)


class EpisodeSection(_Section):
    """When an episode ends."""

    max_steps: int | None = Field(None, ge=1)  # time limit (truncation); None: the route's time budget
    terminate_on: tuple[str, ...] = ("collision", "red_light", "route_deviation", "blocked")
    route_deviation_m: float = Field(30.0, gt=0)  # Leaderboard: off the route by more than 30 m
    blocked_s: float = Field(180.0, gt=0)  # Leaderboard: slower than 0.1 m/s for 180 s
    route_time_budget_mps: float = Field(2.0, gt=0)  # time budget = length / this speed + 30 s

    @model_validator(mode="after")
    def _check(self) -> EpisodeSection:
        unknown = sorted(set(self.terminate_on) - set(INFRACTION_EVENTS))
        if unknown:
            raise ValueError(f"episode.terminate_on has unknown events {unknown}; valid: {list(INFRACTION_EVENTS)}")
        return self


class EnvConfig(_Section):
    """Everything that defines a driving environment."""

    backend: Literal["embedded", "carla"] = "embedded"
    map: str = "Town01"  # shipped town, an .xodr path, or "procedural"
    seed: int = 0
    dt_s: float = Field(0.05, gt=0, le=1.0)
    dynamics: Literal["kinematic", "dynamic"] = "dynamic"
    ego_blueprint: str = "vehicle.lincoln.mkz_2020"
    traffic: TrafficSection = TrafficSection()
    routes: RouteSection = RouteSection()
    sensors: str | None = None  # sensor suite YAML (configs/sensors/*.yaml): needed for observation mode sensors
    observation: ObservationSection = ObservationSection()
    action: ActionSection = ActionSection()
    reward: RewardSection = RewardSection()
    episode: EpisodeSection = EpisodeSection()
    scenarios: tuple[str, ...] = ()  # scenario names (see sim.scenarios.library), placed along each route
    carla: CarlaConfig = CarlaConfig()

    @model_validator(mode="after")
    def _check(self) -> EnvConfig:
        if self.observation.mode == "sensors" and not self.sensors:
            raise ValueError("observation.mode 'sensors' needs a sensor suite: set sensors: configs/sensors/....yaml")
        return self


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
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
    try:
        return EnvConfig.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
