"""Planning stages: what is seen and where the ego is to a plan (:class:`av_stack.stages.Planner`).

Registered: ``expert`` (the route follower with privileged-quality inputs).
"""

from __future__ import annotations

from av_stack.registry import Registry

PLANNING: Registry = Registry("planning")
PLANNING.register_lazy("expert", "av_stack.planning.expert:ExpertPlanner")
