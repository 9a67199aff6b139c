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
- Sensors (``sensor.camera.rgb``, ``sensor.lidar.ray_cast``) must be attached
  to a vehicle; they are measured only while someone listens to them, with
  the embedded sensor classes raycasting one shared scene.
- Anything else answers an RPC error naming the method.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

import numpy as np

from sim.api import ActorKind, Pose, VehicleControl, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import ActorDescription, EpisodeSettings, Transform, VehicleControlMsg
from sim.carla_server.rpc import RpcServer
from sim.carla_server.streams import StreamServer
from sim.embedded.sensors.base import SensorPose, sensor_world_pose
from sim.embedded.world import EmbeddedWorld, SpawnError

log = logging.getLogger(__name__)

EPISODE_STREAM_ID = 1
SENSOR_ID_BASE = 1 << 24
"""Sensor actor ids start here, clear of the ids the embedded world gives its actors."""


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
    impl: object  # an embedded RaycastSensor


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
    or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, map_name: str = "Town01", host: str = "127.0.0.1", port: int = 2000, *,
                 delta_seconds: float = 0.05, seed: int = 0, world: EmbeddedWorld | None = None) -> None:
        self.world = world if world is not None else EmbeddedWorld(map=map_name, seed=seed, dt_s=delta_seconds)
        self.host = host
        self._lock = threading.RLock()
        self.settings = EpisodeSettings()
        self.episode_id = int(time.time_ns() & 0xFFFFFFFF) or 1
        self._vehicles: dict[int, _Vehicle] = {}
        self._sensors: dict[int, _Sensor] = {}
        self._next_sensor_id = SENSOR_ID_BASE
        self._next_stream_id = EPISODE_STREAM_ID + 1
        self._scene = None
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
            "get_required_files": lambda *_: enc.ok([]),
            "query_lights_state": lambda *_: enc.ok([]),
            "tick_cue": self._tick_cue,
            "get_actor_definitions": lambda: enc.ok([d.to_msg() for d in self._definitions.values()]),
            "get_map_info": self._get_map_info,
            "get_map_data": lambda: enc.ok(self.world.source.xodr_text),
            "spawn_actor": self._spawn_actor,
            "spawn_actor_with_parent": self._spawn_actor_with_parent,
            "destroy_actor": self._destroy_actor,
            "get_actors_by_id": self._get_actors_by_id,
            "get_actor_bounding_box": lambda actor_id: enc.ok(self._actor_msg(int(actor_id))[3]),
            "apply_control_to_vehicle": self._apply_control,
            "apply_batch": self._apply_batch,
        }

    def _bind(self, host: str, port: int) -> tuple[RpcServer, StreamServer]:
        for _ in range(20):
            rpc = RpcServer(host, port, self.handle)
            try:
                return rpc, StreamServer(host, rpc.port + 1)
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
        snapshot = self.world.tick()
        self._publish_sensors(snapshot)
        self._publish_state(snapshot)
        return snapshot

    def _get_map_info(self) -> list:
        points = [Transform(p.pose.x_m, p.pose.y_m, p.pose.z_m, 0.0, math.degrees(p.pose.yaw_rad), 0.0).to_msg()
                  for p in self.world.spawn_points]
        return enc.ok([self.world.source.name, points])

    # ------------------------------------------------------------------ actors
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
        from sim.embedded.sensors.blueprints import get_blueprint
        from sim.embedded.sensors.rig import build_sensor
        from sim.embedded.sensors.suite import SensorSpec

        parent = self.world.actors.get(parent_id)
        if parent is None or parent.kind != ActorKind.VEHICLE:
            raise UnsupportedError(f"sensor {description.id} must be attached to a vehicle (attach_to=vehicle); "
                                   f"got parent {parent_id or 'none'}")
        blueprint = get_blueprint(description.id)
        values = {k: v for k, v in description.attributes.items() if blueprint.has_attribute(k)}
        attributes = blueprint.resolve(values)
        actor_id = self._next_sensor_id
        spec = SensorSpec(str(actor_id), description.id, str(parent_id), mount.x, mount.y, mount.z,
                          math.radians(mount.roll), math.radians(mount.pitch), math.radians(mount.yaw), attributes)
        impl = build_sensor(spec, parent_id)
        if self._scene is None:
            from sim.embedded.sensors.scene import Scene, StaticScene

            self._scene = Scene(StaticScene.build(self.world, seed=self.world.seed))
        self._next_sensor_id += 1
        self._sensors[actor_id] = _Sensor(actor_id, description, parent_id, mount, self._next_stream_id, impl)
        self._next_stream_id += 1
        return actor_id

    def _destroy(self, actor_id: int) -> None:
        """Destroy an actor and the sensors attached to it."""
        actor_id = int(actor_id)
        if actor_id in self._sensors:
            sensor = self._sensors.pop(actor_id)
            self.streams.drop_stream(sensor.stream_id)
            return
        if actor_id not in self.world.actors:
            raise KeyError(f"actor {actor_id} not found")
        for child in [s.actor_id for s in self._sensors.values() if s.parent_id == actor_id]:
            self._destroy(child)
        self.world.destroy([actor_id])
        self._vehicles.pop(actor_id, None)

    def _destroy_actor(self, actor_id: int) -> list:
        self._destroy(actor_id)
        return enc.ok(True)

    def _actor_msg(self, actor_id: int) -> list:
        """The ``carla::rpc::Actor`` message of a live actor."""
        if actor_id in self._sensors:
            sensor = self._sensors[actor_id]
            return enc.actor_msg(actor_id, sensor.parent_id, sensor.description, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                                 b"", self.token(sensor.stream_id))
        info = self.world.actors.get(actor_id)
        if info is None:
            raise KeyError(f"actor {actor_id} not found")
        vehicle = self._vehicles.get(actor_id)
        if vehicle is not None:
            description = vehicle.description
        else:  # spawned inside the embedded world (traffic, walkers)
            description = ActorDescription(0, info.type_id, {"role_name": info.role_name},
                                           (("role_name", int(enc.AttributeType.STRING), info.role_name),))
        half = tuple(float(v) for v in info.extent_m)
        centre_z = half[2] if info.kind == ActorKind.VEHICLE else 0.0
        return enc.actor_msg(actor_id, 0, description, (0.0, 0.0, centre_z), half, bytes([info.semantic_tag]))

    def _get_actors_by_id(self, ids: list[int]) -> list:
        known = [int(a) for a in ids if int(a) in self._sensors or int(a) in self.world.actors]
        return enc.ok([self._actor_msg(a) for a in known])

    def _apply_control(self, actor_id: int, message: list) -> list:
        self._control(int(actor_id), VehicleControlMsg.from_msg(message))
        return enc.ok_void()

    def _control(self, actor_id: int, control: VehicleControlMsg) -> None:
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
        """One ``Command`` (``[[index, value]]``); returns ``[[1, actor_id]]`` or an error response."""
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
            elif index == 16:
                self.world.set_autopilot(actor_id, bool(value[1]))
            else:
                raise UnsupportedError(f"batch command #{index} is not supported")
            return [[1, actor_id]]
        except (ValueError, KeyError, TypeError, IndexError, SpawnError, UnsupportedError) as exc:
            return [[0, [f"apply_batch: {exc}"]]]

    # ------------------------------------------------------------------ streams
    def _sensor_pose(self, snapshot: WorldSnapshot, sensor: _Sensor) -> Transform:
        row = snapshot.index_of(sensor.parent_id)
        mount = SensorPose(sensor.mount.x, sensor.mount.y, sensor.mount.z, math.radians(sensor.mount.roll),
                           math.radians(sensor.mount.pitch), math.radians(sensor.mount.yaw))
        location, rotation = sensor_world_pose(snapshot.location_m[row], snapshot.rotation_rad[row], mount)
        return _transform(location, rotation)

    def _publish_state(self, snapshot: WorldSnapshot) -> None:
        """Push the episode state of ``snapshot``: every world actor and every sensor."""
        n = snapshot.num_actors
        records = np.zeros(n + len(self._sensors), dtype=enc.ACTOR_STATE_DTYPE)
        head = records[:n]
        head["id"] = snapshot.actor_id
        head["state"] = enc.ACTOR_STATE_ACTIVE
        head["transform"][:, :3] = snapshot.location_m
        head["transform"][:, 3:] = _deg(snapshot.rotation_rad)
        head["velocity"] = snapshot.velocity_mps
        head["angular_velocity"] = _deg(snapshot.angular_velocity_rad_s)
        head["acceleration"] = snapshot.acceleration_mps2
        for row, actor_id in enumerate(snapshot.actor_id.tolist()):
            vehicle = self._vehicles.get(actor_id)
            if vehicle is not None:
                for name in ("throttle", "steer", "brake", "hand_brake", "reverse", "manual_gear_shift", "gear"):
                    head[name][row] = getattr(vehicle.control, name)
        for row, sensor in enumerate(self._sensors.values(), start=n):
            records[row]["id"] = sensor.actor_id
            records[row]["state"] = enc.ACTOR_STATE_ACTIVE
            records[row]["transform"] = self._sensor_pose(snapshot, sensor).as_tuple()
        payload = enc.episode_state_payload(snapshot.frame, snapshot.timestamp_s, self.episode_id, snapshot.dt_s,
                                            records, time.time())
        self.streams.publish(EPISODE_STREAM_ID, payload)

    def _publish_sensors(self, snapshot: WorldSnapshot) -> None:
        """Measure every sensor someone listens to and push its data (before the state of the same frame)."""
        listened = [s for s in self._sensors.values() if self.streams.subscriber_count(s.stream_id)]
        plans = [(s, s.impl.plan(snapshot)) for s in listened]
        plans = [(s, p) for s, p in plans if p is not None]
        if not plans:
            return
        hidden = tuple(sorted({s.parent_id for s, _ in plans if _inside_parent(snapshot, s)}))
        self._scene.update(snapshot, hidden)
        for sensor, plan in plans:
            hits = self._scene.cast_rays(plan.origins, plan.directions, plan.max_range_m)
            measurement = sensor.impl.finish(snapshot, plan, hits)
            where = _transform(measurement.location_m, measurement.rotation_rad)
            if sensor.description.id == "sensor.camera.rgb":
                payload = enc.image_payload(snapshot.frame, snapshot.timestamp_s, where, measurement.data,
                                            sensor.impl.fov_deg)
            else:
                payload = _lidar_payload(snapshot, where, sensor.impl, measurement.data)
            self.streams.publish(sensor.stream_id, payload)


