"""CARLA 0.9.16 sensor blueprints: attribute names, types, defaults and valid ranges.

Each default is the value a fresh CARLA blueprint carries: the first of the
attribute's recommended values in CARLA's ``ActorBlueprintFunctionLibrary``
(its ``Docs/ref_sensors.md`` tables list the same numbers). As in CARLA,
values may be given as strings (``"90"``) and are converted by type. Unlike
CARLA, impossible values (a fov of 0, no LiDAR channels, a negative range)
are rejected with an error naming the blueprint, the attribute and the valid
range, instead of being accepted silently.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class SensorConfigError(ValueError):
    """A sensor blueprint id, attribute name or value is invalid; the message names it and the valid ones."""


class AttributeType(str, Enum):
    """Value type of a blueprint attribute, as ``carla.ActorAttributeType``."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "str"
    RGB_COLOR = "rgb_color"


def _fmt(number: float) -> str:
    return f"{number:g}"


def _did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class AttributeSpec:
    """One blueprint attribute: its CARLA name, type and default, and the values it may take.

    ``minimum``/``maximum`` bound numbers (exclusive where ``exclusive_*`` is set);
    ``choices`` restricts to a fixed set (CARLA's ``restrict_to_recommended``);
    ``recommended`` are CARLA's recommended values, kept as metadata.
    """

    name: str
    type: AttributeType
    default: object
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[object, ...] | None = None
    recommended: tuple[object, ...] = ()
    doc: str = ""
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def range_text(self) -> str:
        """The valid values in words, e.g. ``(0, 180)``, ``>= 1`` or ``one of 'histogram', 'manual'``."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            left = "(" if self.exclusive_minimum else "["
            right = ")" if self.exclusive_maximum else "]"
            return f"{left}{_fmt(low)}, {_fmt(high)}{right}"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_fmt(low)}"
        if high is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {_fmt(high)}"
        return f"any {self.type.value}"

    def convert(self, value: object, owner: str = "") -> object:
        """Convert ``value`` (a typed value or CARLA-style string) to this attribute's type and check its range."""
        where = f"{owner}: " if owner else ""
        try:
            converted = _CONVERTERS[self.type](value)
        except (TypeError, ValueError):
            raise SensorConfigError(
                f"{where}attribute '{self.name}' expects {_TYPE_WORDS[self.type]}, "
                f"got {value!r} ({type(value).__name__})") from None
        if not self._in_range(converted):
            raise SensorConfigError(
                f"{where}attribute '{self.name}' = {value!r} is out of range; "
                f"valid: {self.range_text()}")
        return converted

    def _in_range(self, value: object) -> bool:
        if self.choices is not None:
            return value in self.choices
        if self.type not in (AttributeType.INT, AttributeType.FLOAT):
            return True
        number = float(value)  # type: ignore[arg-type]
        low, high = self.minimum, self.maximum
        below = low is not None and (number < low or (self.exclusive_minimum and number == low))
        above = high is not None and (number > high or (self.exclusive_maximum and number == high))
        return not (below or above)


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(value)


def _to_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            value = float(text)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        return int(value)
    raise ValueError(value)


