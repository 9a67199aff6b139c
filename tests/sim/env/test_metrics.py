"""Tests for the Leaderboard-style driving metrics; expected values are computed by hand."""

from __future__ import annotations

import json
import math

import pytest

from sim.env.metrics import (
    GlobalScore,
    Infraction,
    InfractionKind,
    RouteResult,
    aggregate,
    infraction_penalty,
    score_route,
)

K = InfractionKind


def _inf(kind: InfractionKind, value: float | None = None, frame: int = 10) -> Infraction:
    return Infraction(kind=kind, frame=frame, location_m=(1.0, 2.0, 0.0), value=value)


def _route(
    *infractions: Infraction,
    completion: float = 1.0,
    length_m: float = 1000.0,
    termination: str = "completed",
    route_id: str = "r0",
) -> RouteResult:
    return RouteResult(
        route_id=route_id,
        route_length_m=length_m,
        completion=completion,
        infractions=tuple(infractions),
        termination=termination,
        duration_s=60.0,
        distance_m=length_m * completion,
    )


def test_vehicle_collision_at_80_percent_gives_48():
    score = score_route(_route(_inf(K.COLLISION_VEHICLE), completion=0.8), version="2.0")
    assert score.route_completion == pytest.approx(80.0)
    assert score.infraction_penalty == pytest.approx(0.6)
    assert score.driving_score == pytest.approx(48.0)
    assert score.infraction_counts["collisions_vehicle"] == 1
    assert sum(score.infraction_counts.values()) == 1


def test_pedestrian_red_light_stop_multiply():
    infractions = (_inf(K.COLLISION_PEDESTRIAN), _inf(K.RED_LIGHT), _inf(K.STOP_SIGN))
    assert infraction_penalty(infractions) == pytest.approx(0.5 * 0.7 * 0.8)
    assert score_route(_route(*infractions)).driving_score == pytest.approx(28.0)


def test_each_event_multiplies_again_and_lb2_only_kinds():
    # Two static collisions count twice: 0.65^2; scenario timeout and emergency vehicle are 0.7 each in 2.0.
    assert infraction_penalty([_inf(K.COLLISION_STATIC), _inf(K.COLLISION_STATIC)]) == pytest.approx(0.4225)
    assert infraction_penalty([_inf(K.SCENARIO_TIMEOUT), _inf(K.YIELD_EMERGENCY_VEHICLE)]) == pytest.approx(0.49)
    assert infraction_penalty([]) == 1.0


def test_min_speed_penalty():
    # 2.0: 1 - 0.3 * (1 - 60/100) = 0.88; 2.1: 1 / (1 + 0.4 * (1 - 60/100)) = 1 / 1.16.
    assert infraction_penalty([_inf(K.MIN_SPEED, 60.0)], "2.0") == pytest.approx(0.88)
    assert infraction_penalty([_inf(K.MIN_SPEED, 60.0)], "2.1") == pytest.approx(1 / 1.16)
    assert infraction_penalty([_inf(K.MIN_SPEED, 100.0)], "2.0") == pytest.approx(1.0)


def test_outside_route_lanes_scales_penalty_not_completion():
    # statistics_manager.py (2.0): PENALTY_PERC_DICT[OUTSIDE_ROUTE_LANES] = [0, 'increases']
    # -> penalty *= 1 - (1 - 0) * pct / 100; route completion is untouched.
    score = score_route(_route(_inf(K.OUTSIDE_ROUTE_LANES, 25.0), completion=0.8), "2.0")
    assert score.route_completion == pytest.approx(80.0)
    assert score.infraction_penalty == pytest.approx(0.75)
    assert score.driving_score == pytest.approx(60.0)
    both = [_inf(K.OUTSIDE_ROUTE_LANES, 25.0), _inf(K.COLLISION_VEHICLE)]
    assert infraction_penalty(both, "2.0") == pytest.approx(0.75 * 0.6)
    assert infraction_penalty(both, "1.0") == pytest.approx(0.75 * 0.6)
    # 2.1 keeps it as a separate factor outside 1 / (1 + sum).
    assert infraction_penalty(both, "2.1") == pytest.approx(0.75 / 1.7)


@pytest.mark.parametrize("version", ["1.0", "2.0", "2.1"])
def test_route_ending_kinds_carry_no_penalty(version):
    result = _route(
        _inf(K.ROUTE_DEVIATION),
        _inf(K.AGENT_BLOCKED),
        _inf(K.ROUTE_TIMEOUT),
        completion=0.4,
        termination="route_deviation",
    )
    score = score_route(result, version)
    assert score.infraction_penalty == 1.0
    assert score.driving_score == pytest.approx(40.0)
    assert score.infraction_counts["route_dev"] == 1
    assert score.infraction_counts["vehicle_blocked"] == 1
    assert score.infraction_counts["route_timeout"] == 1
    assert score.termination == "route_deviation"


def test_lb21_additive_formula():
    infractions = [_inf(K.COLLISION_VEHICLE), _inf(K.RED_LIGHT)]
    assert infraction_penalty(infractions, "2.1") == pytest.approx(1 / (1 + 0.7 + 0.4))
    assert score_route(_route(*infractions), "2.1").driving_score == pytest.approx(100 / 2.1)
    everything = [
        _inf(K.COLLISION_PEDESTRIAN),
        _inf(K.COLLISION_STATIC),
        _inf(K.STOP_SIGN),
        _inf(K.SCENARIO_TIMEOUT),
        _inf(K.YIELD_EMERGENCY_VEHICLE),
    ]
    assert infraction_penalty(everything, "2.1") == pytest.approx(1 / (1 + 1.0 + 0.6 + 0.25 + 0.4 + 0.4))


