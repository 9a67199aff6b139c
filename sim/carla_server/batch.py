"""``apply_batch``: CARLA's batch commands, each run by the handler that owns it.

Supported: SpawnActor (with ``then``), DestroyActor, ApplyVehicleControl,
ApplyWalkerControl, ApplyTransform, ApplyWalkerState, ApplyTargetVelocity,
SetSimulatePhysics, SetAutopilot, SetVehicleLightState, ApplyLocation,
SetTrafficLightState; the others answer an error naming their index.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.api import SpawnError
from sim.carla_server import encoding as enc
from sim.carla_server.actors import ActorHandlers
from sim.carla_server.encoding import ActorDescription, Transform, VehicleControlMsg
from sim.carla_server.lights import TrafficLightHandlers
from sim.carla_server.state import ServerState, UnsupportedError
from sim.carla_server.walkers import WalkerHandlers

__all__ = ["BatchCommands"]


class BatchCommands:
    """The ``apply_batch`` RPC; ``step`` advances the world (a ticking batch in synchronous mode)."""

    def __init__(self, state: ServerState, actors: ActorHandlers, walkers: WalkerHandlers,
                 lights: TrafficLightHandlers, step: Callable[[], object]) -> None:
        self.state = state
        self.actors = actors
        self.walkers = walkers
        self.lights = lights
        self.step = step

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        return {"apply_batch": self.apply_batch}

    def apply_batch(self, commands: list, do_tick_cue: bool = False) -> list:
        """Run commands in order; answers a plain list of CommandResponse (not wrapped)."""
        responses = [self.command(command) for command in commands]
        if do_tick_cue and self.state.settings.synchronous_mode:
            self.step()
        return responses

    def command(self, command: list, future_actor: int = 0) -> list:
        """One ``Command`` (``[[index, value]]``); returns ``[[1, actor_id]]`` or an error response.

        ``future_actor`` is the actor a SpawnActor's ``then`` commands refer to (their actor id 0).
        """
        actors = self.actors
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
                actor_id = int(actors.spawn(description, transform, parent)[0])
                for then in after:
                    self.command(then, actor_id)
                return [[1, actor_id]]
            actor_id = int(value[0]) or future_actor
            if index == 1:
                actors.destroy(actor_id)
            elif index == 2:
                actors.control(actor_id, VehicleControlMsg.from_msg(value[1]))
            elif index == 4:
                self.walkers.control(actor_id, enc.WalkerControlMsg.from_msg(value[1]))
            elif index == 6:
                actors.move(actor_id, Transform.from_msg(value[1]))
            elif index == 7:
                self.walkers.walker_state(actor_id, Transform.from_msg(value[1]), float(value[2]))
            elif index == 8:
                actors.set_target_velocity(actor_id, value[1])
            elif index == 14:
                actors.set_simulate_physics(actor_id, bool(value[1]))
            elif index == 18:
                actors.set_vehicle_light_state(actor_id, value[1])
            elif index == 19:
                actors.set_location(actor_id, value[1])
            elif index == 16:
                # The client's Traffic Manager registers the vehicle itself and drives it with
                # ApplyVehicleControl; the server only notes the flag (CARLA's server does the same).
                self.state.vehicle_info(actor_id)
            elif index == 21:
                self.lights.set_state(actor_id, value[1])
            else:
                raise UnsupportedError(f"batch command #{index} is not supported")
            return [[1, actor_id]]
        except (ValueError, KeyError, TypeError, IndexError, SpawnError, UnsupportedError) as exc:
            return [[0, [f"apply_batch: {exc}"]]]
