"""CARLA Leaderboard-style driving metrics: route completion, infraction penalty and driving score.

Follows carla-simulator/leaderboard ``leaderboard/utils/statistics_manager.py`` on the branches
``leaderboard-1.0``, ``leaderboard-2.0`` and ``leaderboard-2.1``:

* Per route, driving score = route completion [%] x infraction penalty; the global scores are the
  plain means of the per-route values.
* 1.0 / 2.0: the penalty starts at 1 and is multiplied once per event by a fixed coefficient
  (pedestrian 0.5, vehicle 0.6, static layout 0.65, red light 0.7, stop sign 0.8, and in 2.0 scenario
  timeout 0.7, failure to yield to an emergency vehicle 0.7). Minimum speed (2.0) multiplies by
  ``1 - 0.3 * (1 - pct / 100)``, pct = ego speed as a percentage of the surrounding traffic's.
* 2.1: penalty = ``1 / (1 + sum of values)`` with pedestrian 1.0, vehicle 0.7, static 0.6,
  red light 0.4, stop sign 0.25, scenario timeout 0.4, emergency vehicle 0.4 and minimum speed
  ``0.4 * (1 - pct / 100)``.
* Driving outside the route lanes multiplies the *penalty* by ``1 - pct / 100`` in every version
  (pct = share of the driven route); the route completion itself is left unchanged.
* Route deviation, agent blocked and route timeout end the route and carry no coefficient: they
  are only counted.

Infractions per km divide the counts by the km driven, ``sum(route_length * completion) / 1000``
(at least 0.001 km, as the Leaderboard guards it).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from statistics import fmean
from types import MappingProxyType
from typing import Any


class InfractionKind(str, Enum):
    """Kinds of infraction; the values are the keys of the Leaderboard's results JSON."""

    COLLISION_PEDESTRIAN = "collisions_pedestrian"
    COLLISION_VEHICLE = "collisions_vehicle"
    COLLISION_STATIC = "collisions_layout"
    RED_LIGHT = "red_light"
    STOP_SIGN = "stop_infraction"
    SCENARIO_TIMEOUT = "scenario_timeouts"
    YIELD_EMERGENCY_VEHICLE = "yield_emergency_vehicle_infractions"
    MIN_SPEED = "min_speed_infractions"
    OUTSIDE_ROUTE_LANES = "outside_route_lanes"
    ROUTE_DEVIATION = "route_dev"
    AGENT_BLOCKED = "vehicle_blocked"
    ROUTE_TIMEOUT = "route_timeout"


VERSIONS = ("1.0", "2.0", "2.1")
"""Leaderboard versions whose scoring rules are implemented."""

PERCENTAGE_KINDS = frozenset({InfractionKind.MIN_SPEED, InfractionKind.OUTSIDE_ROUTE_LANES})
"""Kinds whose ``Infraction.value`` is a percentage (required); every other kind takes ``None``."""

TERMINAL_KINDS = frozenset({InfractionKind.ROUTE_DEVIATION, InfractionKind.AGENT_BLOCKED, InfractionKind.ROUTE_TIMEOUT})
"""Kinds that end the route and are only counted: no version gives them a penalty."""

# Multiplicative coefficients (1.0 and 2.0); the Leaderboard's PENALTY_VALUE_DICT / PENALTY_* constants.
_COEFFICIENTS_1_0: Mapping[InfractionKind, float] = MappingProxyType(
    {
        InfractionKind.COLLISION_PEDESTRIAN: 0.5,
        InfractionKind.COLLISION_VEHICLE: 0.6,
        InfractionKind.COLLISION_STATIC: 0.65,
        InfractionKind.RED_LIGHT: 0.7,
        InfractionKind.STOP_SIGN: 0.8,
    }
)
_COEFFICIENTS_2_0: Mapping[InfractionKind, float] = MappingProxyType(
    {
        **_COEFFICIENTS_1_0,
        InfractionKind.SCENARIO_TIMEOUT: 0.7,
        InfractionKind.YIELD_EMERGENCY_VEHICLE: 0.7,
    }
)
_MIN_SPEED_COEFFICIENT_2_0 = 0.7  # PENALTY_PERC_DICT[MIN_SPEED_INFRACTION], 'decreases'
# Additive values (2.1); MIN_SPEED is scaled by (1 - pct / 100).
_VALUES_2_1: Mapping[InfractionKind, float] = MappingProxyType(
    {
        InfractionKind.COLLISION_PEDESTRIAN: 1.0,
        InfractionKind.COLLISION_VEHICLE: 0.7,
        InfractionKind.COLLISION_STATIC: 0.6,
        InfractionKind.RED_LIGHT: 0.4,
        InfractionKind.STOP_SIGN: 0.25,
        InfractionKind.SCENARIO_TIMEOUT: 0.4,
        InfractionKind.YIELD_EMERGENCY_VEHICLE: 0.4,
        InfractionKind.MIN_SPEED: 0.4,
    }
)
_SCORED_KINDS: Mapping[str, frozenset[InfractionKind]] = MappingProxyType(
    {
        "1.0": frozenset(_COEFFICIENTS_1_0) | {InfractionKind.OUTSIDE_ROUTE_LANES} | TERMINAL_KINDS,
        "2.0": frozenset(InfractionKind),
        "2.1": frozenset(InfractionKind),
    }
)
_MIN_KM_DRIVEN = 0.001  # statistics_manager.py: km_driven = max(km_driven, 0.001)
_SCORE_DIGITS = 6  # ROUND_DIGITS_SCORE
_DIGITS = 3  # ROUND_DIGITS


