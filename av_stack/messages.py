"""The messages stages exchange: the only thing that passes from one stage of the AV stack to the next.

Every message is a frozen dataclass; its arrays are made read-only on
construction (a stage cannot change what another stage will read). Frames
and units follow CARLA and :mod:`sim.api`: world frame x east-ish, y to the
right of x, z up (left-handed), metres, seconds, radians, yaw from +x
towards +y. The *ego frame* is the ego vehicle's origin (the centre of its
box on the ground) with x forward, y right, z up, ignoring its pitch and roll.

Flow of one tick (``av_stack.stack.Stack``)::

    SensorFrame --perception--> PerceptionOutput
    SensorFrame --localization--> PoseEstimate
    (PerceptionOutput, PoseEstimate) --planning--> Plan
    (Plan, PoseEstimate) --control--> VehicleControl

A :class:`Mission` (the route to drive, the map, the vehicle) is handed to
every stage at ``reset``; it is what a Leaderboard agent gets before the
route starts (the global plan and the OpenDRIVE map).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np

from sim.api import ActorKind, Pose, TrafficLightState, VehicleControl
from sim.env.bev import BevConfig, bev_channel_names
from sim.maps.lanes import LaneGraph
from sim.maps.signals import SignalLayout
from sim.scenarios.routes import RoadOption, Route

__all__ = ["ActorKind", "BEV_SPEC", "BevSpec", "Detections", "EgoSignals", "LightObservation", "Mission",
           "PerceptionOutput", "Plan", "PoseEstimate", "SensorCalibration", "SensorFrame", "TrafficLightState",
           "VehicleControl", "VehicleGeometry"]


class MessageError(ValueError):
    """A message built with arrays of the wrong shape, or non-finite values where they are not allowed."""


def _frozen_array(owner: str, name: str, value: object, shape: tuple[int | None, ...],
                  dtype: type | np.dtype) -> np.ndarray:
    """``value`` as a read-only array of ``dtype``; ``MessageError`` unless its shape matches ``shape``
    (``None``: any length)."""
    array = np.array(value, dtype=dtype, copy=True)
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        want = "(" + ", ".join("N" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
        raise MessageError(f"{owner}.{name} must have shape {want}, got {array.shape}")
    array.flags.writeable = False
    return array


def _arrays_equal(a: object, b: object) -> bool:
    """Field-wise equality of two messages of the same type (arrays compared by value)."""
    if type(a) is not type(b):
        return NotImplemented  # type: ignore[return-value]
    for f in fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.shape == y.shape
                    and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")):
                return False
        elif x != y:
            return False
    return True


# ---------------------------------------------------------------------------------------------- the BEV spec
@dataclass(frozen=True)
class BevSpec:
    """The BEV grid and channel list that perception predicts and the env renders (one spec, one place).

    ``config`` is the env's :class:`~sim.env.bev.BevConfig` (size, resolution,
    where the ego sits); ``channels`` its channel names in order
    (:func:`sim.env.bev.bev_channel_names`).
    """

    config: BevConfig

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names, in order."""
        return bev_channel_names(self.config)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of a BEV on this grid."""
        return (len(self.channels), self.config.size_px, self.config.size_px)

    def ego_to_pixel(self, xy_m: np.ndarray) -> np.ndarray:
        """(N, 2) ego-frame points (x forward, y right) to (N, 2) pixel (col, row) coordinates."""
        c = self.config
        xy = np.asarray(xy_m, dtype=float).reshape(-1, 2)
        cx = c.size_px // 2
        cy = c.size_px - 1 - c.ego_from_bottom_px
        return np.stack([cx + xy[:, 1] * c.pixels_per_m, cy - xy[:, 0] * c.pixels_per_m], axis=1)


BEV_SPEC = BevSpec(BevConfig())
"""The default grid (the env's default ``observation.bev``)."""


# ---------------------------------------------------------------------------------------------- mission
@dataclass(frozen=True)
class VehicleGeometry:
    """The ego vehicle: its blueprint id (``av_stack.control.vehicles`` has its parameters by id) and the half
    extents of its box [m] (length, width, height)."""

    blueprint_id: str
    extent_m: tuple[float, float, float]


@dataclass(frozen=True)
class Mission:
    """What every stage gets at ``reset``: the route (dense, on lane centre lines, with CARLA ``RoadOption``
    commands), the map's lane graph and signals (where lights and stop signs are), and the ego vehicle."""

    route: Route
    lanes: LaneGraph
    signals: SignalLayout
    vehicle: VehicleGeometry
    map_name: str = ""


# ---------------------------------------------------------------------------------------------- sensors
@dataclass(frozen=True, eq=False)
class SensorCalibration:
    """One sensor's calibration: ``mount`` is its pose in the ego frame (the extrinsics; for a sensor fixed
    in the world, its world pose). A camera also has ``image_size`` (width, height) and ``intrinsics``, the
    (3, 3) pinhole matrix ``K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]]`` with ``f = W / (2 tan(fov / 2))``:
    a point at (x forward, y right, z up) in the camera's frame lands at pixel
    ``u = f * y / x + W/2``, ``v = -f * z / x + H/2`` (CARLA's convention); other sensors have ``None``."""

    name: str
    blueprint_id: str
    mount: Pose
    intrinsics: np.ndarray | None = None
    image_size: tuple[int, int] | None = None  # (width, height) of a camera

    def __post_init__(self) -> None:
        if self.intrinsics is not None:
            object.__setattr__(self, "intrinsics",
                               _frozen_array("SensorCalibration", "intrinsics", self.intrinsics, (3, 3), np.float64))

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class EgoSignals:
    """The vehicle's own signals this tick: speedometer [m/s] (forward, negative when reversing), IMU
    (``accelerometer_mps2`` (3,), ``gyroscope_rad_s`` (3,), ``compass_rad``; NaN when the suite has no IMU)
    and GNSS (``gnss`` (3,) latitude [deg], longitude [deg], altitude [m]; NaN without one)."""

    speed_mps: float
    accelerometer_mps2: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    gyroscope_rad_s: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    compass_rad: float = math.nan
    gnss: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))

    def __post_init__(self) -> None:
        if not math.isfinite(self.speed_mps):
            raise MessageError(f"EgoSignals.speed_mps must be finite, got {self.speed_mps!r}")
        for name in ("accelerometer_mps2", "gyroscope_rad_s", "gnss"):
            object.__setattr__(self, name, _frozen_array("EgoSignals", name, getattr(self, name), (3,), np.float64))

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class SensorFrame:
    """One tick's measurements of the sensor suite.

    ``data``: the suite's arrays by sensor name, in the layouts of
    :mod:`sim.sensors.layout` (LiDAR / radar rows already cut to the real
    count); ``calibration``: per sensor name; ``ego``: the vehicle's own
    signals. Privileged data, present only when the env was asked for it
    (``observation.ground_truth``, the ``bev`` mode) and read only by oracle
    stages and scoring: ``ground_truth`` (a :class:`sim.env.observations.GroundTruth`:
    ego pose, actor boxes in the ego frame, the light governing the ego) and
    ``privileged_bev`` ((C, H, W) uint8 0/255 on :attr:`bev_spec`'s grid).
    """

    frame: int
    timestamp_s: float
    ego: EgoSignals
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    calibration: Mapping[str, SensorCalibration] = field(default_factory=dict)
    ground_truth: object | None = None
    privileged_bev: np.ndarray | None = None
    bev_spec: BevSpec = BEV_SPEC

    def __post_init__(self) -> None:
        frozen = {}
        for name, value in self.data.items():
            array = np.array(value, copy=True)
            array.flags.writeable = False
            frozen[name] = array
        object.__setattr__(self, "data", MappingProxyType(frozen))
        object.__setattr__(self, "calibration", MappingProxyType(dict(self.calibration)))
        if self.privileged_bev is not None:
            object.__setattr__(self, "privileged_bev", _frozen_array(
                "SensorFrame", "privileged_bev", self.privileged_bev, self.bev_spec.shape, np.uint8))

    def sensor(self, name: str) -> np.ndarray:
        """One sensor's array; ``KeyError`` naming the sensors the frame has."""
        try:
            return self.data[name]
        except KeyError:
            raise KeyError(f"no sensor {name!r} in this frame; it has {sorted(self.data)}") from None

    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- perception
