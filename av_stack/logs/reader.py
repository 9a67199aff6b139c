"""Read a run log back: its messages decoded, and whole frames rebuilt as the stack saw them.

>>> log = LogReader("outputs/demo/run.mcap")
>>> log.map_name, log.sensor_names
>>> for frame in log.frames():
...     frame.sensor_frame      # the SensorFrame the stack was given (sensor data on recorded frames)
...     frame.messages["/stack/control"]

The file is read as a stream, front to back, so a log whose writer was killed
(no summary section) or that was cut or corrupted part-way is still read:
every message before the damage comes out, then :class:`LogError` names the
file and the simulation time of the last good message.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.LocationFix_pb2 import LocationFix
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from google.protobuf.message import DecodeError
from mcap.exceptions import McapError
from mcap.records import Attachment, Channel, Chunk, Message, Metadata, Schema
from mcap.stream_reader import StreamReader

from zstandard import ZstdError

from av_stack.logs import encoding as enc
from av_stack.logs import topics as T
from av_stack.logs.writer import LOG_FORMAT_VERSION
from av_stack.messages import BevSpec, EgoSignals, SensorCalibration, SensorFrame
from sim.api import Pose, TrafficLightState
from sim.env.bev import BevConfig

PROTOBUF_TYPES = {cls.DESCRIPTOR.full_name: cls
                  for cls in (CompressedImage, PointCloud, LocationFix, FrameTransforms, SceneUpdate)}


class LogError(RuntimeError):
    """A log that cannot be read (further); the message names the file and, when some of it was read, the
    simulation time of its last good message."""


@dataclass(frozen=True)
class LogMessage:
    """One decoded message: protobuf messages as their Foxglove classes, JSON messages as dicts."""

    topic: str
    t_s: float
    schema: str
    value: Any


@dataclass
class LoggedFrame:
    """Everything logged at one simulation time: the rebuilt :class:`SensorFrame` (None when the log has
    no sensor frame there, e.g. a route's first world state) and every message by topic."""

    t_s: float
    messages: dict[str, Any] = field(default_factory=dict)
    sensor_frame: SensorFrame | None = None

    @property
    def frame(self) -> int | None:
        """The simulation frame number (of the world snapshot or the sensor frame)."""
        for topic in (T.GT_WORLD, T.EGO_SIGNALS):
            if topic in self.messages:
                return int(self.messages[topic]["frame"])
        return None

    @property
    def has_sensor_data(self) -> bool:
        """Whether the sensors were recorded at this frame (every ``record.sensors_every``-th frame)."""
        return self.sensor_frame is not None and len(self.sensor_frame.data) > 0


class LogReader:
    """A run log (see :mod:`av_stack.logs.topics`). ``LogError`` at once if the file is missing, is not an
    MCAP file, or is not an avsim log of a format this reader knows."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LogError(f"no log file at {self.path}")
        self.run: dict[str, Any] = {}
        self.attachments: dict[str, bytes] = {}
        self._read_header()

    # -------------------------------------------------------------- header: metadata and attachments
    def _read_header(self) -> None:
        """Metadata and attachments come first in a log; read up to the first message."""
        try:
            with open(self.path, "rb") as stream:
                for record in StreamReader(stream, skip_magic=False, emit_chunks=True).records:
                    if isinstance(record, Metadata) and record.name == T.RUN_METADATA:
                        self.run = {k: _json_or_text(v) for k, v in record.metadata.items()}
                    elif isinstance(record, Attachment):
                        self.attachments[record.name] = bytes(record.data)
                    elif isinstance(record, (Chunk, Message)) and self.run:
                        break  # the run's metadata and attachments are written before any message
        except (McapError, ValueError, EOFError, OSError) as exc:
            if not self.run:
                raise LogError(f"{self.path} is not a readable MCAP log: {exc}") from None
        if not self.run:
            raise LogError(f"{self.path} has no {T.RUN_METADATA!r} metadata: not a log written by avsim")
        version = int(self.run.get("format_version", 0))
        if version > LOG_FORMAT_VERSION:
            raise LogError(f"{self.path} is log format {version}; this avsim reads up to {LOG_FORMAT_VERSION}")

    @property
    def map_name(self) -> str:
        """The map the run drove on."""
        return str(self.run.get("map", ""))

    @property
    def dt_s(self) -> float:
        """The tick length [s]."""
        return float(self.run.get("dt_s", 0.05))

    @property
    def map_xodr(self) -> str | None:
        """The map's OpenDRIVE text (attached to the log), or None."""
        data = self.attachments.get(T.MAP_ATTACHMENT)
        if data is None:
            return None
        import zstandard

        try:
            return zstandard.ZstdDecompressor().decompress(data).decode()
        except zstandard.ZstdError as exc:
            raise LogError(f"{self.path}: the attached map does not decompress ({exc})") from None

    @property
    def config(self) -> dict[str, Any]:
        """The run's full stack config."""
        data = self.attachments.get(T.CONFIG_ATTACHMENT)
        return json.loads(data) if data else {}

    @property
    def sensor_names(self) -> tuple[str, ...]:
        """The sensors of the run's suite."""
        return tuple(self.run.get("sensors", {}))

    @property
    def calibration(self) -> dict[str, SensorCalibration]:
        """Each sensor's calibration, as the stack had it."""
        out = {}
        for name, s in self.run.get("sensors", {}).items():
            mount = Pose(**s["mount"])
            intrinsics = np.array(s["intrinsics"], dtype=np.float64) if s.get("intrinsics") is not None else None
            size = tuple(s["image_size"]) if s.get("image_size") is not None else None
            out[name] = SensorCalibration(name, s["blueprint"], mount, intrinsics, size)
        return out

    @property
    def bev_spec(self) -> BevSpec:
        """The BEV grid of the run."""
        config = dict(self.run.get("bev", {}).get("config", {}))
        if "history_steps" in config:
            config["history_steps"] = tuple(config["history_steps"])
        return BevSpec(BevConfig(**config))

    # -------------------------------------------------------------- messages
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[LogMessage]:
        """Every message (of ``topics``, default all) in log order, decoded. ``LogError`` after the last good
        message when the file is cut or corrupt."""
        wanted = set(topics) if topics is not None else None
        channels: dict[int, tuple[str, str, str]] = {}
        schemas: dict[int, str] = {}
        last_t: float | None = None
        try:
            with open(self.path, "rb") as stream:
                for record in StreamReader(stream, skip_magic=False, emit_chunks=False, validate_crcs=True).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = (record.topic, record.message_encoding, schemas.get(record.schema_id, ""))
                    elif isinstance(record, Message):
                        topic, encoding, schema = channels[record.channel_id]
                        t_s = record.log_time * 1e-9
                        if wanted is None or topic in wanted:
                            yield LogMessage(topic, t_s, schema, _decode(encoding, schema, record.data))
                        last_t = t_s
        except (McapError, ValueError, EOFError, KeyError, OSError, RuntimeError, struct.error, ZstdError,
                DecodeError) as exc:
            where = "before its first message" if last_t is None else f"after t = {last_t:.3f} s"
            raise LogError(f"{self.path} is cut or corrupt {where} ({type(exc).__name__}: {exc}); every message "
                           "before that point was read") from None

    def frames(self) -> Iterator[LoggedFrame]:
        """The log grouped by simulation time, with each :class:`SensorFrame` rebuilt."""
        current: LoggedFrame | None = None
        for message in self.messages():
            if current is not None and not math.isclose(message.t_s, current.t_s, abs_tol=1e-6):
                yield self._finish(current)
                current = None
            if current is None:
                current = LoggedFrame(message.t_s)
            current.messages[message.topic] = message.value
        if current is not None:
            yield self._finish(current)

    # -------------------------------------------------------------- rebuilding
    def _finish(self, logged: LoggedFrame) -> LoggedFrame:
        ego = logged.messages.get(T.EGO_SIGNALS)
        if ego is None:
            return logged
        calibration = self.calibration
        data = {}
        for name, c in calibration.items():
            message = logged.messages.get(T.sensor_topic(name))
            if message is not None:
                data[name] = decode_sensor(c.blueprint_id, message)
        spec = self.bev_spec
        bev = logged.messages.get(T.GT_BEV)
        truth = logged.messages.get(T.GT_FRAME)
        logged.sensor_frame = SensorFrame(
            frame=int(ego["frame"]), timestamp_s=logged.t_s, ego=ego_signals(ego), data=data,
            calibration=calibration, ground_truth=ground_truth(truth) if truth is not None else None,
            privileged_bev=decode_bev(bev, spec) if bev is not None else None, bev_spec=spec)
        return logged


# ---------------------------------------------------------------------------------------------- decoding
def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _decode(encoding: str, schema: str, data: bytes) -> Any:
    if encoding == "json":
        return json.loads(data)
    if encoding == "protobuf":
        cls = PROTOBUF_TYPES.get(schema)
        if cls is None:
            raise ValueError(f"unknown protobuf schema {schema!r}")
        return cls.FromString(data)
    raise ValueError(f"unknown message encoding {encoding!r}")


def _floats(values, n: int | None = None) -> np.ndarray:
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return array if n is None else array.reshape(n)


def decode_sensor(blueprint: str, message: Any) -> np.ndarray:
    """A sensor's array from its logged message (the layouts of :mod:`sim.sensors.layout`)."""
    if blueprint.startswith("sensor.camera."):
        return enc.decode_camera(blueprint, message)
    if blueprint in enc.POINT_CLOUDS:
        return enc.decode_points(blueprint, message)
    if blueprint == "sensor.other.gnss":
        return enc.decode_gnss(message)
    if blueprint == "sensor.other.imu":
        return np.concatenate([_floats(message["accelerometer_mps2"]), _floats(message["gyroscope_rad_s"]),
                               [math.nan if message["compass_rad"] is None else message["compass_rad"]]]
                              ).astype(np.float32)
    raise LogError(f"no decoder for sensor blueprint {blueprint!r}")


def decode_bev(message: CompressedImage, spec: BevSpec) -> np.ndarray:
    """A logged BEV image back to (C, H, W) uint8."""
    image = cv2.imdecode(np.frombuffer(message.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size != int(np.prod(spec.shape)):
        raise LogError(f"a BEV image of {None if image is None else image.shape} does not fit the grid {spec.shape}")
    return image.reshape(spec.shape)


def ego_signals(message: dict) -> EgoSignals:
    """:class:`EgoSignals` of a logged ``/ego/signals`` message."""
    compass = message.get("compass_rad")
    return EgoSignals(float(message["speed_mps"]), _floats(message["accelerometer_mps2"]),
                      _floats(message["gyroscope_rad_s"]), math.nan if compass is None else float(compass),
                      _floats(message["gnss"]))


def ground_truth(message: dict):
    """A :class:`sim.env.observations.GroundTruth` from a logged ``/ground_truth/frame`` message."""
    from sim.env.observations import ActorBoxes, EgoGroundTruth, GroundTruth, LightGroundTruth

    e = message["ego"]
    ego = EgoGroundTruth(int(e["actor_id"]), *(float(e[k]) for k in ("x_m", "y_m", "z_m", "pitch_rad", "yaw_rad",
                                                                       "roll_rad", "speed_mps")),
                         tuple(float(v) for v in e["velocity_mps"]))
    a = message["actors"]
    arrays = (np.array(a["actor_id"], dtype=np.int64), np.array(a["kind"], dtype=np.int8),
              np.array(a["center_m"], dtype=np.float64).reshape(-1, 3),
              np.array(a["extent_m"], dtype=np.float64).reshape(-1, 3), np.array(a["yaw_rad"], dtype=np.float64),
              np.array(a["velocity_mps"], dtype=np.float64).reshape(-1, 3))
    for array in arrays:
        array.flags.writeable = False
    light = message["light"]
    state = TrafficLightState[light["state"]] if light.get("state") else None
    distance = math.inf if light.get("distance_m") is None else float(light["distance_m"])
    return GroundTruth(int(message["frame"]), float(message["timestamp_s"]), ego, ActorBoxes(*arrays),
                       LightGroundTruth(int(light["index"]), state, distance))
