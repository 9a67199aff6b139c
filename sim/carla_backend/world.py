"""A CARLA 0.9.16 server behind the same interface as the embedded world (and the ``Backend`` protocol).

>>> with CarlaWorld(map="Town01", host="localhost", port=2000) as world:
...     ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
...     world.spawn_traffic(30)
...     snapshot = world.tick()

On connection the world is put in synchronous mode with ``fixed_delta_seconds
= dt_s`` and the Traffic Manager (port ``tm_port``, seeded) in synchronous
mode; :meth:`close` (also on leaving the ``with`` block, on an exception or a
Ctrl-C) destroys every actor and sensor this object spawned and restores the
settings it changed. The map model the environment needs (lane graph,
signals, geometry) is built client-side from the server map's OpenDRIVE text,
exactly as the embedded simulator builds it, so routes, BEV and metrics are
the same on both backends.

Events: collisions and lane invasions come from ``sensor.other.collision`` and
``sensor.other.lane_invasion`` attached to every free (not autopilot)
vehicle; red-light, stop-sign and off-road events are computed client-side
(:mod:`sim.carla_backend.events`).
"""

from __future__ import annotations

import math
import queue
from dataclasses import dataclass
from functools import cached_property

import carla
import numpy as np

from sim.api import (ActorKind, CollisionEvent, Event, LaneInvasionEvent, MapInfo, Pose, TrafficLightState,
                     VehicleControl, WorldSnapshot)
from sim.carla_backend import conversions as cv
from sim.carla_backend.events import FreeVehicleMonitor
from sim.carla_backend.tm_watchdog import TickWatchdog
from sim.maps.lanes import LaneGraph, SpawnPoint, build_lane_graph
from sim.maps.loader import PROCEDURAL, procedural_source, resolve_map
from sim.maps.procedural import ProceduralTownConfig
from sim.maps.signals import build_signal_layout
from sim.api import SpawnError
from sim.sensors.suite import EVENT_SENSORS

DEFAULT_TRAFFIC_BLUEPRINTS = ("vehicle.lincoln.mkz_2020", "vehicle.audi.a2", "vehicle.toyota.prius",
                              "vehicle.mercedes.sprinter", "vehicle.yamaha.yzf")


class CarlaConnectionError(RuntimeError):
    """No CARLA server answered, or it stopped answering; the message names host and port."""


@dataclass(frozen=True)
class _ActorInfo:
    kind: ActorKind | None  # None: not a vehicle or walker (sensor, light, spectator, controller)
    type_id: str
    tag: int
    extent: tuple[float, float, float]
    box_location: carla.Location | None
    role_name: str


@dataclass(frozen=True)
class ServerMap:
    """Name and OpenDRIVE text of the map loaded on the server."""

    name: str
    xodr_text: str


