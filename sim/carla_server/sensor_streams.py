"""Sensor actors and their streams: spawn a sensor, measure what is listened to each tick, push CARLA payloads.

Every ``sensor.*`` of the embedded simulator (RGB, depth, semantic and
instance cameras, LiDAR, semantic LiDAR, radar, GNSS, IMU) is attached to a
vehicle or, spawned without a parent, fixed in the world at its spawn
transform (a sensor whose vehicle is destroyed stays where it was, fixed in
the world, as CARLA's); it is measured only while someone listens to it (the IMU every
tick, for its angular acceleration), with the embedded sensor classes
raycasting one shared scene, and serialized in CARLA's formats
(``encoding``). ``sensor.other.collision`` streams the world's collision
events of its parent; ``sensor.other.lane_invasion`` is computed by the client
itself (the server only keeps the actor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from sim.api import ActorKind, CollisionEvent, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import ActorDescription, Transform
from sim.carla_server.state import SensorActor, ServerState, UnsupportedError
from sim.embedded.sensors.base import WORLD_PARENT_ID, Sensor, SensorMeasurement
from sim.embedded.sensors.imu import ImuSensor
from sim.embedded.sensors.raycast import RaycastSensor
from sim.embedded.sensors.rig import RaycastBatcher, build_sensor, hidden_parents
from sim.sensors.blueprints import get_blueprint
from sim.sensors.suite import EVENT_SENSORS, SensorSpec
from sim.transforms import sensor_world_pose

__all__ = ["SUBSCRIBE_WAIT_S", "SensorStreams", "sensor_transform"]

SUBSCRIBE_WAIT_S = 2.0
"""How long a tick waits for a sensor stream whose token a client just asked for (listen) to connect."""


class SensorStreams:
    """The sensors of one server: spawning them, and measuring and publishing them after every tick.

    ``measurement_hook(sensor_actor_id, measurement)`` sees every embedded
    measurement before it is serialized. :meth:`close` stops the raycast
    batcher's threads.
    """

    def __init__(self, state: ServerState,
                 measurement_hook: Callable[[int, SensorMeasurement], None] | None = None) -> None:
        self.state = state
        self.measurement_hook = measurement_hook
        self._batcher = RaycastBatcher()  # one batched raycast for every listened raycast sensor, per tick

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        return {"get_sensor_token": self.sensor_token}

    def close(self) -> None:
        """Stop the raycast batcher's threads."""
        self._batcher.close()

    def sensor_token(self, stream_id: int) -> list:
        """The token of a sensor's stream; the client asks for it in ``listen()`` and then connects to it."""
        self.state.awaited_streams.add(int(stream_id))
        return enc.ok([self.state.token(int(stream_id))])

    # ------------------------------------------------------------------ spawning
    def spawn_sensor(self, description: ActorDescription, mount: Transform, parent_id: int) -> int:
        """A sensor on vehicle ``parent_id`` at ``mount``, or fixed in the world at ``mount`` (``parent_id`` 0);
        returns its actor id."""
        state = self.state
        if parent_id == WORLD_PARENT_ID:
            if description.id in EVENT_SENSORS:
                raise UnsupportedError(f"sensor {description.id} senses its parent's events: attach it to a vehicle")
        else:
            parent = state.world.actors.get(parent_id)
            if parent is None or parent.kind != ActorKind.VEHICLE:
                raise UnsupportedError(f"sensor {description.id} must be attached to a vehicle or spawned without "
                                       f"a parent; got parent {parent_id}")
        actor_id = state.next_actor_id  # taken once the sensor is built
        impl = self._build(actor_id, description, mount, parent_id)
        state.new_actor_id()
        state.sensors[actor_id] = SensorActor(actor_id, description, parent_id, mount, state.new_stream_id(), impl)
        return actor_id

    def detach(self, actor_id: int) -> None:
        """Sensor ``actor_id`` stays where it is now, fixed in the world (its parent is being destroyed)."""
        state = self.state
        sensor = state.sensors[actor_id]
        where = sensor_transform(state.world.snapshot(), sensor)
        impl = None if sensor.impl is None else self._build(actor_id, sensor.description, where, WORLD_PARENT_ID)
        state.sensors[actor_id] = replace(sensor, parent_id=WORLD_PARENT_ID, mount=where, impl=impl)

    def _build(self, actor_id: int, description: ActorDescription, mount: Transform, parent_id: int) -> Sensor | None:
        """The embedded sensor of a sensor actor (None for event sensors)."""
        if description.id in EVENT_SENSORS:
            return None
        blueprint = get_blueprint(description.id)
        values = {k: v for k, v in description.attributes.items() if blueprint.has_attribute(k)}
        attributes = blueprint.resolve(values)
        spec = SensorSpec(str(actor_id), description.id, str(parent_id), mount.to_pose(), attributes)
        impl = build_sensor(spec, parent_id)
        if isinstance(impl, RaycastSensor):
            self._map_scene()
        return impl

    def _map_scene(self):
        """The raycast scene of the map, built from the map's town layout when first needed (it needs Open3D)."""
        state = self.state
        if state.scene is None:
            from sim.embedded.sensors.scene import Scene, StaticScene

            state.scene = Scene(StaticScene.from_layout(state.town_layout()))
        return state.scene

    # ------------------------------------------------------------------ publishing
    def publish(self, snapshot: WorldSnapshot) -> None:
        """Measure every sensor someone listens to and push its data (before the state of the same frame)."""
        state = self.state
        self._publish_collisions(snapshot)
        plans = []
        for sensor in list(state.sensors.values()):
            if sensor.impl is None:
                continue
            if sensor.stream_id in state.awaited_streams:
                # listen() returned before its stream connected: the first tick after it waits for the
                # connection, so the script gets that tick's data (as it does from CARLA, whose ticks are slower).
                state.awaited_streams.discard(sensor.stream_id)
                state.streams.wait_for_subscriber(sensor.stream_id, SUBSCRIBE_WAIT_S)
            listened = state.streams.subscriber_count(sensor.stream_id) > 0
            if isinstance(sensor.impl, RaycastSensor):
                plan = sensor.impl.plan(snapshot) if listened else None
                if plan is not None:
                    plans.append((sensor, plan))
            elif listened or isinstance(sensor.impl, ImuSensor):  # the IMU differentiates omega every tick
                measurement = sensor.impl.measure(state.world, snapshot)
                if measurement is not None and listened:
                    self._publish_measurement(snapshot, sensor, measurement)
        if not plans:
            return
        hidden = hidden_parents([sensor.impl for sensor, _ in plans], snapshot)
        by_impl = {id(sensor.impl): sensor for sensor, _ in plans}
        # One raycast for every sensor (shared camera rays, actor-ray culling, finishing on two threads).
        done = self._batcher.run(state.scene, snapshot, [(sensor.impl, plan) for sensor, plan in plans], hidden)
        for impl, measurement, _ in done:
            self._publish_measurement(snapshot, by_impl[id(impl)], measurement)

    def _publish_collisions(self, snapshot: WorldSnapshot) -> None:
        """Each collision of a vehicle with a collision sensor, to that sensor's stream."""
        collisions = [e for e in snapshot.events if isinstance(e, CollisionEvent)]
        if not collisions:
            return
        state = self.state
        for sensor in state.sensors.values():
            if sensor.description.id != "sensor.other.collision":
                continue
            for event in collisions:
                if event.actor_id != sensor.parent_id:
                    continue
                other = (state.actor_msg(event.other_id) if event.other_id in state.world.actors
                         else enc.actor_msg(0, 0, ActorDescription(0, "static.building", {}, ()), (0.0, 0.0, 0.0),
                                            (0.0, 0.0, 0.0), bytes([3])))
                where = sensor_transform(snapshot, sensor)
                payload = enc.collision_payload(snapshot.frame, snapshot.timestamp_s, where,
                                                state.actor_msg(event.actor_id), other, event.impulse_ns)
                state.streams.publish(sensor.stream_id, payload)

    def _publish_measurement(self, snapshot: WorldSnapshot, sensor: SensorActor,
                             measurement: SensorMeasurement) -> None:
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
        self.state.streams.publish(sensor.stream_id, payload)


def sensor_transform(snapshot: WorldSnapshot, sensor: SensorActor) -> Transform:
    """Where ``sensor`` is in ``snapshot``: its parent's pose composed with its mount (its mount without a
    parent)."""
    if sensor.parent_id == WORLD_PARENT_ID:
        return sensor.mount
    row = snapshot.index_of(sensor.parent_id)
    location, rotation = sensor_world_pose(snapshot.location_m[row], snapshot.rotation_rad[row],
                                           sensor.mount.to_pose())
    return Transform.from_arrays(location, rotation)


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
