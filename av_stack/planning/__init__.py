"""Planning stages: what is seen and where the ego is to a plan (:class:`av_stack.stages.Planner`).

Registered: ``expert`` (the route follower with privileged-quality inputs) and ``rl`` (the trained SB3
policy on perception's BEV, :mod:`av_stack.planning.rl`).
"""

from __future__ import annotations

from av_stack.registry import Registry

PLANNING: Registry = Registry("planning")
PLANNING.register_lazy("expert", "av_stack.planning.expert:ExpertPlanner")
PLANNING.register_lazy("rl", "av_stack.planning.rl.stage:RLPlanner")
