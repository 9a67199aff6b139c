"""The Gymnasium environment ``avsim/Driving-v0`` (registered when ``sim`` is imported).

See :mod:`sim.env.driving` for the environment, :mod:`sim.env.config` for its
configuration, :mod:`sim.env.bev` for the bird's-eye-view channels,
:mod:`sim.env.rewards` and :mod:`sim.env.metrics` for rewards and Leaderboard
scores, and :mod:`sim.scenarios.routes` for routes and route files.
"""

from __future__ import annotations

import gymnasium

ENV_ID = "avsim/Driving-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="sim.env.driving:DrivingEnv", disable_env_checker=False)
