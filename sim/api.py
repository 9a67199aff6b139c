"""The protocol every simulator backend implements, and the types that cross it.

All arrays use CARLA's world frame (x forward, y right, z up; left-handed),
SI units and radians. ``N`` below is the number of actors in a snapshot and
``L`` the number of traffic lights; every per-actor array has ``N`` rows in the
same order as ``actor_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_DT_S = 0.05
"""Fixed simulation step, as CARLA's synchronous mode at 20 Hz."""


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
    """A position [m] and orientation [rad] in the world frame (CARLA's axes)."""

    x_m: float
    y_m: float
    z_m: float = 0.0
    yaw_rad: float = 0.0
    pitch_rad: float = 0.0
    roll_rad: float = 0.0


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


@runtime_checkable
class Backend(Protocol):
    """What the Gymnasium environment and the stack need from a simulator.

    Implementations: the embedded simulator (``sim.embedded.EmbeddedBackend``)
    and the CARLA client (``sim.carla_backend``). Time advances only in
    :meth:`tick`, by a fixed step; ids are stable for an actor's lifetime.
    """

    dt_s: float

    def load_world(self, map_name: str, seed: int | None = None) -> MapInfo:
        """Load a map (a shipped town name or an .xodr path), destroying every actor."""
        ...

    def spawn_vehicle(self, blueprint_id: str, pose: Pose, *, autopilot: bool = False,
                      role_name: str = "") -> int:
        """Spawn a vehicle; return its actor id. Raises if the spot is occupied."""
        ...

    def spawn_walker(self, pose: Pose | None = None) -> int:
        """Spawn a pedestrian (on a sidewalk when ``pose`` is None); return its id."""
        ...

    def destroy(self, actor_ids: list[int]) -> None:
        """Remove actors; unknown ids raise ``KeyError``."""
        ...

    def set_autopilot(self, actor_id: int, enabled: bool = True) -> None:
        """Hand a vehicle to (or take it back from) the simulator's traffic logic."""
        ...

    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        """Control to apply to a vehicle from the next tick on (held until replaced)."""
        ...

    def tick(self) -> WorldSnapshot:
        """Advance one fixed step and return the new snapshot."""
        ...

    def snapshot(self) -> WorldSnapshot:
        """The latest snapshot, without advancing time."""
        ...

    def close(self) -> None:
        """Release everything the backend holds; idempotent."""
        ...
