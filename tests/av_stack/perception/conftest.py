"""A small dataset collected once for the perception tests (a small camera, an 8-channel LiDAR, a radar)."""

from __future__ import annotations

import pytest
import torch

from av_stack.data.collect import collect
from av_stack.data.config import CollectConfig

SUITE = """sensors:
  - {name: front_rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4, pitch_deg: -5.0},
     attributes: {image_size_x: 160, image_size_y: 120, fov: 90}}
  - {name: roof_lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 8, points_per_second: 40000, rotation_frequency: 20, range: 60}}
  - {name: front_radar, blueprint: sensor.other.radar, transform: {x: 2.6, z: 1.0},
     attributes: {points_per_second: 600}}
"""


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """Eight frames of Town01 with traffic, every frame's sensors (tests must not change it)."""
    root = tmp_path_factory.mktemp("perception_data")
    (root / "suite.yaml").write_text(SUITE)
    mix = {"towns": [{"map": "Town01"}], "traffic": [{"vehicles": 12, "walkers": 6}], "frames": 8,
           "frames_per_log": 8, "sensors": str(root / "suite.yaml"), "noise": {"enabled": False},
           "split": {"val": [], "test": []}}
    collect(CollectConfig.model_validate(mix), root / "data", show_progress=False)
    return root / "data"


@pytest.fixture
def one_thread():
    """One torch thread for the light classifier's tests: on a shared 2-core machine two threads made a tiny
    training run 40 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
