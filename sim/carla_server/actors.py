"""Actors over RPC: spawn and destroy, look up, control, move, physics, vehicle lights, boxes, the spectator.

A vehicle's CARLA transform is the embedded snapshot's location, the ground
point under its box centre (as CARLA's vehicle origins); its bounding box is
centred ``extent.z`` above that. Spawning ignores the requested z (vehicles
stand on the ground). Vehicles can be moved (``set_transform`` /
``set_location``: x, y and yaw, on the ground), given a forward speed
(``set_target_velocity``: the part along the heading) and held at rest
(``set_simulate_physics(False)``). The spectator's transform is only stored.
Walkers and sensors are spawned by ``walkers`` and ``sensor_streams``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sim.api import ActorKind, Pose, SpawnError, VehicleControl
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import ActorDescription, Transform, VehicleControlMsg
from sim.carla_server.sensor_streams import SensorStreams
from sim.carla_server.state import SPECTATOR_ID, ServerState, SpawnedVehicle, UnsupportedError
from sim.carla_server.walkers import WalkerHandlers

__all__ = ["ATTACHMENT_TYPES", "ActorHandlers"]

ATTACHMENT_TYPES = (0, 1, 2)
"""``carla.AttachmentType`` values: Rigid, SpringArm, SpringArmGhost (all mounted rigidly here)."""


class ActorHandlers:
    """The actor RPCs of one server; walkers and sensors are spawned through their own handlers."""

    def __init__(self, state: ServerState, walkers: WalkerHandlers, sensors: SensorStreams) -> None:
        self.state = state
        self.walkers = walkers
        self.sensors = sensors
        self._definitions = {d.id: d for d in enc.all_definitions()}

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        state = self.state
        return {
            "get_actor_definitions": lambda: enc.ok([d.to_msg() for d in self._definitions.values()]),
            "spawn_actor": self.spawn_actor,
            "spawn_actor_with_parent": self.spawn_actor_with_parent,
            "destroy_actor": self.destroy_actor,
            "get_actors_by_id": lambda ids: enc.ok([state.actor_msg(int(a)) for a in ids if state.exists(int(a))]),
            "get_actor_bounding_box": self.bounding_box,
            "get_spectator": lambda: enc.ok(state.actor_msg(SPECTATOR_ID)),
            "apply_control_to_vehicle": self.apply_control,
            "get_vehicle_light_states": lambda: enc.ok([[a, state.lights_on.get(a, 0)] for a in state.vehicle_ids()]),
            # rpc::VehicleLightState is a one-field struct: [flags] on the wire, both ways
            "get_vehicle_light_state": lambda actor_id: enc.ok([self._vehicle_light_state(int(actor_id))]),
            "set_vehicle_light_state": self.set_vehicle_light_state,
            "set_actor_simulate_physics": self.set_simulate_physics,
            "set_actor_collisions": self.set_collisions,
            "set_actor_transform": self.set_transform,
            "set_actor_location": self.set_location,
            "set_actor_target_velocity": self.set_target_velocity,
            "get_physics_control": lambda actor_id: enc.ok(enc.vehicle_physics_control_msg(
                state.vehicle_info(int(actor_id)).vehicle_type)),
        }

    # ------------------------------------------------------------------ spawn and destroy
    def spawn_actor(self, description: list, transform: list) -> list:
        """``World.spawn_actor`` without a parent."""
        return enc.ok(self.spawn(ActorDescription.from_msg(description), Transform.from_msg(transform), 0))

    def spawn_actor_with_parent(self, description: list, transform: list, parent: int, attachment: int = 0,
                                socket_name: str = "") -> list:
        """``World.spawn_actor`` attached to ``parent``.

        Every ``carla.AttachmentType`` (Rigid, SpringArm, SpringArmGhost) is a rigid mount at the given
        offset: the embedded world has no spring arm (its lag and camera collision), so a chase camera follows
        its vehicle exactly.
        """
        if int(attachment) not in ATTACHMENT_TYPES:
            raise UnsupportedError(f"attachment type {attachment} (Rigid 0, SpringArm 1 and SpringArmGhost 2 are "
                                   "supported, all as rigid mounts)")
        return enc.ok(self.spawn(ActorDescription.from_msg(description), Transform.from_msg(transform),
                                 int(parent)))

    def spawn(self, description: ActorDescription, transform: Transform, parent_id: int) -> list:
        """Spawn a vehicle, a walker, a walker controller or an attached sensor; returns its Actor message."""
        if description.id not in self._definitions:
            raise ValueError(f"unknown blueprint {description.id!r}; this server offers: "
                             f"{', '.join(sorted(self._definitions))}")
        if description.id in enc.WALKER_BLUEPRINTS:
            actor_id = self.walkers.spawn_walker(description, transform, parent_id)
        elif description.id == enc.WALKER_CONTROLLER:
            actor_id = self.walkers.spawn_controller(description, parent_id)
        elif description.id.startswith("vehicle."):
            actor_id = self._spawn_vehicle(description, transform, parent_id)
        else:
            actor_id = self.sensors.spawn_sensor(description, transform, parent_id)
        return self.state.actor_msg(actor_id)

    def _spawn_vehicle(self, description: ActorDescription, transform: Transform, parent_id: int) -> int:
        if parent_id:
            raise UnsupportedError("vehicles cannot be attached to a parent")
        try:
            actor_id = self.state.world.spawn_vehicle(description.id, transform.to_pose(),
                                                      role_name=description.attributes.get("role_name", ""))
        except SpawnError as exc:
            raise SpawnError(f"Spawn failed because of collision at spawn position ({exc})") from None
        self.state.vehicles[actor_id] = SpawnedVehicle(description)
        return actor_id

    def destroy_actor(self, actor_id: int) -> list:
        """``Actor.destroy``."""
        self.destroy(actor_id)
        return enc.ok(True)

    def destroy(self, actor_id: int) -> None:
        """Destroy an actor and the walker controllers attached to it.

        Its sensors stay, fixed in the world where they were (as CARLA's: a script may destroy a vehicle before
        its cameras).
        """
        state = self.state
        actor_id = int(actor_id)
        if actor_id in state.sensors:
            sensor = state.sensors.pop(actor_id)
            state.streams.drop_stream(sensor.stream_id)
            return
        if state.controllers.pop(actor_id, None) is not None:
            return
        if state.is_light(actor_id):
            raise UnsupportedError(f"actor {actor_id} is a traffic light of the map; it cannot be destroyed")
        if actor_id not in state.world.actors:
            raise KeyError(f"actor {actor_id} not found")
        for child in [s.actor_id for s in state.sensors.values() if s.parent_id == actor_id]:
            self.sensors.detach(child)
        for child in [c.actor_id for c in state.controllers.values() if c.parent_id == actor_id]:
            self.destroy(child)
        if len(state.destroyed_boxes) > 10_000:
            state.destroyed_boxes.clear()
        state.destroyed_boxes[actor_id] = state.actor_msg(actor_id)[3]
        state.world.destroy([actor_id])
        state.vehicles.pop(actor_id, None)
        state.held.pop(actor_id, None)
        state.lights_on.pop(actor_id, None)
        state.walker_descriptions.pop(actor_id, None)

    def bounding_box(self, actor_id: int) -> list:
        """An actor's box; a destroyed one keeps answering its last box.

        The client's Traffic Manager asks for the boxes of the vehicles in the last episode state it saw, from its
        own thread; an error for one destroyed since would abort the client.
        """
        actor_id = int(actor_id)
        if actor_id in self.state.destroyed_boxes and not self.state.exists(actor_id):
            return enc.ok(self.state.destroyed_boxes[actor_id])
        return enc.ok(self.state.actor_msg(actor_id)[3])

    # ------------------------------------------------------------------ control and vehicle lights
    def apply_control(self, actor_id: int, message: list) -> list:
        """``Vehicle.apply_control``."""
        self.control(int(actor_id), VehicleControlMsg.from_msg(message))
        return enc.ok_void()

    def control(self, actor_id: int, control: VehicleControlMsg) -> None:
        """Drive a vehicle with ``control``; a held vehicle keeps braking and only remembers it."""
        state = self.state
        if actor_id not in state.held:
            state.world.apply_control(actor_id, VehicleControl(control.throttle, control.steer, control.brake,
                                                               control.hand_brake, control.reverse))
        if actor_id in state.vehicles:
            state.vehicles[actor_id].control = control

    def _vehicle_light_state(self, actor_id: int) -> int:
        self.state.vehicle_info(actor_id)
        return self.state.lights_on.get(actor_id, 0)

    def set_vehicle_light_state(self, actor_id: int, flags: int | list) -> list:
        """Vehicle lights (``carla.VehicleLightState`` flags) are stored and reported; nothing is lit in images.

        ``Vehicle.set_light_state`` sends ``rpc::VehicleLightState`` (``[flags]``), without waiting for the answer.
        """
        if isinstance(flags, (list, tuple)) and len(flags) == 1:
            flags = flags[0]
        self.state.vehicle_info(int(actor_id))
        self.state.lights_on[int(actor_id)] = int(flags)
        return enc.ok_void()

    # ------------------------------------------------------------------ physics, transforms, velocities
    def set_collisions(self, actor_id: int, enabled: bool) -> list:
        """Accepted for existing actors (the walker AI turns its walker's collisions off); the world ignores it."""
        if not self.state.exists(int(actor_id)):
            raise KeyError(f"actor {actor_id} not found")
        return enc.ok_void()

    def set_simulate_physics(self, actor_id: int, enabled: bool) -> list:
        """Off, a vehicle is held where it is (or where ``set_transform`` puts it), at rest; on, it drives again.

        Other actors accept and ignore it. (The Traffic Manager calls it from its own thread for vehicles it
        unregisters, also just destroyed ones: those answer success.)
        """
        state = self.state
        actor_id = int(actor_id)
        if not state.exists(actor_id):
            if actor_id not in state.destroyed_boxes:
                raise KeyError(f"actor {actor_id} not found")
            return enc.ok_void()
        info = state.world.actors.get(actor_id)
        if info is None or info.kind != ActorKind.VEHICLE:
            return enc.ok_void()
        if enabled:
            if state.held.pop(actor_id, None) is not None:
                self.control(actor_id, state.vehicles[actor_id].control if actor_id in state.vehicles
                             else VehicleControlMsg())
        elif actor_id not in state.held:
            state.held[actor_id] = state.actor_pose(actor_id)
            state.world.apply_control(actor_id, VehicleControl(brake=1.0))
        return enc.ok_void()

    def set_transform(self, actor_id: int, message: list) -> list:
        """``set_transform``: the spectator anywhere; a vehicle to ``(x, y, yaw)`` on the ground, keeping its speed."""
        self.move(int(actor_id), Transform.from_msg(message))
        return enc.ok_void()

    def set_location(self, actor_id: int, location: list) -> list:
        """``set_location``: as ``set_transform`` with the actor's current rotation."""
        state = self.state
        actor_id = int(actor_id)
        x, y, z = (float(v) for v in location)
        if actor_id == SPECTATOR_ID:
            current = state.spectator
            self.move(actor_id, Transform(x, y, z, current.pitch, current.yaw, current.roll))
        else:
            info = state.world.actors.get(actor_id)
            if info is None or info.kind not in (ActorKind.VEHICLE, ActorKind.WALKER):
                raise KeyError(f"actor {actor_id} is not a vehicle or a walker")
            yaw = math.degrees(state.actor_pose(actor_id).yaw_rad)
            self.move(actor_id, Transform(x, y, z, 0.0, yaw, 0.0))
        return enc.ok_void()

    def move(self, actor_id: int, transform: Transform) -> None:
        """Put the spectator, a walker (its box centre) or a vehicle (on the ground) at ``transform``."""
        state = self.state
        if actor_id == SPECTATOR_ID:
            state.spectator = transform
            return
        info = state.world.actors.get(actor_id)
        if info is not None and info.kind == ActorKind.WALKER:  # its location is its box centre, as CARLA's
            state.world.teleport(actor_id, transform.to_pose())
            return
        state.vehicle_info(actor_id)  # lights and sensors cannot be moved here
        pose = Pose(transform.x, transform.y, 0.0, math.radians(transform.yaw))
        state.world.teleport(actor_id, pose)
        if actor_id in state.held:
            state.held[actor_id] = pose

    def set_target_velocity(self, actor_id: int, velocity: list) -> list:
        """``set_target_velocity``: the vehicle's forward speed becomes the velocity along its heading.

        (The embedded bicycle model has no sideways slip to set: the lateral part is dropped.)
        """
        state = self.state
        actor_id = int(actor_id)
        state.vehicle_info(actor_id)
        vx, vy, _ = (float(v) for v in velocity)
        pose = state.actor_pose(actor_id)
        if actor_id not in state.held:
            state.world.teleport(actor_id, pose, vx * math.cos(pose.yaw_rad) + vy * math.sin(pose.yaw_rad))
        return enc.ok_void()
