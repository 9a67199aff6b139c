"""Policy actions to CARLA ``VehicleControl``.

- ``acc_steer``: Box [-1, 1]^2 ``(acceleration, steer)``; positive
  acceleration is throttle, negative is brake (Roach's action space).
- ``throttle_brake_steer``: Box ``[0, 0, -1] .. [1, 1, 1]``.
- ``vehicle_control``: Box ``[0, -1, 0, 0] .. [1, 1, 1, 1]``: CARLA's
  ``VehicleControl`` ``(throttle, steer, brake, reverse)``; reverse >= 0.5
  engages the reverse gear (throttle then drives backwards). What the AV
  stack's controllers emit.

An action is the mode's number of real numbers: a float32 / float64 (or
integer) array of exactly the space's shape, or a flat list or tuple of
numbers. Anything else raises :class:`ActionError` naming the expected shape
and dtype: another shape (``(1, 2)`` too), a bool, complex, string or object
array, bools in a list. NaN or infinite actions raise :class:`ActionError`;
finite values outside the box are clipped and reported (``clipped`` is True).
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
        values = self._values(action)
        if not np.isfinite(values).all():
            raise ActionError(f"action has non-finite values {values.tolist()} (mode {self.mode!r}): "
                              "NaN or inf usually means the policy diverged")
        clipped = np.clip(values, self.space.low, self.space.high)
        was_clipped = bool(np.any(clipped != values))
        if self.mode == "acc_steer":
            acc, steer = float(clipped[0]), float(clipped[1])
            control = VehicleControl(throttle=max(acc, 0.0), brake=max(-acc, 0.0), steer=steer)
        elif self.mode == "vehicle_control":
            control = VehicleControl(throttle=float(clipped[0]), steer=float(clipped[1]), brake=float(clipped[2]),
                                     reverse=bool(clipped[3] >= 0.5))
        else:
            control = VehicleControl(throttle=float(clipped[0]), brake=float(clipped[1]), steer=float(clipped[2]))
        return control, was_clipped, clipped.astype(np.float32)

    def _values(self, action: object) -> np.ndarray:
        """``action`` as float64 of the space's shape; ``ActionError`` naming the expected shape and dtype."""
        expected = (f"mode {self.mode!r} takes {self.space.shape[0]} real numbers: a float32/float64 array of "
                    f"shape {self.space.shape} or a list of floats")
        if isinstance(action, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in action):
            raise ActionError(f"{expected}; got a {type(action).__name__} with bools: {action!r}")
        try:
            array = np.asarray(action)
        except (TypeError, ValueError) as exc:  # ragged nesting
            raise ActionError(f"{expected}; got {action!r}") from exc
        if array.dtype.kind not in "fiu":  # bool, complex, string, object, ...
            raise ActionError(f"{expected}; got dtype {array.dtype} ({action!r})")
        if array.shape != self.space.shape:
            raise ActionError(f"{expected}; got shape {array.shape}")
        return array.astype(np.float64)


def action_mapping(mode: str) -> ActionMapping:
    """The :class:`ActionMapping` of ``mode`` (``acc_steer`` or ``throttle_brake_steer``)."""
    if mode == "acc_steer":
        return ActionMapping(mode, spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32))
    if mode == "throttle_brake_steer":
        low = np.array([0.0, 0.0, -1.0], dtype=np.float32)
        return ActionMapping(mode, spaces.Box(low, np.ones(3, dtype=np.float32), dtype=np.float32))
    if mode == "vehicle_control":
        low = np.array([0.0, -1.0, 0.0, 0.0], dtype=np.float32)
        return ActionMapping(mode, spaces.Box(low, np.ones(4, dtype=np.float32), dtype=np.float32))
    raise ActionError(f"unknown action mode {mode!r}; valid: {', '.join(ACTION_MODES)}")


ACTION_MODES = ("acc_steer", "throttle_brake_steer", "vehicle_control")
"""The action modes, by name."""


def control_to_action(control: VehicleControl, mode: str) -> np.ndarray:
    """The action of ``mode`` that applies ``control`` (float32). ``acc_steer`` and ``throttle_brake_steer``
    cannot express the reverse gear: ``ActionError`` for a reversing control in those modes."""
    if control.reverse and mode != "vehicle_control":
        raise ActionError(f"action mode {mode!r} has no reverse gear; use action.mode: vehicle_control")
    if mode == "acc_steer":
        values = [control.throttle - control.brake, control.steer]
    elif mode == "throttle_brake_steer":
        values = [control.throttle, control.brake, control.steer]
    elif mode == "vehicle_control":
        values = [control.throttle, control.steer, control.brake, 1.0 if control.reverse else 0.0]
    else:
        raise ActionError(f"unknown action mode {mode!r}; valid: {', '.join(ACTION_MODES)}")
    return np.array(values, dtype=np.float32)
