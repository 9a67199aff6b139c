"""What every part of the CARLA server shares: the world, the actors it knows, the actor ids and their lookups.

Actor ids: the embedded world numbers its vehicles and walkers; traffic light
``k`` of the embedded signal layout is ``LIGHT_ID_BASE + k``; sensors and
walker controllers count up from ``SENSOR_ID_BASE``; the spectator is
``SPECTATOR_ID``. The handler modules (``episode``, ``actors``, ``lights``,
``walkers``, ``level``, ``sensor_streams``, ``batch``) read and change one
:class:`ServerState`, under the server's lock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from sim.api import ActorKind, Pose
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import ActorDescription, EpisodeSettings, Transform, VehicleControlMsg
from sim.carla_server.streams import StreamServer
from sim.embedded.sensors.base import Sensor
from sim.embedded.sensors.town import TownLayout
from sim.embedded.world import EmbeddedWorld

__all__ = [
    "BUILDING_LABEL", "EPISODE_STREAM_ID", "LIGHT_ID_BASE", "SENSOR_ID_BASE", "SPECTATOR_ID", "TRAFFIC_LIGHT_LABEL",
    "ControllerActor", "SensorActor", "ServerState", "SpawnedVehicle", "UnsupportedError",
]

EPISODE_STREAM_ID = 1
SENSOR_ID_BASE = 1 << 24
"""Sensor and controller actor ids start here, clear of the ids the embedded world gives its actors."""
LIGHT_ID_BASE = 1 << 23
"""Traffic light ``k`` of the embedded signal layout is actor ``LIGHT_ID_BASE + k``."""
SPECTATOR_ID = SENSOR_ID_BASE - 1
"""The spectator actor (it exists in every episode; it cannot be destroyed)."""
TRAFFIC_LIGHT_LABEL = 7
"""``CityObjectLabel.TrafficLight`` (0.9.16)."""
BUILDING_LABEL = 3
"""``CityObjectLabel.Buildings`` (0.9.16)."""


class UnsupportedError(RuntimeError):
    """A request this server does not implement (the message names it)."""


@dataclass
class SensorActor:
    """A sensor actor: its description, parent, mount, stream and embedded implementation."""

    actor_id: int
    description: ActorDescription
    parent_id: int
    mount: Transform
    stream_id: int
    impl: Sensor | None  # the embedded sensor; None for event sensors


@dataclass(frozen=True)
class ControllerActor:
    """A walker AI controller: CARLA's walker AI runs in the client (ApplyWalkerState); here it is only an actor."""

    actor_id: int
    description: ActorDescription
    parent_id: int


@dataclass
class SpawnedVehicle:
    """What the server remembers of a vehicle a client spawned."""

    description: ActorDescription
    control: VehicleControlMsg = field(default_factory=VehicleControlMsg)


