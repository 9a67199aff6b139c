"""Walkers over RPC: spawning walkers and their AI controllers, walker control, and the navigation mesh.

``walker.pedestrian.*`` spawn on the nearest point of the pedestrian network
and stand there, as a CARLA walker without a controller does, until a client
moves them (``WalkerControl``, or the walker AI's states). CARLA's walker AI runs in the client: it asks for
the map's navigation file (``get_required_files("Nav")``, ``request_file``), a
Detour navmesh built from the walkable mesh of the map
(``sim.embedded.traffic.walkable``, written by ``sim.carla_server.detour``),
then sends each walker's position every tick (batch command ApplyWalkerState:
the foot point on the mesh, a heading and a speed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from sim.api import ActorKind, Pose, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.detour import encode_navmesh, navmesh_file_name
from sim.carla_server.encoding import ActorDescription, Transform
from sim.carla_server.state import ControllerActor, ServerState, UnsupportedError
from sim.embedded.traffic.walkable import build_walkable_mesh

__all__ = ["WalkerHandlers", "walker_records"]

log = logging.getLogger(__name__)


class WalkerHandlers:
    """The walker RPCs of one server, and the walker spawning that ``actors`` hands over."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        return {
            "apply_control_to_walker": self.apply_control,
            "set_actor_dead": self.set_dead,
            "get_navigation_mesh": lambda: enc.ok(self.navigation_file()[1]),
            "get_required_files": self.required_files,
            "request_file": self.request_file,
        }

    # ------------------------------------------------------------------ spawning
    def spawn_walker(self, description: ActorDescription, transform: Transform, parent_id: int) -> int:
        """A pedestrian near ``transform`` (on the nearest sidewalk); returns its actor id."""
        if parent_id:
            raise UnsupportedError("walkers cannot be attached to a parent")
        actor_id = self.state.world.spawn_walker_at(transform.to_pose())
        self.state.walker_descriptions[actor_id] = description
        return actor_id

    def spawn_controller(self, description: ActorDescription, parent_id: int) -> int:
        """A walker AI controller attached to walker ``parent_id``; returns its actor id."""
        parent = self.state.world.actors.get(parent_id)
        if parent is None or parent.kind != ActorKind.WALKER:
            raise UnsupportedError(f"{enc.WALKER_CONTROLLER} must be attached to a walker, got parent "
                                   f"{parent_id or 'none'}")
        actor_id = self.state.new_actor_id()
        self.state.controllers[actor_id] = ControllerActor(actor_id, description, parent_id)
        return actor_id

    # ------------------------------------------------------------------ control
    def apply_control(self, actor_id: int, message: list) -> list:
        """``Walker.apply_control``."""
        self.control(int(actor_id), enc.WalkerControlMsg.from_msg(message))
        return enc.ok_void()

    def control(self, actor_id: int, control: enc.WalkerControlMsg) -> None:
        """Walk in ``control``'s direction at its speed."""
        self.state.world.apply_walker_control(actor_id, control.direction[:2], control.speed)

    def walker_state(self, actor_id: int, transform: Transform, speed: float) -> None:
        """CARLA's ApplyWalkerState from the client's walker AI: the foot point on the navigation mesh, a heading
        and a speed; the walker's box centre goes half its height above that point."""
        info = self.state.walker_info(actor_id)
        pose = Pose(transform.x, transform.y, transform.z + info.extent_m[2], math.radians(transform.yaw))
        self.state.world.teleport(actor_id, pose, max(float(speed), 0.0))

    def set_dead(self, actor_id: int) -> list:
        """A walker the client's crowd saw run over: it stops where it is (CARLA lets it fall as a ragdoll)."""
        actor_id = int(actor_id)
        self.state.walker_info(actor_id)
        self.state.world.apply_walker_control(actor_id, (1.0, 0.0), 0.0)
        return enc.ok_void()

    # ------------------------------------------------------------------ navigation mesh
    def navigation_file(self) -> tuple[str, bytes]:
        """The map's navigation mesh as CARLA's client loads it: (cache file name, bytes); built once per map."""
        state = self.state
        if state.navmesh is None:
            world = state.world
            data = encode_navmesh(build_walkable_mesh(world.geometry, world.walker_network, world.lanes))
            state.navmesh = (navmesh_file_name(world.source.name, data), data)
            log.info("navigation mesh %s: %d bytes", state.navmesh[0], len(data))
        return state.navmesh

    def required_files(self, folder: str = "") -> list:
        """Files the client should cache: the navigation mesh for "Nav" (the map itself travels by RPC)."""
        return enc.ok([self.navigation_file()[0]] if str(folder).strip("/") == "Nav" else [])

    def request_file(self, name: str) -> list:
        """The bytes of a file named by ``get_required_files``."""
        nav_name, data = self.navigation_file()
        if str(name) != nav_name:
            raise ValueError(f"no file {name!r} on this server (it offers {nav_name!r})")
        return enc.ok(data)


def walker_records(snapshot: WorldSnapshot, records: np.ndarray) -> None:
    """The walkers' direction and speed in their episode-state records (rows of ``snapshot``)."""
    rows = np.flatnonzero(snapshot.kind == int(ActorKind.WALKER))
    if rows.size == 0:
        return
    data = np.zeros(rows.size, dtype=enc.WALKER_DATA_DTYPE)
    velocity = snapshot.velocity_mps[rows]
    speed = np.linalg.norm(velocity, axis=1)
    data["direction"] = velocity / np.maximum(speed, 1e-9)[:, None]
    data["speed"] = speed
    enc.set_union(records, rows, data)
