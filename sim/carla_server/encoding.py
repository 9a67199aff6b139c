"""CARLA 0.9.16 wire types: msgpack forms of RPC values and the binary stream payloads.

RPC values follow CARLA's msgpack adaptors (``CARLA_PROTOCOL.md`` in the
shared notes): structs are positional arrays, ``optional`` is ``[false]`` or
``[true, value]``, a ``variant`` is ``[index, value]``. Geometry on the wire
is CARLA's: metres, and rotations ``[pitch, yaw, roll]`` in degrees.

Stream payloads start with a 48-byte sensor header (u64 sensor type, u64
frame, f64 timestamp, six f32 of the sensor's world transform); the exact
struct layouts come from the 0.9.16 client library's debug info.
"""

from __future__ import annotations

import math
import socket
import struct
from dataclasses import dataclass, replace
from enum import IntEnum

import cv2
import msgpack
import numpy as np

from sim.api import Pose
from sim.sensors.blueprints import AttributeSpec, get_blueprint
from sim.sensors.blueprints import AttributeType as SpecType
from sim.sensors.suite import EVENT_SENSORS
from sim.sensors.vehicle_blueprints import ROLE_NAMES, VEHICLE_BLUEPRINTS

CARLA_VERSION = "0.9.16"


class AttributeType(IntEnum):
    """``carla::rpc::ActorAttributeType`` (0.9.16 starts at 1)."""

    BOOL = 1
    INT = 2
    FLOAT = 3
    STRING = 4
    RGB_COLOR = 5


class SensorType(IntEnum):
    """Indices of the 0.9.16 ``SensorRegistry`` this server sends."""

    COLLISION = 0
    DEPTH_CAMERA = 1
    GNSS = 4
    IMU = 5
    RADAR = 9
    SEMANTIC_LIDAR = 10
    LIDAR = 11
    RGB_CAMERA = 13
    SEMANTIC_CAMERA = 14
    INSTANCE_CAMERA = 15
    EPISODE_STATE = 17


ACTOR_STATE_ACTIVE = 1
ANY_LABEL = 255
"""``CityObjectLabel.Any``: every label."""

# ---------------------------------------------------------------------------------------------- RPC results


def ok(value: object) -> list:
    """A successful ``Response<T>``: ``[[1, value]]``."""
    return [[1, value]]


def ok_void() -> list:
    """A successful ``Response<void>``: an empty optional error, ``[[false]]``."""
    return [[False]]


def error(message: str) -> list:
    """A failed response: ``[[0, [message]]]`` (the client raises RuntimeError with the message)."""
    return [[0, [message]]]


def optional(value: object | None) -> list:
    """``boost::optional``: ``[false]`` or ``[true, value]``."""
    return [False] if value is None else [True, value]


def from_optional(message: list) -> object | None:
    """The value of an optional, or None."""
    return message[1] if message and message[0] else None


# ---------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Transform:
    """A CARLA transform as on the wire: location [m], rotation (pitch, yaw, roll) [deg]."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x", "y", "z", "pitch", "yaw", "roll"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"transform {name} must be finite, got {value!r}")
            object.__setattr__(self, name, value)

    @classmethod
    def from_msg(cls, message: list) -> Transform:
        """Parse ``[[x, y, z], [pitch, yaw, roll]]``."""
        try:
            (x, y, z), (pitch, yaw, roll) = message
        except (TypeError, ValueError):
            raise ValueError(f"a transform must be [[x, y, z], [pitch, yaw, roll]], got {message!r}") from None
        return cls(x, y, z, pitch, yaw, roll)

    def to_pose(self) -> Pose:
        """The same transform as the project's :class:`Pose` (radians)."""
        return Pose(self.x, self.y, self.z, yaw_rad=math.radians(self.yaw), pitch_rad=math.radians(self.pitch),
                    roll_rad=math.radians(self.roll))

    @classmethod
    def from_arrays(cls, location: np.ndarray, rotation_rad: np.ndarray) -> Transform:
        """The wire transform of a (3,) location [m] and a (pitch, yaw, roll) rotation [rad]."""
        x, y, z = (float(v) for v in location)
        pitch, yaw, roll = (math.degrees(float(v)) for v in rotation_rad)
        return cls(x, y, z, pitch, yaw, roll)

    def to_msg(self) -> list:
        """``[[x, y, z], [pitch, yaw, roll]]``."""
        return [[self.x, self.y, self.z], [self.pitch, self.yaw, self.roll]]

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        """(x, y, z, pitch, yaw, roll), the order of the binary layouts."""
        return (self.x, self.y, self.z, self.pitch, self.yaw, self.roll)


