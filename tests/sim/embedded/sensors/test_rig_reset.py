"""``rig.reset(seed)``: sensors re-attached to a new episode's actors, static scene kept, noise seeded per episode."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("open3d")

from sim.api import Pose  # noqa: E402
from sim.backends import make_sensor_rig, make_world  # noqa: E402
from sim.config import WorldConfig  # noqa: E402
from sim.sensors.noise import episode_noise_seed  # noqa: E402
from sim.sensors.suite import load_suite  # noqa: E402

BLUEPRINT = "vehicle.lincoln.mkz_2020"
SUITE = """
sensors:
  - {name: rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 48, image_size_y: 32, fov: 90}}
  - {name: lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 8, points_per_second: 16000, rotation_frequency: 20, range: 50, noise_stddev: 0.05}}
  - {name: gnss, blueprint: sensor.other.gnss,
     attributes: {noise_lat_stddev: 0.00001, noise_lon_stddev: 0.00001, noise_alt_stddev: 0.5}}
"""


@pytest.fixture(scope="module")
def rig_and_world(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "suite.yaml"
    path.write_text(SUITE)
    world = make_world("embedded", WorldConfig(map="Town01", seed=0))
    world.spawn_vehicle(BLUEPRINT, world.spawn_points[0], role_name="hero")
    rig = make_sensor_rig("embedded", world, load_suite(path))
    yield rig, world
    rig.close()


def _episode(rig, world, seed: int, decoy: bool = False):
    """A new episode of the same world: hero at the same spawn point (after a decoy car if asked), rig reset."""
    world.reset(0)
    decoy_id = world.spawn_vehicle(BLUEPRINT, world.spawn_points[20]) if decoy else None
    hero = world.spawn_vehicle(BLUEPRINT, world.spawn_points[0], role_name="hero")
    rig.reset(seed)
    snapshot = world.tick()
    return hero, decoy_id, snapshot, rig.measure(snapshot)


def test_same_episode_seed_same_data_other_seed_other_noise(rig_and_world):
    rig, world = rig_and_world
    _, _, _, first = _episode(rig, world, 11)
    _, _, _, again = _episode(rig, world, 11)
    _, _, _, other = _episode(rig, world, 12)
    for name in ("rgb", "lidar", "gnss"):
        np.testing.assert_array_equal(first[name].data, again[name].data, err_msg=name)
    # The camera has no noise: the same image; the noisy sensors differ.
    np.testing.assert_array_equal(first["rgb"].data, other["rgb"].data)
    assert not np.array_equal(first["gnss"].data, other["gnss"].data)
    assert first["lidar"].data.shape != other["lidar"].data.shape or \
        not np.array_equal(first["lidar"].data, other["lidar"].data)


def test_reset_keeps_the_static_scene_and_follows_the_new_hero(rig_and_world):
    rig, world = rig_and_world
    _episode(rig, world, 1)
    scene = rig.scene
    hero, decoy, snapshot, data = _episode(rig, world, 2, decoy=True)
    assert rig.scene is scene  # not rebuilt
    assert hero != decoy
    hero_xy = snapshot.location_m[snapshot.index_of(hero), :2]
    decoy_xy = snapshot.location_m[snapshot.index_of(decoy), :2]
    # The GNSS (mounted at the hero's origin) and the LiDAR measure from the new hero, not from the decoy.
    for name in ("gnss", "lidar"):
        np.testing.assert_allclose(data[name].location_m[:2], hero_xy, atol=1e-6)
        assert np.hypot(*(data[name].location_m[:2] - decoy_xy)) > 5.0


def test_reset_without_the_role_names_actor_is_a_clear_error(rig_and_world):
    from sim.sensors.blueprints import SensorConfigError

    rig, world = rig_and_world
    world.reset(0)
    world.spawn_vehicle(BLUEPRINT, world.spawn_points[0])  # no role name
    with pytest.raises(SensorConfigError, match="no actor with role_name 'hero'"):
        rig.reset(3)


def test_episode_noise_seed_mixes_both_seeds():
    seeds = {episode_noise_seed(0, episode) for episode in range(50)}
    assert len(seeds) == 50 and all(0 <= s < 2**31 for s in seeds)
    assert episode_noise_seed(3, 7) == episode_noise_seed(3, 7) != episode_noise_seed(4, 7)
    with pytest.raises(ValueError, match="non-negative"):
        episode_noise_seed(0, -1)


def test_rigs_reseeded_alike_give_the_same_noise(tmp_path):
    """A fresh rig reset with a seed measures what a rig reused over several episodes does with that seed."""
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE)
    worlds = [make_world("embedded", WorldConfig(map="Town01", seed=0)) for _ in range(2)]
    rigs = []
    for world in worlds:
        world.spawn_vehicle(BLUEPRINT, Pose(0.0, 0.0, 0.0), role_name="hero")
        rigs.append(make_sensor_rig("embedded", world, load_suite(path)))
    try:
        _episode(rigs[1], worlds[1], 40)  # the second rig has run another episode first
        results = [_episode(rig, world, 41)[3] for rig, world in zip(rigs, worlds, strict=True)]
        for name in ("rgb", "lidar", "gnss"):
            np.testing.assert_array_equal(results[0][name].data, results[1][name].data, err_msg=name)
    finally:
        for rig in rigs:
            rig.close()
