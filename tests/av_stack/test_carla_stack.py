"""The oracle stack in closed loop on the CARLA backend (through ``avsim serve``, or a real server)."""

from __future__ import annotations

import json

import pytest

from av_stack.runner import RunOptions, run_stack

pytestmark = pytest.mark.carla


def test_the_oracle_stack_drives_a_route_on_the_carla_backend(carla_endpoint, tmp_path):
    """``backend: carla`` in the stack's env section: the same stages drive a short shipped route through the
    CARLA client, to the end, with no infraction; metrics.json and the video are written."""
    host, port, _ = carla_endpoint
    config = {
        "env": {"base": "env/leaderboard_town01.yaml", "backend": "carla", "carla": {"host": host, "port": port},
                "routes": {"ids": ["town01_short_00"]}, "traffic": {"vehicles": 0, "walkers": 0}, "scenarios": [],
                "action": {"mode": "vehicle_control"},
                "observation": {"modes": ["bev"], "ground_truth": True, "ground_truth_radius_m": 60}},
        "planning": {"name": "expert"}, "control": {"name": "stanley"},
        "run": {"video": True, "camera": None, "video_every": 8}}
    metrics = run_stack(config, tmp_path, RunOptions())
    assert metrics["complete"] and metrics["num_routes"] == 1
    route = metrics["routes"][0]
    assert route["termination"] == "completed", route
    assert metrics["driving_score"] == pytest.approx(100.0)
    assert json.loads((tmp_path / "metrics.json").read_text())["driving_score"] == pytest.approx(100.0)
    assert (tmp_path / "video.mp4").stat().st_size > 0