def bounding_box_msg(location: tuple[float, float, float], extent: tuple[float, float, float],
                     actor_id: int = 0, rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list:
    """``BoundingBox``: ``[location, extent, rotation (pitch, yaw, roll) [deg], actor_id]``."""
    return [list(location), list(extent), list(rotation), int(actor_id)]


@dataclass(frozen=True)
class VehicleControlMsg:
    """``carla::rpc::VehicleControl`` as received from the client."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False
    manual_gear_shift: bool = False
    gear: int = 0

    @classmethod
    def from_msg(cls, message: list) -> VehicleControlMsg:
        """Parse ``[throttle, steer, brake, hand_brake, reverse, manual_gear_shift, gear]``."""
        if not isinstance(message, (list, tuple)) or len(message) != 7:
            raise ValueError(f"a VehicleControl must have 7 fields, got {message!r}")
        t, s, b, hb, r, m, g = message
        return cls(float(t), float(s), float(b), bool(hb), bool(r), bool(m), int(g))


@dataclass(frozen=True)
class WalkerControlMsg:
    """``carla::rpc::WalkerControl``: ``[direction [x, y, z], speed, jump]``."""

    direction: tuple[float, float, float]
    speed: float
    jump: bool = False

    @classmethod
    def from_msg(cls, message: list) -> WalkerControlMsg:
        """Parse ``[[x, y, z], speed, jump]``."""
        try:
            (x, y, z), speed, jump = message
        except (TypeError, ValueError):
            raise ValueError(f"a WalkerControl must be [[x, y, z], speed, jump], got {message!r}") from None
        return cls((float(x), float(y), float(z)), float(speed), bool(jump))


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EpisodeSettings:
    """``carla::rpc::EpisodeSettings`` (0.9.16, 11 fields, this order on the wire)."""

    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10
    max_culling_distance: float = 0.0
    deterministic_ragdolls: bool = True
    tile_stream_distance: float = 3000.0
    actor_active_distance: float = 2000.0
    spectator_as_ego: bool = True

    @classmethod
    def from_msg(cls, message: list) -> EpisodeSettings:
        """Parse the 11-field array."""
        if not isinstance(message, (list, tuple)) or len(message) != 11:
            raise ValueError(f"EpisodeSettings must have 11 fields (CARLA 0.9.16), got {message!r}")
        (sync, no_render, delta, substep, max_sub_dt, max_subs, culling, ragdolls, tile, active,
         spectator) = message
        delta = from_optional(delta)
        return cls(bool(sync), bool(no_render), None if delta is None else float(delta), bool(substep),
                   float(max_sub_dt), int(max_subs), float(culling), bool(ragdolls), float(tile), float(active),
                   bool(spectator))

    def to_msg(self) -> list:
        """The 11-field array."""
        return [self.synchronous_mode, self.no_rendering_mode, optional(self.fixed_delta_seconds), self.substepping,
                self.max_substep_delta_time, self.max_substeps, self.max_culling_distance,
                self.deterministic_ragdolls, self.tile_stream_distance, self.actor_active_distance,
                self.spectator_as_ego]

    def with_delta(self, seconds: float | None) -> EpisodeSettings:
        """A copy with another ``fixed_delta_seconds``."""
        return replace(self, fixed_delta_seconds=seconds)


CLEAR_NOON_WEATHER = (5.0, 0.0, 0.0, 10.0, -1.0, 45.0, 2.0, 0.75, 0.1, 0.0, 1.0, 0.03, 0.0331, 0.0)
"""``WeatherParameters`` (14 floats: cloudiness, precipitation, precipitation deposits, wind, sun azimuth and
altitude, fog density, distance and falloff, wetness, scattering, Mie and Rayleigh scales, dust storm)."""

# ---------------------------------------------------------------------------------------------- actors


@dataclass(frozen=True)
class AttributeDef:
    """One ``ActorAttribute`` of a blueprint definition (values as CARLA's strings)."""

    id: str
    type: AttributeType
    value: str
    recommended: tuple[str, ...] = ()
    modifiable: bool = True
    restrict_to_recommended: bool = False

    def to_msg(self) -> list:
        """``[id, type, value, recommended_values, is_modifiable, restrict_to_recommended]``."""
        return [self.id, int(self.type), self.value, list(self.recommended), self.modifiable,
                self.restrict_to_recommended]


@dataclass(frozen=True)
class ActorDefinition:
    """A blueprint: ``[uid, id, tags, attributes]``; ``tags`` comma-separated as CARLA sends them."""

    uid: int
    id: str
    tags: str
    attributes: tuple[AttributeDef, ...]

    def to_msg(self) -> list:
        """The positional array."""
        return [self.uid, self.id, self.tags, [a.to_msg() for a in self.attributes]]


@dataclass(frozen=True)
class ActorDescription:
    """What the client sends to spawn: blueprint ``uid``, ``id`` and attribute values (strings)."""

    uid: int
    id: str
    attributes: dict[str, str]
    raw_attributes: tuple

    @classmethod
    def from_msg(cls, message: list) -> ActorDescription:
        """Parse ``[uid, id, [[attr_id, type, value], ...]]``."""
        try:
            uid, blueprint_id, attributes = message
            values = {str(a[0]): str(a[2]) for a in attributes}
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"an ActorDescription must be [uid, id, [[id, type, value], ...]], "
                             f"got {message!r}") from None
        return cls(int(uid), str(blueprint_id), values, tuple(tuple(a) for a in attributes))

    def to_msg(self) -> list:
        """The array form, attributes as received."""
        return [self.uid, self.id, [list(a) for a in self.raw_attributes]]


def actor_msg(actor_id: int, parent_id: int, description: ActorDescription, bbox_location: tuple[float, float, float],
              extent: tuple[float, float, float], semantic_tags: bytes, stream_token: bytes = b"") -> list:
    """``carla::rpc::Actor``: ``[id, parent_id, description, bounding_box, semantic_tags, stream_token]``."""
    return [int(actor_id), int(parent_id), description.to_msg(), bounding_box_msg(bbox_location, extent, actor_id),
            bytes(semantic_tags), bytes(stream_token)]


# ---------------------------------------------------------------------------------------------- blueprints
STREAMED_SENSORS = ("sensor.camera.rgb", "sensor.camera.depth", "sensor.camera.semantic_segmentation",
                    "sensor.camera.instance_segmentation", "sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic",
                    "sensor.other.radar", "sensor.other.gnss", "sensor.other.imu")
"""Sensor blueprints whose data this server measures and streams."""
"""Event sensors: collisions are streamed from the world's events; lane invasions are computed by the client."""
WALKER_BLUEPRINTS = tuple(f"walker.pedestrian.{k:04d}" for k in range(1, 50))
FIRST_GENERATION_2_WALKER = 15
"""CARLA's pedestrians 0001-0014 are generation 1, the later ones generation 2 (what ``generate_traffic.py``
picks by default)."""
WALKER_CONTROLLER = "controller.ai.walker"
TRAFFIC_LIGHT = "traffic.traffic_light"

_SPEC_TYPES = {SpecType.BOOL: AttributeType.BOOL, SpecType.INT: AttributeType.INT, SpecType.FLOAT: AttributeType.FLOAT,
          SpecType.STRING: AttributeType.STRING, SpecType.RGB_COLOR: AttributeType.RGB_COLOR}


def carla_value(value: object) -> str:
    """A typed value as CARLA's attribute string ("true", "90.000000", "1,2,3")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    if isinstance(value, tuple):
        return ",".join(str(int(v)) for v in value)
    return str(value)


def _sensor_attribute(spec: AttributeSpec) -> AttributeDef:
    recommended = tuple(carla_value(v) for v in (spec.choices or spec.recommended))
    return AttributeDef(spec.name, _SPEC_TYPES[spec.type], carla_value(spec.default), recommended, True,
                        spec.choices is not None)


def vehicle_definitions(first_uid: int = 1) -> list[ActorDefinition]:
    """One definition per CARLA 0.9.16 vehicle blueprint (``sim.sensors.vehicle_blueprints``)."""
    out = []
    for uid, blueprint in enumerate(VEHICLE_BLUEPRINTS.values(), start=first_uid):
        attributes = (
            AttributeDef("role_name", AttributeType.STRING, ROLE_NAMES[0], ROLE_NAMES),
            AttributeDef("color", AttributeType.RGB_COLOR, blueprint.colours[0], blueprint.colours),
            AttributeDef("number_of_wheels", AttributeType.INT, str(blueprint.number_of_wheels), (), False),
            AttributeDef("base_type", AttributeType.STRING, blueprint.base_type, (), False),
            AttributeDef("special_type", AttributeType.STRING, blueprint.special_type, (), False),
            AttributeDef("generation", AttributeType.INT, str(blueprint.generation), (), False),
            AttributeDef("has_lights", AttributeType.BOOL, carla_value(blueprint.has_lights), (), False),
            AttributeDef("has_dynamic_doors", AttributeType.BOOL, "false", (), False),
            AttributeDef("object_type", AttributeType.STRING, "", (), False),
            AttributeDef("sticky_control", AttributeType.BOOL, "true", ("true", "false")),
            AttributeDef("terramechanics", AttributeType.BOOL, "false", ("true", "false")),
        )
        out.append(ActorDefinition(uid, blueprint.id, ",".join(blueprint.id.split(".")), attributes))
    return out


def sensor_definitions(first_uid: int, blueprint_ids: tuple[str, ...] = STREAMED_SENSORS) -> list[ActorDefinition]:
    """Definitions of sensor blueprints (attributes from the embedded sensor blueprints)."""
    out = []
    for uid, blueprint_id in enumerate(blueprint_ids, start=first_uid):
        blueprint = get_blueprint(blueprint_id)
        attributes = tuple(_sensor_attribute(spec) for spec in blueprint.attributes.values())
        out.append(ActorDefinition(uid, blueprint_id, ",".join(blueprint.tags), attributes))
    return out


def walker_definitions(first_uid: int) -> list[ActorDefinition]:
    """Pedestrian blueprints (all look alike here) and the AI walker controller."""
    out = []
    for uid, blueprint_id in enumerate(WALKER_BLUEPRINTS, start=first_uid):
        attributes = (
            AttributeDef("role_name", AttributeType.STRING, "pedestrian"),
            AttributeDef("is_invincible", AttributeType.BOOL, "true", ("true", "false")),
            AttributeDef("speed", AttributeType.FLOAT, "1.4", ("0.0", "1.4", "2.8"), False),
            AttributeDef("age", AttributeType.STRING, "adult", (), False),
            AttributeDef("gender", AttributeType.STRING, "female" if uid % 2 else "male", (), False),
            AttributeDef("generation", AttributeType.INT,
                         "2" if int(blueprint_id[-4:]) >= FIRST_GENERATION_2_WALKER else "1", (), False),
        )
        out.append(ActorDefinition(uid, blueprint_id, "walker,pedestrian", attributes))
    out.append(ActorDefinition(first_uid + len(out), WALKER_CONTROLLER, "controller,ai,walker",
                               (AttributeDef("role_name", AttributeType.STRING, ""),)))
    return out


def all_definitions() -> list[ActorDefinition]:
    """Every blueprint of the library."""
    out = vehicle_definitions()
    out += sensor_definitions(len(out) + 1, STREAMED_SENSORS + EVENT_SENSORS)
    return out + walker_definitions(len(out) + 1)


# ---------------------------------------------------------------------------------------------- streams


_TOKEN = struct.Struct("<IHBB16s")
TOKEN_SIZE = _TOKEN.size  # 24


def make_token(stream_id: int, port: int, host: str) -> bytes:
    """A 24-byte stream token: u32 stream id, u16 port, u8 protocol (1 TCP), u8 address type (1 IPv4), address."""
    address = socket.inet_aton(socket.gethostbyname(host)) + bytes(12)
    return _TOKEN.pack(int(stream_id), int(port), 1, 1, address)


def token_stream_id(token: bytes) -> int:
    """The stream id inside a token."""
    return _TOKEN.unpack(bytes(token))[0]


_HEADER = struct.Struct("<QQd6f")
SENSOR_HEADER_SIZE = _HEADER.size  # 48


def sensor_header(sensor_type: int, frame: int, timestamp_s: float, transform: Transform) -> bytes:
    """The 48-byte header every stream payload starts with."""
    return _HEADER.pack(int(sensor_type), int(frame), float(timestamp_s), *transform.as_tuple())


_EPISODE_HEADER = struct.Struct("<Qdf3iI")  # 36 bytes

ACTOR_STATE_DTYPE = np.dtype([
    ("id", "<u4"), ("state", "u1"), ("transform", "<f4", (6,)), ("velocity", "<f4", (3,)),
    ("angular_velocity", "<f4", (3,)), ("acceleration", "<f4", (3,)),
    # Vehicle branch of the 54-byte union: packed control (19), speed limit, light state, has light, light id,
    # failure state; the rest is padding.
    ("throttle", "<f4"), ("steer", "<f4"), ("brake", "<f4"), ("hand_brake", "u1"), ("reverse", "u1"),
    ("manual_gear_shift", "u1"), ("gear", "<i4"), ("speed_limit", "<f4"), ("light_state", "u1"),
    ("has_light", "u1"), ("light_id", "<u4"), ("failure_state", "u1"), ("pad", "V24"),
])
"""``carla::sensor::data::ActorDynamicState``: 119 packed bytes per actor (the union as its vehicle branch)."""
assert ACTOR_STATE_DTYPE.itemsize == 119
STATE_UNION_OFFSET = 65

TRAFFIC_LIGHT_DATA_DTYPE = np.dtype([
    ("sign_id", "S32"), ("green_time", "<f4"), ("yellow_time", "<f4"), ("red_time", "<f4"),
    ("elapsed_time", "<f4"), ("pole_index", "<u4"), ("frozen", "u1"), ("state", "u1"),
])
"""The traffic-light branch of the state union (54 bytes)."""
assert TRAFFIC_LIGHT_DATA_DTYPE.itemsize == 54

WALKER_DATA_DTYPE = np.dtype([("direction", "<f4", (3,)), ("speed", "<f4"), ("jump", "u1"), ("pad", "V37")])
"""The walker branch of the state union (packed WalkerControl, padded to 54 bytes)."""
assert WALKER_DATA_DTYPE.itemsize == 54


def set_union(records: np.ndarray, rows: np.ndarray, data: np.ndarray) -> None:
    """Write another branch of the 54-byte state union (``data``: one 54-byte record per row) into ``records``."""
    if data.dtype.itemsize != 54 or len(data) != len(rows):
        raise ValueError(f"need one 54-byte union record per row, got {len(data)} of {data.dtype.itemsize} bytes")
    raw = records.view(np.uint8).reshape(len(records), ACTOR_STATE_DTYPE.itemsize)
    raw[rows, STATE_UNION_OFFSET:] = np.ascontiguousarray(data).view(np.uint8).reshape(len(rows), 54)


MAP_CHANGE_FLAG = 1
"""Bit 0 of the episode header's simulation state: the map changed (the client fetches the new map)."""


def episode_state_payload(frame: int, timestamp_s: float, episode_id: int, delta_seconds: float,
                          records: np.ndarray, platform_timestamp_s: float = 0.0, flags: int = 0) -> bytes:
    """The episode-state message: sensor header (type 17), 36-byte episode header, one record per actor.

    ``flags``: the simulation state bits (:data:`MAP_CHANGE_FLAG`, 2 a pending light update).
    """
    if records.dtype != ACTOR_STATE_DTYPE:
        raise ValueError(f"records must have ACTOR_STATE_DTYPE, got {records.dtype}")
    header = sensor_header(SensorType.EPISODE_STATE, frame, timestamp_s, Transform())
    episode = _EPISODE_HEADER.pack(int(episode_id), float(platform_timestamp_s), float(delta_seconds), 0, 0, 0,
                                   int(flags))
    return header + episode + records.tobytes()


def collision_payload(frame: int, timestamp_s: float, transform: Transform, self_actor: list, other_actor: list,
                      normal_impulse: tuple[float, float, float]) -> bytes:
    """A collision message: header (type 0), then msgpack ``[self_actor, other_actor, normal_impulse]``."""
    body = msgpack.packb([self_actor, other_actor, [float(v) for v in normal_impulse]], use_bin_type=True)
    return sensor_header(SensorType.COLLISION, frame, timestamp_s, transform) + body


DEPTH_FAR_M = 1000.0
_DEPTH_CODE_MAX = 256**3 - 1


def depth_to_bgra(depth_m: np.ndarray) -> np.ndarray:
    """CARLA's depth encoding: ``code = round(d / 1000 m * (2^24 - 1))``, R the low byte, G the middle, B the high.

    The client decodes ``(R + 256 G + 65536 B) / (2^24 - 1) * 1000``: within 3e-5 m of ``depth_m`` (clipped to
    [0, 1000] m).
    """
    if depth_m.ndim != 2:
        raise ValueError(f"depth must be an (H, W) image in metres, got shape {depth_m.shape}")
    code = np.rint(np.clip(depth_m.astype(np.float64), 0.0, DEPTH_FAR_M) * (_DEPTH_CODE_MAX / DEPTH_FAR_M))
    code = code.astype(np.uint32)
    bgra = np.empty(depth_m.shape + (4,), dtype=np.uint8)
    bgra[..., 0] = code >> 16
    bgra[..., 1] = (code >> 8) & 0xFF
    bgra[..., 2] = code & 0xFF
    bgra[..., 3] = 255
    return bgra


def semantic_to_bgra(tags: np.ndarray) -> np.ndarray:
    """CARLA's semantic segmentation image: the tag in R, B = G = 0, A = 255."""
    if tags.ndim != 2 or tags.dtype != np.uint8:
        raise ValueError(f"tags must be an (H, W) uint8 image, got {tags.shape} {tags.dtype}")
    zeros = np.zeros_like(tags)
    return cv2.merge([zeros, zeros, np.ascontiguousarray(tags), np.full_like(tags, 255)])


def rgb_to_bgra(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB (also the instance camera's R tag, G/B id bytes) to BGRA with A = 255."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)  # 15x faster than a numpy channel flip


CAMERA_ENCODERS = {
    "sensor.camera.rgb": (SensorType.RGB_CAMERA, rgb_to_bgra),
    "sensor.camera.depth": (SensorType.DEPTH_CAMERA, depth_to_bgra),
    "sensor.camera.semantic_segmentation": (SensorType.SEMANTIC_CAMERA, semantic_to_bgra),
    "sensor.camera.instance_segmentation": (SensorType.INSTANCE_CAMERA, rgb_to_bgra),
}
"""Camera blueprint -> (sensor type, encoder of the embedded image to BGRA)."""


def bgra_payload(sensor_type: int, frame: int, timestamp_s: float, transform: Transform, bgra: np.ndarray,
                 fov_deg: float) -> bytes:
    """A camera message: header, 12-byte image header (u32 width, u32 height, f32 fov), BGRA pixels."""
    if bgra.ndim != 3 or bgra.shape[2] != 4 or bgra.dtype != np.uint8:
        raise ValueError(f"bgra must be an (H, W, 4) uint8 image, got {bgra.shape} {bgra.dtype}")
    height, width = bgra.shape[:2]
    return b"".join([sensor_header(sensor_type, frame, timestamp_s, transform),
                     struct.pack("<IIf", width, height, float(fov_deg)), memoryview(np.ascontiguousarray(bgra))])


def camera_payload(blueprint_id: str, frame: int, timestamp_s: float, transform: Transform, image: np.ndarray,
                   fov_deg: float) -> bytes:
    """The message of a camera of ``blueprint_id`` from its embedded image (see :data:`CAMERA_ENCODERS`)."""
    try:
        sensor_type, encode = CAMERA_ENCODERS[blueprint_id]
    except KeyError:
        raise ValueError(f"{blueprint_id!r} is not a camera; cameras: {', '.join(CAMERA_ENCODERS)}") from None
    return bgra_payload(sensor_type, frame, timestamp_s, transform, encode(image), fov_deg)


def image_payload(frame: int, timestamp_s: float, transform: Transform, rgb: np.ndarray, fov_deg: float) -> bytes:
    """An RGB camera message: header, 12-byte image header (width, height, fov), BGRA pixels from (H, W, 3) RGB."""
    return bgra_payload(SensorType.RGB_CAMERA, frame, timestamp_s, transform, rgb_to_bgra(rgb), fov_deg)


def lidar_payload(frame: int, timestamp_s: float, transform: Transform, points: np.ndarray,
                  point_channel: np.ndarray, channels: int, horizontal_angle_rad: float) -> bytes:
    """A LiDAR message: header, u32 words (horizontal angle as f32 bits, channel count, points per channel), points.

    ``points``: (N, 4) float32 x, y, z, intensity (``sensor.lidar.ray_cast``)
    or structured 24-byte points (``SEMANTIC_POINT_DTYPE``, semantic LiDAR,
    sensor type 10), already in channel order; ``point_channel`` (N,) the
    channel of each point.
    """
    if points.dtype.names is not None:
        if points.dtype.itemsize != 24 or points.ndim != 1:
            raise ValueError(f"semantic LiDAR points must be (N,) 24-byte records, got {points.shape} {points.dtype}")
        sensor_type = SensorType.SEMANTIC_LIDAR
    else:
        points = np.ascontiguousarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 4:
            raise ValueError(f"points must be (N, 4), got {points.shape}")
        sensor_type = SensorType.LIDAR
    counts = np.bincount(np.asarray(point_channel, dtype=np.int64), minlength=channels).astype("<u4")
    if counts.shape[0] != channels or int(counts.sum()) != points.shape[0]:
        raise ValueError(f"point channels must lie in [0, {channels}) and cover every point")
    words = struct.pack("<fI", float(horizontal_angle_rad), int(channels)) + counts.tobytes()
    return b"".join([sensor_header(sensor_type, frame, timestamp_s, transform), words,
                     memoryview(np.ascontiguousarray(points)).cast("B")])


def radar_payload(frame: int, timestamp_s: float, transform: Transform, detections: np.ndarray) -> bytes:
    """A radar message: header, then 16-byte ``RadarDetection`` rows (f32 velocity, azimuth, altitude, depth)."""
    if detections.ndim != 2 or detections.shape[1] != 4:
        raise ValueError(f"radar detections must be (N, 4), got {detections.shape}")
    rows = np.ascontiguousarray(detections, dtype="<f4")
    return sensor_header(SensorType.RADAR, frame, timestamp_s, transform) + rows.tobytes()


def gnss_payload(frame: int, timestamp_s: float, transform: Transform, fix: np.ndarray) -> bytes:
    """A GNSS message: header, then msgpack ``GeoLocation`` ``[latitude, longitude, altitude]`` (doubles)."""
    values = [float(v) for v in np.asarray(fix, dtype=np.float64).ravel()]
    if len(values) != 3:
        raise ValueError(f"a GNSS fix must be (latitude, longitude, altitude), got {len(values)} values")
    return sensor_header(SensorType.GNSS, frame, timestamp_s, transform) + msgpack.packb(values)


def imu_payload(frame: int, timestamp_s: float, transform: Transform, accelerometer: np.ndarray,
                gyroscope: np.ndarray, compass_rad: float) -> bytes:
    """An IMU message: header, then msgpack ``[accelerometer [x, y, z], gyroscope [x, y, z], compass]`` (floats)."""
    accel = [float(v) for v in np.asarray(accelerometer, dtype=np.float64).ravel()]
    gyro = [float(v) for v in np.asarray(gyroscope, dtype=np.float64).ravel()]
    if len(accel) != 3 or len(gyro) != 3:
        raise ValueError(f"IMU vectors must have 3 components, got {len(accel)} and {len(gyro)}")
    body = msgpack.packb([accel, gyro, float(compass_rad)], use_single_float=True)
    return sensor_header(SensorType.IMU, frame, timestamp_s, transform) + body


# ---------------------------------------------------------------------------------------------- physics control


def vehicle_physics_control_msg(vtype) -> list:
    """A plausible ``carla::rpc::VehiclePhysicsControl`` (0.9.16, 17 fields) for an embedded ``VehicleType``.

    Mass, wheelbase, track, steering limit and brake come from the type; the engine (torque curve, rpm, gears) is
    CARLA's default car's, scaled to the type's power. Wheel positions are in centimetres (as CARLA reports them),
    front wheels first.
    """
    max_rpm = 6000.0
    peak_torque = vtype.max_power_w / (max_rpm * 2.0 * math.pi / 60.0) * 1.6
    torque_curve = [[0.0, 0.8 * peak_torque], [0.6 * max_rpm, peak_torque], [max_rpm, 0.7 * peak_torque]]
    gears = [[ratio, 0.5, 0.65] for ratio in (4.0, 2.5, 1.7, 1.3, 1.0)]
    steering_curve = [[0.0, 1.0], [20.0, 0.9], [60.0, 0.8], [120.0, 0.7]]
    half_width = vtype.extent_m[1]
    lf, lr = vtype.cg_to_front_axle_m, vtype.cg_to_rear_axle_m
    radius_cm = 35.0 if vtype.number_of_wheels == 4 else 30.0
    steer_deg = math.degrees(vtype.max_steer_rad)
    brake_torque = vtype.mass_kg * vtype.max_brake_mps2 * radius_cm / 100.0 / vtype.number_of_wheels
    if vtype.number_of_wheels == 2:
        corners = ((lf, 0.0, steer_deg), (-lr, 0.0, 0.0))
    else:
        track = 0.85 * half_width
        corners = ((lf, -track, steer_deg), (lf, track, steer_deg), (-lr, -track, 0.0), (-lr, track, 0.0))
    wheels = [[3.5, 0.25, steer, radius_cm, brake_torque, 2.0 * brake_torque if steer == 0.0 else 0.0,
               3.0, 20.0, 3000.0, [100.0 * x, 100.0 * y, radius_cm]] for x, y, steer in corners]
    return [torque_curve, max_rpm, 1.0, 0.15, 2.0, 0.35, True, 0.5, 10.0, 4.0, gears, float(vtype.mass_kg),
            0.3, [0.0, 0.0, 0.0], steering_curve, wheels, False]


def environment_object_msg(transform: Transform, bbox_location: tuple[float, float, float],
                           extent: tuple[float, float, float], object_id: int, name: str, label: int) -> list:
    """``carla::rpc::EnvironmentObject``: ``[transform, bounding_box, id (u64), name, type (CityObjectLabel)]``.

    The box is turned like the object (its ``transform``'s rotation)."""
    rotation = (transform.pitch, transform.yaw, transform.roll)
    return [transform.to_msg(), bounding_box_msg(bbox_location, extent, rotation=rotation), int(object_id), str(name),
            int(label)]
