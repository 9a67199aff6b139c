"""A tiny collected dataset shared by the localization tests: Town01, two logs of 30 frames (seeds 0 and 1),
no traffic, with a GNSS, an IMU and a small LiDAR (16 channels, about 4,000 points a sweep) and ground truth."""

from __future__ import annotations

import pytest

SUITE = """sensors:
  - {name: gnss, blueprint: sensor.other.gnss, transform: {x: 0.0}}
  - {name: imu, blueprint: sensor.other.imu, transform: {x: 0.0}}
  - name: lidar
    blueprint: sensor.lidar.ray_cast
    transform: {x: 0.0, z: 2.5}
    attributes: {channels: 16, range: 50.0, points_per_second: 81920, rotation_frequency: 20.0, upper_fov: 10.0,
                 lower_fov: -30.0}
"""


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """The dataset directory (``manifest.json`` and two ``Town01_..._seed{0,1}.mcap`` logs)."""
    from av_stack.data.collect import collect
    from av_stack.data.config import CollectConfig

    root = tmp_path_factory.mktemp("localization_data")
    (root / "suite.yaml").write_text(SUITE)
    mix = {"towns": [{"map": "Town01"}], "traffic": [{"vehicles": 0, "walkers": 0}], "frames": 60,
           "frames_per_log": 30, "sensors": str(root / "suite.yaml"), "noise": {"enabled": False},
           "split": {"val": [], "test": []}}
    collect(CollectConfig.model_validate(mix), root / "data", show_progress=False)
    return root / "data"
