"""The collection config (``configs/collect/*.yaml``): towns, traffic, scenarios, seeds, frames, noise, splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from sim.config import ConfigError, load_yaml_config
from sim.maps.procedural import ProceduralTownConfig

SPLITS = ("train", "val", "test")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TownSpec(_Section):
    """A town to drive: a shipped town or an .xodr path (``map``), or a procedural town (``procedural``, the
    :class:`~sim.maps.procedural.ProceduralTownConfig` keys). ``name`` (default: the map's own name, e.g.
    ``Town01`` or ``procedural_2x2_seed3``) is what splits and the manifest call it."""

    map: str | None = None
    procedural: ProceduralTownConfig | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TownSpec:
        if (self.map is None) == (self.procedural is None):
            raise ValueError("a town needs exactly one of 'map' (shipped town or .xodr path) and 'procedural'")
        return self

    @property
    def label(self) -> str:
        """The town's name in splits, the manifest and log file names."""
        if self.name:
            return self.name
        if self.procedural is not None:
            p = self.procedural
            return f"procedural_{p.grid_rows}x{p.grid_cols}_seed{p.seed}"
        return Path(self.map).stem if self.map.endswith(".xodr") else self.map

    def world_overrides(self) -> dict[str, Any]:
        """The env's ``world`` overrides for this town."""
        if self.procedural is not None:
            return {"map": "procedural", "procedural": self.procedural.model_dump()}
        return {"map": self.map}


class TrafficSpec(_Section):
    """NPC vehicles and walkers per episode."""

    vehicles: int = Field(10, ge=0, le=500)
    walkers: int = Field(5, ge=0, le=500)


def _positive_range(value: tuple[float, float]) -> tuple[float, float]:
    low, high = value
    if not 0.0 < low <= high:
        raise ValueError(f"must be (min, max) with 0 < min <= max, got {value}")
    return value


SecondsRange = Annotated[tuple[float, float], AfterValidator(_positive_range)]
"""A (min, max) duration in seconds with 0 < min <= max; a bad one is an error naming its key."""


class NoiseConfig(_Section):
    """Noise injection on the EXECUTED control (DART / CARLA CIL): short random episodes in which a steering
    (and throttle) offset ramps up and back down (a triangle), so the expert's clean label shows recoveries.

    A noise episode starts at a tick with probability ``start_probability`` while none runs; it lasts
    ``duration_s`` (uniform in the range) and peaks at a uniform offset of at most ``steer_max`` /
    ``throttle_max`` (random sign)."""

    enabled: bool = True
    start_probability: float = Field(0.02, ge=0.0, le=1.0)
    duration_s: SecondsRange = (0.5, 2.0)
    steer_max: float = Field(0.3, ge=0.0, le=1.0)
    throttle_max: float = Field(0.3, ge=0.0, le=1.0)


class DriftConfig(_Section):
    """The expert drives off the lane centre: its (oracle) localization hands it the true pose moved across
    the heading by a slowly varying offset, so the car really sits that far to the side of the path it
    follows. Each segment of ``segment_s`` (uniform in the range) moves the offset linearly to a new uniform
    target within +-``lateral_max_m``. For data whose labels are poses (the map-matching network, which must
    not learn that the car is always on the lane centre); the clean control labels then steer to the moved
    path, so do not imitate them."""

    enabled: bool = False
    lateral_max_m: float = Field(1.0, ge=0.0, le=3.0)
    segment_s: SecondsRange = (3.0, 8.0)


class SplitConfig(_Section):
    """Towns held out for validation and testing (by town name); every other town is ``train``. Left out:
    :func:`av_stack.data.manifest.split_of`'s stable hash rule decides."""

    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> SplitConfig:
        both = set(self.val) & set(self.test)
        if both:
            raise ValueError(f"towns {sorted(both)} are in both val and test")
        return self


class CollectConfig(_Section):
    """A dataset mix: every (town, traffic, scenarios) setting gets ``frames`` frames, in logs of at most
    ``frames_per_log`` frames; log ``k`` of a setting runs with seed ``seed + k`` (world, NPCs, routes and
    episodes). Every frame's sensors are recorded unless ``sensors_every`` > 1."""

    towns: tuple[TownSpec, ...] = Field((TownSpec(map="Town01"),), min_length=1)
    traffic: tuple[TrafficSpec, ...] = Field((TrafficSpec(),), min_length=1)
    scenarios: tuple[tuple[str, ...], ...] = Field(((),), min_length=1)
    seed: int = Field(0, ge=0)
    frames: int = Field(200, ge=1, description="frames per (town, traffic, scenarios) setting")
    frames_per_log: int = Field(200, ge=1)
    sensors: str = "configs/sensors/default.yaml"
    sensors_every: int = Field(1, ge=1, description="record sensors on every n-th frame (1: all)")
    jpeg_quality: int = Field(90, ge=1, le=100)
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    noise: NoiseConfig = NoiseConfig()
    drift: DriftConfig = DriftConfig()
    split: SplitConfig | None = None
    routes_per_log: int | None = Field(None, ge=1, le=1000, description="random routes drawn per log (default: "
                                                                       "enough for the log's frames)")
    env: dict[str, Any] = Field(default_factory=dict, description="further env overrides (sim/env/config.py keys)")

    @model_validator(mode="after")
    def _unique_towns(self) -> CollectConfig:
        labels = [t.label for t in self.towns]
        repeated = sorted({name for name in labels if labels.count(name) > 1})
        if repeated:
            raise ValueError(f"towns {repeated} appear twice (give them distinct 'name's)")
        return self


def load_collect_config(path: str | Path) -> CollectConfig:
    """A :class:`CollectConfig` from YAML (a path or a shipped name such as ``collect/small_mix.yaml``);
    ``ConfigError`` naming the file and the key."""
    from sim.resources import resolve_config

    return load_yaml_config(resolve_config(str(path), "collect"), CollectConfig)


def config_error(exc: Exception, label: str) -> ConfigError:
    """A pydantic validation error as one ``ConfigError`` line naming ``label`` and the key."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return ConfigError(f"{label}: {where}: {first['msg']}")
    return ConfigError(f"{label}: {exc}")
