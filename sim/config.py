"""Configuration shared by every backend: YAML reading with clear errors, and the world's config (section ``world``).

``WorldConfig`` describes a world whatever simulates it: the map, seed, step,
vehicle dynamics, light timing and traffic behaviour. The embedded simulator
uses all of it; the CARLA backend maps what CARLA can take.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.api import DEFAULT_DT_S
from sim.maps.procedural import ProceduralTownConfig


class TrafficLightTiming(BaseModel):
    """Default timing of every light [s] (CARLA's defaults: green 10, yellow 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    green_s: float = Field(10.0, gt=0)
    yellow_s: float = Field(3.0, ge=0)
    all_red_s: float = Field(1.0, ge=0)


class TrafficConfig(BaseModel):
    """NPC driver behaviour (Intelligent Driver Model and Traffic-Manager-like speed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accel_mps2: float = Field(2.0, gt=0)
    comfort_decel_mps2: float = Field(3.0, gt=0)
    max_decel_mps2: float = Field(8.0, gt=0)
    time_headway_s: float = Field(1.2, ge=0)
    min_gap_m: float = Field(2.0, ge=0)
    speed_difference: float = Field(0.3, ge=-1.0, lt=1.0)
    speed_spread: float = Field(0.1, ge=0, lt=1.0)
    lane_changes: bool = False
    """MOBIL lane changes on multi-lane roads (off by default, as CARLA's Traffic Manager auto lane change is per vehicle)."""
    politeness: float = Field(0.3, ge=0, le=1)
    change_threshold_mps2: float = Field(0.3, ge=0)
    stuck_timeout_s: float | None = Field(90.0, gt=0)
    """An NPC standing still this long (not at a red light or stop sign) is moved to a free spawn
    point, as SUMO's time-to-teleport resolves gridlock; None disables it."""


class WalkerConfig(BaseModel):
    """Pedestrian behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_speed_mps: float = Field(0.9, gt=0)
    max_speed_mps: float = Field(1.6, gt=0)
    careless_share: float = Field(0.1, ge=0, le=1)


class WorldConfig(BaseModel):
    """Everything that defines an embedded world; unknown keys are errors.

    ``map``: a shipped town (Town01, Town02, Town10HD), a path to any .xodr, or
    ``"procedural"`` for a town generated from ``procedural`` (seeded: the
    same settings give the same map).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    map: str = "Town10HD"
    procedural: ProceduralTownConfig = ProceduralTownConfig()
    seed: int = 0
    dt_s: float = Field(DEFAULT_DT_S, gt=0, le=1.0)
    dynamics: Literal["kinematic", "dynamic"] = "dynamic"
    lights: TrafficLightTiming = TrafficLightTiming()
    generate_missing_lights: bool = True
    traffic: TrafficConfig = TrafficConfig()
    walkers: WalkerConfig = WalkerConfig()


class CarlaConfig(BaseModel):
    """How to reach a CARLA server when the backend is ``carla``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "localhost"
    port: int = Field(2000, ge=1, le=65535)
    timeout_s: float = Field(20.0, gt=0)
    tm_port: int = Field(8000, ge=1, le=65535)
    """Traffic Manager port."""


class ConfigError(ValueError):
    """A configuration file or section is invalid; the message names the file and key."""


def read_yaml(path: str | Path, label: str = "config file") -> object:
    """The parsed YAML of ``path`` ({} for an empty file); ``ConfigError`` naming the file if missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label} {path} is not valid YAML: {exc}") from exc


def load_yaml_config(path: str | Path, model: type[BaseModel], section: str | None = None) -> BaseModel:
    """Read ``path`` (optionally one top-level ``section`` of it) into ``model``, with clear errors."""
    path = Path(path)
    data = read_yaml(path)
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(f"config file {path} has no '{section}' section")
        data = data[section]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        valid = ", ".join(model.model_fields)
        raise ConfigError(f"config file {path}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']} "
                          f"(valid keys: {valid})") from exc
