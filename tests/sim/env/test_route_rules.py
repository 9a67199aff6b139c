"""The Leaderboard 2.0 route timeout and minimum-speed test (sim/env/route_rules.py), and the env using them."""

from __future__ import annotations

import math

import pytest

from sim.env.route_rules import LEADERBOARD_MIN_TIMEOUT_S, MinSpeedCheck, RouteTimer


def _ticks_until_expired(timer: RouteTimer, progress_per_tick_m: float, speed_limit_mps: float,
                         limit: int = 100_000) -> int:
    for tick in range(1, limit):
        timer.advance(tick * progress_per_tick_m, speed_limit_mps)
        if timer.expired(tick):
            return tick
    return limit


def test_the_budget_timer_is_length_over_budget_speed_plus_30_s():
    timer = RouteTimer("budget", 200.0, 2.0, 0.05)
    assert timer.limit_s == pytest.approx(130.0)
    assert _ticks_until_expired(timer, 0.5, 8.0) == math.ceil(130.0 / 0.05)  # progress buys no time


def test_the_leaderboard_timer_starts_at_300_s_and_progress_buys_time_at_a_tenth_of_the_limit():
    standing = RouteTimer("leaderboard", 200.0, 2.0, 0.05)
    assert _ticks_until_expired(standing, 0.0, 10.0) == math.ceil(LEADERBOARD_MIN_TIMEOUT_S / 0.05)
    moving = RouteTimer("leaderboard", 200.0, 2.0, 0.05)
    for tick in range(1, 101):  # 100 m at 20 m/s... on a 10 m/s lane: each metre buys 1 s
        moving.advance(tick * 1.0, 10.0)
    assert moving.limit_s == pytest.approx(LEADERBOARD_MIN_TIMEOUT_S + 100.0)
    moving.advance(50.0, 10.0)  # going backwards along the route buys nothing
    assert moving.limit_s == pytest.approx(LEADERBOARD_MIN_TIMEOUT_S + 100.0)


def test_an_unknown_timeout_mode_is_named():
    with pytest.raises(ValueError, match="'fixed'"):
        RouteTimer("fixed", 100.0, 2.0, 0.05)


def test_min_speed_scores_each_quarter_against_the_traffic():
    check = MinSpeedCheck(400.0)
    failed = []
    # First quarter at half the traffic's speed, the rest at the traffic's speed; 1 m per tick.
    for tick in range(1, 401):
        ego = 4.0 if tick <= 100 else 8.0
        failed.append(check.update(float(tick), ego, 8.0))
    failed.append(check.finish())
    failed = [v for v in failed if v is not None]
    assert failed == [pytest.approx(50.0, abs=1.0)]
    assert len(check.values) == 4 and all(v == pytest.approx(100.0, abs=1.0) for v in check.values[1:])


def test_min_speed_without_traffic_or_short_of_the_end_scores_nothing():
    check = MinSpeedCheck(100.0)
    assert all(check.update(float(s), 1.0, None) is None for s in range(1, 90))
    assert check.finish() is None  # the route ended at 89 %: the last quarter is not scored
    assert check.values == [100.0, 100.0, 100.0]  # no traffic: 100 %


def test_the_env_under_leaderboard_rules_gives_time_for_progress_and_flags_a_slow_ego():
    """A crawling ego (2 m/s among traffic) on the first quarter of its route: one min-speed infraction with its
    percentage, and the route's time limit grew past 300 s with the progress."""
    import numpy as np

    from sim.env.driving import DrivingEnv
    from sim.env.metrics import InfractionKind, route_record
    from sim.scenarios.library import steer_towards

    env = DrivingEnv(map="Town01", traffic={"vehicles": 12, "walkers": 0}, observation={"mode": "state"},
                     routes={"min_length_m": 120, "max_length_m": 160},
                     episode={"terminate_on": [], "route_timeout": "leaderboard", "min_speed": True})
    try:
        env.reset(seed=3)
        quarter = env.route.length_m / 4
        for _ in range(2000):
            snapshot = env.world.snapshot()
            row = snapshot.index_of(env.ego_id)
            x, y = snapshot.location_m[row, :2]
            speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
            target = env.route.points_xy[min(env.progress.index + 6, env.route.points_xy.shape[0] - 1)]
            steer = steer_towards(x, y, snapshot.rotation_rad[row, 1], target)
            env.step(np.array([float(np.clip(0.5 * (2.0 - speed), -1, 1)), steer]))
            if env.progress.s_m > quarter + 5.0:
                break
        slow = [i for i in env.route_result("running").infractions if i.kind is InfractionKind.MIN_SPEED]
        assert len(slow) == 1 and 5.0 < slow[0].value < 90.0, slow
        record = route_record(env.route_result("running"), 1)
        assert record["min_speed_percent"] == [round(slow[0].value, 2)]
        assert record["infractions"]["min_speed_infractions"] == 1 and record["driving_score"] < 100.0
        assert env.time_limit_s > LEADERBOARD_MIN_TIMEOUT_S + quarter / (0.1 * 15.0)  # limits <= 15 m/s here
    finally:
        env.close()


def test_the_leaderboard_env_config_uses_the_leaderboard_rules():
    from sim.env.config import load_env_config

    episode = load_env_config("configs/env/leaderboard_town01.yaml").episode
    assert episode.route_timeout == "leaderboard" and episode.min_speed
    assert load_env_config(None).episode.route_timeout == "budget"  # training keeps the fixed budget


def test_a_wrong_route_timeout_in_a_config_is_named():
    from sim.config import ConfigError
    from sim.env.config import load_env_config

    with pytest.raises(ConfigError, match="route_timeout"):
        load_env_config(None, episode={"route_timeout": "forever"})
