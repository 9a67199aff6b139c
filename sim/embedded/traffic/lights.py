"""How traffic lights cycle in the embedded world.

Where lights and stop signs are, and which lanes they control, is map data
(:mod:`sim.maps.signals`). Here each junction's group cycles one light at a
time: green, yellow, then red while the others take their turn, with an
all-red gap between them. States are computed for all lights at once from the
simulation time.
"""

from __future__ import annotations

import math

import numpy as np
from sim.api import TrafficLightState
from sim.config import TrafficLightTiming
from sim.maps.signals import SignalLayout

_RED, _YELLOW, _GREEN = (int(TrafficLightState.RED), int(TrafficLightState.YELLOW), int(TrafficLightState.GREEN))


class TrafficLights:
    """Light states over time for a :class:`SignalLayout` (vectorised over lights).

    Each junction's cycle starts at a seeded random offset. Individual lights
    can be given their own timing, forced to a state, or frozen (as CARLA's
    ``TrafficLight.set_state`` / ``freeze``).
    """

    def __init__(self, layout: SignalLayout, timing: TrafficLightTiming | None = None,
                 rng: np.random.Generator | None = None) -> None:
        timing = timing or TrafficLightTiming()
        self.layout = layout
        n = layout.num_lights
        self.green_s = np.full(n, timing.green_s)
        self.yellow_s = np.full(n, timing.yellow_s)
        self.all_red_s = np.full(n, timing.all_red_s)
        self.forced_state = np.full(n, -1, dtype=np.int8)
        rng = rng or np.random.default_rng(0)
        junctions = np.unique(layout.junction_id)
        offsets = rng.uniform(0.0, 1.0, size=junctions.size)
        self._junction_phase = offsets[np.searchsorted(junctions, layout.junction_id)] if n else np.zeros(0)
        self._recompute()
        self.state = self.states_at(0.0)

    def _recompute(self) -> None:
        layout = self.layout
        n = layout.num_lights
        slot = self.green_s + self.yellow_s + self.all_red_s
        self._start = np.zeros(n)
        self._cycle = np.zeros(n)
        for junction in np.unique(layout.junction_id):
            members = np.flatnonzero(layout.junction_id == junction)
            members = members[np.argsort(layout.group_order[members])]
            starts = np.concatenate([[0.0], np.cumsum(slot[members])[:-1]])
            self._start[members] = starts
            self._cycle[members] = slot[members].sum()
        self._offset = self._junction_phase * self._cycle
        self._cached_from, self._next_change = np.inf, -np.inf  # invalidate update()'s cache

    @property
    def cycle_s(self) -> np.ndarray:
        """Length [s] of each light's junction cycle (L,): every light of a junction gets its turn in it."""
        return self._cycle

    @property
    def red_s(self) -> np.ndarray:
        """Time [s] each light spends red per cycle (L,): the cycle less its own green and yellow."""
        return np.maximum(self._cycle - self.green_s - self.yellow_s, 0.0)

    def set_timing(self, light: int, green_s: float | None = None, yellow_s: float | None = None,
                   all_red_s: float | None = None) -> None:
        """Change one light's durations [s]; its junction's cycle is re-planned."""
        for name, value in (("green_s", green_s), ("yellow_s", yellow_s), ("all_red_s", all_red_s)):
            if value is not None:
                if not math.isfinite(value) or value < 0 or (name == "green_s" and value == 0):
                    raise ValueError(f"{name} must be a finite duration > 0 (>= 0 for yellow/all-red), got {value}")
                getattr(self, name)[light] = value
        self._recompute()

    def force_state(self, light: int, state: TrafficLightState | int | None) -> None:
        """Hold ``light`` in ``state`` (``None`` releases it back to its cycle)."""
        self.forced_state[light] = -1 if state is None else int(TrafficLightState(state))
        self._cached_from, self._next_change = np.inf, -np.inf

    def states_at(self, time_s: float) -> np.ndarray:
        """States (L,) int8 of every light at ``time_s``."""
        return self._states_and_next_change(time_s)[0]

    def _states_and_next_change(self, time_s: float) -> tuple[np.ndarray, float]:
        phase = np.mod(time_s + self._offset - self._start, np.maximum(self._cycle, 1e-9))
        end_green = self.green_s
        end_yellow = self.green_s + self.yellow_s
        state = np.where(phase < end_green, _GREEN, np.where(phase < end_yellow, _YELLOW, _RED)).astype(np.int8)
        state = np.where(self.forced_state >= 0, self.forced_state, state).astype(np.int8)
        until = np.where(phase < end_green, end_green - phase,
                         np.where(phase < end_yellow, end_yellow - phase, self._cycle - phase))
        next_change = time_s + (float(until.min()) if until.size else np.inf)
        return state, next_change

    def update(self, time_s: float) -> np.ndarray:
        """Advance to ``time_s``; returns and stores the states (recomputed only when one changes)."""
        if not self._cached_from <= time_s < self._next_change:
            self.state, self._next_change = self._states_and_next_change(time_s)
            self._cached_from = time_s
        return self.state

    def lane_states(self, lanes: np.ndarray) -> np.ndarray:
        """State of the light at the end of each lane; -1 where no light controls it."""
        light = self.layout.lane_light[lanes]
        if self.state.size == 0:
            return np.full(lanes.shape, -1, dtype=np.int8)
        return np.where(light >= 0, self.state[np.maximum(light, 0)], -1).astype(np.int8)
