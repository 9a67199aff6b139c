"""What a stage is: a class with ``reset(mission)`` and one step method from messages to a message.

Each protocol is checked structurally (``isinstance`` works on them); the
registries that hold implementations are in :mod:`av_stack.stack`'s
:data:`~av_stack.stack.REGISTRIES`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from av_stack.messages import Mission, PerceptionOutput, Plan, PoseEstimate, SensorFrame, VehicleControl


@runtime_checkable
class Perception(Protocol):
    """Sensors to a BEV, detections and the governing light."""

    def reset(self, mission: Mission) -> None:
        """Forget the previous episode."""

    def step(self, frame: SensorFrame) -> PerceptionOutput:
        """This tick's perception."""


@runtime_checkable
class Localization(Protocol):
    """Sensors to the ego's pose."""

    def reset(self, mission: Mission) -> None:
        """Forget the previous episode."""

    def step(self, frame: SensorFrame) -> PoseEstimate:
        """This tick's pose estimate."""


@runtime_checkable
class Planner(Protocol):
    """What is seen and where the ego is to a plan (a trajectory with speeds, or a direct control)."""

    def reset(self, mission: Mission) -> None:
        """Take the new mission (route, map, vehicle)."""

    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        """This tick's plan."""


@runtime_checkable
class Controller(Protocol):
    """A plan and the pose to the vehicle's control."""

    def reset(self, mission: Mission) -> None:
        """Forget integrator state; read the vehicle's parameters."""

    def step(self, plan: Plan, pose: PoseEstimate) -> VehicleControl:
        """This tick's control."""