def _check_finite(name: str, value: float) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    _check_finite(name, value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")


@dataclass(frozen=True)
class Infraction:
    """One infraction event at simulation ``frame``.

    ``value`` is a percentage in [0, 100] for MIN_SPEED (ego speed as % of the surrounding traffic's)
    and OUTSIDE_ROUTE_LANES (% of the driven route spent outside the route lanes; the Leaderboard
    emits one cumulative event per route), and ``None`` for every other kind.
    """

    kind: InfractionKind
    frame: int
    location_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    value: float | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", InfractionKind(self.kind))  # also accepts the Leaderboard's key
        except ValueError:
            raise ValueError(f"Infraction.kind must be an InfractionKind, got {self.kind!r}") from None
        if not isinstance(self.frame, numbers.Integral) or isinstance(self.frame, bool) or self.frame < 0:
            raise ValueError(f"Infraction.frame must be a non-negative int, got {self.frame!r}")
        if len(self.location_m) != 3:
            raise ValueError(f"Infraction.location_m must have 3 coordinates, got {self.location_m!r}")
        for axis, coordinate in zip("xyz", self.location_m, strict=True):
            _check_finite(f"Infraction.location_m.{axis}", coordinate)
        if self.kind in PERCENTAGE_KINDS:
            if self.value is None:
                raise ValueError(f"Infraction.value (a percentage) is required for {self.kind.name}")
            _check_range("Infraction.value", self.value, 0.0, 100.0)
        elif self.value is not None:
            raise ValueError(f"Infraction.value must be None for {self.kind.name}, got {self.value!r}")


@dataclass(frozen=True)
class RouteResult:
    """What happened on one route.

    ``completion`` is the fraction (0..1) of the route driven; ``termination`` says why the route ended
    ("completed", "route_deviation", "agent_blocked", "route_timeout", "infraction", "time_limit", ...);
    ``distance_m`` is the distance actually driven along the route.
    """

    route_id: str
    route_length_m: float
    completion: float
    infractions: tuple[Infraction, ...]
    termination: str
    duration_s: float
    distance_m: float

    def __post_init__(self) -> None:
        if not isinstance(self.route_id, str) or not self.route_id:
            raise ValueError(f"RouteResult.route_id must be a non-empty str, got {self.route_id!r}")
        _check_range("RouteResult.route_length_m", self.route_length_m, 0.0, math.inf)
        _check_range("RouteResult.completion", self.completion, 0.0, 1.0)
        object.__setattr__(self, "infractions", tuple(self.infractions))
        if not all(isinstance(i, Infraction) for i in self.infractions):
            raise ValueError(f"RouteResult.infractions must hold only Infraction, got {self.infractions!r}")
        if not isinstance(self.termination, str) or not self.termination:
            raise ValueError(f"RouteResult.termination must be a non-empty str, got {self.termination!r}")
        _check_range("RouteResult.duration_s", self.duration_s, 0.0, math.inf)
        _check_range("RouteResult.distance_m", self.distance_m, 0.0, math.inf)


@dataclass(frozen=True)
class RouteScore:
    """Scores of one route: route completion and driving score in percent, penalty in [0, 1]."""

    route_id: str
    route_completion: float
    infraction_penalty: float
    driving_score: float
    infraction_counts: Mapping[str, int]
    termination: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; scores rounded to 6 digits as the Leaderboard does."""
        return {
            "route_id": self.route_id,
            "driving_score": round(self.driving_score, _SCORE_DIGITS),
            "route_completion": round(self.route_completion, _SCORE_DIGITS),
            "infraction_penalty": round(self.infraction_penalty, _SCORE_DIGITS),
            "infractions": dict(self.infraction_counts),
            "termination": self.termination,
        }


@dataclass(frozen=True)
class GlobalScore:
    """Scores over several routes: means of the per-route scores and infractions per km driven.

    ``outside_route_lanes_km`` is the distance driven outside the route lanes, which the Leaderboard
    reports in place of a rate for that kind.
    """

    num_routes: int
    driving_score: float
    route_completion: float
    infraction_penalty: float
    km_driven: float
    infractions_per_km: Mapping[str, float]
    outside_route_lanes_km: float
    termination_counts: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; scores rounded to 6 digits, rates and distances to 3, as the Leaderboard does."""
        return {
            "num_routes": self.num_routes,
            "driving_score": round(self.driving_score, _SCORE_DIGITS),
            "route_completion": round(self.route_completion, _SCORE_DIGITS),
            "infraction_penalty": round(self.infraction_penalty, _SCORE_DIGITS),
            "km_driven": round(self.km_driven, _DIGITS),
            "infractions_per_km": {k: round(v, _DIGITS) for k, v in self.infractions_per_km.items()},
            "outside_route_lanes_km": round(self.outside_route_lanes_km, _DIGITS),
            "termination_counts": dict(self.termination_counts),
        }


def infraction_penalty(infractions: Iterable[Infraction], version: str = "2.0") -> float:
    """Infraction penalty in [0, 1] of one route's infractions under a Leaderboard ``version``.

    Raises ValueError for an unknown version or a kind that version does not score (1.0 has no
    scenario timeout, emergency-vehicle or minimum-speed infractions).
    """
    _check_version(version)
    scored = _SCORED_KINDS[version]
    product = 1.0
    value_sum = 0.0
    for infraction in infractions:
        kind = infraction.kind
        if kind not in scored:
            raise ValueError(f"infraction kind {kind.name} is not part of Leaderboard {version}")
        if kind in TERMINAL_KINDS:
            continue
        if kind is InfractionKind.OUTSIDE_ROUTE_LANES:
            # Removes the share of the route driven outside the lanes (same rule in 1.0, 2.0 and 2.1).
            product *= 1.0 - infraction.value / 100.0
        elif version == "2.1":
            scale = 1.0 - infraction.value / 100.0 if kind is InfractionKind.MIN_SPEED else 1.0
            value_sum += _VALUES_2_1[kind] * scale
        elif kind is InfractionKind.MIN_SPEED:
            product *= 1.0 - (1.0 - _MIN_SPEED_COEFFICIENT_2_0) * (1.0 - infraction.value / 100.0)
        else:
            product *= _COEFFICIENTS_2_0[kind]
    return product / (1.0 + value_sum)


def _count_kinds(infractions: Iterable[Infraction]) -> dict[str, int]:
    counts = Counter(i.kind for i in infractions)
    return {kind.value: counts.get(kind, 0) for kind in InfractionKind}


def route_record(result: RouteResult, steps: int) -> dict[str, Any]:
    """One route's JSON record in evaluation outputs: its Leaderboard 2.0 scores (:meth:`RouteScore.to_dict`),
    ``steps``, driven distance, route length and ``min_speed_percent`` (the ego's speed as % of the
    traffic's on each stretch that raised a minimum-speed infraction, in order)."""
    return {**score_route(result).to_dict(), "steps": steps, "distance_m": round(result.distance_m, 1),
            "route_length_m": round(result.route_length_m, 1),
            "min_speed_percent": [round(float(i.value), 2) for i in result.infractions
                                  if i.kind is InfractionKind.MIN_SPEED]}


def score_route(result: RouteResult, version: str = "2.0") -> RouteScore:
    """Route completion [%], infraction penalty and driving score [%] of one route."""
    penalty = infraction_penalty(result.infractions, version)
    completion_pct = 100.0 * result.completion
    return RouteScore(
        route_id=result.route_id,
        route_completion=completion_pct,
        infraction_penalty=penalty,
        driving_score=max(completion_pct * penalty, 0.0),
        infraction_counts=MappingProxyType(_count_kinds(result.infractions)),
        termination=result.termination,
    )


def aggregate(results: Sequence[RouteResult], version: str = "2.0") -> GlobalScore:
    """Leaderboard-style global scores of several routes (at least one)."""
    if len(results) == 0:
        raise ValueError("results must hold at least one RouteResult, got none")
    scores = [score_route(r, version) for r in results]
    km_driven = sum(r.route_length_m * r.completion for r in results) / 1000.0
    rate_km = max(km_driven, _MIN_KM_DRIVEN)
    totals = Counter[str]()
    for score in scores:
        totals.update(score.infraction_counts)
    outside_km = sum(
        i.value / 100.0 * r.distance_m / 1000.0
        for r in results
        for i in r.infractions
        if i.kind is InfractionKind.OUTSIDE_ROUTE_LANES
    )
    return GlobalScore(
        num_routes=len(results),
        driving_score=fmean(s.driving_score for s in scores),
        route_completion=fmean(s.route_completion for s in scores),
        infraction_penalty=fmean(s.infraction_penalty for s in scores),
        km_driven=km_driven,
        infractions_per_km=MappingProxyType({kind.value: totals[kind.value] / rate_km for kind in InfractionKind}),
        outside_route_lanes_km=outside_km,
        termination_counts=MappingProxyType(dict(sorted(Counter(r.termination for r in results).items()))),
    )
