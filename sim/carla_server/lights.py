"""Traffic lights over RPC: set, freeze and reset the embedded lights; their records in the episode state.

Light ``k`` of the embedded signal layout is actor ``LIGHT_ID_BASE + k``
(``traffic.traffic_light``); its OpenDRIVE id, timing, frozen flag and state
travel in the episode state. ``set_state`` holds a state until
``freeze(False)`` or a reset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.api import TrafficLightState
from sim.carla_server import encoding as enc
from sim.carla_server.state import LIGHT_ID_BASE, ServerState

__all__ = ["TrafficLightHandlers"]


class TrafficLightHandlers:
    """The traffic-light RPCs of one server."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        return {
            "query_lights_state": lambda *_: enc.ok([]),
            "reset_all_traffic_lights": self.reset_all,
            "set_traffic_light_state": self.set_state,
            "freeze_traffic_light": self.freeze,
            "freeze_all_traffic_lights": self.freeze_all,
        }

    def reset_all(self) -> list:
        """``World.reset_all_traffic_lights``: every light back to its cycle, none frozen."""
        world = self.state.world
        for light in range(world.signals.num_lights):
            world.lights.force_state(light, None)
        self.state.light_frozen[:] = False
        return enc.ok_void()

    def set_state(self, actor_id: int, state: int) -> list:
        """``TrafficLight.set_state``: the light holds ``state`` until ``freeze(False)`` or a reset.

        (CARLA's cycle would go on from the new state unless frozen; the embedded lights can only hold it.)
        """
        light_state = TrafficLightState(int(state))
        self.state.world.lights.force_state(self.state.light_index(actor_id), light_state)
        self._refresh()
        return enc.ok_void()

    def freeze(self, actor_id: int, frozen: bool) -> list:
        """``TrafficLight.freeze``: True holds the current state, False hands the light back to its cycle."""
        self._freeze(self.state.light_index(actor_id), bool(frozen))
        self._refresh()
        return enc.ok_void()

    def freeze_all(self, frozen: bool) -> list:
        """``World.freeze_all_traffic_lights``."""
        for index in range(self.state.world.signals.num_lights):
            self._freeze(index, bool(frozen))
        self._refresh()
        return enc.ok_void()

    def _freeze(self, index: int, frozen: bool) -> None:
        world = self.state.world
        self.state.light_frozen[index] = frozen
        world.lights.force_state(index, int(world.light_state[index]) if frozen else None)

    def _refresh(self) -> None:
        """Recompute the light states at the current time (a forced state shows before the next tick)."""
        world = self.state.world
        world.light_state = world.lights.update(world.time_s)


def light_records(state: ServerState, records: np.ndarray, first_row: int) -> None:
    """Fill one episode-state record per traffic light from ``first_row``: OpenDRIVE id, timing, pole index (cycle
    order), frozen flag, state."""
    world = state.world
    signals, lights = world.signals, world.lights
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
    data["red_time"] = lights.red_s
    data["pole_index"] = signals.group_order
    data["frozen"] = state.light_frozen
    data["state"] = world.light_state
    enc.set_union(records, rows, data)
