"""Sensor suites: which sensors, on which actor, where, with which CARLA blueprint attributes.

A suite is declared in YAML (``configs/sensors/*.yaml``)::

    sensors:
      - name: front_rgb                # unique within the suite
        blueprint: sensor.camera.rgb
        attach_to: hero                # role_name of the parent actor, or "world" for a fixed sensor
        transform: {x: 1.5, y: 0.0, z: 2.4, roll_deg: 0.0, pitch_deg: -5.0, yaw_deg: 0.0}
        attributes: {image_size_x: 400, image_size_y: 300, fov: 90}

The transform is relative to the parent (to the world for ``world``) in CARLA's
frame, metres and degrees, as ``carla.Transform``; the loaded ``SensorSpec``
holds radians. Unknown keys, blueprints and attributes are errors naming the
file and the sensor.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

from sim.api import Pose
from sim.sensors.blueprints import (
    SensorAttributes,
    SensorConfigError,
    get_blueprint,
)
from sim.resources import SHIPPED_CONFIGS_DIR, locate_config

DEFAULT_ATTACH_TO = "hero"
WORLD = "world"
"""``attach_to`` value of a sensor fixed in the world rather than attached to an actor."""

EVENT_SENSORS = ("sensor.other.collision", "sensor.other.lane_invasion")
"""Sensors that report events of their parent actor, so cannot be fixed in the world."""

SHIPPED_SUITES_DIR = SHIPPED_CONFIGS_DIR / "sensors"
"""The shipped suites (``configs/sensors``), found relative to the installed package."""


class TransformConfig(BaseModel):
    """Pose of a sensor relative to its parent: CARLA frame, metres and degrees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: FiniteFloat = 0.0
    y: FiniteFloat = 0.0
    z: FiniteFloat = 0.0
    roll_deg: FiniteFloat = 0.0
    pitch_deg: FiniteFloat = 0.0
    yaw_deg: FiniteFloat = 0.0


