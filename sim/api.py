"""The world interface every simulator backend implements (:class:`World`), and the types that cross it.

All arrays use CARLA's world frame (x forward, y right, z up; left-handed),
SI units and radians. ``N`` below is the number of actors in a snapshot and
``L`` the number of traffic lights; every per-actor array has ``N`` rows in the
same order as ``actor_id``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from enum import IntEnum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # the map model's types; sim.maps imports this module
    from sim.maps.geometry import AreaRaster, MapGeometry
    from sim.maps.lanes import LaneGraph, SpawnPoint
    from sim.maps.signals import SignalLayout

DEFAULT_DT_S = 0.05
"""Fixed simulation step, as CARLA's synchronous mode at 20 Hz."""


class SpawnError(RuntimeError):
    """An actor could not be spawned (occupied spot, off the road network, unknown blueprint)."""


class ActorKind(IntEnum):
    """Kind of actor in a snapshot."""

    VEHICLE = 0
    WALKER = 1


class TrafficLightState(IntEnum):
    """Traffic-light states with CARLA's integer values (``carla.TrafficLightState``)."""

    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3
    UNKNOWN = 4


@dataclass(frozen=True)
class Pose:
    """A position [m] and orientation [rad] in CARLA's frame: the project's one pose type.

    It is a world pose (actors, spawn points, routes) or, for a sensor, its
    mount relative to the parent actor's origin. Angles follow
    ``carla.Rotation``: pitch (nose up > 0), yaw (x toward +y > 0), roll
    (right side down > 0); as an array (:attr:`rotation`, and everywhere in the
    project) the order is (pitch, yaw, roll), as ``WorldSnapshot.rotation_rad``.
    The constructor's fourth positional field is yaw because planar code sets
    only (x, y, z, yaw); pass pitch and roll by keyword. Every field must be a
    finite number (``ValueError`` naming it otherwise).
    """

    x_m: float = 0.0
    y_m: float = 0.0
    z_m: float = 0.0
    yaw_rad: float = 0.0
    pitch_rad: float = 0.0
    roll_rad: float = 0.0

    def __post_init__(self) -> None:
        for name in ("x_m", "y_m", "z_m", "yaw_rad", "pitch_rad", "roll_rad"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"Pose.{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def location(self) -> np.ndarray:
        """(x, y, z) [m], shape (3,)."""
        return np.array([self.x_m, self.y_m, self.z_m])

    @property
    def rotation(self) -> np.ndarray:
        """(pitch, yaw, roll) [rad], shape (3,): the project's one rotation order."""
        return np.array([self.pitch_rad, self.yaw_rad, self.roll_rad])

    @classmethod
    def from_arrays(cls, location: np.ndarray, rotation: np.ndarray) -> Pose:
        """The pose of a (3,) location [m] and a (pitch, yaw, roll) (3,) rotation [rad]."""
        x, y, z = (float(v) for v in location)
        pitch, yaw, roll = (float(v) for v in rotation)
        return cls(x, y, z, yaw_rad=yaw, pitch_rad=pitch, roll_rad=roll)


@dataclass(frozen=True)
class VehicleControl:
    """CARLA ``VehicleControl`` semantics: throttle 0..1, steer -1..1 (negative = left), brake 0..1.

    Construction rejects NaN and infinite values; out-of-range values are
    clamped, as a CARLA server does (the CARLA client does not clamp).
    """

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False

    def __post_init__(self) -> None:
        for name, low, high in (("throttle", 0.0, 1.0), ("steer", -1.0, 1.0), ("brake", 0.0, 1.0)):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"VehicleControl.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, min(max(value, low), high))


@dataclass(frozen=True)
class CollisionEvent:
    """``actor_id`` hit ``other_id`` (-1: the static layout) with ``impulse_ns`` [N s] (world frame, on actor)."""

    frame: int
    actor_id: int
    other_id: int
    other_kind: str  # "vehicle", "walker" or "static"
    impulse_ns: tuple[float, float, float]
    location_m: tuple[float, float, float]


@dataclass(frozen=True)
class LaneInvasionEvent:
    """``actor_id`` crossed lane markings of the given CARLA ``LaneMarkingType`` names."""

    frame: int
    actor_id: int
    marking_types: tuple[str, ...]
    location_m: tuple[float, float, float]


@dataclass(frozen=True)
class OffRoadEvent:
    """``actor_id``'s centre left (``entered=True``) or came back to (``False``) the drivable area."""

    frame: int
    actor_id: int
    entered: bool
    location_m: tuple[float, float, float]


@dataclass(frozen=True)
class RedLightEvent:
    """``actor_id`` entered a junction past traffic light ``light_id`` while it was red."""

    frame: int
    actor_id: int
    light_id: int
    location_m: tuple[float, float, float]


@dataclass(frozen=True)
class StopSignEvent:
    """``actor_id`` entered a junction past stop sign ``stop_id`` without stopping first."""

    frame: int
    actor_id: int
    stop_id: int
    location_m: tuple[float, float, float]


Event = CollisionEvent | LaneInvasionEvent | OffRoadEvent | RedLightEvent | StopSignEvent


def _readonly(array: np.ndarray) -> np.ndarray:
    if array.flags.writeable:
        array.flags.writeable = False
    return array


@dataclass(frozen=True)
class WorldSnapshot:
    """The state of every actor and traffic light after one tick; arrays are read-only.

    Shapes: per actor ``(N,)`` or ``(N, 3)``; per traffic light ``(L,)`` or ``(L, 3)``.

    - ``actor_id`` int64: stable ids, never reused within an episode.
    - ``kind`` int8: :class:`ActorKind`. ``type_id``: blueprint ids (tuple of str).
    - ``semantic_tag`` uint8: CARLA semantic tag (14 car, 12 pedestrian, ...).
    - ``location_m`` (N, 3) the actor's origin as CARLA reports it [m]: a vehicle's
      on the ground under its box centre, a walker's at its box centre.
    - ``rotation_rad`` (N, 3): (pitch, yaw, roll) [rad]; yaw wrapped to (-pi, pi].
    - ``velocity_mps`` (N, 3), ``acceleration_mps2`` (N, 3) world frame.
    - ``angular_velocity_rad_s`` (N, 3): about (x, y, z); z is the yaw rate.
    - ``extent_m`` (N, 3): half length, half width, half height of the box [m].
    - ``autopilot`` bool: driven by the simulator's traffic logic.
    - ``light_id`` int64, ``light_state`` int8 (:class:`TrafficLightState`),
      ``light_location_m`` (L, 3), ``light_junction_id`` int64.
    - ``events``: everything that happened during this tick.
    """

    frame: int
    timestamp_s: float
    dt_s: float
    actor_id: np.ndarray
    kind: np.ndarray
    type_id: tuple[str, ...]
    semantic_tag: np.ndarray
    location_m: np.ndarray
    rotation_rad: np.ndarray
    velocity_mps: np.ndarray
    acceleration_mps2: np.ndarray
    angular_velocity_rad_s: np.ndarray
    extent_m: np.ndarray
    autopilot: np.ndarray
    light_id: np.ndarray
    light_state: np.ndarray
    light_location_m: np.ndarray
    light_junction_id: np.ndarray
    events: tuple[Event, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in (
            "actor_id", "kind", "semantic_tag", "location_m", "rotation_rad", "velocity_mps",
            "acceleration_mps2", "angular_velocity_rad_s", "extent_m", "autopilot",
            "light_id", "light_state", "light_location_m", "light_junction_id",
        ):
            _readonly(getattr(self, name))

    @property
    def num_actors(self) -> int:
        """Number of actors ``N``."""
        return int(self.actor_id.shape[0])

    def index_of(self, actor_id: int) -> int:
        """Row of ``actor_id`` in the per-actor arrays; ``KeyError`` if absent."""
        rows = np.flatnonzero(self.actor_id == actor_id)
        if rows.size == 0:
            raise KeyError(f"actor {actor_id} is not in snapshot of frame {self.frame}")
        return int(rows[0])

    def speed_mps(self) -> np.ndarray:
        """Horizontal speed of every actor [m/s], shape (N,)."""
        return np.hypot(self.velocity_mps[:, 0], self.velocity_mps[:, 1])

    def events_of(self, actor_id: int) -> tuple[Event, ...]:
        """Events of this tick that concern ``actor_id``."""
        return tuple(e for e in self.events if e.actor_id == actor_id)


@dataclass(frozen=True)
class MapInfo:
    """What a backend says about the loaded map."""

    name: str
    xodr_text: str
    spawn_points: tuple[Pose, ...]


class LightControl(Protocol):
    """Forcing traffic lights, by index into the world's ``signals`` (scenarios use it)."""

    def force_state(self, light: int, state: TrafficLightState | int | None) -> None:
        """Hold light ``light`` in ``state`` (from the next tick's snapshot on); None hands it back to its cycle."""
        ...


class ActorRecord(Protocol):
    """What a world remembers of a live actor."""

    @property
    def type_id(self) -> str:
        """Blueprint id, as in snapshots."""
        ...

    @property
    def role_name(self) -> str:
        """The ``role_name`` given to :meth:`World.spawn_vehicle` ("" for none); other actors carry the backend's
        default (embedded: ""; CARLA: the blueprint's, e.g. "autopilot" for traffic)."""
        ...


class MapText(Protocol):
    """The loaded map: its name (``Town01``, ``procedural_2x2_seed4``, ...) and OpenDRIVE text."""

    @property
    def name(self) -> str: ...

    @property
    def xodr_text(self) -> str: ...


@runtime_checkable
class World(Protocol):
    """Everything the env, scenarios, sensor rigs and the AV stack's runner may ask of a simulator.

    Implementations: the embedded simulator (``sim.embedded.world.EmbeddedWorld``)
    and a CARLA server (``sim.carla_backend.world.CarlaWorld``); build one with
    ``sim.backends.make_world``. The same contract tests run against both
    (``tests/sim/test_world_contract.py``, the CARLA side through ``avsim serve``).

    Time advances only in :meth:`tick`, by the fixed step ``dt_s`` [s]: every
    tick adds one to the snapshot's ``frame`` and ``dt_s`` to its
    ``timestamp_s``. Actor ids are stable for an actor's lifetime and never
    reused within an episode. Poses are :class:`Pose` in the world frame
    (CARLA's axes, metres, radians). Spawns, controls, teleports and forced
    lights show in the snapshot of the next tick (the embedded world also
    lists new actors in :meth:`snapshot` at once; CARLA's lists them from the
    next tick).

    The map model is built from the map's OpenDRIVE text the same way on every
    backend, so routes, BEV, rules and metrics agree:

    - ``source``: the map's ``name`` and ``xodr_text`` (:class:`MapText`);
    - ``lanes`` (``sim.maps.lanes.LaneGraph``), ``signals``
      (``sim.maps.signals.SignalLayout``), ``geometry``
      (``sim.maps.geometry.MapGeometry``), ``area_raster``
      (``sim.maps.geometry.AreaRaster``), ``spawn_points``
      (``sim.maps.lanes.SpawnPoint``, every 10 m on the main lane component);
    - ``actors``: the live vehicles and walkers, by id (:class:`ActorRecord`):
      everything spawned here and, on a CARLA server, other clients' actors
      once a snapshot has shown them; destroyed actors leave it at once;
    - ``lights``: :class:`LightControl`; a reset hands every light back to its
      cycle.

    Events (``WorldSnapshot.events``) concern free vehicles (not on
    autopilot): collisions and lane invasions from the simulator, red-light,
    stop-sign and off-road runs from ``sim.rules.traffic`` on both backends.
    """

    dt_s: float

    @property
    def source(self) -> MapText: ...

    @property
    def lanes(self) -> LaneGraph: ...

    @property
    def signals(self) -> SignalLayout: ...

    @property
    def geometry(self) -> MapGeometry: ...

    @property
    def area_raster(self) -> AreaRaster: ...

    @property
    def spawn_points(self) -> list[SpawnPoint]: ...

    @property
    def actors(self) -> Mapping[int, ActorRecord]: ...

    @property
    def lights(self) -> LightControl: ...

    def reset(self, seed: int | None = None) -> WorldSnapshot:
        """Remove every actor spawned here and release forced lights; keeps the map. The snapshot after it.

        Random choices (spawn points, traffic mix, the Traffic Manager) restart
        from ``seed`` (None: the world's seed). Frames: the embedded world
        restarts at frame 0, time 0 (and replays a new world built with
        ``seed`` exactly); a CARLA server's frame count and clock go on across
        resets (they are the server's, and sensor data carries them), so only
        "the next tick is this snapshot's frame + 1" holds on both.
        """
        ...

    def spawn_vehicle(self, blueprint_id: str = ..., pose: Pose | SpawnPoint | None = None, *,
                      autopilot: bool = False, role_name: str = "", speed_mps: float = 0.0) -> int:
        """Spawn a vehicle at ``pose`` (a free spawn point when None) moving at ``speed_mps``; its id.

        :class:`SpawnError` if the spot is occupied; ``ValueError`` for a
        blueprint the backend does not have.
        """
        ...

    def spawn_traffic(self, count: int) -> list[int]:
        """``count`` vehicles on the simulator's autopilot at free spawn points; their ids.

        Where the map has no room for all of them the embedded world raises
        :class:`SpawnError` and a CARLA server returns those that fit (its
        batch spawn drops the failed ones).
        """
        ...

    def spawn_walkers(self, count: int) -> list[int]:
        """``count`` pedestrians walking on their own (a CARLA server: fewer if spawns keep failing); their ids."""
        ...

    def spawn_walker_at(self, pose: Pose) -> int:
        """One pedestrian near ``pose`` that stands until :meth:`apply_walker_control` moves it; its id.

        "Near": the embedded world (and ``avsim serve``) puts it on the nearest
        point of its pedestrian network; CARLA at ``pose``, box centre 1 m up.
        """
        ...

    def destroy(self, actor_ids: list[int]) -> None:
        """Remove actors; an unknown id raises ``KeyError`` naming it, and nothing is removed then."""
        ...

    def set_autopilot(self, actor_id: int, enabled: bool = True) -> None:
        """Hand a vehicle to (or take it back from) the simulator's traffic logic; it keeps pose and speed."""
        ...

    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        """Control for a vehicle from the next tick on, held until replaced; on autopilot the traffic logic's wins."""
        ...

    def apply_walker_control(self, actor_id: int, direction_xy: tuple[float, float], speed_mps: float) -> None:
        """CARLA's ``WalkerControl``: walk along ``direction_xy`` (any length) at ``speed_mps`` until changed."""
        ...

    def teleport(self, actor_id: int, pose: Pose, speed_mps: float | None = None) -> None:
        """Move a free vehicle or a walker to ``pose`` (optionally setting its speed along the new heading)."""
        ...

    def tick(self) -> WorldSnapshot:
        """Advance one fixed step and return the new snapshot."""
        ...

    def snapshot(self) -> WorldSnapshot:
        """The latest snapshot, without advancing time."""
        ...

    def close(self) -> None:
        """Release everything the world holds on a server or in threads; idempotent. Do not use it afterwards."""
        ...