def test_lb10_rejects_kinds_it_did_not_have():
    assert infraction_penalty([_inf(K.STOP_SIGN)], "1.0") == pytest.approx(0.8)
    for kind, value in [(K.MIN_SPEED, 50.0), (K.SCENARIO_TIMEOUT, None), (K.YIELD_EMERGENCY_VEHICLE, None)]:
        with pytest.raises(ValueError, match=kind.name):
            infraction_penalty([_inf(kind, value)], "1.0")


def test_aggregate_two_routes():
    a = _route(_inf(K.COLLISION_VEHICLE), completion=0.8, length_m=1000.0, route_id="a", termination="route_timeout")
    b = _route(
        _inf(K.COLLISION_PEDESTRIAN),
        _inf(K.RED_LIGHT),
        _inf(K.OUTSIDE_ROUTE_LANES, 10.0),
        completion=0.8,
        length_m=500.0,
        route_id="b",
    )
    g = aggregate([a, b])
    # a: RC 80, IP 0.6, DS 48; b: RC 80, IP 0.5 * 0.7 * 0.9 = 0.315, DS 25.2.
    assert g.num_routes == 2
    assert g.driving_score == pytest.approx((48.0 + 25.2) / 2)
    assert g.route_completion == pytest.approx(80.0)
    assert g.infraction_penalty == pytest.approx((0.6 + 0.315) / 2)
    # km = (1000 * 0.8 + 500 * 0.8) / 1000 = 1.2
    assert g.km_driven == pytest.approx(1.2)
    assert g.infractions_per_km["collisions_vehicle"] == pytest.approx(1 / 1.2)
    assert g.infractions_per_km["collisions_pedestrian"] == pytest.approx(1 / 1.2)
    assert g.infractions_per_km["red_light"] == pytest.approx(1 / 1.2)
    assert g.infractions_per_km["stop_infraction"] == 0.0
    # 10 % of the 400 m driven on route b.
    assert g.outside_route_lanes_km == pytest.approx(0.04)
    assert dict(g.termination_counts) == {"completed": 1, "route_timeout": 1}


def test_aggregate_guards_zero_km():
    g = aggregate([_route(_inf(K.COLLISION_STATIC), completion=0.0)])
    assert g.km_driven == 0.0
    assert g.infractions_per_km["collisions_layout"] == pytest.approx(1 / 0.001)
    assert g.driving_score == 0.0


def test_to_dict_is_json_ready_with_stable_keys():
    a = _route(_inf(K.COLLISION_VEHICLE), completion=0.8, route_id="a")
    b = _route(_inf(K.RED_LIGHT), completion=0.3, length_m=3000.0, route_id="b")
    g = aggregate([a, b])
    d = g.to_dict()
    assert list(d) == [
        "num_routes",
        "driving_score",
        "route_completion",
        "infraction_penalty",
        "km_driven",
        "infractions_per_km",
        "outside_route_lanes_km",
        "termination_counts",
    ]
    assert list(d["infractions_per_km"]) == [k.value for k in InfractionKind]
    # km = 0.8 + 0.9 = 1.7; 1 / 1.7 = 0.58823... -> 0.588
    assert d["infractions_per_km"]["collisions_vehicle"] == 0.588
    assert d["driving_score"] == round((48.0 + 30.0 * 0.7) / 2, 6)
    assert json.loads(json.dumps(d)) == d
    r = score_route(a).to_dict()
    assert r["driving_score"] == 48.0 and r["infractions"]["collisions_vehicle"] == 1
    assert json.loads(json.dumps(r)) == r
    assert isinstance(g, GlobalScore)


def test_infraction_accepts_leaderboard_key():
    assert Infraction(kind="red_light", frame=3).kind is K.RED_LIGHT


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"completion": 1.2}, "completion"),
        ({"completion": -0.1}, "completion"),
        ({"completion": math.nan}, "completion"),
        ({"route_length_m": -1.0}, "route_length_m"),
        ({"route_length_m": math.inf}, "route_length_m"),
        ({"distance_m": math.nan}, "distance_m"),
        ({"duration_s": -2.0}, "duration_s"),
        ({"termination": ""}, "termination"),
        ({"route_id": ""}, "route_id"),
        ({"infractions": ("not an infraction",)}, "infractions"),
    ],
)
def test_bad_route_result_raises(kwargs, field):
    base = {
        "route_id": "r",
        "route_length_m": 100.0,
        "completion": 0.5,
        "infractions": (),
        "termination": "completed",
        "duration_s": 1.0,
        "distance_m": 50.0,
    }
    with pytest.raises(ValueError, match=f"RouteResult.{field}"):
        RouteResult(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": K.MIN_SPEED, "value": 120.0}, "value"),
        ({"kind": K.OUTSIDE_ROUTE_LANES, "value": -5.0}, "value"),
        ({"kind": K.MIN_SPEED, "value": math.nan}, "value"),
        ({"kind": K.MIN_SPEED}, "value"),
        ({"kind": K.COLLISION_VEHICLE, "value": 10.0}, "value"),
        ({"kind": K.RED_LIGHT, "frame": -1}, "frame"),
        ({"kind": K.RED_LIGHT, "location_m": (0.0, math.nan, 0.0)}, "location_m.y"),
        ({"kind": "collision_with_a_tree"}, "kind"),
    ],
)
def test_bad_infraction_raises(kwargs, field):
    with pytest.raises(ValueError, match=f"Infraction.{field}"):
        Infraction(**{"frame": 0, **kwargs})


def test_unknown_version_and_empty_aggregate_raise():
    with pytest.raises(ValueError, match="version.*'3.0'"):
        infraction_penalty([], version="3.0")
    with pytest.raises(ValueError, match="version"):
        score_route(_route(), version="2")
    with pytest.raises(ValueError, match="results"):
        aggregate([])