class SensorEntryConfig(BaseModel):
    """One sensor of a suite as written in YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    blueprint: str
    attach_to: str = Field(DEFAULT_ATTACH_TO, min_length=1)
    transform: TransformConfig = TransformConfig()
    attributes: dict[str, Any] = Field(default_factory=dict)


class SensorSuiteConfig(BaseModel):
    """A sensor suite file: a list of sensors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sensors: list[SensorEntryConfig]


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of a suite: its name, blueprint, parent and ``mount`` relative to the parent (a :class:`Pose`)."""

    name: str
    blueprint_id: str
    attach_to: str
    mount: Pose
    attributes: SensorAttributes

    @property
    def is_fixed(self) -> bool:
        """Whether the sensor is fixed in the world rather than attached to an actor."""
        return self.attach_to == WORLD


@dataclass(frozen=True)
class SensorSuite:
    """An ordered set of uniquely named sensors."""

    sensors: tuple[SensorSpec, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.sensors:
            if spec.name in seen:
                raise SensorConfigError(f"duplicate sensor name '{spec.name}' in suite")
            seen.add(spec.name)

    def __iter__(self) -> Iterator[SensorSpec]:
        return iter(self.sensors)

    def __len__(self) -> int:
        return len(self.sensors)

    @property
    def names(self) -> tuple[str, ...]:
        """Sensor names in suite order."""
        return tuple(spec.name for spec in self.sensors)

    def by_name(self, name: str) -> SensorSpec:
        """The sensor called ``name``; an unknown name raises SensorConfigError listing the names."""
        for spec in self.sensors:
            if spec.name == name:
                return spec
        hint = difflib.get_close_matches(name, self.names, n=1)
        hint_text = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise SensorConfigError(f"no sensor named '{name}'{hint_text}; sensors: {', '.join(self.names) or 'none'}")

    def select(self, wildcard: str) -> tuple[SensorSpec, ...]:
        """Sensors whose blueprint id matches ``wildcard`` (e.g. ``sensor.camera.*``), in suite order."""
        return tuple(spec for spec in self.sensors if fnmatch.fnmatchcase(spec.blueprint_id, wildcard))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_suite(path: str | Path) -> SensorSuite:
    """Load and validate a sensor suite YAML file (a path, or a shipped ``configs/sensors/...`` name).

    Every problem raises SensorConfigError naming the file.
    """
    path = locate_config(path, "sensors")
    if not path.is_file():
        raise SensorConfigError(f"sensor suite file {path} does not exist")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SensorConfigError(f"sensor suite file {path} is not valid YAML: {exc}") from exc
    return suite_from_dict(data, source=str(path))


def shipped_suite_path(name: str) -> Path:
    """Path of a suite shipped in ``configs/sensors`` (``"default"``, ``"benchmark"``)."""
    path = SHIPPED_SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in SHIPPED_SUITES_DIR.glob("*.yaml"))
        raise SensorConfigError(f"no shipped sensor suite '{name}'; shipped: {', '.join(shipped) or 'none'}")
    return path


def suite_from_dict(data: object, source: str = "<dict>") -> SensorSuite:
    """Validate a suite given as plain data (parsed YAML); errors name ``source`` and the sensor."""
    if not isinstance(data, Mapping):
        raise SensorConfigError(
            f"{source}: expected a mapping with a 'sensors' list, got {type(data).__name__}")
    try:
        config = SensorSuiteConfig.model_validate(data)
    except ValidationError as exc:
        raise SensorConfigError(_describe(exc, data, source)) from None
    specs: list[SensorSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(config.sensors):
        where = f"{source}: sensor '{entry.name}' (sensors[{index}])"
        if entry.name in seen:
            raise SensorConfigError(f"{where}: duplicate sensor name, already used by sensors[{seen[entry.name]}]")
        seen[entry.name] = index
        specs.append(_spec_from_entry(entry, where))
    return SensorSuite(tuple(specs))


def _spec_from_entry(entry: SensorEntryConfig, where: str) -> SensorSpec:
    try:
        attributes = get_blueprint(entry.blueprint).resolve(entry.attributes)
    except SensorConfigError as exc:
        raise SensorConfigError(f"{where}: {exc}") from None
    if entry.attach_to == WORLD and entry.blueprint in EVENT_SENSORS:
        raise SensorConfigError(
            f"{where}: {entry.blueprint} reports events of its parent actor, so attach_to cannot be '{WORLD}'")
    t = entry.transform
    return SensorSpec(
        name=entry.name, blueprint_id=entry.blueprint, attach_to=entry.attach_to,
        mount=Pose(t.x, t.y, t.z, yaw_rad=math.radians(t.yaw_deg), pitch_rad=math.radians(t.pitch_deg),
                   roll_rad=math.radians(t.roll_deg)),
        attributes=attributes)


def _describe(exc: ValidationError, data: Mapping, source: str) -> str:
    """One clear sentence for the first pydantic error: which file, which sensor, which key, valid keys."""
    errors = exc.errors()
    # An unknown key is usually a typo of a missing one: report it first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(error["loc"])
    where, rest, model = source, loc, SensorSuiteConfig
    if len(loc) >= 2 and loc[0] == "sensors" and isinstance(loc[1], int):
        where = f"{source}: {_sensor_label(data, loc[1])}"
        rest = loc[2:]
        model = TransformConfig if rest[:1] == ("transform",) and len(rest) > 1 else SensorEntryConfig
    key = ".".join(str(part) for part in rest) or "sensors"
    valid = ", ".join(model.model_fields)
    if error["type"] == "extra_forbidden":
        bad = str(rest[-1])
        close = difflib.get_close_matches(bad, list(model.model_fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown key '{key}'{hint}; valid keys: {valid}"
    if error["type"] == "missing":
        return f"{where}: missing key '{key}'; valid keys: {valid}"
    return f"{where}: key '{key}': {error['msg']} (got {error.get('input')!r})"


def _sensor_label(data: Mapping, index: int) -> str:
    sensors = data.get("sensors")
    entry = sensors[index] if isinstance(sensors, list) and index < len(sensors) else None
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return f"sensor '{name}' (sensors[{index}])" if isinstance(name, str) else f"sensors[{index}]"