def _transform(location: np.ndarray, rotation_rad: np.ndarray) -> Transform:
    x, y, z = (float(v) for v in location)
    pitch, yaw, roll = (math.degrees(float(v)) for v in rotation_rad)
    return Transform(x, y, z, pitch, yaw, roll)


def _inside_parent(snapshot: WorldSnapshot, sensor: _Sensor) -> bool:
    """Whether a sensor sits inside its parent's box (the parent is then hidden from its rays, as the rig does)."""
    half = snapshot.extent_m[snapshot.index_of(sensor.parent_id)]
    m = sensor.mount
    return abs(m.x) < half[0] and abs(m.y) < half[1] and 0.0 <= m.z < 2.0 * half[2]


def _lidar_payload(snapshot: WorldSnapshot, where: Transform, lidar, points: np.ndarray) -> bytes:
    """CARLA's LiDAR message; each point's channel is found from its elevation (points come channel by channel)."""
    channels = lidar.channels
    elevation = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    step = (lidar.upper_fov - lidar.lower_fov) / max(channels - 1, 1)
    channel = np.clip(np.rint((lidar.upper_fov - elevation) / step), 0, channels - 1).astype(np.int64)
    channel = np.maximum.accumulate(channel) if channel.size else channel  # keep the counts in point order
    return enc.lidar_payload(snapshot.frame, snapshot.timestamp_s, where, points, channel, channels,
                             math.radians(lidar.current_angle_deg))