class CarlaWorld:
    """See the module docstring. ``map``: a CARLA town name, an .xodr path, or ``procedural``."""

    def __init__(self, map: str = "Town01", seed: int = 0, dt_s: float = 0.05, host: str = "localhost",
                 port: int = 2000, timeout_s: float = 20.0, tm_port: int = 8000, no_rendering: bool = True,
                 client=None) -> None:
        self.host, self.port, self.timeout_s = host, int(port), float(timeout_s)
        self.dt_s = float(dt_s)
        self.tm_port = int(tm_port)
        self.seed = int(seed)
        self.client = client if client is not None else carla.Client(host, self.port)
        self.client.set_timeout(self.timeout_s)
        try:
            self.server_version = self.client.get_server_version()
        except RuntimeError as exc:
            raise CarlaConnectionError(f"no CARLA server answered at {host}:{port} within {timeout_s} s ({exc}); "
                                       "start one (CarlaUE4.sh -RenderOffScreen -carla-rpc-port=PORT) "
                                       "or `avsim serve`") from exc
        self._owned: list[int] = []  # every actor this object spawned (vehicles, walkers, controllers, sensors)
        self._sensors: dict[int, list[carla.Actor]] = {}  # free vehicle -> its event sensors
        self._controllers: dict[int, carla.Actor] = {}  # walker -> AI controller
        self._autopilot: set[int] = set()
        self._info: dict[int, _ActorInfo] = {}
        self._events: queue.Queue = queue.Queue()
        self._original_settings = None
        self._tm_sync = False
        self._watchdog: TickWatchdog | None = None
        self.rng = np.random.default_rng(seed)
        self.load_world(map, seed)

    # ------------------------------------------------------------------ map and settings
    def load_world(self, map_name: str, seed: int | None = None) -> MapInfo:
        """Load a town or an OpenDRIVE map on the server and rebuild the client-side map model."""
        self._destroy_owned()
        self._restore_settings()
        try:
            if map_name == PROCEDURAL or str(map_name).endswith(".xodr"):
                source = procedural_source(ProceduralTownConfig()) if map_name == PROCEDURAL else resolve_map(map_name)
                world = self.client.generate_opendrive_world(
                    source.xodr_text, carla.OpendriveGenerationParameters(vertex_distance=2.0, max_road_length=50.0,
                                                                          wall_height=1.0, additional_width=0.6,
                                                                          smooth_junctions=True,
                                                                          enable_mesh_visibility=True))
            else:
                world = self.client.get_world()
                if not world.get_map().name.split("/")[-1] == map_name:
                    world = self.client.load_world(map_name)
        except RuntimeError as exc:
            raise CarlaConnectionError(f"CARLA server at {self.host}:{self.port} failed to load {map_name!r}: "
                                       f"{exc}") from exc
        self.carla_world = world
        self._original_settings = world.get_settings()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.dt_s
        world.apply_settings(settings)
        self.traffic_manager = self.client.get_trafficmanager(self.tm_port)
        self.traffic_manager.set_synchronous_mode(True)
        self._tm_sync = True
        self.traffic_manager.set_random_device_seed(self.seed if seed is None else int(seed))
        if self._watchdog is None:
            self._watchdog = TickWatchdog(self.tm_port, lambda: self.carla_world.get_snapshot().frame)
        self.carla_map = world.get_map()
        xodr = self.carla_map.to_opendrive()
        self.source = ServerMap(self.carla_map.name.split("/")[-1], xodr)
        self.lanes: LaneGraph = build_lane_graph(self.carla_map, xodr)
        self.signals = build_signal_layout(self.carla_map, self.lanes, generate_missing=False)
        for name in ("geometry", "area_raster", "spawn_points"):
            self.__dict__.pop(name, None)
        self._map_lights()
        self._monitor = FreeVehicleMonitor(self.lanes, self.signals, self.area_raster)
        self.frame = 0
        self._snapshot = self._build_snapshot(world.get_snapshot(), ())
        return MapInfo(self.source.name, xodr, tuple(p.pose for p in self.spawn_points))

    def _map_lights(self) -> None:
        """Traffic-light actors in the order of ``signals.light_id`` (by OpenDRIVE id, else nearest)."""
        actors = list(self.carla_world.get_actors().filter("traffic.traffic_light"))
        by_id = {}
        for actor in actors:
            try:
                by_id[int(actor.get_opendrive_id())] = actor
            except (ValueError, RuntimeError, AttributeError):
                continue
        self._lights: list[carla.Actor | None] = []
        for index, light_id in enumerate(self.signals.light_id.tolist()):
            actor = by_id.get(int(light_id))
            if actor is None and actors:
                x, y = self.signals.location_xyz[index, :2]
                actor = min(actors, key=lambda a: math.hypot(a.get_location().x - x, a.get_location().y - y))
            self._lights.append(actor)

    @cached_property
    def geometry(self):
        """Polygons and markings of the server's map (built client-side from its OpenDRIVE)."""
        from sim.maps.geometry import build_map_geometry

        return build_map_geometry(self.carla_map)

    @cached_property
    def area_raster(self):
        """Area classes of the map (for off-road events)."""
        from sim.maps.geometry import rasterize_areas

        return rasterize_areas(self.geometry, resolution_m=0.2)

    @property
    def owned_actor_ids(self) -> tuple[int, ...]:
        """Every actor this object spawned and has not destroyed (vehicles, walkers, controllers, sensors)."""
        return tuple(self._owned)

    @cached_property
    def spawn_points(self) -> list[SpawnPoint]:
        """Spawn points derived from the lane graph, as the embedded world's (the same on both backends)."""
        return self.lanes.spawn_points()

    @property
    def lights(self) -> CarlaLights:
        """Force or release traffic-light states (scenarios)."""
        return CarlaLights(self._lights)

    def _restore_settings(self) -> None:
        if self._original_settings is not None:
            try:
                self.carla_world.apply_settings(self._original_settings)
            except RuntimeError:
                pass
            self._original_settings = None
        if self._tm_sync:
            try:
                self.traffic_manager.set_synchronous_mode(False)
            except RuntimeError:
                pass
            self._tm_sync = False

    # ------------------------------------------------------------------ spawning
    def _blueprint(self, blueprint_id: str):
        try:
            return self.carla_world.get_blueprint_library().find(blueprint_id)
        except (IndexError, RuntimeError) as exc:
            raise ValueError(f"the CARLA server has no blueprint {blueprint_id!r}") from exc

    def _remember(self, actor: carla.Actor, role_name: str = "") -> None:
        self._owned.append(actor.id)
        self._info[actor.id] = self._describe(actor, role_name)

    def _describe(self, actor: carla.Actor, role_name: str = "") -> _ActorInfo:
        type_id = actor.type_id
        try:
            kind = cv.actor_kind(type_id)
        except ValueError:
            return _ActorInfo(None, type_id, 0, (0.0, 0.0, 0.0), None, role_name)
        box = actor.bounding_box
        role = role_name or actor.attributes.get("role_name", "")
        tags = list(getattr(actor, "semantic_tags", []) or [])
        tag = cv.semantic_tag(type_id, tags, actor.attributes.get("base_type", ""))
        return _ActorInfo(kind, type_id, tag, cv.vector_xyz(box.extent), box.location, role)

    def spawn_vehicle(self, blueprint_id: str = "vehicle.lincoln.mkz_2020", pose: Pose | SpawnPoint | None = None,
                      *, autopilot: bool = False, role_name: str = "", speed_mps: float = 0.0) -> int:
        """Spawn a vehicle (at a random free spawn point when ``pose`` is None); returns its id."""
        bp = self._blueprint(blueprint_id)
        if bp.has_attribute("role_name"):  # also "": the blueprint's default is "autopilot"
            bp.set_attribute("role_name", role_name)
        candidates = [pose] if pose is not None else [self.spawn_points[int(i)]
                                                      for i in self.rng.permutation(len(self.spawn_points))[:50]]
        actor = None
        for candidate in candidates:
            p = candidate.pose if isinstance(candidate, SpawnPoint) else candidate
            actor = self.carla_world.try_spawn_actor(bp, cv.pose_to_transform(p))
            if actor is not None:
                break
        if actor is None:
            where = "no free spawn point" if pose is None else f"({p.x_m:.1f}, {p.y_m:.1f}) is occupied"
            raise SpawnError(f"spawn of {blueprint_id} failed: {where}")
        self._remember(actor, role_name)
        if autopilot:
            actor.set_autopilot(True, self.tm_port)
            self._autopilot.add(actor.id)
        else:
            self._attach_event_sensors(actor)
        if speed_mps:
            yaw = math.radians(actor.get_transform().rotation.yaw)
            actor.set_target_velocity(carla.Vector3D(speed_mps * math.cos(yaw), speed_mps * math.sin(yaw), 0.0))
        return actor.id

    def _attach_event_sensors(self, vehicle: carla.Actor) -> None:
        sensors = []
        for blueprint_id in EVENT_SENSORS:
            sensor = self.carla_world.spawn_actor(self._blueprint(blueprint_id), carla.Transform(), attach_to=vehicle)
            self._owned.append(sensor.id)
            # The parent id is bound here: 0.9.16 builds lane-invasion events without an episode, so their
            # ``actor`` raises "trying to operate on a destroyed actor".
            sensor.listen(lambda data, parent=vehicle.id: self._events.put((parent, data)))
            sensors.append(sensor)
        self._sensors[vehicle.id] = sensors

    def _detach_event_sensors(self, vehicle_id: int) -> None:
        for sensor in self._sensors.pop(vehicle_id, []):
            sensor.stop()
            sensor.destroy()
            self._owned.remove(sensor.id)
        self._monitor.forget(vehicle_id)

    def spawn_traffic(self, count: int, blueprints: tuple[str, ...] = DEFAULT_TRAFFIC_BLUEPRINTS) -> list[int]:
        """``count`` NPC vehicles on the Traffic Manager's autopilot at random free spawn points (one batch)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        library = self.carla_world.get_blueprint_library()
        available = [bp for name in blueprints for bp in library.filter(name)] or list(library.filter("vehicle.*"))
        points = self.carla_map.get_spawn_points() or [cv.pose_to_transform(p.pose) for p in self.spawn_points]
        order = self.rng.permutation(len(points))
        commands = []
        for k in order[:count].tolist():
            bp = available[int(self.rng.integers(len(available)))]
            commands.append(self._spawn_on_autopilot(bp, points[k]))
        spawned = []
        for response in self.client.apply_batch_sync(commands, True):
            if not response.error:
                spawned.append(response.actor_id)
        for actor in self.carla_world.get_actors(spawned):
            self._remember(actor)
            self._autopilot.add(actor.id)
        return spawned

    def _spawn_on_autopilot(self, blueprint, transform: carla.Transform):
        """The batch command that spawns one vehicle and hands it to the Traffic Manager."""
        return carla.command.SpawnActor(blueprint, transform).then(
            carla.command.SetAutopilot(carla.command.FutureActor, True, self.tm_port))

    def spawn_walkers(self, count: int) -> list[int]:
        """``count`` pedestrians walking to random places under CARLA's walker AI controllers."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        library = self.carla_world.get_blueprint_library()
        walkers_bp = list(library.filter("walker.pedestrian.*"))
        controller_bp = library.find("controller.ai.walker")
        spawned = []
        for _ in range(count * 3):
            if len(spawned) == count:
                break
            location = self.carla_world.get_random_location_from_navigation()
            if location is None:
                continue
            bp = walkers_bp[int(self.rng.integers(len(walkers_bp)))]
            if bp.has_attribute("is_invincible"):
                bp.set_attribute("is_invincible", "false")
            walker = self.carla_world.try_spawn_actor(bp, carla.Transform(location))
            if walker is None:
                continue
            self._remember(walker)
            controller = self.carla_world.spawn_actor(controller_bp, carla.Transform(), attach_to=walker)
            self._owned.append(controller.id)
            self._controllers[walker.id] = controller
            spawned.append(walker.id)
        self.tick()  # controllers must see one tick before they start
        for walker_id in spawned:
            controller = self._controllers[walker_id]
            controller.start()
            controller.go_to_location(self.carla_world.get_random_location_from_navigation())
            controller.set_max_speed(1.2 + 0.4 * float(self.rng.random()))
        return spawned

    def spawn_walker_at(self, pose: Pose) -> int:
        """A pedestrian at ``pose`` without an AI controller (move it with :meth:`apply_walker_control`)."""
        bp = self._blueprint("walker.pedestrian.0001")
        walker = self.carla_world.try_spawn_actor(bp, cv.pose_to_transform(Pose(pose.x_m, pose.y_m, pose.z_m + 1.0,
                                                                                pose.yaw_rad)))
        if walker is None:
            raise SpawnError(f"walker spawn at ({pose.x_m:.1f}, {pose.y_m:.1f}) failed: occupied")
        self._remember(walker)
        return walker.id

    def spawn_walker(self, pose: Pose | None = None) -> int:
        """``Backend`` protocol: one pedestrian, at random with AI or at ``pose`` without."""
        return self.spawn_walkers(1)[0] if pose is None else self.spawn_walker_at(pose)

    # ------------------------------------------------------------------ control
    def _actor(self, actor_id: int) -> carla.Actor:
        actor = self.carla_world.get_actor(int(actor_id))
        if actor is None:
            raise KeyError(f"actor {actor_id} does not exist on the CARLA server")
        return actor

    # Controls travel as batch commands: ``Actor.apply_control`` skips a control equal to the last one that
    # handle sent, and every ``get_actor`` handle starts from the default control, so a coast
    # (``VehicleControl()``) or a walker's stop along +x would never reach the server.
    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        """Hold ``control`` on a vehicle from the next tick on."""
        actor = self._actor(actor_id)
        self.client.apply_batch([carla.command.ApplyVehicleControl(actor.id, cv.control_to_carla(control))])

    def apply_walker_control(self, actor_id: int, direction_xy: tuple[float, float], speed_mps: float) -> None:
        """``carla.WalkerControl``: walk along ``direction_xy`` at ``speed_mps``."""
        dx, dy = (float(v) for v in direction_xy)
        norm = math.hypot(dx, dy) or 1.0
        actor = self._actor(actor_id)
        control = carla.WalkerControl(carla.Vector3D(dx / norm, dy / norm, 0.0), float(speed_mps))
        self.client.apply_batch([carla.command.ApplyWalkerControl(actor.id, control)])

    def set_autopilot(self, actor_id: int, enabled: bool = True) -> None:
        """Hand a vehicle to the Traffic Manager, or take it back."""
        actor = self._actor(actor_id)
        actor.set_autopilot(bool(enabled), self.tm_port)
        if enabled:
            self._autopilot.add(actor_id)
            self._detach_event_sensors(actor_id)
        else:
            self._autopilot.discard(actor_id)
            if actor_id not in self._sensors:
                self._attach_event_sensors(actor)

    def teleport(self, actor_id: int, pose: Pose, speed_mps: float | None = None) -> None:
        """``set_transform`` (and optionally the speed along the new heading)."""
        actor = self._actor(actor_id)
        actor.set_transform(cv.pose_to_transform(pose))
        if speed_mps is not None:
            actor.set_target_velocity(carla.Vector3D(speed_mps * math.cos(pose.yaw_rad),
                                                     speed_mps * math.sin(pose.yaw_rad), 0.0))

    def destroy(self, actor_ids: list[int]) -> None:
        """Destroy actors (with their event sensors and walker controllers).

        ``KeyError`` names the ids the server does not have (nothing is destroyed then).
        """
        ids = [int(a) for a in actor_ids]
        alive = {actor.id for actor in self.carla_world.get_actors(ids)} if ids else set()
        unknown = [a for a in ids if a not in alive]
        if unknown:
            raise KeyError(f"unknown actor ids: {unknown}")
        commands = []
        for actor_id in ids:
            self._detach_event_sensors(actor_id)
            controller = self._controllers.pop(actor_id, None)
            if controller is not None:
                controller.stop()
                commands.append(carla.command.DestroyActor(controller.id))
                self._owned.remove(controller.id)
            commands.append(carla.command.DestroyActor(actor_id))
            self._autopilot.discard(actor_id)
            self._info.pop(actor_id, None)
            if actor_id in self._owned:
                self._owned.remove(actor_id)
        self.client.apply_batch_sync(commands, False)

    def _destroy_owned(self) -> None:
        for vehicle_id in list(self._sensors):
            try:
                self._detach_event_sensors(vehicle_id)
            except RuntimeError:
                pass
        for controller in self._controllers.values():
            try:
                controller.stop()
            except RuntimeError:
                pass
        if self._owned:
            try:
                self.client.apply_batch_sync([carla.command.DestroyActor(a) for a in self._owned], False)
            except RuntimeError:
                pass
        for actor_id in self._owned:
            self._info.pop(actor_id, None)
        self._owned, self._controllers, self._autopilot = [], {}, set()
        self._sensors = {}

    # ------------------------------------------------------------------ time
    def reset(self, seed: int | None = None) -> WorldSnapshot:
        """Destroy what this object spawned, re-seed the Traffic Manager and the spawn choices, tick once."""
        self.seed = self.seed if seed is None else int(seed)
        self._destroy_owned()
        self.rng = np.random.default_rng(self.seed)
        self.traffic_manager.set_random_device_seed(self.seed)
        for light in self._lights:
            if light is not None:
                light.freeze(False)
        while not self._events.empty():
            self._events.get_nowait()
        return self.tick()

    def tick(self) -> WorldSnapshot:
        """Advance one fixed step on the server; the snapshot of that frame with its events."""
        try:
            if self._watchdog is None:
                self.frame = self.carla_world.tick(self.timeout_s)
            else:
                frame_before = self.carla_world.get_snapshot().frame
                self.frame = self._watchdog.tick(frame_before, lambda: self.carla_world.tick(self.timeout_s))
            snapshot = self.carla_world.get_snapshot()
        except RuntimeError as exc:
            raise CarlaConnectionError(f"the CARLA server at {self.host}:{self.port} stopped answering at frame "
                                       f"{self.frame + 1}: {exc}") from exc
        events: list[Event] = []
        while not self._events.empty():
            events.extend(self._sensor_event(*self._events.get_nowait()))
        self._snapshot = self._build_snapshot(snapshot, events)
        return self._snapshot

    def snapshot(self) -> WorldSnapshot:
        """The latest snapshot."""
        return self._snapshot

    def _sensor_event(self, parent: int, data) -> list[Event]:
        """A collision or lane-invasion sensor's data (its vehicle ``parent``) as our event (told apart by fields)."""
        where = cv.vector_xyz(data.transform.location)
        if hasattr(data, "other_actor"):
            other = data.other_actor
            static = other is None or not other.id or not other.type_id.startswith(("vehicle.", "walker."))
            other_id = -1 if static else int(other.id)
            kind = "static" if static else ("walker" if other.type_id.startswith("walker") else "vehicle")
            return [CollisionEvent(data.frame, parent, other_id, kind, cv.vector_xyz(data.normal_impulse), where)]
        if hasattr(data, "crossed_lane_markings"):
            names = tuple(sorted({str(m.type) for m in data.crossed_lane_markings}))
            return [LaneInvasionEvent(data.frame, parent, names, where)]
        return []

    def _build_snapshot(self, snapshot, events: list[Event]) -> WorldSnapshot:
        rows = []
        for actor_snapshot in snapshot:
            info = self._info.get(actor_snapshot.id)
            if info is None:
                actor = self.carla_world.get_actor(actor_snapshot.id)
                info = self._describe(actor) if actor is not None else _ActorInfo(None, "", 0, (0, 0, 0), None, "")
                self._info[actor_snapshot.id] = info
            if info.kind is not None:
                rows.append((actor_snapshot, info))
        if len(self._info) > len(snapshot):  # forget actors that are gone (e.g. destroyed by another client)
            alive = {s.id for s in snapshot}
            self._info = {k: v for k, v in self._info.items() if k in alive}
        n = len(rows)
        location = np.zeros((n, 3))
        rotation = np.zeros((n, 3))
        velocity, accel, angular = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros((n, 3))
        for k, (s, info) in enumerate(rows):
            transform = s.get_transform()
            location[k] = cv.vector_xyz(transform.location)
            if info.kind == ActorKind.VEHICLE and info.box_location is not None:
                location[k, :2] = cv.vehicle_ground_xy(transform, info.box_location)
            rotation[k] = cv.rotation_rad(transform.rotation)
            velocity[k] = cv.vector_xyz(s.get_velocity())
            accel[k] = cv.vector_xyz(s.get_acceleration())
            angular[k] = cv.angular_velocity_rad_s(s.get_angular_velocity())
        ids = np.array([s.id for s, _ in rows], dtype=np.int64)
        light_state = np.array([int(cv.light_state(light.get_state())) if light is not None
                                else int(TrafficLightState.UNKNOWN) for light in self._lights], dtype=np.int8)
        free = [k for k, (s, info) in enumerate(rows)
                if info.kind == ActorKind.VEHICLE and s.id not in self._autopilot and s.id in self._sensors]
        if free:
            events = [*events, *self._monitor.update(
                int(snapshot.frame), [int(ids[k]) for k in free], location[free, :2], rotation[free, 1],
                np.hypot(velocity[free, 0], velocity[free, 1]), light_state, location[free, 2])]
        return WorldSnapshot(
            frame=int(snapshot.frame), timestamp_s=float(snapshot.timestamp.elapsed_seconds), dt_s=self.dt_s,
            actor_id=ids, kind=np.array([int(info.kind) for _, info in rows], dtype=np.int8),
            type_id=tuple(info.type_id for _, info in rows),
            semantic_tag=np.array([info.tag for _, info in rows], dtype=np.uint8),
            location_m=location, rotation_rad=rotation, velocity_mps=velocity, acceleration_mps2=accel,
            angular_velocity_rad_s=angular, extent_m=np.array([info.extent for _, info in rows]).reshape(n, 3),
            autopilot=np.array([s.id in self._autopilot for s, _ in rows], dtype=bool),
            light_id=self.signals.light_id, light_state=light_state, light_location_m=self.signals.location_xyz,
            light_junction_id=self.signals.junction_id, events=tuple(events))

    # ------------------------------------------------------------------ lifetime
    @property
    def actors(self) -> dict[int, _ActorInfo]:
        """The live vehicles and walkers, by id: those spawned here and those other clients' seen in a snapshot."""
        return {k: v for k, v in self._info.items() if v.kind is not None}

    def close(self) -> None:
        """Destroy everything spawned here, restore the server's settings, stop the Traffic Manager; idempotent.

        The Traffic Manager runs inside this process (one per port) and would keep reading the episode
        after its vehicles are gone: in 0.9.16 that can crash the process (a stack overflow in its motion
        planner on an uninitialised speed limit), so it is shut down here.
        """
        self._destroy_owned()
        self._restore_settings()
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        if getattr(self, "traffic_manager", None) is not None:
            try:
                self.traffic_manager.shut_down()
            except RuntimeError:
                pass
            self.traffic_manager = None

    def __enter__(self) -> CarlaWorld:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class CarlaLights:
    """Force (and freeze) or release traffic-light states by the signal layout's light index."""

    def __init__(self, lights: list) -> None:
        self._lights = lights

    def force_state(self, light: int, state: TrafficLightState | int | None) -> None:
        """Hold light ``light`` in ``state``; None hands it back to the server's cycle."""
        actor = self._lights[light]
        if actor is None:
            return
        if state is None:
            actor.freeze(False)
            return
        actor.set_state(cv.light_state_to_carla(state))
        actor.freeze(True)

