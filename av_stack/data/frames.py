"""Training samples from a dataset's MCAP logs, without torch: the index of sample frames and one sample's
arrays decoded from the messages logged at its time.

A sample is a frame whose sensors were recorded. Its fields (:func:`sample_from_messages`):

================  ====================  ===========================================================
field             shape, dtype          what
================  ====================  ===========================================================
``sensor/NAME``   the sensor's layout   camera HxWx3 uint8 (depth HxW float32 m), LiDAR / radar Nx4
                                        float32, GNSS (3,) float64, IMU (7,) float32
``bev``           (C, H, W) uint8       the privileged BEV (label), channels as ``BevSpec.channels``
``boxes``         (N, 7) float32        actors near the ego: centre x, y, z, half extents, yaw (ego frame)
``box_kind``      (N,) int64            :class:`sim.api.ActorKind` of each box
``box_velocity``  (N, 2) float32        each box's velocity over ground [m/s], in the ego frame's axes
``ego_pose``      (6,) float64          x, y, z, pitch, yaw, roll (world frame, CARLA's axes)
``speed``         () float32            the ego's speed [m/s]
``light_state``   () int64              the governing light's :class:`sim.api.TrafficLightState`; -1 none
``light_distance`` () float32           distance to its stop line [m] (inf: none)
``expert_action`` (3,) float32          the expert's clean control (``/stack/control``): throttle, steer, brake
``applied_action`` (3,) float32         the executed control (``/collect/applied_control``)
``noise_active``  () bool               whether noise was injected at this frame
================  ====================  ===========================================================
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.data.manifest import APPLIED_CONTROL, DatasetError
from av_stack.logs import topics as T

SENSOR = "sensor/"
RAGGED_BLUEPRINTS = ("sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic", "sensor.other.radar")
"""Sensors whose arrays vary in length from frame to frame (point clouds)."""
LABEL_FIELDS = ("bev", "boxes", "box_kind", "box_velocity", "ego_pose", "speed", "light_state", "light_distance",
                "expert_action", "applied_action", "noise_active")
RAGGED_LABELS = ("boxes", "box_kind", "box_velocity")


@dataclass(frozen=True)
class SampleRef:
    """Where a sample is: the log (index into the dataset's logs), its simulation frame and time [ns]."""

    log: int
    frame: int
    t_ns: int


class LogFile:
    """One log of a dataset opened for random access by time (MCAP's chunk index); reopened in each process
    (a DataLoader worker gets a copy without the open file)."""

    def __init__(self, path: Path) -> None:
        from av_stack.logs.reader import LogError, LogReader

        self.path = Path(path)
        try:
            header = LogReader(self.path)
        except LogError as exc:
            raise DatasetError(str(exc)) from None
        self.blueprints = {name: c.blueprint_id for name, c in header.calibration.items()}
        self.bev_spec = header.bev_spec
        self._file = None
        self._reader = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_reader": None, "_pid": None}

    def _open(self):
        if self._reader is None or self._pid != os.getpid():
            from mcap.reader import make_reader

            self._file = open(self.path, "rb")
            self._reader = make_reader(self._file)
            self._pid = os.getpid()
        return self._reader

    def close(self) -> None:
        """Close the file (it reopens on the next read)."""
        if self._file is not None:
            self._file.close()
        self._file = self._reader = None

    def samples(self, log_index: int) -> list[SampleRef]:
        """The frames of this log whose sensors were recorded."""
        sensor_topics = {T.sensor_topic(name) for name in self.blueprints}
        ego: dict[int, int] = {}
        recorded: set[int] = set()
        try:
            for _, channel, message in self._open().iter_messages(topics=[T.EGO_SIGNALS, *sensor_topics]):
                if channel.topic == T.EGO_SIGNALS:
                    ego[message.log_time] = int(json.loads(message.data)["frame"])
                else:
                    recorded.add(message.log_time)
        except Exception as exc:  # mcap raises several kinds for a cut or corrupt file
            raise DatasetError(f"{self.path} is cut or corrupt ({type(exc).__name__}: {exc}); collect it again") \
                from None
        return [SampleRef(log_index, frame, t) for t, frame in sorted(ego.items()) if t in recorded]

    def messages_at(self, t_ns: int, sensors: tuple[str, ...]) -> dict[str, Any]:
        """The decoded messages logged at ``t_ns`` (the sensors of ``sensors`` and the label topics)."""
        from av_stack.logs.reader import PROTOBUF_TYPES

        wanted = {T.EGO_SIGNALS, T.GT_FRAME, T.GT_BEV, T.STACK_CONTROL, APPLIED_CONTROL,
                  *(T.sensor_topic(name) for name in sensors)}
        out: dict[str, Any] = {}
        try:
            for schema, channel, message in self._open().iter_messages(topics=sorted(wanted), starting_at=t_ns,
                                                                         ending_at=t_ns):
                if channel.message_encoding == "json":
                    out[channel.topic] = json.loads(message.data)
                else:
                    out[channel.topic] = PROTOBUF_TYPES[schema.name].FromString(message.data)
        except Exception as exc:
            raise DatasetError(f"{self.path} is cut or corrupt near t = {t_ns * 1e-9:.3f} s "
                               f"({type(exc).__name__}: {exc})") from None
        return out


def _control(message: dict | None, where: str) -> np.ndarray:
    if message is None:
        raise DatasetError(f"{where}: no control logged (not a log written by the dataset collector?)")
    return np.array([message["throttle"], message["steer"], message["brake"]], dtype=np.float32)


def sample_from_messages(messages: dict[str, Any], blueprints: dict[str, str], bev_spec, sensors: tuple[str, ...],
                         where: str) -> dict[str, np.ndarray]:
    """A sample's arrays (see the module docstring) from the decoded messages at its time."""
    from av_stack.logs.reader import decode_bev, decode_sensor, ground_truth

    out: dict[str, np.ndarray] = {}
    for name in sensors:
        message = messages.get(T.sensor_topic(name))
        if message is None:
            raise DatasetError(f"{where}: sensor {name!r} was not recorded at this frame")
        out[SENSOR + name] = decode_sensor(blueprints[name], message)
    bev = messages.get(T.GT_BEV)
    truth = messages.get(T.GT_FRAME)
    if bev is None or truth is None:
        raise DatasetError(f"{where}: no privileged BEV or ground truth logged (collect with ground truth on)")
    out["bev"] = decode_bev(bev, bev_spec)
    gt = ground_truth(truth)
    a = gt.actors
    out["boxes"] = np.concatenate([a.center_m, a.extent_m, a.yaw_rad[:, None]], axis=1).astype(np.float32)
    out["box_kind"] = a.kind.astype(np.int64)
    out["box_velocity"] = a.velocity_mps[:, :2].astype(np.float32)
    e = gt.ego
    out["ego_pose"] = np.array([e.x_m, e.y_m, e.z_m, e.pitch_rad, e.yaw_rad, e.roll_rad], dtype=np.float64)
    out["speed"] = np.array(e.speed_mps, dtype=np.float32)
    out["light_state"] = np.array(-1 if gt.light.state is None else int(gt.light.state), dtype=np.int64)
    out["light_distance"] = np.array(gt.light.distance_m if math.isfinite(gt.light.distance_m) else np.inf,
                                     dtype=np.float32)
    out["expert_action"] = _control(messages.get(T.STACK_CONTROL), where)
    applied = messages.get(APPLIED_CONTROL)
    out["applied_action"] = _control(applied, where)
    out["noise_active"] = np.array(bool(applied["noise"]["active"]), dtype=np.bool_)
    return out


class McapSource:
    """The samples of a dataset read straight from its logs (one seek and decode per sample)."""

    def __init__(self, root: Path, manifest: dict[str, Any], sensors: tuple[str, ...] | None) -> None:
        self.root = Path(root)
        self.logs = []
        for entry in manifest["logs"]:
            path = self.root / entry["file"]
            if not path.is_file():
                raise DatasetError(f"the manifest lists {entry['file']} but {path} is missing")
            self.logs.append(LogFile(path))
        self.sensors = resolve_sensors(sensors, self.logs[0].blueprints if self.logs else {}, self.root)
        self.refs = [ref for k, log in enumerate(self.logs) for ref in log.samples(k)]

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of sample ``index``."""
        ref = self.refs[index]
        log = self.logs[ref.log]
        where = f"{log.path} frame {ref.frame}"
        return sample_from_messages(log.messages_at(ref.t_ns, self.sensors), log.blueprints, log.bev_spec,
                                    self.sensors, where)


def resolve_sensors(sensors: tuple[str, ...] | None, available: dict[str, str], root: Path) -> tuple[str, ...]:
    """The sensors to load: ``sensors`` (checked against ``available``) or all of them; collision and lane
    invasion sensors have no data and are never loaded."""
    recorded = tuple(name for name, bp in available.items()
                     if bp not in ("sensor.other.collision", "sensor.other.lane_invasion"))
    if sensors is None:
        return recorded
    unknown = [name for name in sensors if name not in recorded]
    if unknown:
        raise DatasetError(f"dataset {root} has no sensor {', '.join(map(repr, unknown))}; its sensors are "
                           f"{', '.join(recorded)}")
    return tuple(sensors)
