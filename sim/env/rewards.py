"""Rewards as sums (Roach) or products (CaRL) of named terms; every term's value goes to ``info["rewards"]``.

**roach** (Zhang et al., "End-to-End Urban Driving by Imitating a
Reinforcement Learning Coach", ICCV 2021)::

    speed    = 1 - |v - v_desired| / v_max
    position = -position_weight * |lateral distance from the route| [m]
    rotation = -rotation_weight * |heading error| [rad]
    action   = -action_penalty if |steer - previous steer| > steer_change
    terminal = -terminal_penalty (- speed_weight_terminal * v for collisions and red lights) when an
               infraction ends the episode

``v_desired`` is ``v_max`` (capped by the lane's speed limit), scaled down
linearly to 0 as the nearest hazard ahead (vehicle, pedestrian, red or
yellow light's stop line) comes from ``slow_down_m`` to ``stop_m``.

**carl** (Jaeger et al., "CaRL: Learning Scalable Planning Policies with
Simple Rewards", 2025): route progress in percent of the route this step,
multiplied by soft-penalty factors in [0, 1]::

    progress     = 100 * (completion_t - completion_{t-1})
    speeding     = 1 - speeding_weight * clip((v - limit) / limit, 0, 1)
    centre       = 1 - centre_weight * clip(|lateral| / max_lateral_m, 0, 1)
    comfort      = 1 - comfort_weight * clip(|steer - previous steer| / steer_change_max, 0, 1)
    total        = progress * speeding * centre * comfort, and -terminal_penalty when an infraction ends
                   the episode (0 by default: the episode simply ends, as in CaRL)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.config import ConfigError


@dataclass(frozen=True)
class RewardInput:
    """What a reward sees after one step (all in SI units)."""

    speed_mps: float
    speed_limit_mps: float
    lateral_m: float
    heading_error_rad: float
    steer: float
    previous_steer: float
    completion: float
    previous_completion: float
    hazard_distance_m: float  # to the nearest hazard ahead on the route (inf: none)
    ending_infraction: str | None  # infraction that ends the episode this step
    completed: bool


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoachParams(_Params):
    """Parameters of the Roach reward (see the module docstring)."""

    v_max_mps: float = Field(6.0, gt=0)
    slow_down_m: float = Field(15.0, gt=0)
    stop_m: float = Field(5.0, ge=0)
    position_weight: float = Field(0.5, ge=0)
    rotation_weight: float = Field(1.0, ge=0)
    action_penalty: float = Field(0.1, ge=0)
    steer_change: float = Field(0.01, ge=0)
    terminal_penalty: float = Field(1.0, ge=0)
    speed_weight_terminal: float = Field(1.0, ge=0)


class CarlParams(_Params):
    """Parameters of the CaRL-style reward (see the module docstring)."""

    speeding_weight: float = Field(1.0, ge=0, le=1)
    centre_weight: float = Field(0.5, ge=0, le=1)
    max_lateral_m: float = Field(2.0, gt=0)
    comfort_weight: float = Field(0.2, ge=0, le=1)
    steer_change_max: float = Field(0.5, gt=0)
    terminal_penalty: float = Field(0.0, ge=0)


RewardParams = RoachParams | CarlParams
"""The typed parameters of any registered reward."""


def _validate_params(name: str, model: type[_Params], params: Mapping[str, Any] | _Params | None) -> _Params:
    if isinstance(params, _Params):
        if not isinstance(params, model):
            raise ConfigError(f"reward {name!r}: params are {type(params).__name__}, expected {model.__name__}")
        return params
    try:
        return model.model_validate(dict(params or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"] if first["type"] != "extra_forbidden" else \
            f"unknown parameter (valid: {', '.join(model.model_fields)})"
        raise ConfigError(f"reward {name!r}: params.{where}: {message}") from exc


class Reward:
    """A reward: ``__call__`` returns (total, {term: value})."""

    name: ClassVar[str]
    params_model: ClassVar[type[_Params]]

    def __init__(self, params: Mapping[str, Any] | _Params | None = None, **keywords: Any) -> None:
        if keywords and params is not None:
            raise TypeError("give the reward's parameters either as one params object/dict or as keywords")
        self.params = _validate_params(self.name, self.params_model, keywords or params)

    def __call__(self, step: RewardInput) -> tuple[float, dict[str, float]]:
        raise NotImplementedError


class RoachReward(Reward):
    """Roach's shaped reward: speed, position, rotation, action and terminal terms, summed."""

    name = "roach"
    params_model = RoachParams

    def desired_speed(self, step: RewardInput) -> float:
        """The speed the ego should drive at: v_max capped by the limit, lower near hazards."""
        p = self.params
        v = min(p.v_max_mps, step.speed_limit_mps)
        if math.isfinite(step.hazard_distance_m):
            span = max(p.slow_down_m - p.stop_m, 1e-6)
            v *= min(max((step.hazard_distance_m - p.stop_m) / span, 0.0), 1.0)
        return v

    def __call__(self, step: RewardInput) -> tuple[float, dict[str, float]]:
        p = self.params
        terms = {
            "speed": 1.0 - abs(step.speed_mps - self.desired_speed(step)) / p.v_max_mps,
            "position": -p.position_weight * abs(step.lateral_m),
            "rotation": -p.rotation_weight * abs(step.heading_error_rad),
            "action": -p.action_penalty if abs(step.steer - step.previous_steer) > p.steer_change else 0.0,
            "terminal": 0.0,
        }
        if step.ending_infraction is not None:
            terminal = -p.terminal_penalty
            if step.ending_infraction in ("collision", "red_light"):
                terminal -= p.speed_weight_terminal * step.speed_mps
            terms["terminal"] = terminal
        terms = {name: float(value) for name, value in terms.items()}
        return float(sum(terms.values())), terms


