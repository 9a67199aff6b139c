"""The embedded simulator behind the :class:`sim.api.Backend` protocol."""

from __future__ import annotations

from types import TracebackType

from sim.api import MapInfo, Pose, VehicleControl, WorldSnapshot
from sim.embedded.config import WorldConfig
from sim.embedded.world import EmbeddedWorld


class EmbeddedBackend:
    """Server-less, deterministic backend; a context manager that releases the world on exit.

    >>> with EmbeddedBackend(WorldConfig(map="Town01")) as sim:
    ...     ego = sim.spawn_vehicle("vehicle.lincoln.mkz_2020", sim.map_info.spawn_points[0])
    ...     snapshot = sim.tick()
    """

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        self.dt_s = self.config.dt_s
        self._world: EmbeddedWorld | None = None
        self.map_info: MapInfo | None = None
        self.load_world(self.config.map, self.config.seed)

    @property
    def world(self) -> EmbeddedWorld:
        """The live world; raises once the backend is closed."""
        if self._world is None:
            raise RuntimeError("the embedded backend is closed")
        return self._world

    def load_world(self, map_name: str, seed: int | None = None) -> MapInfo:
        """Load a shipped town or an .xodr path; every actor is gone afterwards."""
        update = {"map": map_name} if seed is None else {"map": map_name, "seed": seed}
        self.config = self.config.model_copy(update=update)
        self._world = EmbeddedWorld(self.config)
        points = tuple(p.pose for p in self._world.spawn_points)
        self.map_info = MapInfo(self._world.source.name, self._world.source.xodr_text, points)
        return self.map_info

    def spawn_vehicle(self, blueprint_id: str, pose: Pose, *, autopilot: bool = False, role_name: str = "") -> int:
        """Spawn a vehicle; see :meth:`EmbeddedWorld.spawn_vehicle`."""
        return self.world.spawn_vehicle(blueprint_id, pose, autopilot=autopilot, role_name=role_name)

    def spawn_walker(self, pose: Pose | None = None) -> int:
        """Spawn one pedestrian (on the nearest sidewalk to ``pose``, or at random)."""
        if pose is None:
            return self.world.spawn_walkers(1)[0]
        return self.world.spawn_walker_at(pose)

    def destroy(self, actor_ids: list[int]) -> None:
        """Remove actors by id."""
        self.world.destroy(actor_ids)

    def set_autopilot(self, actor_id: int, enabled: bool = True) -> None:
        """Hand a vehicle to the traffic logic, or take it back."""
        self.world.set_autopilot(actor_id, enabled)

    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        """Control to hold from the next tick on."""
        self.world.apply_control(actor_id, control)

    def tick(self) -> WorldSnapshot:
        """Advance one fixed step."""
        return self.world.tick()

    def snapshot(self) -> WorldSnapshot:
        """The latest snapshot."""
        return self.world.snapshot()

    def close(self) -> None:
        """Drop the world; idempotent."""
        self._world = None

    def __enter__(self) -> "EmbeddedBackend":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