@dataclass(frozen=True, eq=False)
class Detections:
    """Object detections in the ego frame, ``N`` rows.

    ``kind`` (N,) int8 :class:`~sim.api.ActorKind`; ``center_m`` (N, 3) box
    centre; ``extent_m`` (N, 3) half length, width, height; ``yaw_rad`` (N,)
    heading relative to the ego's; ``velocity_mps`` (N, 2) over ground, in the
    ego frame's axes; ``score`` (N,) confidence in [0, 1]; ``track_id`` (N,)
    int64, the same number for the same object across ticks (-1: not tracked).
    """

    kind: np.ndarray
    center_m: np.ndarray
    extent_m: np.ndarray
    yaw_rad: np.ndarray
    velocity_mps: np.ndarray
    score: np.ndarray
    track_id: np.ndarray

    def __post_init__(self) -> None:
        n = int(np.asarray(self.kind).reshape(-1).shape[0])
        specs = {"kind": ((n,), np.int8), "center_m": ((n, 3), np.float64), "extent_m": ((n, 3), np.float64),
                 "yaw_rad": ((n,), np.float64), "velocity_mps": ((n, 2), np.float64),
                 "score": ((n,), np.float64), "track_id": ((n,), np.int64)}
        for name, (shape, dtype) in specs.items():
            object.__setattr__(self, name, _frozen_array("Detections", name, getattr(self, name), shape, dtype))
        for name in ("center_m", "extent_m", "yaw_rad", "velocity_mps", "score"):
            if not np.isfinite(getattr(self, name)).all():
                raise MessageError(f"Detections.{name} has non-finite values")

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2)), np.zeros(0),
                   np.zeros(0))

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class LightObservation:
    """The traffic light that governs the ego: its ``state`` (None: none seen ahead), the distance along
    the route to its stop line [m] (inf: none) and the confidence ``score``."""

    state: TrafficLightState | None = None
    distance_m: float = math.inf
    score: float = 1.0

    def __post_init__(self) -> None:
        if math.isnan(self.distance_m) or not 0.0 <= self.score <= 1.0:
            raise MessageError(f"LightObservation.distance_m must be a number and score in [0, 1], "
                               f"got {self.distance_m!r}, {self.score!r}")

    @property
    def must_stop(self) -> bool:
        """Red or yellow."""
        return self.state in (TrafficLightState.RED, TrafficLightState.YELLOW)