class ServerState:
    """The served world and everything the server keeps about its episode; see the module docstring.

    Lives as long as the server; :meth:`new_episode` swaps in a new world and
    forgets the episode's actors (the settings, ids and registries of the
    server itself go on).
    """

    def __init__(self, world: EmbeddedWorld, streams: StreamServer, host: str) -> None:
        self.streams = streams
        self.host = host
        self.settings = EpisodeSettings()
        self.base_dt_s = world.dt_s
        """The server's own step (``--delta-seconds``): without ``fixed_delta_seconds`` in synchronous mode, and the
        longest vehicle-dynamics substep at any ``fixed_delta_seconds``."""
        self.episode_id = int(time.time_ns() & 0xFFFFFFFF) or 1
        self.state_flags = 0  # simulation state bits of the next episode state (map change)
        self.destroyed_boxes: dict[int, list] = {}  # the last box of destroyed actors (get_actor_bounding_box)
        self._next_actor_id = SENSOR_ID_BASE
        self._next_stream_id = EPISODE_STREAM_ID + 1
        self.new_episode(world)

    def new_episode(self, world: EmbeddedWorld) -> None:
        """Serve ``world`` and forget every actor of the episode (a new server, or a new map)."""
        self.world = world
        self.vehicles: dict[int, SpawnedVehicle] = {}
        self.sensors: dict[int, SensorActor] = {}
        self.controllers: dict[int, ControllerActor] = {}
        self.walker_descriptions: dict[int, ActorDescription] = {}
        self.held: dict[int, Pose] = {}  # vehicles with simulate_physics off, at the pose they are held
        self.lights_on: dict[int, int] = {}  # vehicle light state flags (carla.VehicleLightState), stored only
        self.light_frozen = np.zeros(world.signals.num_lights, dtype=bool)
        self.spectator = _default_spectator(world)
        self.navmesh: tuple[str, bytes] | None = None  # (file name, Detour navmesh set), built when first asked
        self.scene = None  # the sensors' raycast scene (needs Open3D), built when a raycast sensor is spawned
        self.awaited_streams: set[int] = set()  # sensor streams whose token was handed out, not yet connected
        self._layout: TownLayout | None = None

    def apply_step(self) -> None:
        """Step the world by the settings: ``fixed_delta_seconds``, else the server's own step.

        Vehicle dynamics are integrated in substeps no longer than the server's step when ``substepping`` is on
        (CARLA's ``max_substep_delta_time`` and ``max_substeps`` are accepted and reported, not used: the
        embedded integrator is stable at any step). Asynchronous mode without a fixed step varies it (the server).
        """
        delta = self.settings.fixed_delta_seconds
        self.world.set_step(self.base_dt_s if delta is None else delta)
        self.world.max_substep_s = self.base_dt_s if self.settings.substepping else None

    # ------------------------------------------------------------------ ids
    @property
    def next_actor_id(self) -> int:
        """The id the next sensor or controller gets (taken by :meth:`new_actor_id`)."""
        return self._next_actor_id

    def new_actor_id(self) -> int:
        """Take a fresh id for a sensor or controller."""
        self._next_actor_id += 1
        return self._next_actor_id - 1

    def new_stream_id(self) -> int:
        """A fresh sensor stream id."""
        self._next_stream_id += 1
        return self._next_stream_id - 1

    def token(self, stream_id: int) -> bytes:
        """The 24-byte token of a stream on this server."""
        return enc.make_token(stream_id, self.streams.port, self.host)

    # ------------------------------------------------------------------ the map
    def town_layout(self) -> TownLayout:
        """The map's static town (buildings, props), built on first use with the world's seed; no Open3D."""
        if self._layout is None:
            self._layout = TownLayout.build(self.world)  # the town's props: fixed per map
        return self._layout

    # ------------------------------------------------------------------ lookups
    def is_light(self, actor_id: int) -> bool:
        """Whether ``actor_id`` is a traffic light of the map."""
        return LIGHT_ID_BASE <= actor_id < LIGHT_ID_BASE + self.world.signals.num_lights

    def light_index(self, actor_id: int) -> int:
        """The signal-layout index of traffic light ``actor_id``; ``KeyError`` for other actors."""
        index = int(actor_id) - LIGHT_ID_BASE
        if not 0 <= index < self.world.signals.num_lights:
            raise KeyError(f"actor {actor_id} is not a traffic light")
        return index

    def exists(self, actor_id: int) -> bool:
        """Whether ``actor_id`` is a live actor of the episode (world actor, light, sensor, controller, spectator)."""
        return (actor_id == SPECTATOR_ID or actor_id in self.sensors or actor_id in self.controllers
                or actor_id in self.world.actors or self.is_light(actor_id))

    def vehicle_info(self, actor_id: int):
        """The world's record of vehicle ``actor_id``; ``KeyError`` if it is not a vehicle."""
        info = self.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.VEHICLE:
            raise KeyError(f"actor {actor_id} is not a vehicle")
        return info

    def walker_info(self, actor_id: int):
        """The world's record of walker ``actor_id``; ``KeyError`` if it is not a walker."""
        info = self.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.WALKER:
            raise KeyError(f"actor {actor_id} is not a walker")
        return info

    def vehicle_ids(self) -> list[int]:
        """Every vehicle of the world."""
        return [a for a, info in self.world.actors.items() if info.kind == ActorKind.VEHICLE]

    def actor_pose(self, actor_id: int) -> Pose:
        """Where an actor of the last snapshot is: its location and yaw."""
        snapshot = self.world.snapshot()
        row = snapshot.index_of(actor_id)
        x, y, z = (float(v) for v in snapshot.location_m[row])
        return Pose(x, y, z, float(snapshot.rotation_rad[row][1]))

    def actor_msg(self, actor_id: int) -> list:
        """The ``carla::rpc::Actor`` message of a live actor."""
        if actor_id in self.sensors:
            sensor = self.sensors[actor_id]
            return enc.actor_msg(actor_id, sensor.parent_id, sensor.description, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                                 b"", self.token(sensor.stream_id))
        if actor_id in self.controllers:
            controller = self.controllers[actor_id]
            return enc.actor_msg(actor_id, controller.parent_id, controller.description, (0.0, 0.0, 0.0),
                                 (0.0, 0.0, 0.0), b"")
        if self.is_light(actor_id):
            description = ActorDescription(0, enc.TRAFFIC_LIGHT, {}, ())
            # CARLA's traffic-light poles: CityObjectLabel.TrafficLight; a box around the pole.
            return enc.actor_msg(actor_id, 0, description, (0.0, 0.0, 2.5), (0.3, 0.3, 2.5),
                                 bytes([TRAFFIC_LIGHT_LABEL]))
        if actor_id == SPECTATOR_ID:
            return enc.actor_msg(actor_id, 0, ActorDescription(0, "spectator", {}, ()), (0.0, 0.0, 0.0),
                                 (0.0, 0.0, 0.0), b"")
        info = self.world.actors.get(actor_id)
        if info is None:
            raise KeyError(f"actor {actor_id} not found")
        vehicle = self.vehicles.get(actor_id)
        if vehicle is not None:
            description = vehicle.description
        elif actor_id in self.walker_descriptions:
            description = self.walker_descriptions[actor_id]
        else:  # spawned inside the embedded world (traffic, walkers)
            description = ActorDescription(0, info.type_id, {"role_name": info.role_name},
                                           (("role_name", int(enc.AttributeType.STRING), info.role_name),))
        half = tuple(float(v) for v in info.extent_m)
        centre_z = half[2] if info.kind == ActorKind.VEHICLE else 0.0
        return enc.actor_msg(actor_id, 0, description, (0.0, 0.0, centre_z), half, bytes([info.semantic_tag]))


def _default_spectator(world: EmbeddedWorld) -> Transform:
    """Where the spectator starts: 50 m above the first spawn point, looking down ahead."""
    points = world.spawn_points
    if not points:
        return Transform(0.0, 0.0, 50.0, -60.0, 0.0, 0.0)
    pose = points[0].pose
    return Transform(pose.x_m, pose.y_m, pose.z_m + 50.0, -60.0, math.degrees(pose.yaw_rad), 0.0)
