"""Control stages: a plan and the pose to ``VehicleControl`` (:class:`av_stack.stages.Controller`).

Registered: ``pure_pursuit`` and ``stanley`` (each with the PID speed controller).
"""

from __future__ import annotations

from av_stack.registry import Registry

CONTROL: Registry = Registry("control")
CONTROL.register_lazy("pure_pursuit", "av_stack.control.tracking:PurePursuitController")
CONTROL.register_lazy("stanley", "av_stack.control.tracking:StanleyController")
