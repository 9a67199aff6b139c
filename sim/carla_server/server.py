"""CarlaServer: an :class:`EmbeddedWorld` behind CARLA 0.9.16's own RPC and stream ports.

The unmodified ``carla`` client connects to ``host:port`` (RPC) and
``host:port + 1`` (streams). What this server does:

- Time: in synchronous mode ``tick_cue`` advances the world one step; in
  asynchronous mode (CARLA's default) a background thread ticks it every
  ``dt`` of wall-clock time. After every tick the sensors' data are pushed
  first, then the episode state (the client's ``world.tick()`` returns when
  that state arrives). The world's step is fixed when it is built:
  ``fixed_delta_seconds`` must be None or equal to it.
- Transforms: a vehicle's CARLA transform is the embedded snapshot's
  location, the ground point under its box centre (as CARLA's vehicle
  origins); its bounding box is centred ``extent.z`` above that. Spawning
  ignores the requested z (vehicles stand on the ground).
- Sensors (every ``sensor.*`` of the embedded simulator: RGB, depth, semantic
  and instance cameras, LiDAR, semantic LiDAR, radar, GNSS, IMU) must be
  attached to a vehicle; they are measured only while someone listens to them
  (the IMU every tick, for its angular acceleration), with the embedded sensor
  classes raycasting one shared scene, and serialized in CARLA's formats
  (``encoding``).
- Traffic Manager: it runs inside the client library. The server keeps its
  registry (``is/add/get_traffic_manager_running``) and the TM drives its
  vehicles with ``apply_batch`` ApplyVehicleControl like any client; the
  episode state gives it each vehicle's lane speed limit and the light ahead.
- Traffic lights: light ``k`` of the embedded signal layout is actor
  ``LIGHT_ID_BASE + k`` (``traffic.traffic_light``); its OpenDRIVE id, timing,
  frozen flag and state travel in the episode state. ``set_state`` holds a
  state until ``freeze(False)``.
- Walkers: ``walker.pedestrian.*`` spawn on the nearest sidewalk and walk the
  embedded pedestrian network on their own until a client moves them
  (``WalkerControl``, or the walker AI's states). CARLA's walker AI runs in the
  client: it asks for the map's navigation file (``get_required_files("Nav")``,
  ``request_file``), a Detour navmesh this server builds from the walkable mesh
  of the map (``sim.embedded.traffic.walkable``, written by
  ``sim.carla_server.detour``), then sends each walker's position every tick
  (batch command ApplyWalkerState: the foot point on the mesh, a heading and a
  speed). ``get_random_location_from_navigation``, ``go_to_location``,
  ``set_max_speed`` and ``set_pedestrians_cross_factor`` work as in CARLA.
- ``sensor.other.collision`` streams the world's collision events of its
  parent; ``sensor.other.lane_invasion`` is computed by the client itself
  (its ``LaneInvasionSensor`` crosses the parent's box corners with the map's
  markings on every episode state; the server only keeps the actor). Those
  client-made events carry no episode: ``event.actor`` raises in 0.9.16.
- Spectator: actor ``SPECTATOR_ID`` whose transform is only stored. Vehicles
  can be moved (``set_transform``/``set_location``: x, y and yaw, on the
  ground), given a forward speed (``set_target_velocity``: the part along the
  heading) and held at rest (``set_simulate_physics(False)``).
  ``get_level_bbs``/``get_environment_objects`` know the buildings (of the
  sensors' static scene, built on first use) and the traffic-light poles (and,
  for level boxes, the vehicles and walkers), not smaller props.
- Map changes (``load_world``, ``generate_opendrive_world``) build a new
  embedded world: a new episode id, the map-change flag on its first episode
  state, frame numbers going on, every actor gone, settings reset unless
  ``reset_settings=False``. All clients share one world: a client that goes
  away leaves its actors and the synchronous mode behind (as CARLA).
- Anything else answers an RPC error naming the method.

A client-side pitfall (README): carla 0.9.16's ``apply_batch_sync(..., True)`` holds
the GIL while it waits for the tick, and stream threads freeing just-stopped sensors'
Python callbacks wait for the GIL, so stopping several sensors and destroying them in
one ticking batch can deadlock the client. The server answers both calls; the client
never reads the episode state. Pausing briefly after ``stop()`` avoids it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Self

import numpy as np

from sim.api import ActorKind, CollisionEvent, Pose, TrafficLightState, VehicleControl, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.detour import encode_navmesh, navmesh_file_name
from sim.carla_server.encoding import ActorDescription, EpisodeSettings, Transform, VehicleControlMsg
from sim.carla_server.rpc import RpcServer
from sim.carla_server.streams import StreamServer
from sim.maps.loader import MapSource, check_opendrive_text, resolve_map, shipped_town_names
from sim.embedded.sensors.base import Sensor, SensorMeasurement
from sim.transforms import sensor_world_pose
from sim.embedded.sensors.imu import ImuSensor
from sim.embedded.sensors.raycast import RaycastSensor
from sim.embedded.sensors.rig import RaycastBatcher, hidden_parents
from sim.embedded.traffic.walkable import build_walkable_mesh
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld

log = logging.getLogger(__name__)

EPISODE_STREAM_ID = 1
SENSOR_ID_BASE = 1 << 24
"""Sensor and controller actor ids start here, clear of the ids the embedded world gives its actors."""
LIGHT_ID_BASE = 1 << 23
"""Traffic light ``k`` of the embedded signal layout is actor ``LIGHT_ID_BASE + k``."""
DEFAULT_SPEED_LIMIT_KMH = 30.0
SPECTATOR_ID = SENSOR_ID_BASE - 1
"""The spectator actor (it exists in every episode; it cannot be destroyed)."""
TRAFFIC_LIGHT_LABEL = 7
"""``CityObjectLabel.TrafficLight`` (0.9.16)."""
SUBSCRIBE_WAIT_S = 2.0
"""How long a tick waits for a sensor stream whose token a client just asked for (listen) to connect."""
BUILDING_LABEL = 3
"""``CityObjectLabel.Buildings`` (0.9.16)."""
MAP_PREFIX = "/Game/Carla/Maps/"
"""How CARLA names its maps in ``get_available_maps``."""
OPENDRIVE_MAP_NAME = "OpenDriveMap"
LIGHT_TRIGGER_M = 15.0
"""A vehicle is "at" the light at the end of its lane within this distance of the lane's end (CARLA's trigger box)."""


class UnsupportedError(RuntimeError):
    """A request this server does not implement (the message names it)."""


@dataclass
class _Sensor:
    """A sensor actor: its description, parent, mount, stream and embedded implementation."""

    actor_id: int
    description: ActorDescription
    parent_id: int
    mount: Transform
    stream_id: int
    impl: Sensor | None  # the embedded sensor; None for event sensors


@dataclass(frozen=True)
class _Controller:
    """A walker AI controller: the embedded pedestrians walk on their own, so it only exists as an actor."""

    actor_id: int
    description: ActorDescription
    parent_id: int


@dataclass
class _Vehicle:
    """What the server remembers of a vehicle it spawned."""

    description: ActorDescription
    control: VehicleControlMsg = field(default_factory=VehicleControlMsg)


def _deg(values: np.ndarray) -> np.ndarray:
    return np.degrees(values)


class CarlaServer:
    """Serve ``world`` (or a new ``EmbeddedWorld`` on ``map_name``) to CARLA clients; see the module docstring.

    ``port`` 0 picks a free RPC port whose next port is free too; the chosen
    ports are :attr:`port` and :attr:`stream_port`. Use as a context manager
    or call :meth:`start` and :meth:`stop`. ``measurement_hook(sensor_actor_id,
    measurement)`` sees every embedded measurement before it is serialized
    (tests compare it with what the client decodes).
    """

    def __init__(self, map_name: str = "Town01", host: str = "127.0.0.1", port: int = 2000, *,
                 delta_seconds: float = 0.05, seed: int = 0, world: EmbeddedWorld | None = None,
                 measurement_hook: Callable[[int, SensorMeasurement], None] | None = None) -> None:
        self.measurement_hook = measurement_hook
        self.world = world if world is not None else EmbeddedWorld(map=map_name, seed=seed, dt_s=delta_seconds)
        self.host = host
        self._lock = threading.RLock()
        self.settings = EpisodeSettings()
        self.episode_id = int(time.time_ns() & 0xFFFFFFFF) or 1
        self._destroyed_boxes: dict[int, list] = {}  # the last box of destroyed actors (see _get_actor_bounding_box)
        self._next_sensor_id = SENSOR_ID_BASE
        self._next_stream_id = EPISODE_STREAM_ID + 1
        self._batcher = RaycastBatcher()  # one batched raycast for every listened raycast sensor, per tick
        self._new_episode_state()
        self._state_flags = 0  # simulation state bits of the next episode state (map change)
        self._last_state_payload: bytes | None = None  # greets new episode-state subscribers
        self._opendrive_text: str | None = None  # the map of generate_opendrive_world
        self.weather = enc.CLEAR_NOON_WEATHER
        self._traffic_managers: dict[int, tuple[str, int]] = {}  # TM port -> (host, port) of its RPC server
        self._definitions = {d.id: d for d in enc.all_definitions()}
        self.rpc, self.streams = self._bind(host, port)
        self.port, self.stream_port = self.rpc.port, self.streams.port
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._async_loop, name="carla-async-ticker", daemon=True)
        self._handlers: dict[str, Callable[..., object]] = {
            "version": lambda: enc.ok(enc.CARLA_VERSION),
            "get_episode_info": self._get_episode_info,
            "get_sensor_token": self._get_sensor_token,
            "get_episode_settings": lambda: enc.ok(self.settings.to_msg()),
            "set_episode_settings": self._set_episode_settings,
            "get_required_files": self._get_required_files,
            "request_file": self._request_file,
            "query_lights_state": lambda *_: enc.ok([]),
            "tick_cue": self._tick_cue,
            "get_actor_definitions": lambda: enc.ok([d.to_msg() for d in self._definitions.values()]),
            "get_map_info": self._get_map_info,
            "get_map_data": lambda: enc.ok(self.world.source.xodr_text),
            "spawn_actor": self._spawn_actor,
            "spawn_actor_with_parent": self._spawn_actor_with_parent,
            "destroy_actor": self._destroy_actor,
            "get_actors_by_id": self._get_actors_by_id,
            "get_actor_bounding_box": self._get_actor_bounding_box,
            "apply_control_to_vehicle": self._apply_control,
            "apply_batch": self._apply_batch,
            "is_traffic_manager_running": lambda port: enc.ok(int(port) in self._traffic_managers),
            "add_traffic_manager_running": self._add_traffic_manager,
            "get_traffic_manager_running": self._get_traffic_manager,
            "get_vehicle_light_states": lambda: enc.ok([[a, self._lights_on.get(a, 0)] for a in self._vehicle_ids()]),
            "get_vehicle_light_state": lambda actor_id: enc.ok(self._vehicle_light_state(int(actor_id))),
            "set_vehicle_light_state": self._set_vehicle_light_state,
            "get_weather_parameters": lambda: enc.ok(list(self.weather)),
            "set_weather_parameters": self._set_weather,
            "reset_all_traffic_lights": self._reset_all_traffic_lights,
            "set_traffic_light_state": self._set_traffic_light_state,
            "freeze_traffic_light": self._freeze_traffic_light,
            "freeze_all_traffic_lights": self._freeze_all_traffic_lights,
            "apply_control_to_walker": self._apply_walker_control,
            "set_actor_simulate_physics": self._set_simulate_physics,
            "set_actor_collisions": self._set_actor_collisions,
            "set_actor_dead": self._set_actor_dead,
            "get_navigation_mesh": self._get_navigation_mesh,
            "destroy_traffic_manager": lambda port: enc.ok(self._traffic_managers.pop(int(port), None) is not None),
            "get_spectator": lambda: enc.ok(self._actor_msg(SPECTATOR_ID)),
            "set_actor_transform": self._set_transform,
            "set_actor_location": self._set_location,
            "set_actor_target_velocity": self._set_target_velocity,
            "get_physics_control": self._get_physics_control,
            "get_all_level_BBs": lambda tag=enc.ANY_LABEL: enc.ok([b for b, _ in self._level_boxes(int(tag))]),
            "get_environment_objects": self._get_environment_objects,
            "get_available_maps": lambda: enc.ok([MAP_PREFIX + name for name in shipped_town_names()]),
            "load_new_episode": self._load_new_episode,
            "copy_opendrive_to_file": self._copy_opendrive,  # 0.9.16's generate_opendrive_world, then load_new_episode
        }

    def _new_episode_state(self) -> None:
        """Forget every actor of the episode (a new server, or a new map): the world's actors are gone too."""
        self._vehicles: dict[int, _Vehicle] = {}
        self._sensors: dict[int, _Sensor] = {}
        self._controllers: dict[int, _Controller] = {}
        self._walker_descriptions: dict[int, ActorDescription] = {}
        self._held: dict[int, Pose] = {}  # vehicles with simulate_physics off, at the pose they are held
        self._lights_on: dict[int, int] = {}  # vehicle light state flags (carla.VehicleLightState), stored only
        self._light_frozen = np.zeros(self.world.signals.num_lights, dtype=bool)
        self._scene = None
        self._spectator = _default_spectator(self.world)
        self._navmesh: tuple[str, bytes] | None = None  # (file name, Detour navmesh set), built when first asked
        self._awaited_streams: set[int] = set()  # sensor streams whose token was handed out, not yet connected

    def _bind(self, host: str, port: int) -> tuple[RpcServer, StreamServer]:
        for _ in range(20):
            rpc = RpcServer(host, port, self.handle)
            try:
                return rpc, StreamServer(host, rpc.port + 1, greeting=self._greeting)
            except OSError:
                rpc.close()
                if port != 0:
                    raise
        raise OSError(f"no free pair of ports (rpc, rpc + 1) on {host}")

    # ------------------------------------------------------------------ life cycle
    def start(self) -> CarlaServer:
        """Start serving (returns self)."""
        self.rpc.start()
        self.streams.start()
        self._ticker.start()
        log.info("serving %s on %s:%d (streams on %d)", self.world.source.name, self.host, self.port,
                 self.stream_port)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()
        self.rpc.close()
        self.streams.close()
        self._batcher.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _async_loop(self) -> None:
        """In asynchronous mode the world runs on its own, one step per ``dt`` of wall-clock time."""
        while not self._stop.wait(self.world.dt_s):
            with self._lock:
                if not self.settings.synchronous_mode:
                    self._step()

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, params: list) -> object:
        """Answer one RPC call (``params`` start with CARLA's Metadata argument)."""
        handler = self._handlers.get(method)
        if handler is None:
            return enc.error(f"{method}: not supported by the avsim CARLA server (embedded simulator)")
        args = params[1:] if params and isinstance(params[0], list) else params
        with self._lock:
            try:
                return handler(*args)
            except TypeError as exc:
                return enc.error(f"{method}: bad arguments {args!r:.200}: {exc}")
            except (ValueError, KeyError, SpawnError, UnsupportedError) as exc:
                return enc.error(f"{method}: {exc}")

    # ------------------------------------------------------------------ episode and settings
    def token(self, stream_id: int) -> bytes:
        """The 24-byte token of a stream on this server."""
        return enc.make_token(stream_id, self.stream_port, self.host)

    def _get_episode_info(self) -> list:
        return enc.ok([self.episode_id, [self.token(EPISODE_STREAM_ID)]])

    def _get_sensor_token(self, stream_id: int) -> list:
        """The token of a sensor's stream; the client asks for it in ``listen()`` and then connects to it."""
        self._awaited_streams.add(int(stream_id))
        return enc.ok([self.token(int(stream_id))])

    def _set_episode_settings(self, message: list) -> list:
        settings = EpisodeSettings.from_msg(message)
        delta = settings.fixed_delta_seconds
        if delta is not None and abs(delta - self.world.dt_s) > 1e-9:
            raise ValueError(f"fixed_delta_seconds={delta:g} is not supported: this server steps "
                             f"{self.world.dt_s:g} s (start it with that step, e.g. avsim serve --delta-seconds)")
        self.settings = settings
        self._publish_state(self.world.snapshot())
        return enc.ok(self.world.frame)

    def _tick_cue(self) -> list:
        if self.settings.synchronous_mode:
            self._step()
        return enc.ok(self.world.frame)

    def _step(self) -> WorldSnapshot:
        """Advance one step; push sensor data, then the episode state."""
        for actor_id, pose in self._held.items():  # no physics: back where it is held, at rest
            self.world.teleport(actor_id, pose, 0.0)
        snapshot = self.world.tick()
        self._publish_sensors(snapshot)
        self._publish_state(snapshot)
        return snapshot

    def _get_map_info(self) -> list:
        points = [Transform(p.pose.x_m, p.pose.y_m, p.pose.z_m, 0.0, math.degrees(p.pose.yaw_rad), 0.0).to_msg()
                  for p in self.world.spawn_points]
        return enc.ok([self.world.source.name, points])

    # ------------------------------------------------------------------ traffic manager
    def _add_traffic_manager(self, endpoint: list) -> list:
        """A client started a Traffic Manager (it runs inside that client) and serves it at ``endpoint``."""
        host, port = str(endpoint[0]), int(endpoint[1])
        if port in self._traffic_managers:
            return enc.ok(False)
        self._traffic_managers[port] = (host, port)
        return enc.ok(True)

    def _get_traffic_manager(self, port: int) -> list:
        if int(port) not in self._traffic_managers:
            raise KeyError(f"no Traffic Manager runs on port {port}")
        return enc.ok(list(self._traffic_managers[int(port)]))

    def _set_weather(self, message: list) -> list:
        """Weather is stored and reported back; it does not change the embedded rendering."""
        if not isinstance(message, (list, tuple)) or len(message) != len(enc.CLEAR_NOON_WEATHER):
            raise ValueError(f"WeatherParameters must have {len(enc.CLEAR_NOON_WEATHER)} fields (CARLA 0.9.16), "
                             f"got {message!r:.200}")
        self.weather = tuple(float(v) for v in message)
        return enc.ok_void()

    # ------------------------------------------------------------------ traffic lights
    def _reset_all_traffic_lights(self) -> list:
        for light in range(self.world.signals.num_lights):
            self.world.lights.force_state(light, None)
        self._light_frozen[:] = False
        return enc.ok_void()

    def _light_index(self, actor_id: int) -> int:
        index = int(actor_id) - LIGHT_ID_BASE
        if not 0 <= index < self.world.signals.num_lights:
            raise KeyError(f"actor {actor_id} is not a traffic light")
        return index

    def _set_traffic_light_state(self, actor_id: int, state: int) -> list:
        """``TrafficLight.set_state``: the light holds ``state`` until ``freeze(False)`` or a reset.

        (CARLA's cycle would go on from the new state unless frozen; the embedded lights can only hold it.)
        """
        state = TrafficLightState(int(state))
        self.world.lights.force_state(self._light_index(actor_id), state)
        self._refresh_lights()
        return enc.ok_void()

    def _freeze_traffic_light(self, actor_id: int, frozen: bool) -> list:
        """``TrafficLight.freeze``: True holds the current state, False hands the light back to its cycle."""
        index = self._light_index(actor_id)
        self._light_frozen[index] = bool(frozen)
        self.world.lights.force_state(index, int(self.world.light_state[index]) if frozen else None)
        self._refresh_lights()
        return enc.ok_void()

    def _freeze_all_traffic_lights(self, frozen: bool) -> list:
        for index in range(self.world.signals.num_lights):
            self._light_frozen[index] = bool(frozen)
            self.world.lights.force_state(index, int(self.world.light_state[index]) if frozen else None)
        self._refresh_lights()
        return enc.ok_void()

    def _refresh_lights(self) -> None:
        """Recompute the light states at the current time (a forced state shows before the next tick)."""
        self.world.light_state = self.world.lights.update(self.world.time_s)

    # ------------------------------------------------------------------ walkers
    def _apply_walker_control(self, actor_id: int, message: list) -> list:
        self._walker_control(int(actor_id), enc.WalkerControlMsg.from_msg(message))
        return enc.ok_void()

    def _walker_control(self, actor_id: int, control: enc.WalkerControlMsg) -> None:
        self.world.apply_walker_control(actor_id, control.direction[:2], control.speed)

    def navigation_file(self) -> tuple[str, bytes]:
        """The map's navigation mesh as CARLA's client loads it: (cache file name, bytes); built once per map."""
        if self._navmesh is None:
            world = self.world
            data = encode_navmesh(build_walkable_mesh(world.geometry, world.walker_network, world.lanes))
            self._navmesh = (navmesh_file_name(world.source.name, data), data)
            log.info("navigation mesh %s: %d bytes", self._navmesh[0], len(data))
        return self._navmesh

    def _get_navigation_mesh(self) -> list:
        return enc.ok(self.navigation_file()[1])

    def _get_required_files(self, folder: str = "") -> list:
        """Files the client should cache: the navigation mesh for "Nav" (the map itself travels by RPC)."""
        return enc.ok([self.navigation_file()[0]] if str(folder).strip("/") == "Nav" else [])

    def _request_file(self, name: str) -> list:
        nav_name, data = self.navigation_file()
        if str(name) != nav_name:
            raise ValueError(f"no file {name!r} on this server (it offers {nav_name!r})")
        return enc.ok(data)

    def _set_actor_collisions(self, actor_id: int, enabled: bool) -> list:
        """Accepted for existing actors (the walker AI turns its walker's collisions off); the world ignores it."""
        if not self._exists(int(actor_id)):
            raise KeyError(f"actor {actor_id} not found")
        return enc.ok_void()

    def _set_actor_dead(self, actor_id: int) -> list:
        """A walker the client's crowd saw run over: it stops where it is (CARLA lets it fall as a ragdoll)."""
        actor_id = int(actor_id)
        self._walker_info(actor_id)
        self.world.apply_walker_control(actor_id, (1.0, 0.0), 0.0)
        return enc.ok_void()

    def _walker_state(self, actor_id: int, transform: Transform, speed: float) -> None:
        """CARLA's ApplyWalkerState from the client's walker AI: the foot point on the navigation mesh, a heading
        and a speed; the walker's box centre goes half its height above that point."""
        info = self._walker_info(actor_id)
        pose = Pose(transform.x, transform.y, transform.z + info.extent_m[2], math.radians(transform.yaw))
        self.world.teleport(actor_id, pose, max(float(speed), 0.0))

    # ------------------------------------------------------------------ actors
    def _vehicle_info(self, actor_id: int):
        info = self.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.VEHICLE:
            raise KeyError(f"actor {actor_id} is not a vehicle")
        return info

    def _walker_info(self, actor_id: int):
        info = self.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.WALKER:
            raise KeyError(f"actor {actor_id} is not a walker")
        return info

    def _vehicle_light_state(self, actor_id: int) -> int:
        self._vehicle_info(actor_id)
        return self._lights_on.get(actor_id, 0)

    def _set_vehicle_light_state(self, actor_id: int, flags: int) -> list:
        """Vehicle lights (``carla.VehicleLightState`` flags) are stored and reported; nothing is lit in images."""
        self._vehicle_info(int(actor_id))
        self._lights_on[int(actor_id)] = int(flags)
        return enc.ok_void()

    def _vehicle_ids(self) -> list[int]:
        return [a for a, info in self.world.actors.items() if info.kind == ActorKind.VEHICLE]

    def _spawn_actor(self, description: list, transform: list) -> list:
        return enc.ok(self._spawn(ActorDescription.from_msg(description), Transform.from_msg(transform), 0))

    def _spawn_actor_with_parent(self, description: list, transform: list, parent: int, attachment: int = 0,
                                 socket_name: str = "") -> list:
        if int(attachment) != 0:
            raise UnsupportedError(f"attachment type {attachment} (only Rigid, 0, is supported)")
        return enc.ok(self._spawn(ActorDescription.from_msg(description), Transform.from_msg(transform),
                                  int(parent)))

    def _spawn(self, description: ActorDescription, transform: Transform, parent_id: int) -> list:
        """Spawn a vehicle or an attached sensor; returns its Actor message."""
        if description.id not in self._definitions:
            raise ValueError(f"unknown blueprint {description.id!r}; this server offers: "
                             f"{', '.join(sorted(self._definitions))}")
        if description.id in enc.WALKER_BLUEPRINTS:
            if parent_id:
                raise UnsupportedError("walkers cannot be attached to a parent")
            pose = Pose(transform.x, transform.y, transform.z, math.radians(transform.yaw))
            actor_id = self.world.spawn_walker_at(pose)
            self._walker_descriptions[actor_id] = description
            return self._actor_msg(actor_id)
        if description.id == enc.WALKER_CONTROLLER:
            parent = self.world.actors.get(parent_id)
            if parent is None or parent.kind != ActorKind.WALKER:
                raise UnsupportedError(f"{enc.WALKER_CONTROLLER} must be attached to a walker, got parent "
                                       f"{parent_id or 'none'}")
            actor_id = self._next_sensor_id
            self._next_sensor_id += 1
            self._controllers[actor_id] = _Controller(actor_id, description, parent_id)
            return self._actor_msg(actor_id)
        if description.id.startswith("vehicle."):
            if parent_id:
                raise UnsupportedError("vehicles cannot be attached to a parent")
            pose = Pose(transform.x, transform.y, transform.z, math.radians(transform.yaw))
            try:
                actor_id = self.world.spawn_vehicle(description.id, pose,
                                                    role_name=description.attributes.get("role_name", ""))
            except SpawnError as exc:
                raise SpawnError(f"Spawn failed because of collision at spawn position ({exc})") from None
            self._vehicles[actor_id] = _Vehicle(description)
            return self._actor_msg(actor_id)
        return self._actor_msg(self._spawn_sensor(description, transform, parent_id))

    def _spawn_sensor(self, description: ActorDescription, mount: Transform, parent_id: int) -> int:
        from sim.sensors.blueprints import get_blueprint
        from sim.embedded.sensors.rig import build_sensor
        from sim.sensors.suite import SensorSpec

        parent = self.world.actors.get(parent_id)
        if parent is None or parent.kind != ActorKind.VEHICLE:
            raise UnsupportedError(f"sensor {description.id} must be attached to a vehicle (attach_to=vehicle); "
                                   f"got parent {parent_id or 'none'}")
        actor_id = self._next_sensor_id
        if description.id in enc.EVENT_SENSORS:
            impl = None
        else:
            blueprint = get_blueprint(description.id)
            values = {k: v for k, v in description.attributes.items() if blueprint.has_attribute(k)}
            attributes = blueprint.resolve(values)
            spec = SensorSpec(str(actor_id), description.id, str(parent_id), mount.to_pose(), attributes)
            impl = build_sensor(spec, parent_id)
        if isinstance(impl, RaycastSensor):
            self._map_scene()
        self._next_sensor_id += 1
        self._sensors[actor_id] = _Sensor(actor_id, description, parent_id, mount, self._next_stream_id, impl)
        self._next_stream_id += 1
        return actor_id

    def _map_scene(self):
        """The raycast scene of the map (buildings, props), built when first needed (it needs Open3D)."""
        if self._scene is None:
            from sim.embedded.sensors.scene import Scene, StaticScene

            self._scene = Scene(StaticScene.build(self.world, seed=self.world.seed))
        return self._scene

    def _building_boxes(self) -> list[tuple[list, Transform]]:
        """The map's buildings (the sensors' static scene) as (BoundingBox message, transform) pairs."""
        out = []
        for x, y, z, hx, hy, hz, yaw in self._map_scene().static.building_boxes.tolist():
            transform = Transform(x, y, z - hz, 0.0, math.degrees(yaw), 0.0)
            out.append((enc.bounding_box_msg((x, y, z), (hx, hy, hz), rotation=(0.0, math.degrees(yaw), 0.0)),
                        transform))
        return out

    def _destroy(self, actor_id: int) -> None:
        """Destroy an actor and the sensors attached to it."""
        actor_id = int(actor_id)
        if actor_id in self._sensors:
            sensor = self._sensors.pop(actor_id)
            self.streams.drop_stream(sensor.stream_id)
            return
        if self._controllers.pop(actor_id, None) is not None:
            return
        if LIGHT_ID_BASE <= actor_id < LIGHT_ID_BASE + self.world.signals.num_lights:
            raise UnsupportedError(f"actor {actor_id} is a traffic light of the map; it cannot be destroyed")
        if actor_id not in self.world.actors:
            raise KeyError(f"actor {actor_id} not found")
        for child in [s.actor_id for s in self._sensors.values() if s.parent_id == actor_id]:
            self._destroy(child)
        for child in [c.actor_id for c in self._controllers.values() if c.parent_id == actor_id]:
            self._destroy(child)
        if len(self._destroyed_boxes) > 10_000:
            self._destroyed_boxes.clear()
        self._destroyed_boxes[actor_id] = self._actor_msg(actor_id)[3]
        self.world.destroy([actor_id])
        self._vehicles.pop(actor_id, None)
        self._held.pop(actor_id, None)
        self._lights_on.pop(actor_id, None)
        self._walker_descriptions.pop(actor_id, None)

    def _set_simulate_physics(self, actor_id: int, enabled: bool) -> list:
        """Off, a vehicle is held where it is (or where ``set_transform`` puts it), at rest; on, it drives again.

        Other actors accept and ignore it. (The Traffic Manager calls it from its own thread for vehicles it
        unregisters, also just destroyed ones: those answer success.)
        """
        actor_id = int(actor_id)
        if not self._exists(actor_id):
            if actor_id not in self._destroyed_boxes:
                raise KeyError(f"actor {actor_id} not found")
            return enc.ok_void()
        info = self.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.VEHICLE:
            return enc.ok_void()
        if enabled:
            if self._held.pop(actor_id, None) is not None:
                self._control(actor_id, self._vehicles[actor_id].control if actor_id in self._vehicles
                              else VehicleControlMsg())
        elif actor_id not in self._held:
            self._held[actor_id] = self._actor_pose(actor_id)
            self.world.apply_control(actor_id, VehicleControl(brake=1.0))
        return enc.ok_void()

    # ------------------------------------------------------------------ transforms, velocities, physics
    def _actor_pose(self, actor_id: int) -> Pose:
        """Where an actor of the last snapshot is: its location and yaw."""
        snapshot = self.world.snapshot()
        row = snapshot.index_of(actor_id)
        x, y, z = (float(v) for v in snapshot.location_m[row])
        return Pose(x, y, z, float(snapshot.rotation_rad[row][1]))

    def _set_transform(self, actor_id: int, message: list) -> list:
        """``set_transform``: the spectator anywhere; a vehicle to ``(x, y, yaw)`` on the ground, keeping its speed."""
        self._move(int(actor_id), Transform.from_msg(message))
        return enc.ok_void()

    def _set_location(self, actor_id: int, location: list) -> list:
        """``set_location``: as ``set_transform`` with the actor's current rotation."""
        actor_id = int(actor_id)
        x, y, z = (float(v) for v in location)
        if actor_id == SPECTATOR_ID:
            current = self._spectator
            self._move(actor_id, Transform(x, y, z, current.pitch, current.yaw, current.roll))
        else:
            info = self.world.actors.get(actor_id)
            if info is None or info.kind not in (ActorKind.VEHICLE, ActorKind.WALKER):
                raise KeyError(f"actor {actor_id} is not a vehicle or a walker")
            yaw = math.degrees(self._actor_pose(actor_id).yaw_rad)
            self._move(actor_id, Transform(x, y, z, 0.0, yaw, 0.0))
        return enc.ok_void()

    def _move(self, actor_id: int, transform: Transform) -> None:
        if actor_id == SPECTATOR_ID:
            self._spectator = transform
            return
        info = self.world.actors.get(actor_id)
        if info is not None and info.kind == ActorKind.WALKER:  # its location is its box centre, as CARLA's
            self.world.teleport(actor_id, Pose(transform.x, transform.y, transform.z, math.radians(transform.yaw)))
            return
        self._vehicle_info(actor_id)  # lights and sensors cannot be moved here
        pose = Pose(transform.x, transform.y, 0.0, math.radians(transform.yaw))
        self.world.teleport(actor_id, pose)
        if actor_id in self._held:
            self._held[actor_id] = pose

    def _set_target_velocity(self, actor_id: int, velocity: list) -> list:
        """``set_target_velocity``: the vehicle's forward speed becomes the velocity along its heading.

        (The embedded bicycle model has no sideways slip to set: the lateral part is dropped.)
        """
        actor_id = int(actor_id)
        self._vehicle_info(actor_id)
        vx, vy, _ = (float(v) for v in velocity)
        pose = self._actor_pose(actor_id)
        if actor_id not in self._held:
            self.world.teleport(actor_id, pose, vx * math.cos(pose.yaw_rad) + vy * math.sin(pose.yaw_rad))
        return enc.ok_void()

    def _get_physics_control(self, actor_id: int) -> list:
        info = self._vehicle_info(int(actor_id))
        return enc.ok(enc.vehicle_physics_control_msg(info.vehicle_type))

    def _level_boxes(self, label: int) -> list[tuple[list, Transform]]:
        """Boxes of the level: buildings (label 3), traffic-light poles (label 7), and the vehicles and walkers.

        ``label`` 255 (Any) gives all; props (poles, benches, trees) are not included.
        """
        out = []
        if label in (enc.ANY_LABEL, BUILDING_LABEL):
            out += self._building_boxes()
        if label in (enc.ANY_LABEL, TRAFFIC_LIGHT_LABEL):
            for xyz in self.world.signals.location_xyz.tolist():
                centre = (xyz[0], xyz[1], xyz[2] + 2.5)
                out.append((enc.bounding_box_msg(centre, (0.3, 0.3, 2.5)), Transform(*xyz)))
        snapshot = self.world.snapshot()
        for row, actor_id in enumerate(snapshot.actor_id.tolist()):
            info = self.world.actors[int(actor_id)]
            if label not in (enc.ANY_LABEL, info.semantic_tag):
                continue
            x, y, z = (float(v) for v in snapshot.location_m[row])
            pitch, yaw, roll = (math.degrees(float(v)) for v in snapshot.rotation_rad[row])
            half = tuple(float(v) for v in info.extent_m)
            centre_z = z + (half[2] if info.kind == ActorKind.VEHICLE else 0.0)
            box = [[x, y, centre_z], list(half), [pitch, yaw, roll], int(actor_id)]
            out.append((box, Transform(x, y, z, pitch, yaw, roll)))
        return out

    def _get_environment_objects(self, label: int = enc.ANY_LABEL) -> list:
        """The map's buildings and traffic-light poles as environment objects (props are not modelled as objects)."""
        objects = []
        if int(label) in (enc.ANY_LABEL, BUILDING_LABEL):
            for k, (box, transform) in enumerate(self._building_boxes()):
                objects.append(enc.environment_object_msg(transform, tuple(box[0]), tuple(box[1]), 100_000 + k,
                                                          f"Building_{k}", BUILDING_LABEL))
        if int(label) in (enc.ANY_LABEL, TRAFFIC_LIGHT_LABEL):
            for k, xyz in enumerate(self.world.signals.location_xyz.tolist()):
                objects.append(enc.environment_object_msg(Transform(*xyz), (xyz[0], xyz[1], xyz[2] + 2.5),
                                                          (0.3, 0.3, 2.5), k + 1, f"TrafficLight_{k}",
                                                          TRAFFIC_LIGHT_LABEL))
        return enc.ok(objects)

    # ------------------------------------------------------------------ map changes
    def _load_new_episode(self, map_name: str, reset_settings: bool = True, _map_layers: int = 0) -> list:
        """``client.load_world``: a new embedded world on a shipped town (``Town02`` or ``/Game/Carla/Maps/Town02``).

        ``OpenDriveMap`` is the OpenDRIVE text of the last ``copy_opendrive_to_file`` (``generate_opendrive_world``
        sends the text, then loads that map).
        """
        name = str(map_name).rsplit("/", 1)[-1]
        if name == OPENDRIVE_MAP_NAME and self._opendrive_text is not None:
            source = MapSource(OPENDRIVE_MAP_NAME, self._opendrive_text, None, trusted=False)
        elif name in shipped_town_names():
            source = resolve_map(name)
        else:
            raise ValueError(f"map {map_name!r} not found; available: {', '.join(shipped_town_names())}")
        self._change_map(source, bool(reset_settings))
        return enc.ok_void()

    def _copy_opendrive(self, xodr_text: str, _parameters: list | None = None) -> list:
        """First half of ``client.generate_opendrive_world``: keep the (checked) OpenDRIVE text as ``OpenDriveMap``."""
        if not isinstance(xodr_text, str):
            raise TypeError(f"OpenDRIVE text must be a string, got {type(xodr_text).__name__}")
        check_opendrive_text(xodr_text, "from generate_opendrive_world")
        self._opendrive_text = xodr_text
        return enc.ok_void()

    def _change_map(self, source: MapSource, reset_settings: bool) -> None:
        """A new episode on ``source``: every actor goes, frames go on, settings reset if asked (CARLA's default).

        The first episode state of the new episode carries the map-change flag, so clients fetch the new map.
        """
        old = self.world
        world = EmbeddedWorld(source=source, seed=old.seed, dt_s=old.dt_s)
        for sensor in self._sensors.values():
            self.streams.drop_stream(sensor.stream_id)
        world.frame = old.frame  # frame numbers keep increasing across episodes, as CARLA's
        self.world = world
        self._new_episode_state()
        self.episode_id = (self.episode_id % 0xFFFFFFFF) + 1
        if reset_settings:
            self.settings = EpisodeSettings()
        self._state_flags = enc.MAP_CHANGE_FLAG
        log.info("new episode %d on %s", self.episode_id, source.name)
        self._publish_state(replace(world.snapshot(), frame=world.frame, timestamp_s=world.frame * world.dt_s))

    def _get_actor_bounding_box(self, actor_id: int) -> list:
        """An actor's box; a destroyed one keeps answering its last box.

        The client's Traffic Manager asks for the boxes of the vehicles in the last episode state it saw, from its
        own thread; an error for one destroyed since would abort the client.
        """
        actor_id = int(actor_id)
        if actor_id in self._destroyed_boxes and not self._exists(actor_id):
            return enc.ok(self._destroyed_boxes[actor_id])
        return enc.ok(self._actor_msg(actor_id)[3])

    def _destroy_actor(self, actor_id: int) -> list:
        self._destroy(actor_id)
        return enc.ok(True)

    def _actor_msg(self, actor_id: int) -> list:
        """The ``carla::rpc::Actor`` message of a live actor."""
        if actor_id in self._sensors:
            sensor = self._sensors[actor_id]
            return enc.actor_msg(actor_id, sensor.parent_id, sensor.description, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                                 b"", self.token(sensor.stream_id))
        if actor_id in self._controllers:
            controller = self._controllers[actor_id]
            return enc.actor_msg(actor_id, controller.parent_id, controller.description, (0.0, 0.0, 0.0),
                                 (0.0, 0.0, 0.0), b"")
        if LIGHT_ID_BASE <= actor_id < LIGHT_ID_BASE + self.world.signals.num_lights:
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
        vehicle = self._vehicles.get(actor_id)
        if vehicle is not None:
            description = vehicle.description
        elif actor_id in self._walker_descriptions:
            description = self._walker_descriptions[actor_id]
        else:  # spawned inside the embedded world (traffic, walkers)
            description = ActorDescription(0, info.type_id, {"role_name": info.role_name},
                                           (("role_name", int(enc.AttributeType.STRING), info.role_name),))
        half = tuple(float(v) for v in info.extent_m)
        centre_z = half[2] if info.kind == ActorKind.VEHICLE else 0.0
        return enc.actor_msg(actor_id, 0, description, (0.0, 0.0, centre_z), half, bytes([info.semantic_tag]))

    def _exists(self, actor_id: int) -> bool:
        return (actor_id == SPECTATOR_ID or actor_id in self._sensors or actor_id in self._controllers or actor_id in self.world.actors
                or LIGHT_ID_BASE <= actor_id < LIGHT_ID_BASE + self.world.signals.num_lights)

    def _get_actors_by_id(self, ids: list[int]) -> list:
        return enc.ok([self._actor_msg(int(a)) for a in ids if self._exists(int(a))])

    def _apply_control(self, actor_id: int, message: list) -> list:
        self._control(int(actor_id), VehicleControlMsg.from_msg(message))
        return enc.ok_void()

    def _control(self, actor_id: int, control: VehicleControlMsg) -> None:
        if actor_id not in self._held:  # a held vehicle keeps braking; its control is only remembered
            self.world.apply_control(actor_id, VehicleControl(control.throttle, control.steer, control.brake,
                                                              control.hand_brake, control.reverse))
        if actor_id in self._vehicles:
            self._vehicles[actor_id].control = control

    # ------------------------------------------------------------------ batches
    def _apply_batch(self, commands: list, do_tick_cue: bool = False) -> list:
        """Run commands in order; answers a plain list of CommandResponse (not wrapped)."""
        responses = [self._command(command) for command in commands]
        if do_tick_cue and self.settings.synchronous_mode:
            self._step()
        return responses

    def _command(self, command: list, future_actor: int = 0) -> list:
        """One ``Command`` (``[[index, value]]``); returns ``[[1, actor_id]]`` or an error response.

        Supported: SpawnActor (with ``then``), DestroyActor, ApplyVehicleControl, ApplyWalkerControl,
        ApplyTransform, ApplyWalkerState, ApplyTargetVelocity, SetSimulatePhysics, SetAutopilot,
        SetVehicleLightState, ApplyLocation, SetTrafficLightState; the others answer an error naming their index.
        """
        try:
            index, value = command[0] if len(command) == 1 else command
            index = int(index)
            if index == 0:
                # SpawnActor (0.9.16): description, transform, optional parent, attachment type, socket name,
                # do_after. The attachment type arrives uninitialised from the client: it is ignored (rigid).
                description = ActorDescription.from_msg(value[0])
                transform = Transform.from_msg(value[1])
                parent = int(enc.from_optional(value[2]) or 0)
                after = list(value[-1]) if len(value) > 3 else []
                actor_id = int(self._spawn(description, transform, parent)[0])
                for then in after:
                    self._command(then, actor_id)
                return [[1, actor_id]]
            actor_id = int(value[0]) or future_actor
            if index == 1:
                self._destroy(actor_id)
            elif index == 2:
                self._control(actor_id, VehicleControlMsg.from_msg(value[1]))
            elif index == 4:
                self._walker_control(actor_id, enc.WalkerControlMsg.from_msg(value[1]))
            elif index == 6:
                self._move(actor_id, Transform.from_msg(value[1]))
            elif index == 7:
                self._walker_state(actor_id, Transform.from_msg(value[1]), float(value[2]))
            elif index == 8:
                self._set_target_velocity(actor_id, value[1])
            elif index == 14:
                self._set_simulate_physics(actor_id, bool(value[1]))
            elif index == 18:
                self._set_vehicle_light_state(actor_id, value[1])
            elif index == 19:
                self._set_location(actor_id, value[1])
            elif index == 16:
                # The client's Traffic Manager registers the vehicle itself and drives it with
                # ApplyVehicleControl; the server only notes the flag (CARLA's server does the same).
                self._vehicle_info(actor_id)
            elif index == 21:
                self._set_traffic_light_state(actor_id, value[1])
            else:
                raise UnsupportedError(f"batch command #{index} is not supported")
            return [[1, actor_id]]
        except (ValueError, KeyError, TypeError, IndexError, SpawnError, UnsupportedError) as exc:
            return [[0, [f"apply_batch: {exc}"]]]

    # ------------------------------------------------------------------ streams
    def _sensor_pose(self, snapshot: WorldSnapshot, sensor: _Sensor) -> Transform:
        row = snapshot.index_of(sensor.parent_id)
        location, rotation = sensor_world_pose(snapshot.location_m[row], snapshot.rotation_rad[row],
                                               sensor.mount.to_pose())
        return Transform.from_arrays(location, rotation)

    def _publish_state(self, snapshot: WorldSnapshot) -> None:
        """Push the episode state of ``snapshot``: world actors, traffic lights, sensors and controllers."""
        n = snapshot.num_actors
        num_lights = self.world.signals.num_lights
        extra = list(self._sensors.values()) + list(self._controllers.values())
        records = np.zeros(n + num_lights + len(extra) + 1, dtype=enc.ACTOR_STATE_DTYPE)
        records["state"] = enc.ACTOR_STATE_ACTIVE
        head = records[:n]
        head["id"] = snapshot.actor_id
        head["transform"][:, :3] = snapshot.location_m
        head["transform"][:, 3:] = _deg(snapshot.rotation_rad)
        head["velocity"] = snapshot.velocity_mps
        head["angular_velocity"] = _deg(snapshot.angular_velocity_rad_s)
        head["acceleration"] = snapshot.acceleration_mps2
        self._vehicle_records(snapshot, head)
        self._walker_records(snapshot, records)
        self._light_records(records, n)
        rows = {int(a): k for k, a in enumerate(snapshot.actor_id.tolist())}
        for row, actor in enumerate(extra, start=n + num_lights):
            records[row]["id"] = actor.actor_id
            if isinstance(actor, _Sensor):
                records[row]["transform"] = self._sensor_pose(snapshot, actor).as_tuple()
            elif actor.parent_id in rows:
                records[row]["transform"] = head["transform"][rows[actor.parent_id]]
        records[-1]["id"] = SPECTATOR_ID
        records[-1]["transform"] = self._spectator.as_tuple()
        stamp = time.time()
        payload = enc.episode_state_payload(snapshot.frame, snapshot.timestamp_s, self.episode_id, snapshot.dt_s,
                                            records, stamp, self._state_flags)
        # The greeting never repeats the map-change flag: a client seeing it makes a new Episode and subscribes again.
        self._last_state_payload = payload if self._state_flags == 0 else enc.episode_state_payload(
            snapshot.frame, snapshot.timestamp_s, self.episode_id, snapshot.dt_s, records, stamp, 0)
        self._state_flags = 0
        self.streams.publish(EPISODE_STREAM_ID, payload)

    def _greeting(self, stream_id: int) -> bytes | None:
        """A new episode-state subscriber gets the last state at once, not only from the next tick on.

        The client subscribes anew after a map change (a new ``Episode``); in synchronous mode it would
        otherwise see an empty state (frame 0) until its next tick.
        """
        return self._last_state_payload if stream_id == EPISODE_STREAM_ID else None

    def _vehicle_records(self, snapshot: WorldSnapshot, head: np.ndarray) -> None:
        """Controls, speed limits and the light ahead (the Traffic Manager drives by these)."""
        rows = np.flatnonzero(snapshot.kind == int(ActorKind.VEHICLE))
        if rows.size == 0:
            return
        for row in rows.tolist():
            vehicle = self._vehicles.get(int(snapshot.actor_id[row]))
            if vehicle is not None:
                for name in ("throttle", "steer", "brake", "hand_brake", "reverse", "manual_gear_shift", "gear"):
                    head[name][row] = getattr(vehicle.control, name)
        lanes, signals = self.world.lanes, self.world.signals
        lane, s_m, _ = lanes.project(snapshot.location_m[rows, :2], snapshot.rotation_rad[rows, 1])
        on_lane = lane >= 0
        safe = np.maximum(lane, 0)
        limit = np.where(on_lane, lanes.speed_limit_mps[safe] * 3.6, DEFAULT_SPEED_LIMIT_KMH)
        head["speed_limit"][rows] = np.where(limit > 0, limit, DEFAULT_SPEED_LIMIT_KMH)
        if signals.num_lights == 0:
            return
        light = np.where(on_lane, signals.lane_light[safe], -1)
        near = (light >= 0) & (lanes.length_m[safe] - s_m < LIGHT_TRIGGER_M)
        at = rows[near]
        head["has_light"][at] = 1
        head["light_id"][at] = LIGHT_ID_BASE + light[near]
        head["light_state"][at] = self.world.light_state[light[near]]

    def _walker_records(self, snapshot: WorldSnapshot, records: np.ndarray) -> None:
        rows = np.flatnonzero(snapshot.kind == int(ActorKind.WALKER))
        if rows.size == 0:
            return
        data = np.zeros(rows.size, dtype=enc.WALKER_DATA_DTYPE)
        velocity = snapshot.velocity_mps[rows]
        speed = np.linalg.norm(velocity, axis=1)
        data["direction"] = velocity / np.maximum(speed, 1e-9)[:, None]
        data["speed"] = speed
        enc.set_union(records, rows, data)

    def _light_records(self, records: np.ndarray, first_row: int) -> None:
        """One record per traffic light: OpenDRIVE id, timing, pole index (cycle order), frozen flag, state."""
        signals, lights = self.world.signals, self.world.lights
        num_lights = signals.num_lights
        if num_lights == 0:
            return
        rows = np.arange(first_row, first_row + num_lights)
        records["id"][rows] = LIGHT_ID_BASE + np.arange(num_lights)
        records["transform"][rows, :3] = signals.location_xyz
        data = np.zeros(num_lights, dtype=enc.TRAFFIC_LIGHT_DATA_DTYPE)
        data["sign_id"] = [str(int(v)).encode() for v in signals.light_id.tolist()]
        data["green_time"] = lights.green_s
        data["yellow_time"] = lights.yellow_s
        data["red_time"] = np.maximum(lights._cycle - lights.green_s - lights.yellow_s, 0.0)
        data["pole_index"] = signals.group_order
        data["frozen"] = self._light_frozen
        data["state"] = self.world.light_state
        enc.set_union(records, rows, data)

    def _publish_collisions(self, snapshot: WorldSnapshot) -> None:
        """Each collision of a vehicle with a collision sensor, to that sensor's stream."""
        collisions = [e for e in snapshot.events if isinstance(e, CollisionEvent)]
        if not collisions:
            return
        for sensor in self._sensors.values():
            if sensor.description.id != "sensor.other.collision":
                continue
            for event in collisions:
                if event.actor_id != sensor.parent_id:
                    continue
                other = (self._actor_msg(event.other_id) if event.other_id in self.world.actors
                         else enc.actor_msg(0, 0, ActorDescription(0, "static.building", {}, ()), (0.0, 0.0, 0.0),
                                            (0.0, 0.0, 0.0), bytes([3])))
                payload = enc.collision_payload(snapshot.frame, snapshot.timestamp_s,
                                                self._sensor_pose(snapshot, sensor),
                                                self._actor_msg(event.actor_id), other, event.impulse_ns)
                self.streams.publish(sensor.stream_id, payload)

    def _publish_sensors(self, snapshot: WorldSnapshot) -> None:
        """Measure every sensor someone listens to and push its data (before the state of the same frame)."""
        self._publish_collisions(snapshot)
        plans = []
        for sensor in list(self._sensors.values()):
            if sensor.impl is None:
                continue
            if sensor.stream_id in self._awaited_streams:
                # listen() returned before its stream connected: the first tick after it waits for the
                # connection, so the script gets that tick's data (as it does from CARLA, whose ticks are slower).
                self._awaited_streams.discard(sensor.stream_id)
                self.streams.wait_for_subscriber(sensor.stream_id, SUBSCRIBE_WAIT_S)
            listened = self.streams.subscriber_count(sensor.stream_id) > 0
            if isinstance(sensor.impl, RaycastSensor):
                plan = sensor.impl.plan(snapshot) if listened else None
                if plan is not None:
                    plans.append((sensor, plan))
            elif listened or isinstance(sensor.impl, ImuSensor):  # the IMU differentiates omega every tick
                measurement = sensor.impl.measure(self.world, snapshot)
                if measurement is not None and listened:
                    self._publish_measurement(snapshot, sensor, measurement)
        if not plans:
            return
        hidden = hidden_parents([sensor.impl for sensor, _ in plans], snapshot)
        by_impl = {id(sensor.impl): sensor for sensor, _ in plans}
        # One raycast for every sensor (shared camera rays, actor-ray culling, finishing on two threads).
        done = self._batcher.run(self._scene, snapshot, [(sensor.impl, plan) for sensor, plan in plans], hidden)
        for impl, measurement, _ in done:
            self._publish_measurement(snapshot, by_impl[id(impl)], measurement)

    def _publish_measurement(self, snapshot: WorldSnapshot, sensor: _Sensor, measurement: SensorMeasurement) -> None:
        """Serialize one embedded measurement in CARLA's format for its blueprint and push it."""
        if self.measurement_hook is not None:
            self.measurement_hook(sensor.actor_id, measurement)
        where = Transform.from_arrays(measurement.location_m, measurement.rotation_rad)
        blueprint_id = sensor.description.id
        frame, stamp, data = snapshot.frame, snapshot.timestamp_s, measurement.data
        if blueprint_id in enc.CAMERA_ENCODERS:
            payload = enc.camera_payload(blueprint_id, frame, stamp, where, data, sensor.impl.fov_deg)
        elif blueprint_id in ("sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic"):
            payload = _lidar_payload(snapshot, where, sensor.impl, data)
        elif blueprint_id == "sensor.other.radar":
            payload = enc.radar_payload(frame, stamp, where, data)
        elif blueprint_id == "sensor.other.gnss":
            payload = enc.gnss_payload(frame, stamp, where, data)
        elif blueprint_id == "sensor.other.imu":
            payload = enc.imu_payload(frame, stamp, where, data.accelerometer_mps2, data.gyroscope_rad_s,
                                      data.compass_rad)
        else:  # every streamed blueprint is handled above
            raise AssertionError(f"no serializer for {blueprint_id}")
        self.streams.publish(sensor.stream_id, payload)


