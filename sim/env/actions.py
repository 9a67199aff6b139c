"""Policy actions to CARLA ``VehicleControl``.

- ``acc_steer``: Box [-1, 1]^2 ``(acceleration, steer)``; positive
  acceleration is throttle, negative is brake (Roach's action space).
- ``throttle_brake_steer``: Box ``[0, 0, -1] .. [1, 1, 1]``.

NaN or infinite actions raise :class:`ActionError`; finite values outside the
box are clipped and reported (``clipped`` is True).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from sim.api import VehicleControl


class ActionError(ValueError):
    """An action the environment cannot apply (wrong shape, NaN, infinite)."""


@dataclass(frozen=True)
class ActionMapping:
    """The action space of one mode and its mapping to ``VehicleControl``."""

    mode: str
    space: spaces.Box

    def to_control(self, action: object) -> tuple[VehicleControl, bool, np.ndarray]:
        """(control, clipped, the clipped action as float32) for one action; ``ActionError`` on bad input."""
        try:
            values = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ActionError(f"action must be {self.space.shape[0]} numbers for mode {self.mode!r}, "
                              f"got {action!r}") from exc
        if values.shape != self.space.shape:
            raise ActionError(f"action must have shape {self.space.shape} for mode {self.mode!r}, "
                              f"got {np.shape(action)}")
        if not np.isfinite(values).all():
            raise ActionError(f"action has non-finite values {values.tolist()} (mode {self.mode!r}): "
                              "NaN or inf usually means the policy diverged")
        clipped = np.clip(values, self.space.low, self.space.high)
        was_clipped = bool(np.any(clipped != values))
        if self.mode == "acc_steer":
            acc, steer = float(clipped[0]), float(clipped[1])
            control = VehicleControl(throttle=max(acc, 0.0), brake=max(-acc, 0.0), steer=steer)
        else:
            control = VehicleControl(throttle=float(clipped[0]), brake=float(clipped[1]), steer=float(clipped[2]))
        return control, was_clipped, clipped.astype(np.float32)


def action_mapping(mode: str) -> ActionMapping:
    """The :class:`ActionMapping` of ``mode`` (``acc_steer`` or ``throttle_brake_steer``)."""
    if mode == "acc_steer":
        return ActionMapping(mode, spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32))
    if mode == "throttle_brake_steer":
        low = np.array([0.0, 0.0, -1.0], dtype=np.float32)
        return ActionMapping(mode, spaces.Box(low, np.ones(3, dtype=np.float32), dtype=np.float32))
    raise ActionError(f"unknown action mode {mode!r}; valid: acc_steer, throttle_brake_steer")
