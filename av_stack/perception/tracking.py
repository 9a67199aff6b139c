"""Track ids across frames for detectors that see one frame at a time (the classical and learned stages).

:class:`CentreTracker` associates each frame's box centres with the last
frame's, the ego's own motion (speedometer, gyroscope) taken out, nearest
first within a gate per kind; a box that matches keeps its track's id and
gets a smoothed over-ground velocity from the centre's displacement. Planners
that reason over tracks (the expert's braking, turning and parked-vehicle
logic) need the ids; without them every detection is a new object each tick.
"""

from __future__ import annotations

import math

import numpy as np


class CentreTracker:
    """Nearest-centre association of boxes across frames with the ego's motion removed: track ids and a
    smoothed over-ground velocity (ego frame)."""

    def __init__(self, gate_m: float = 2.0, smoothing: float = 0.5) -> None:
        self.gate_m, self.smoothing = gate_m, smoothing
        self.reset()

    def reset(self) -> None:
        """Forget every track."""
        self._centre = np.zeros((0, 2))
        self._velocity = np.zeros((0, 2))
        self._kind = np.zeros(0, np.int8)
        self._ids = np.zeros(0, np.int64)
        self._next_id = 0

    def update(self, kind: np.ndarray, centre_xy: np.ndarray, dt: float, forward_m: float, yaw_rad: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(track ids (N,), velocity (N, 2), whether each box continues a track (N,)) of this frame's boxes of
        ``kind`` (N,) at ``centre_xy`` (N, 2, ego frame); the ego moved ``forward_m`` and turned ``yaw_rad``
        since the last update ``dt`` seconds ago. A new track's velocity is zero."""
        kind = np.asarray(kind, np.int8).reshape(-1)
        centre = np.asarray(centre_xy, np.float64).reshape(-1, 2)
        n = len(kind)
        ids, velocity = np.full(n, -1, np.int64), np.zeros((n, 2))
        previous = self._centre - np.array([forward_m, 0.0])
        cos, sin = math.cos(yaw_rad), math.sin(yaw_rad)
        turn = np.array([[cos, -sin], [sin, cos]])
        previous = previous @ turn  # into the turned frame: rotate by -yaw
        taken = np.zeros(len(previous), bool)
        if len(previous) and n and dt > 0:
            distance = np.hypot(*(centre[:, None, :] - previous[None, :, :]).transpose(2, 0, 1))
            distance[kind[:, None] != self._kind[None, :]] = np.inf
            for k in np.argsort(distance.min(axis=1)):
                row = distance[k].copy()
                row[taken] = np.inf
                j = int(np.argmin(row))
                if row[j] <= self.gate_m:
                    taken[j] = True
                    ids[k] = self._ids[j]
                    raw = (centre[k] - previous[j]) / dt
                    velocity[k] = self.smoothing * (self._velocity[j] @ turn) + (1 - self.smoothing) * raw
        fresh = ids < 0
        ids[fresh] = self._next_id + np.arange(int(fresh.sum()))
        self._next_id += int(fresh.sum())
        velocity[fresh] = 0.0
        self._centre, self._velocity, self._kind, self._ids = centre.copy(), velocity.copy(), kind.copy(), ids.copy()
        return ids, velocity, ~fresh