def _to_float(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):
        number = float(value.strip())
    elif isinstance(value, numbers.Real):
        number = float(value)
    else:
        raise TypeError(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _to_str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _to_rgb(value: object) -> tuple[int, int, int]:
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 3:
        raise ValueError(value)
    rgb = tuple(_to_int(part) for part in parts)
    if not all(0 <= channel <= 255 for channel in rgb):
        raise ValueError(value)
    return rgb  # type: ignore[return-value]


_CONVERTERS = {
    AttributeType.BOOL: _to_bool,
    AttributeType.INT: _to_int,
    AttributeType.FLOAT: _to_float,
    AttributeType.STRING: _to_str,
    AttributeType.RGB_COLOR: _to_rgb,
}
_TYPE_WORDS = {
    AttributeType.BOOL: "a bool (true/false)",
    AttributeType.INT: "an integer",
    AttributeType.FLOAT: "a finite number",
    AttributeType.STRING: "a string",
    AttributeType.RGB_COLOR: "an 'R,G,B' colour with channels 0-255",
}


@dataclass(frozen=True)
class AttributeOrder:
    """A constraint between two attributes of one blueprint: ``upper`` above ``lower`` (strictly or not)."""

    lower: str
    upper: str
    strict: bool = True

    def check(self, values: Mapping[str, object], owner: str) -> None:
        """Raise SensorConfigError when ``values`` break the order."""
        low, high = float(values[self.lower]), float(values[self.upper])  # type: ignore[arg-type]
        if high > low or (not self.strict and high == low):
            return
        relation = "greater than" if self.strict else "greater than or equal to"
        raise SensorConfigError(
            f"{owner}: attribute '{self.upper}' ({_fmt(high)}) must be {relation} "
            f"attribute '{self.lower}' ({_fmt(low)})")


@dataclass(frozen=True, eq=False)
class SensorAttributes:
    """The resolved attributes of one sensor: every attribute of its blueprint, typed and validated."""

    blueprint_id: str
    values: Mapping[str, object]

    def __getitem__(self, name: str) -> object:
        try:
            return self.values[name]
        except KeyError:
            valid = sorted(self.values)
            raise SensorConfigError(
                f"{self.blueprint_id} has no attribute '{name}'{_did_you_mean(name, valid)}; "
                f"valid attributes: {', '.join(valid)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SensorAttributes):
            return NotImplemented
        return self.blueprint_id == other.blueprint_id and dict(self.values) == dict(other.values)

    def __hash__(self) -> int:
        return hash((self.blueprint_id, tuple(sorted(self.values.items()))))

    def get_float(self, name: str) -> float:
        """A numeric attribute as a float."""
        value = self[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SensorConfigError(f"{self.blueprint_id}: attribute '{name}' is not a number ({value!r})")
        return float(value)

    def get_int(self, name: str) -> int:
        """An integer attribute as an int."""
        value = self[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SensorConfigError(f"{self.blueprint_id}: attribute '{name}' is not an integer ({value!r})")
        return value

    def get_bool(self, name: str) -> bool:
        """A boolean attribute."""
        value = self[name]
        if not isinstance(value, bool):
            raise SensorConfigError(f"{self.blueprint_id}: attribute '{name}' is not a bool ({value!r})")
        return value

    def get_str(self, name: str) -> str:
        """A string attribute."""
        value = self[name]
        if not isinstance(value, str):
            raise SensorConfigError(f"{self.blueprint_id}: attribute '{name}' is not a string ({value!r})")
        return value

    def as_dict(self) -> dict[str, object]:
        """A plain, mutable copy of the values."""
        return dict(self.values)

    def updated(self, overrides: Mapping[str, object]) -> SensorAttributes:
        """These attributes with ``overrides`` applied, validated again."""
        return get_blueprint(self.blueprint_id).resolve({**self.values, **overrides})


@dataclass(frozen=True, eq=False)
class SensorBlueprint:
    """A sensor blueprint as in CARLA's blueprint library: an id, its attributes and tags."""

    id: str
    attributes: Mapping[str, AttributeSpec]
    tags: tuple[str, ...]
    orders: tuple[AttributeOrder, ...] = ()
    doc: str = ""

    def attribute(self, name: str) -> AttributeSpec:
        """The spec of attribute ``name``; an unknown name raises SensorConfigError listing the valid ones."""
        try:
            return self.attributes[name]
        except KeyError:
            valid = sorted(self.attributes)
            raise SensorConfigError(
                f"{self.id} has no attribute '{name}'{_did_you_mean(name, valid)}; "
                f"valid attributes: {', '.join(valid)}") from None

    def has_attribute(self, name: str) -> bool:
        """Whether the blueprint has attribute ``name``."""
        return name in self.attributes

    def resolve(self, overrides: Mapping[str, object] | None = None) -> SensorAttributes:
        """All attributes: the defaults with ``overrides`` converted by type and validated."""
        overrides = overrides or {}
        if not isinstance(overrides, Mapping):
            raise SensorConfigError(
                f"{self.id}: attributes must be a mapping of name to value, got {type(overrides).__name__}")
        values = {name: spec.default for name, spec in self.attributes.items()}
        for name, value in overrides.items():
            if not isinstance(name, str):
                raise SensorConfigError(f"{self.id}: attribute names must be strings, got {name!r}")
            values[name] = self.attribute(name).convert(value, owner=self.id)
        for order in self.orders:
            order.check(values, owner=self.id)
        return SensorAttributes(self.id, MappingProxyType(values))


# --- attribute builders --------------------------------------------------------------------

_SENSOR_ROLE_NAMES = ("front", "back", "left", "right", "front_left", "front_right", "back_left", "back_right")


def _attr(name: str, type_: AttributeType, default: object, doc: str, **limits: object) -> AttributeSpec:
    recommended = limits.pop("recommended", (default,))
    return AttributeSpec(name=name, type=type_, default=default, doc=doc,
                         recommended=tuple(recommended), **limits)  # type: ignore[arg-type]


def _float(name: str, default: float, doc: str, **limits: object) -> AttributeSpec:
    return _attr(name, AttributeType.FLOAT, float(default), doc, **limits)


def _int(name: str, default: int, doc: str, **limits: object) -> AttributeSpec:
    return _attr(name, AttributeType.INT, int(default), doc, **limits)


def _role_name(recommended: tuple[str, ...]) -> AttributeSpec:
    return _attr("role_name", AttributeType.STRING, recommended[0], "Free name of the actor.",
                 recommended=recommended)


def _sensor_tick() -> AttributeSpec:
    return _float("sensor_tick", 0.0, "Simulation seconds between captures; 0 captures every tick.", minimum=0.0)


def _noise_seed() -> AttributeSpec:
    return _int("noise_seed", 0, "Seed of the sensor's noise generator.")


def _camera_basics() -> list[AttributeSpec]:
    return [
        _role_name(_SENSOR_ROLE_NAMES),
        _sensor_tick(),
        _int("image_size_x", 800, "Image width in pixels.", minimum=1),
        _int("image_size_y", 600, "Image height in pixels.", minimum=1),
        _float("fov", 90.0, "Horizontal field of view in degrees.",
               minimum=0.0, maximum=180.0, exclusive_minimum=True, exclusive_maximum=True),
        _float("lens_circle_falloff", 5.0, "Lens distortion: circle falloff.", minimum=0.0, maximum=10.0),
        _float("lens_circle_multiplier", 0.0, "Lens distortion: circle multiplier.", minimum=0.0, maximum=10.0),
        _float("lens_k", -1.0, "Lens distortion: quadratic coefficient."),
        _float("lens_kcube", 0.0, "Lens distortion: cubic coefficient."),
        _float("lens_x_size", 0.08, "Lens distortion: x size.", minimum=0.0, maximum=1.0),
        _float("lens_y_size", 0.08, "Lens distortion: y size.", minimum=0.0, maximum=1.0),
    ]


def _camera_postprocess() -> list[AttributeSpec]:
    """The RGB camera's post-processing attributes (Unreal's exposure, depth of field, tonemapper)."""
    unit = {"minimum": 0.0, "maximum": 1.0}
    positive = {"minimum": 0.0, "exclusive_minimum": True}
    non_negative = {"minimum": 0.0}
    return [
        _attr("exposure_mode", AttributeType.STRING, "histogram", "Auto exposure ('histogram') or 'manual'.",
              choices=("histogram", "manual"), recommended=("histogram", "manual")),
        # CARLA's docs quote +0.75 on Linux; the blueprint's recommended value is 0.0.
        _float("exposure_compensation", 0.0, "Logarithmic exposure adjustment (+1 = 2x brighter)."),
        _float("shutter_speed", 200.0, "Shutter speed, 1/s.", **positive),
        _float("iso", 100.0, "Sensor sensitivity.", **positive),
        _float("fstop", 1.4, "Lens opening; aperture is 1/fstop.", **positive),
        _attr("enable_postprocess_effects", AttributeType.BOOL, True, "Post-process effects on or off."),
        _float("gamma", 2.2, "Target gamma of the camera.", **positive),
        _float("motion_blur_intensity", 0.45, "Strength of motion blur.", **unit),
        _float("motion_blur_max_distortion", 0.35, "Max motion-blur distortion, share of screen width.",
               **non_negative),
        _float("lens_flare_intensity", 0.1, "Lens flare intensity, 0 disables.", **non_negative),
        _float("bloom_intensity", 0.675, "Bloom intensity, 0 disables.", **non_negative),
        _float("motion_blur_min_object_screen_size", 0.1, "Min object size for motion blur, share of screen width.",
               **unit),
        _float("exposure_min_bright", 10.0, "Histogram exposure: lowest adapted brightness.", **positive),
        _float("exposure_max_bright", 12.0, "Histogram exposure: highest adapted brightness.", **positive),
        _float("exposure_speed_up", 3.0, "Histogram exposure: dark-to-bright adaptation speed.", **non_negative),
        _float("exposure_speed_down", 1.0, "Histogram exposure: bright-to-dark adaptation speed.", **non_negative),
        _float("calibration_constant", 16.0, "Exposure calibration constant for 18% albedo.", **positive),
        _float("focal_distance", 1000.0, "Depth-of-field sharp distance in cm (Unreal units).", **non_negative),
        _float("min_fstop", 1.2, "Maximum aperture.", **positive),
        _int("blade_count", 5, "Diaphragm blades.", minimum=4, maximum=16),
        _float("blur_amount", 1.0, "Depth blur strength.", **non_negative),
        _float("blur_radius", 0.0, "Depth blur radius in pixels at 1080p.", **non_negative),
        _float("slope", 0.88, "Tonemapper S-curve steepness.", **unit),
        _float("toe", 0.55, "Tonemapper dark colours.", **unit),
        _float("shoulder", 0.26, "Tonemapper bright colours.", **unit),
        _float("black_clip", 0.0, "Tonemapper black clip.", **unit),
        _float("white_clip", 0.04, "Tonemapper white clip.", **unit),
        _float("temp", 6500.0, "White balance temperature in K.", **positive),
        _float("tint", 0.0, "White balance tint."),
        _float("chromatic_aberration_intensity", 0.0, "Chromatic aberration scale.", **non_negative),
        _float("chromatic_aberration_offset", 0.0, "Chromatic aberration start, normalised distance from centre.",
               **unit),
    ]


def _lidar_geometry() -> list[AttributeSpec]:
    vertical = {"minimum": -90.0, "maximum": 90.0}
    return [
        _role_name(_SENSOR_ROLE_NAMES),
        _sensor_tick(),
        _int("channels", 32, "Number of lasers.", minimum=1),
        _float("range", 10.0, "Maximum ray distance in metres.", minimum=0.0, exclusive_minimum=True),
        _int("points_per_second", 56000, "Points of all lasers per second.", minimum=1),
        _float("rotation_frequency", 10.0, "Rotations per second.", minimum=0.0, exclusive_minimum=True),
        _float("upper_fov", 10.0, "Angle of the highest laser in degrees.", **vertical),
        _float("lower_fov", -30.0, "Angle of the lowest laser in degrees.", **vertical),
        _float("horizontal_fov", 360.0, "Horizontal field of view in degrees.",
               minimum=0.0, maximum=360.0, exclusive_minimum=True),
    ]


def _lidar_intensity() -> list[AttributeSpec]:
    return [
        _float("atmosphere_attenuation_rate", 0.004, "Intensity loss per metre: I = exp(-rate * d).", minimum=0.0),
        _noise_seed(),
        _float("dropoff_general_rate", 0.45, "Share of points dropped at random.", minimum=0.0, maximum=1.0),
        _float("dropoff_intensity_limit", 0.8, "Intensity above which no point is dropped.",
               minimum=0.0, maximum=1.0),
        _float("dropoff_zero_intensity", 0.4, "Drop probability of a zero-intensity point.",
               minimum=0.0, maximum=1.0),
        _float("noise_stddev", 0.0, "Std dev of the noise along each ray, metres.", minimum=0.0),
    ]


def _radar() -> list[AttributeSpec]:
    fov = {"minimum": 0.0, "maximum": 180.0, "exclusive_minimum": True}
    return [
        _role_name(("default",)),
        _sensor_tick(),
        _float("horizontal_fov", 30.0, "Horizontal field of view in degrees.", **fov),
        _float("vertical_fov", 30.0, "Vertical field of view in degrees.", **fov),
        _float("range", 100.0, "Maximum distance in metres.", minimum=0.0, exclusive_minimum=True),
        _int("points_per_second", 1500, "Points per second.", minimum=1),
        _noise_seed(),
    ]


def _gnss() -> list[AttributeSpec]:
    specs = [_role_name(("default",)), _sensor_tick(), _noise_seed()]
    for axis, unit in (("lat", "degrees"), ("lon", "degrees"), ("alt", "metres")):
        specs.append(_float(f"noise_{axis}_stddev", 0.0, f"Noise std dev of the {axis}, {unit}.", minimum=0.0))
        specs.append(_float(f"noise_{axis}_bias", 0.0, f"Noise mean of the {axis}, {unit}."))
    return specs


def _imu() -> list[AttributeSpec]:
    specs = [_role_name(("default",)), _sensor_tick(), _noise_seed()]
    specs += [_float(f"noise_accel_stddev_{a}", 0.0, f"Accelerometer noise std dev ({a}), m/s^2.", minimum=0.0)
              for a in "xyz"]
    specs += [_float(f"noise_gyro_stddev_{a}", 0.0, f"Gyroscope noise std dev ({a}), rad/s.", minimum=0.0)
              for a in "xyz"]
    specs += [_float(f"noise_gyro_bias_{a}", 0.0, f"Gyroscope bias ({a}), rad/s.") for a in "xyz"]
    return specs


def _blueprint(blueprint_id: str, specs: list[AttributeSpec], doc: str,
               orders: tuple[AttributeOrder, ...] = ()) -> SensorBlueprint:
    attributes = {spec.name: spec for spec in specs}
    assert len(attributes) == len(specs), f"duplicate attribute in {blueprint_id}"
    return SensorBlueprint(blueprint_id, MappingProxyType(attributes), tuple(blueprint_id.split(".")),
                           orders, doc)


_LIDAR_ORDER = (AttributeOrder("lower_fov", "upper_fov", strict=True),)
_EXPOSURE_ORDER = (AttributeOrder("exposure_min_bright", "exposure_max_bright", strict=False),)

BLUEPRINTS: Mapping[str, SensorBlueprint] = MappingProxyType({bp.id: bp for bp in (
    _blueprint("sensor.camera.rgb", _camera_basics() + _camera_postprocess(),
               "RGB image, HxWx3 uint8.", _EXPOSURE_ORDER),
    _blueprint("sensor.camera.depth", _camera_basics(), "Depth along the optical axis, metres."),
    _blueprint("sensor.camera.semantic_segmentation", _camera_basics(), "CARLA semantic tag per pixel."),
    _blueprint("sensor.camera.instance_segmentation", _camera_basics(), "Semantic tag and instance id per pixel."),
    _blueprint("sensor.lidar.ray_cast", _lidar_geometry() + _lidar_intensity(),
               "Rotating LiDAR, Nx4 float32 (x, y, z, intensity).", _LIDAR_ORDER),
    _blueprint("sensor.lidar.ray_cast_semantic", _lidar_geometry(),
               "Rotating LiDAR with cos angle, object id and tag per point.", _LIDAR_ORDER),
    _blueprint("sensor.other.radar", _radar(), "Radar, Nx4 (velocity, azimuth, altitude, depth)."),
    _blueprint("sensor.other.gnss", _gnss(), "Latitude, longitude, altitude from the map's geo-reference."),
    _blueprint("sensor.other.imu", _imu(), "Accelerometer, gyroscope and compass."),
    _blueprint("sensor.other.collision", [_role_name(_SENSOR_ROLE_NAMES)], "Collisions of the parent actor."),
    _blueprint("sensor.other.lane_invasion", [_role_name(_SENSOR_ROLE_NAMES)],
               "Lane markings crossed by the parent actor."),
)})


def get_blueprint(blueprint_id: str) -> SensorBlueprint:
    """The blueprint with id ``blueprint_id``; an unknown id raises SensorConfigError listing the valid ids."""
    try:
        return BLUEPRINTS[blueprint_id]
    except (KeyError, TypeError):
        valid = sorted(BLUEPRINTS)
        hint = _did_you_mean(blueprint_id, valid) if isinstance(blueprint_id, str) else ""
        raise SensorConfigError(
            f"unknown sensor blueprint {blueprint_id!r}{hint}; valid ids: {', '.join(valid)}") from None


def resolve_attributes(blueprint_id: str, overrides: Mapping[str, object] | None = None) -> SensorAttributes:
    """Shorthand for ``get_blueprint(blueprint_id).resolve(overrides)``."""
    return get_blueprint(blueprint_id).resolve(overrides)


def find_blueprints(wildcard: str = "*") -> tuple[SensorBlueprint, ...]:
    """Blueprints whose id matches a wildcard pattern, like ``BlueprintLibrary.filter('sensor.camera.*')``."""
    return tuple(bp for bp_id, bp in sorted(BLUEPRINTS.items()) if fnmatch.fnmatchcase(bp_id, wildcard))
