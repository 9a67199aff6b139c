"""Red-light, stop-sign and off-road events of free (policy-driven) vehicles, computed client-side.

CARLA's server reports collisions and lane invasions through sensors, but not
red-light or stop-sign runs (the Leaderboard computes those in the client, as
this does). The rules are the embedded world's (``EmbeddedWorld._lane_events``
and ``_static_layout_collisions``), so both backends raise the same events:

- red light: the vehicle moves from the lane ending at a junction onto one of
  its junction lanes while that lane's light is red;
- stop sign: it enters the junction from a stop-sign lane without having
  stood still (< 0.1 m/s) within 8 m of the stop line;
- off road: its centre leaves (or returns to) the driving area.
"""

from __future__ import annotations

import numpy as np

from sim.api import Event, OffRoadEvent, RedLightEvent, StopSignEvent, TrafficLightState
from sim.embedded.maps.geometry import AreaClass

STOPPED_MPS = 0.1
STOP_ZONE_M = 8.0
ON_ROAD = (AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.CROSSWALK)


class FreeVehicleMonitor:
    """Tracks watched vehicles' lanes from tick to tick and raises events when rules are broken."""

    def __init__(self, lanes, signals, area_raster) -> None:
        self.lanes, self.signals, self.raster = lanes, signals, area_raster
        self._state: dict[int, dict] = {}

    def forget(self, actor_id: int) -> None:
        """Stop watching ``actor_id``."""
        self._state.pop(actor_id, None)

    def update(self, frame: int, actor_ids: list[int], xy: np.ndarray, yaw: np.ndarray, speed: np.ndarray,
               light_state: np.ndarray) -> list[Event]:
        """Events of this tick for the watched vehicles at ``xy`` (K, 2) heading ``yaw`` with ``speed``."""
        events: list[Event] = []
        if not actor_ids:
            return events
        lanes, signals = self.lanes, self.signals
        lane, s_m, dist = lanes.project(xy, yaw)
        lane = np.where(dist < 3.0, lane, -1)
        area = self.raster.lookup(xy)
        for k, actor_id in enumerate(actor_ids):
            where = (float(xy[k, 0]), float(xy[k, 1]), 0.0)
            off = int(area[k]) not in ON_ROAD
            state = self._state.setdefault(actor_id, {"lane": -1, "s": 0.0, "stopped": False, "off": False})
            if off != state["off"]:
                events.append(OffRoadEvent(frame, actor_id, off, where))
                state["off"] = off
            before, now = state["lane"], int(lane[k])
            if before >= 0 and signals.lane_stop[before] >= 0 and speed[k] < STOPPED_MPS \
                    and lanes.length_m[before] - state["s"] < STOP_ZONE_M:
                state["stopped"] = True
            if before >= 0 and now >= 0 and now != before:
                entered = bool(lanes.is_junction[now]) and not lanes.is_junction[before] \
                    and now in lanes.successors[before]
                light = int(signals.lane_light[before])
                if entered and light >= 0 and light_state[light] == TrafficLightState.RED:
                    events.append(RedLightEvent(frame, actor_id, int(signals.light_id[light]), where))
                stop = int(signals.lane_stop[before])
                if entered and stop >= 0 and not state["stopped"]:
                    events.append(StopSignEvent(frame, actor_id, int(signals.stop_id[stop]), where))
                state["stopped"] = False
            state["lane"], state["s"] = now, float(s_m[k])
        return events
