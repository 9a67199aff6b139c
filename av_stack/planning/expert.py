"""The privileged expert: pure pursuit on the route, slowing for hazards and stopping for lights.

It reads the environment's privileged state (route progress, hazard distance,
the next light on the route: ``DrivingEnv.progress``, ``hazard_distance`` and
``next_light``) rather than the observation. It is the reference a learned
policy is compared with, a check that routes are drivable, and the
demonstrator for imitation.
"""

from __future__ import annotations

import numpy as np

from sim.api import TrafficLightState
from sim.scenarios.library import steer_towards


class RouteFollower:
    """Pure pursuit on the route at ``speed_mps``, slowing for hazards and stopping for red or yellow lights.

    Only for the ``acc_steer`` action space.
    """

    def __init__(self, speed_mps: float = 6.0, lookahead_points: int = 6, steer_gain: float = 1.5) -> None:
        self.speed_mps = speed_mps
        self.lookahead_points = lookahead_points
        self.steer_gain = steer_gain

    def reset(self, env) -> None:
        """Nothing to reset."""

    def __call__(self, obs, env) -> np.ndarray:
        snapshot = env.world.snapshot()
        row = snapshot.index_of(env.ego_id)
        route, progress = env.route, env.progress
        x, y = snapshot.location_m[row, :2]
        target = route.points_xy[min(progress.index + self.lookahead_points, route.points_xy.shape[0] - 1)]
        steer = steer_towards(x, y, float(snapshot.rotation_rad[row, 1]), target, self.steer_gain)
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        hazard = env.hazard_distance(snapshot, row, progress)
        wanted = self.speed_mps if hazard > 15.0 else max(0.0, (hazard - 5.0) / 10.0 * self.speed_mps)
        light, light_m = env.next_light(snapshot, progress)
        if light in (TrafficLightState.RED, TrafficLightState.YELLOW) and light_m < 12.0:
            wanted = 0.0
        acc = 0.5 * (wanted - speed) - (1.0 if hazard < 5.0 or wanted == 0.0 else 0.0)
        return np.array([np.clip(acc, -1, 1), steer], dtype=np.float32)
