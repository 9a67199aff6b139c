"""Evaluation over a route set: per-route and aggregated Leaderboard scores."""

from __future__ import annotations

import pytest

from av_stack.agents import make_agent
from sim.env.driving import DrivingEnv
from sim.env.evaluation import LEADERBOARD_EPISODE, evaluate


@pytest.fixture(scope="module")
def env():
    return DrivingEnv(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                      action={"mode": "vehicle_control"},
                      routes={"source": "file", "file": "configs/routes/town01.yaml"}, episode=LEADERBOARD_EPISODE)


def test_the_expert_completes_empty_town_routes_with_full_score(env):
    out = evaluate(env, make_agent("expert"), ["town01_short_01", "town01_short_02"])
    assert [r["route_id"] for r in out["routes"]] == ["town01_short_01", "town01_short_02"]
    for record in out["routes"]:
        assert record["termination"] == "completed" and record["driving_score"] == pytest.approx(100.0)
        assert record["distance_m"] == pytest.approx(record["route_length_m"], rel=0.1)
    assert out["global"]["driving_score"] == pytest.approx(100.0) and out["global"]["num_routes"] == 2
    assert out["global"]["termination_counts"] == {"completed": 2}


def test_random_agent_scores_worse_and_aggregate_is_the_mean(env):
    env.config = env.config.model_copy(update={"episode": env.config.episode.model_copy(update={"max_steps": 200})})
    out = evaluate(env, make_agent("random", seed=1), ["town01_short_00", "town01_short_03"])
    scores = [r["driving_score"] for r in out["routes"]]
    assert max(scores) < 50.0
    assert out["global"]["driving_score"] == pytest.approx(sum(scores) / 2, abs=1e-5)


def test_bad_agent_and_missing_route_set():
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("best")
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        make_agent("policy:nope.zip")
    with pytest.raises(ValueError, match="route set"):
        evaluate(DrivingEnv(map="Town01", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"}),
                 make_agent("random"))
