"""Rewards: hand-computed terms of the Roach and CaRL rewards, and their parameter checks."""

from __future__ import annotations

import math

import pytest

from sim.config import ConfigError
from sim.env.rewards import RewardInput, make_reward


def step(**changes) -> RewardInput:
    base = dict(speed_mps=5.0, speed_limit_mps=10.0, lateral_m=0.4, heading_error_rad=-0.2, steer=0.1,
                previous_steer=0.1, completion=0.5, previous_completion=0.49, hazard_distance_m=math.inf,
                ending_infraction=None, completed=False)
    return RewardInput(**{**base, **changes})


def test_roach_terms_hand_computed():
    reward = make_reward("roach")
    total, terms = reward(step())
    assert terms["speed"] == pytest.approx(1 - 1 / 6)  # |5 - 6| / 6
    assert terms["position"] == pytest.approx(-0.2)
    assert terms["rotation"] == pytest.approx(-0.2)
    assert terms["action"] == 0.0 and terms["terminal"] == 0.0
    assert total == pytest.approx(1 - 1 / 6 - 0.4)


def test_roach_desired_speed_drops_for_hazards_and_terminal_penalty():
    reward = make_reward("roach")
    _, near = reward(step(hazard_distance_m=10.0, speed_mps=0.0))  # halfway between 15 and 5 m: v_desired 3
    assert near["speed"] == pytest.approx(1 - 3 / 6)
    _, stop = reward(step(hazard_distance_m=4.0, speed_mps=0.0))
    assert stop["speed"] == pytest.approx(1.0)
    _, crash = reward(step(ending_infraction="collision", speed_mps=4.0))
    assert crash["terminal"] == pytest.approx(-5.0)
    _, blocked = reward(step(ending_infraction="blocked", speed_mps=0.0))
    assert blocked["terminal"] == pytest.approx(-1.0)
    _, steer = reward(step(steer=0.3))
    assert steer["action"] == pytest.approx(-0.1)


def test_carl_is_progress_times_soft_penalties():
    reward = make_reward("carl")
    total, terms = reward(step(speed_mps=12.0, lateral_m=1.0, steer=0.35))
    assert terms["progress"] == pytest.approx(1.0)
    assert terms["speeding"] == pytest.approx(0.8)
    assert terms["centre"] == pytest.approx(0.75)
    assert terms["comfort"] == pytest.approx(1 - 0.2 * 0.5)
    assert total == pytest.approx(1.0 * 0.8 * 0.75 * 0.9)
    total, _ = reward(step(completion=0.49))
    assert total == 0.0


def test_unknown_reward_and_parameters_are_named():
    with pytest.raises(ConfigError, match="unknown reward 'nope'"):
        make_reward("nope")
    with pytest.raises(ConfigError, match="v_maxx"):
        make_reward("roach", {"v_maxx": 3.0})
    with pytest.raises(ConfigError, match="v_max_mps"):
        make_reward("roach", {"v_max_mps": -1.0})
