"""Red-light, stop-sign and off-road events of free (policy-driven) vehicles on a CARLA server.

CARLA's server reports collisions and lane invasions through sensors, but not
red-light or stop-sign runs; the rules are :mod:`sim.rules.traffic`, the same
the embedded world applies, so both backends raise the same events.
"""

from __future__ import annotations

import numpy as np

from sim.api import Event
from sim.rules.traffic import LaneRuleState, junction_events, off_road, off_road_events, project_to_lanes


class FreeVehicleMonitor:
    """Tracks watched vehicles' lanes from tick to tick and raises events when rules are broken."""

    def __init__(self, lanes, signals, area_raster) -> None:
        self.lanes, self.signals, self.raster = lanes, signals, area_raster
        self._state: dict[int, LaneRuleState] = {}
        self._off: dict[int, bool] = {}

    def forget(self, actor_id: int) -> None:
        """Stop watching ``actor_id``."""
        self._state.pop(actor_id, None)
        self._off.pop(actor_id, None)

    def update(self, frame: int, actor_ids: list[int], xy: np.ndarray, yaw: np.ndarray, speed: np.ndarray,
               light_state: np.ndarray, z: np.ndarray | None = None) -> list[Event]:
        """Events of this tick for the watched vehicles at ``xy`` (K, 2) heading ``yaw`` with ``speed``; with
        their ground heights ``z`` (K,) the lanes and the road area of the level each is on (on a bridge the
        bridge, under it the road below)."""
        if not actor_ids:
            return []
        lane, s_m = project_to_lanes(self.lanes, xy, yaw, z)
        now_off = off_road(self.raster.lookup(xy, z))
        was_off = np.array([self._off.get(a, False) for a in actor_ids])
        events = off_road_events(frame, np.asarray(actor_ids), xy, now_off, was_off)
        for k, actor_id in enumerate(actor_ids):
            self._off[actor_id] = bool(now_off[k])
            state = self._state.setdefault(actor_id, LaneRuleState())
            events += junction_events(frame, actor_id, state, int(lane[k]), float(s_m[k]), float(speed[k]),
                                      (float(xy[k, 0]), float(xy[k, 1]), 0.0), self.lanes, self.signals, light_state)
        return events
