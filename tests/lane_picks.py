"""Lanes that tests drive on, picked from any world's lane graph."""

from __future__ import annotations

import numpy as np


def straight_lane(world) -> int:
    """The longest lane outside junctions whose heading varies by less than 0.05 rad."""
    lanes = world.lanes
    for k in np.argsort(-lanes.length_m):
        headings = lanes.yaw_rad[lanes.offset[k]:lanes.offset[k] + lanes.count[k]]
        if not lanes.is_junction[k] and np.ptp(np.unwrap(headings)) < 0.05:
            return int(k)
    raise AssertionError("no straight lane")