def _default_spectator(world: EmbeddedWorld) -> Transform:
    """Where the spectator starts: 50 m above the first spawn point, looking down ahead."""
    points = world.spawn_points
    if not points:
        return Transform(0.0, 0.0, 50.0, -60.0, 0.0, 0.0)
    pose = points[0].pose
    return Transform(pose.x_m, pose.y_m, pose.z_m + 50.0, -60.0, math.degrees(pose.yaw_rad), 0.0)


def _lidar_payload(snapshot: WorldSnapshot, where: Transform, lidar, points: np.ndarray) -> bytes:
    """CARLA's (semantic) LiDAR message; each point's channel is found from its elevation (points come channel by
    channel)."""
    channels = lidar.channels
    if points.dtype.names is not None:
        x, y, z = points["x"], points["y"], points["z"]
    else:
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # Nearest channel by elevation, from the tangents of the half-way elevations (no arctan per point).
    step = (lidar.upper_fov - lidar.lower_fov) / max(channels - 1, 1)
    halfway = np.radians(lidar.upper_fov - step * (np.arange(1, channels) - 0.5))  # descending
    tangent = z / np.maximum(np.hypot(x, y), np.float32(1e-9))
    channel = np.searchsorted(-np.tan(halfway).astype(np.float32), -tangent, side="right")
    channel = np.maximum.accumulate(channel) if channel.size else channel  # keep the counts in point order
    return enc.lidar_payload(snapshot.frame, snapshot.timestamp_s, where, points, channel, channels,
                             math.radians(lidar.current_angle_deg))
