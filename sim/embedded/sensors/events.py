"""Event sensors: ``sensor.other.collision`` and ``sensor.other.lane_invasion``.

They report what the world found for their parent during the tick
(``WorldSnapshot.events``). ``measure`` returns None on ticks without such an
event and one measurement on a tick with any: CARLA calls a listener once per
event, while here the events of one tick come together in one measurement, in
the world's order. Neither blueprint has a ``sensor_tick`` (as in CARLA, whose
event sensors only take ``role_name``).
"""

from __future__ import annotations


import numpy as np

from sim.api import CollisionEvent, LaneInvasionEvent, Pose, WorldSnapshot
from sim.sensors.measurements import CollisionData
from sim.embedded.sensors.base import Sensor, SensorMeasurement

__all__ = ["CollisionData", "CollisionSensor", "LaneInvasionSensor"]


class CollisionSensor(Sensor):
    """Reports the parent's collisions.

    ``data`` of a measurement: ``tuple[CollisionData, ...]``, one per collision
    event of the parent in that tick (usually one).
    """

    blueprint_id = "sensor.other.collision"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None) -> None:
        super().__init__(parent_id, transform, name=name)

    def measure(self, world: object, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """The parent's collisions in this tick, or None when there was none (``world`` is not used)."""
        if not snapshot.events:
            return None
        hits = []
        for event in snapshot.events:
            if isinstance(event, CollisionEvent) and event.actor_id == self.parent_id:
                impulse = np.array(event.impulse_ns, dtype=float)
                impulse.flags.writeable = False
                hits.append(CollisionData(event.other_id, event.other_kind, impulse))
        if not hits:
            return None
        location, rotation, _ = self._world_pose(snapshot, self._parent_row(snapshot))
        return self._measurement(snapshot, location, rotation, tuple(hits))


class LaneInvasionSensor(Sensor):
    """Reports lane markings the parent's box crossed.

    ``data`` of a measurement: ``tuple[str, ...]``, the crossed markings'
    ``carla.LaneMarkingType`` names ("Broken", "Solid", "SolidSolid", ...), in
    the order crossed during that tick.
    """

    blueprint_id = "sensor.other.lane_invasion"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None) -> None:
        super().__init__(parent_id, transform, name=name)

    def measure(self, world: object, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """The markings crossed in this tick, or None when none was (``world`` is not used)."""
        if not snapshot.events:
            return None
        crossed: list[str] = []
        for event in snapshot.events:
            if isinstance(event, LaneInvasionEvent) and event.actor_id == self.parent_id:
                crossed.extend(event.marking_types)
        if not crossed:
            return None
        location, rotation, _ = self._world_pose(snapshot, self._parent_row(snapshot))
        return self._measurement(snapshot, location, rotation, tuple(crossed))