@dataclass(frozen=True, eq=False)
class PerceptionOutput:
    """What perception sees: BEV class probabilities (C, H, W) float32 in [0, 1] on ``bev_spec``'s grid and
    channel list (``None`` when the stage predicts no BEV), object detections, and the governing light."""

    frame: int
    timestamp_s: float
    detections: Detections
    light: LightObservation
    bev: np.ndarray | None = None
    bev_spec: BevSpec = BEV_SPEC

    def __post_init__(self) -> None:
        if self.bev is not None:
            bev = _frozen_array("PerceptionOutput", "bev", self.bev, self.bev_spec.shape, np.float32)
            if not (np.isfinite(bev).all() and bev.min(initial=0.0) >= 0.0 and bev.max(initial=0.0) <= 1.0):
                raise MessageError("PerceptionOutput.bev must hold probabilities in [0, 1]")
            object.__setattr__(self, "bev", bev)

    def channel(self, name: str) -> np.ndarray:
        """One BEV channel by name; ``KeyError`` listing the channels."""
        if self.bev is None:
            raise KeyError("this perception output has no BEV")
        channels = self.bev_spec.channels
        if name not in channels:
            raise KeyError(f"no BEV channel {name!r}; channels: {list(channels)}")
        return self.bev[channels.index(name)]

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- localization
@dataclass(frozen=True, eq=False)
class PoseEstimate:
    """Where the ego is: ``pose`` (world frame), ``velocity_mps`` (3,) world frame, ``covariance`` (3, 3)
    of (x [m], y [m], yaw [rad]), and ``valid`` (False: the estimate is not to be trusted, e.g. before the
    filter converged)."""

    frame: int
    timestamp_s: float
    pose: Pose
    velocity_mps: np.ndarray
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    valid: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "velocity_mps",
                           _frozen_array("PoseEstimate", "velocity_mps", self.velocity_mps, (3,), np.float64))
        object.__setattr__(self, "covariance",
                           _frozen_array("PoseEstimate", "covariance", self.covariance, (3, 3), np.float64))
        if not (np.isfinite(self.velocity_mps).all() and np.isfinite(self.covariance).all()):
            raise MessageError("PoseEstimate.velocity_mps and covariance must be finite")

    @property
    def xy(self) -> np.ndarray:
        """(2,) position on the ground."""
        return np.array([self.pose.x_m, self.pose.y_m])

    @property
    def yaw_rad(self) -> float:
        """Heading [rad]."""
        return float(self.pose.yaw_rad)

    @property
    def forward_speed_mps(self) -> float:
        """Speed along the heading (negative when reversing)."""
        return float(self.velocity_mps[0] * math.cos(self.yaw_rad) + self.velocity_mps[1] * math.sin(self.yaw_rad))

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True, eq=False)
class Plan:
    """A short target trajectory: ``trajectory_xy`` (N, 2) world-frame points from the ego's position
    forward, about 1 m apart, with ``target_speed_mps`` (N,) the speed wanted on reaching each; the
    ``command`` (CARLA ``RoadOption``) of the route at the ego. End-to-end planners set ``control`` instead
    (or as well): a controller then applies it as it is (a manoeuvre such as backing off a kerb, too)."""

    frame: int
    timestamp_s: float
    trajectory_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    target_speed_mps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    command: RoadOption = RoadOption.LANEFOLLOW
    control: VehicleControl | None = None

    def __post_init__(self) -> None:
        n = int(np.asarray(self.trajectory_xy).reshape(-1, 2).shape[0]) if np.size(self.trajectory_xy) else 0
        object.__setattr__(self, "trajectory_xy",
                           _frozen_array("Plan", "trajectory_xy", np.reshape(self.trajectory_xy, (n, 2)),
                                         (n, 2), np.float64))
        object.__setattr__(self, "target_speed_mps",
                           _frozen_array("Plan", "target_speed_mps", self.target_speed_mps, (n,), np.float64))
        if not (np.isfinite(self.trajectory_xy).all() and np.isfinite(self.target_speed_mps).all()):
            raise MessageError("Plan.trajectory_xy and target_speed_mps must be finite")
        if n == 0 and self.control is None:
            raise MessageError("a Plan needs a trajectory or a control")

    @property
    def arc_length_m(self) -> np.ndarray:
        """(N,) distance along the trajectory from its first point."""
        if self.trajectory_xy.shape[0] == 0:
            return np.zeros(0)
        steps = np.hypot(*np.diff(self.trajectory_xy, axis=0).T)
        return np.concatenate([[0.0], np.cumsum(steps)])

    __eq__ = _arrays_equal
    __hash__ = None  # type: ignore[assignment]
