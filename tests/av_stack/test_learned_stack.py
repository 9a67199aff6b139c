"""The README's main job, the full learned stack (``configs/stack/learned.yaml``), end to end on small
settings: on the embedded simulator, and through the CARLA client against ``avsim serve`` (the same YAML with
``backend: carla``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from av_stack.runner import RunOptions, run_stack

LEARNED = Path(__file__).resolve().parents[2] / "configs" / "stack" / "learned.yaml"
TICKS = 120


def _short(env_extra: dict | None = None) -> dict:
    """The shipped config as it is, cut to ``TICKS`` ticks with light traffic and a sparse video."""
    config = copy.deepcopy(yaml.safe_load(LEARNED.read_text()))
    config["env"] |= {"episode": {"max_steps": TICKS}, "traffic": {"vehicles": 4, "walkers": 2}} | (env_extra or {})
    config["run"] |= {"video_every": 10}
    return config


def _check_learned_run(metrics: dict, out: Path) -> None:
    assert metrics["complete"] and metrics["error"] is None, metrics["error"]
    assert metrics["ticks"] == TICKS
    assert metrics["stack"] == {"perception": "learned", "localization": "learned", "planning": "rl",
                                 "control": "stanley"}
    for stage in ("perception", "localization", "planning", "bev_assembly"):
        assert metrics["latency_ms"][stage]["p50"] > 0.0, stage
    route = metrics["routes"][0]
    assert route["distance_m"] > 10.0, route  # the policy drove on the learned stages' estimates
    assert route["infractions"]["collisions_layout"] == 0 and route["infractions"]["collisions_vehicle"] == 0
    assert json.loads((out / "metrics.json").read_text())["ticks"] == TICKS
    assert (out / "video.mp4").stat().st_size > 0 and (out / "run.mcap").stat().st_size > 0


def test_the_readme_main_job_drives_the_full_learned_stack(tmp_path):
    metrics = run_stack(_short(), tmp_path, RunOptions())
    _check_learned_run(metrics, tmp_path)


@pytest.mark.carla
def test_the_same_learned_stack_yaml_drives_on_the_carla_backend(carla_endpoint, tmp_path):
    host, port, _ = carla_endpoint
    metrics = run_stack(_short({"backend": "carla", "carla": {"host": host, "port": port}}), tmp_path, RunOptions())
    _check_learned_run(metrics, tmp_path)
