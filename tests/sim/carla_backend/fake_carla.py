"""A stand-in for ``carla.Client`` backed by the embedded simulator, to test ``CarlaWorld`` without a server.

It answers the client calls ``CarlaWorld`` makes with the real ``carla`` value
types (Transform, Location, WorldSettings, BoundingBox, carla.Map built from
the town's OpenDRIVE) and duck-typed actors. Limits, on purpose: batch
``SpawnActor`` commands cannot be built from stand-in blueprints, so every
batch spawn is a vehicle on autopilot, which is what ``CarlaWorld.spawn_traffic`` asks for (tests swap ``CarlaWorld._spawn_on_autopilot`` for
:class:`SpawnOnAutopilot`, since real commands need real blueprints); walker AI controllers are
no-ops (embedded pedestrians walk on their own); sensors other than collision
and lane invasion are not simulated.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
from dataclasses import dataclass, field

import carla

from sim.api import CollisionEvent, LaneInvasionEvent
from sim.carla_backend import conversions as cv
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld

_EXTRA_IDS = itertools.count(900_000)


@dataclass
class FakeBlueprint:
    id: str
    attributes: dict[str, str] = field(default_factory=dict)

    def has_attribute(self, name: str) -> bool:
        return name in ("role_name", "is_invincible") or name in self.attributes

    def set_attribute(self, name: str, value: str) -> None:
        self.attributes[name] = value


class FakeLibrary:
    IDS = ("vehicle.lincoln.mkz_2020", "vehicle.mercedes.sprinter", "vehicle.yamaha.yzf",
           "walker.pedestrian.0001", "controller.ai.walker", "sensor.other.collision", "sensor.other.lane_invasion")

    def find(self, blueprint_id: str) -> FakeBlueprint:
        if blueprint_id not in self.IDS:
            raise IndexError(f"blueprint {blueprint_id!r} not found")
        return FakeBlueprint(blueprint_id)

    def filter(self, pattern: str) -> list[FakeBlueprint]:
        return [FakeBlueprint(i) for i in self.IDS if fnmatch.fnmatchcase(i, pattern)]


class FakeActor:
    def __init__(self, world: FakeWorld, actor_id: int, type_id: str, parent: FakeActor | None = None,
                 attributes: dict | None = None) -> None:
        self.world, self.id, self.type_id, self.parent = world, actor_id, type_id, parent
        self.attributes = dict(attributes or {})
        self.semantic_tags: list[int] = []
        self.callback = None
        self.alive = True

    @property
    def bounding_box(self) -> carla.BoundingBox:
        info = self.world.embedded.actors[self.id]
        ex, ey, ez = info.extent_m
        z = ez if self.type_id.startswith("vehicle.") else 0.0
        return carla.BoundingBox(carla.Location(0.0, 0.0, z), carla.Vector3D(ex, ey, ez))

    def get_transform(self) -> carla.Transform:
        return self.world.transform_of(self.id)

    def get_location(self) -> carla.Location:
        return self.get_transform().location

    def set_autopilot(self, enabled: bool, port: int = 8000) -> None:
        self.world.embedded.set_autopilot(self.id, enabled)

    def apply_control(self, control) -> None:
        if isinstance(control, carla.WalkerControl):
            self.world.embedded.apply_walker_control(self.id, (control.direction.x, control.direction.y),
                                                     control.speed)
        else:
            self.world.embedded.apply_control(self.id, cv.control_from_carla(control))

    def set_transform(self, transform: carla.Transform) -> None:
        self.world.embedded.teleport(self.id, cv.transform_to_pose(transform))

    def set_target_velocity(self, velocity: carla.Vector3D) -> None:
        self.world.embedded.teleport(self.id, cv.transform_to_pose(self.get_transform()),
                                     speed_mps=math.hypot(velocity.x, velocity.y))

    def listen(self, callback) -> None:
        self.callback = callback

    def stop(self) -> None:
        self.callback = None

    def start(self) -> None: ...

    def go_to_location(self, location) -> None: ...

    def set_max_speed(self, speed: float) -> None: ...

    def destroy(self) -> bool:
        self.world.remove(self.id)
        return True


class FakeLight:
    def __init__(self, world: FakeWorld, index: int) -> None:
        self.world, self.index = world, index
        self.id = next(_EXTRA_IDS)
        self.type_id = "traffic.traffic_light"

    def get_opendrive_id(self) -> str:
        return str(int(self.world.embedded.signals.light_id[self.index]))

    def get_location(self) -> carla.Location:
        x, y, z = self.world.embedded.signals.location_xyz[self.index]
        return carla.Location(float(x), float(y), float(z))

    def get_state(self) -> carla.TrafficLightState:
        return cv.light_state_to_carla(int(self.world.embedded.light_state[self.index]))

    def set_state(self, state) -> None:
        self.world.embedded.lights.force_state(self.index, cv.light_state(state))

    def freeze(self, frozen: bool) -> None:
        if not frozen:
            self.world.embedded.lights.force_state(self.index, None)


@dataclass
class _CollisionData:
    frame: int
    actor: FakeActor  # as CARLA: the vehicle the sensor is attached to
    transform: carla.Transform
    other_actor: FakeActor | None
    normal_impulse: carla.Vector3D


@dataclass
class _LaneInvasionData:
    frame: int
    actor: FakeActor
    transform: carla.Transform
    crossed_lane_markings: list


@dataclass(frozen=True)
class SpawnOnAutopilot:
    """What ``CarlaWorld._spawn_on_autopilot`` returns under the stand-in (real commands need real blueprints)."""

    blueprint: FakeBlueprint
    transform: carla.Transform


class FakeActorList(list):
    def filter(self, pattern: str) -> FakeActorList:
        return FakeActorList(a for a in self if fnmatch.fnmatchcase(a.type_id, pattern))


@dataclass
class FakeActorSnapshot:
    id: int
    transform: carla.Transform
    velocity: carla.Vector3D
    angular: carla.Vector3D

    def get_transform(self) -> carla.Transform:
        return self.transform

    def get_velocity(self) -> carla.Vector3D:
        return self.velocity

    def get_acceleration(self) -> carla.Vector3D:
        return carla.Vector3D()

    def get_angular_velocity(self) -> carla.Vector3D:
        return self.angular


class FakeSnapshot(list):
    def __init__(self, frame: int, elapsed: float, items) -> None:
        super().__init__(items)
        self.frame = frame
        self.timestamp = type("Timestamp", (), {"elapsed_seconds": elapsed})()


class FakeWorld:
    def __init__(self, town: str) -> None:
        self.embedded = EmbeddedWorld(map=town, seed=0)
        self.map = carla.Map(town, self.embedded.source.xodr_text)
        self.settings = carla.WorldSettings()
        self.actors: dict[int, FakeActor] = {}
        self.lights = [FakeLight(self, i) for i in range(self.embedded.signals.num_lights)]
        self.ticks = 0

    # --- what CarlaWorld calls
    def get_map(self) -> carla.Map:
        return self.map

    def get_settings(self) -> carla.WorldSettings:
        copy = carla.WorldSettings()
        copy.synchronous_mode = self.settings.synchronous_mode
        copy.fixed_delta_seconds = self.settings.fixed_delta_seconds
        return copy

    def apply_settings(self, settings: carla.WorldSettings) -> int:
        self.settings = settings
        return self.embedded.frame

    def get_blueprint_library(self) -> FakeLibrary:
        return FakeLibrary()

    def try_spawn_actor(self, bp: FakeBlueprint, transform: carla.Transform, attach_to=None):
        pose = cv.transform_to_pose(transform)
        try:
            if bp.id.startswith("vehicle."):
                actor_id = self.embedded.spawn_vehicle(bp.id, pose, role_name=bp.attributes.get("role_name", ""))
            elif bp.id.startswith("walker."):
                actor_id = self.embedded.spawn_walker_at(pose)
            else:
                actor_id = next(_EXTRA_IDS)
        except SpawnError:
            return None
        actor = FakeActor(self, actor_id, bp.id, attach_to, bp.attributes)
        self.actors[actor_id] = actor
        return actor

    def spawn_actor(self, bp, transform, attach_to=None):
        actor = self.try_spawn_actor(bp, transform, attach_to)
        if actor is None:
            raise RuntimeError("Spawn failed because of collision at spawn position")
        return actor

    def get_random_location_from_navigation(self) -> carla.Location:
        points = self.embedded.walker_network.points_xyz
        x, y, z = points[int(self.embedded.rng.integers(points.shape[0]))]
        return carla.Location(float(x), float(y), float(z) + 1.0)

    def get_actors(self, ids=None) -> FakeActorList:
        everything = [*self.actors.values(), *self.lights]
        if ids is not None:
            wanted = set(ids)
            everything = [a for a in everything if a.id in wanted]
        return FakeActorList(everything)

    def get_actor(self, actor_id: int):
        return self.actors.get(actor_id) or next((light for light in self.lights if light.id == actor_id), None)

    def tick(self, seconds: float = 10.0) -> int:
        if not self.settings.synchronous_mode:
            raise RuntimeError("tick() in asynchronous mode")
        snap = self.embedded.tick()
        self.ticks += 1
        for event in snap.events:
            sensors = [a for a in self.actors.values() if a.parent is not None and a.parent.id == event.actor_id
                       and a.callback is not None]
            for sensor in sensors:
                where = carla.Transform(carla.Location(*event.location_m))
                if isinstance(event, CollisionEvent) and sensor.type_id == "sensor.other.collision":
                    other = self.actors.get(event.other_id)
                    sensor.callback(_CollisionData(snap.frame, sensor.parent, where, other, carla.Vector3D(*event.impulse_ns)))
                elif isinstance(event, LaneInvasionEvent) and sensor.type_id == "sensor.other.lane_invasion":
                    marks = [type("Marking", (), {"type": name})() for name in event.marking_types]
                    sensor.callback(_LaneInvasionData(snap.frame, sensor.parent, where, marks))
        return snap.frame

    def get_snapshot(self) -> FakeSnapshot:
        snap = self.embedded.snapshot()
        items = []
        for row, actor_id in enumerate(snap.actor_id.tolist()):
            pitch, yaw, roll = (math.degrees(a) for a in snap.rotation_rad[row])
            x, y, z = snap.location_m[row]
            transform = carla.Transform(carla.Location(float(x), float(y), float(z)),
                                        carla.Rotation(pitch=pitch, yaw=yaw, roll=roll))
            vx, vy, vz = snap.velocity_mps[row]
            wz = math.degrees(snap.angular_velocity_rad_s[row, 2])
            items.append(FakeActorSnapshot(actor_id, transform, carla.Vector3D(float(vx), float(vy), float(vz)),
                                           carla.Vector3D(0.0, 0.0, wz)))
        items += [FakeActorSnapshot(light.id, carla.Transform(light.get_location()), carla.Vector3D(),
                                    carla.Vector3D()) for light in self.lights]
        return FakeSnapshot(snap.frame, snap.timestamp_s, items)

    # --- helpers
    def transform_of(self, actor_id: int) -> carla.Transform:
        snap = self.embedded.snapshot()
        row = snap.index_of(actor_id)
        x, y, z = snap.location_m[row]
        return carla.Transform(carla.Location(float(x), float(y), float(z)),
                               carla.Rotation(yaw=math.degrees(snap.rotation_rad[row, 1])))

    def remove(self, actor_id: int) -> None:
        actor = self.actors.pop(actor_id, None)
        if actor is not None and actor_id in self.embedded.actors:
            self.embedded.destroy([actor_id])


class FakeTrafficManager:
    def __init__(self) -> None:
        self.synchronous = False
        self.seed = None

    def set_synchronous_mode(self, enabled: bool) -> None:
        self.synchronous = enabled

    def set_random_device_seed(self, seed: int) -> None:
        self.seed = seed

    def shut_down(self) -> None:
        self.synchronous = False


@dataclass
class _Response:
    actor_id: int
    error: str = ""


class FakeClient:
    """``carla.Client`` look-alike over an embedded world of ``town``."""

    def __init__(self, town: str = "Town01", reachable: bool = True) -> None:
        self.world = FakeWorld(town)
        self.tm = FakeTrafficManager()
        self.reachable = reachable

    def set_timeout(self, seconds: float) -> None: ...

    def get_server_version(self) -> str:
        if not self.reachable:
            raise RuntimeError("time-out of 500ms while waiting for the simulator")
        return "0.9.16-fake"

    def get_world(self) -> FakeWorld:
        return self.world

    def load_world(self, name: str) -> FakeWorld:
        self.world = FakeWorld(name)
        return self.world

    def get_trafficmanager(self, port: int = 8000) -> FakeTrafficManager:
        return self.tm

    def apply_batch(self, commands) -> None:
        """Vehicle and walker controls (what CarlaWorld sends without waiting)."""
        for command in commands:
            self.world.actors[command.actor_id].apply_control(command.control)

    def apply_batch_sync(self, commands, do_tick: bool = False) -> list[_Response]:
        responses = []
        for command in commands:
            if isinstance(command, carla.command.DestroyActor):
                self.world.remove(command.actor_id)
                responses.append(_Response(command.actor_id))
                continue
            actor = self.world.try_spawn_actor(command.blueprint, command.transform)
            if actor is None:
                responses.append(_Response(0, "collision at spawn position"))
                continue
            actor.set_autopilot(True)
            responses.append(_Response(actor.id))
        if do_tick:
            self.world.tick()
        return responses