class CarlReward(Reward):
    """CaRL's reward: route progress times soft-penalty factors; infractions end the episode."""

    name = "carl"
    params_model = CarlParams

    def __call__(self, step: RewardInput) -> tuple[float, dict[str, float]]:
        p = self.params
        limit = max(step.speed_limit_mps, 1e-6)
        terms = {
            "progress": 100.0 * (step.completion - step.previous_completion),
            "speeding": 1.0 - p.speeding_weight * min(max((step.speed_mps - limit) / limit, 0.0), 1.0),
            "centre": 1.0 - p.centre_weight * min(abs(step.lateral_m) / p.max_lateral_m, 1.0),
            "comfort": 1.0 - p.comfort_weight * min(abs(step.steer - step.previous_steer) / p.steer_change_max, 1.0),
            "terminal": -p.terminal_penalty if step.ending_infraction is not None else 0.0,
        }
        terms = {name: float(value) for name, value in terms.items()}
        total = terms["progress"] * terms["speeding"] * terms["centre"] * terms["comfort"] + terms["terminal"]
        return float(total), terms


REWARDS: dict[str, type[Reward]] = {cls.name: cls for cls in (RoachReward, CarlReward)}
"""Registry of rewards by name (the ``reward.name`` config key)."""


def reward_params(name: str, params: Mapping[str, Any] | RewardParams | None = None) -> RewardParams:
    """The typed parameters of reward ``name`` from a mapping (or a params object, checked to match).

    ``ConfigError`` for an unknown reward, an unknown parameter (naming it and
    listing the valid ones) or a bad value.
    """
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; valid: {', '.join(sorted(REWARDS))}")
    return _validate_params(name, REWARDS[name].params_model, params)


def make_reward(name: str, params: Mapping[str, Any] | RewardParams | None = None) -> Reward:
    """Build a registered reward from a mapping or its params object; ``ConfigError`` for a bad name or parameter."""
    params = reward_params(name, params)
    return REWARDS[name](params)
