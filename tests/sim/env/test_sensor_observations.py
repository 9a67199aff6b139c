"""The ``sensors`` observation mode: the suite's arrays as a Dict space, padded where the count varies."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("open3d")

from sim.env.driving import DrivingEnv  # noqa: E402

SUITE = """
sensors:
  - {name: rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 64, image_size_y: 48, fov: 90}}
  - {name: depth, blueprint: sensor.camera.depth, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 64, image_size_y: 48, fov: 90}}
  - {name: lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 8, points_per_second: 16000, rotation_frequency: 20, range: 50}}
  - {name: radar, blueprint: sensor.other.radar, transform: {x: 2.6, z: 1.0}}
  - {name: gnss, blueprint: sensor.other.gnss}
  - {name: imu, blueprint: sensor.other.imu}
  - {name: collision, blueprint: sensor.other.collision}
"""


def test_sensor_observations_fit_their_space(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    env = DrivingEnv(map="Town01", traffic={"vehicles": 4, "walkers": 0}, sensors=str(suite),
                     observation={"mode": "sensors"})
    try:
        space = env.observation_space
        assert set(space.spaces) == {"rgb", "depth", "lidar", "lidar_count", "radar", "radar_count", "gnss", "imu"}
        assert space["rgb"].shape == (48, 64, 3) and space["lidar"].shape == (8 * 100, 4)
        obs, _ = env.reset(seed=0)
        for _ in range(3):
            obs, *_ = env.step(np.array([0.3, 0.0]))
        assert space.contains(obs)
        count = int(obs["lidar_count"][0])
        assert 0 < count <= 800
        assert np.all(obs["lidar"][count:] == 0) and np.any(obs["lidar"][:count] != 0)
        assert obs["rgb"].std() > 5 and 0 < obs["depth"].min() < obs["depth"].max() <= 1000
        assert abs(obs["gnss"][0]) <= 90 and abs(obs["imu"][2] - 9.81) < 1.0  # gravity on the z accelerometer
    finally:
        env.close()


def test_sensor_mode_needs_a_suite():
    from sim.config import ConfigError

    with pytest.raises(ConfigError, match="sensor suite"):
        DrivingEnv(map="Town01", observation={"mode": "sensors"})


NOISY_SUITE = """
sensors:
  - {name: rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 32, image_size_y: 24, fov: 90}}
  - {name: lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 4, points_per_second: 8000, rotation_frequency: 20, range: 40, noise_stddev: 0.05}}
  - {name: gnss, blueprint: sensor.other.gnss, attributes: {noise_alt_stddev: 0.5}}
"""


def test_same_episode_seed_same_sensor_data_whatever_ran_before(tmp_path):
    """Resets reuse the rig (and its scene); an episode's sensor data, noise included, depend only on its seed."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(NOISY_SUITE)
    kwargs = dict(map="Town01", traffic={"vehicles": 4, "walkers": 2}, sensors=str(suite),
                  observation={"mode": "sensors"})
    fresh, reused = DrivingEnv(**kwargs), DrivingEnv(**kwargs)
    try:
        reused.reset(seed=8)
        reused.step(np.array([0.5, 0.0]))
        traces = []
        for env in (fresh, reused):
            obs, _ = env.reset(seed=3)
            trace = [obs]
            for _ in range(3):
                trace.append(env.step(np.array([0.4, 0.0]))[0])
            traces.append(trace)
        for a, b in zip(*traces, strict=True):
            assert a.keys() == b.keys()
            for name in a:
                np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    finally:
        fresh.close()
        reused.close()
