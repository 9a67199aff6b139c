"""Several observation modes in one step, privileged ground truth in ``info``, and the world-to-ego transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces

from sim.api import ActorKind, Pose, TrafficLightState
from sim.config import ConfigError
from sim.env.driving import DrivingEnv
from sim.env.observations import GroundTruth
from sim.transforms import world_to_ego

QUIET = {"map": "Town01", "traffic": {"vehicles": 0, "walkers": 0}}
SMALL_SUITE = """
sensors:
  - {name: rgb, blueprint: sensor.camera.rgb, transform: {x: 1.5, z: 2.4},
     attributes: {image_size_x: 32, image_size_y: 24, fov: 90}}
  - {name: lidar, blueprint: sensor.lidar.ray_cast, transform: {z: 2.5},
     attributes: {channels: 4, points_per_second: 4000, rotation_frequency: 20, range: 30, noise_stddev: 0.02}}
  - {name: gnss, blueprint: sensor.other.gnss, attributes: {noise_lat_stddev: 0.00001, noise_lon_stddev: 0.00001}}
"""


@pytest.fixture()
def suite_path(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text(SMALL_SUITE)
    return str(path)


# ------------------------------------------------------------------ world_to_ego
def test_world_to_ego_axes_and_shapes():
    # Ego at (10, 5) heading +y (yaw 90 deg). CARLA's frame: x forward, y right.
    ego_xy, yaw = np.array([10.0, 5.0]), math.pi / 2
    ahead = world_to_ego(np.array([10.0, 8.0]), ego_xy, yaw)
    np.testing.assert_allclose(ahead, [3.0, 0.0], atol=1e-12)
    right = world_to_ego(np.array([[8.0, 5.0], [12.0, 5.0]]), ego_xy, yaw)  # turning +x toward +y is a right turn
    np.testing.assert_allclose(right, [[0.0, 2.0], [0.0, -2.0]], atol=1e-12)
    velocity = world_to_ego(np.array([[0.0, 4.0]]), (0.0, 0.0), yaw)  # a vector: only turned
    np.testing.assert_allclose(velocity, [[4.0, 0.0]], atol=1e-12)
    assert world_to_ego(np.zeros((2, 3, 2)), ego_xy, 0.3).shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        world_to_ego(np.zeros((4, 3)), ego_xy, 0.0)


# ------------------------------------------------------------------ single modes keep their spaces
def test_single_modes_keep_their_observation_spaces():
    state = DrivingEnv(**QUIET, observation={"mode": "state"})
    assert isinstance(state.observation_space, spaces.Box) and state.observation_space.shape == (100,)
    bev = DrivingEnv(**QUIET, observation={"modes": ["bev"]})
    assert set(bev.observation_space.spaces) == {"bev", "measurements"}
    assert bev.observation_space["bev"].shape[1:] == (192, 192)


# ------------------------------------------------------------------ several modes
def test_bev_and_state_in_one_dict_equal_their_single_mode_observations():
    both = DrivingEnv(**QUIET, observation={"modes": ["state", "bev"]})
    state = DrivingEnv(**QUIET, observation={"mode": "state"})
    bev = DrivingEnv(**QUIET, observation={"mode": "bev"})
    assert set(both.observation_space.spaces) == {"bev", "measurements", "state"}
    observations = [env.reset(seed=4)[0] for env in (both, state, bev)]
    action = np.array([0.6, 0.05], dtype=np.float32)
    for _ in range(3):
        observations = [env.step(action)[0] for env in (both, state, bev)]
    merged, alone_state, alone_bev = observations
    assert both.observation_space.contains(merged)
    np.testing.assert_array_equal(merged["state"], alone_state)
    np.testing.assert_array_equal(merged["bev"], alone_bev["bev"])
    np.testing.assert_array_equal(merged["measurements"], alone_bev["measurements"])


def test_sensors_and_bev_pass_the_gymnasium_checker(suite_path):
    pytest.importorskip("open3d")
    from gymnasium.utils.env_checker import check_env

    env = DrivingEnv(map="Town01", traffic={"vehicles": 3, "walkers": 2}, sensors=suite_path,
                     observation={"modes": ["sensors", "bev", "state"], "ground_truth": True,
                                  "bev": {"size_px": 64}})
    try:
        assert set(env.observation_space.spaces) == {"rgb", "lidar", "lidar_count", "gnss", "bev", "measurements",
                                                     "state"}
        check_env(env, skip_render_check=True)
        obs, info = env.reset(seed=1)
        obs, *_ = env.step(np.array([0.5, 0.0], dtype=np.float32))
        assert env.observation_space.contains(obs)
        assert obs["rgb"].shape == (24, 32, 3) and obs["rgb"].std() > 1 and obs["bev"].any()
        assert 0 < int(obs["lidar_count"][0]) <= obs["lidar"].shape[0]
    finally:
        env.close()


def test_sensor_names_may_not_clash_with_other_modes_entries(tmp_path):
    path = tmp_path / "clash.yaml"
    path.write_text("sensors:\n  - {name: state, blueprint: sensor.other.gnss}\n")
    with pytest.raises(ConfigError, match=r"entries \['state'\] clash"):
        DrivingEnv(**QUIET, sensors=str(path), observation={"modes": ["state", "sensors"]})


# ------------------------------------------------------------------ ground truth
def test_ground_truth_only_when_asked():
    env = DrivingEnv(**QUIET, observation={"mode": "state"})
    _, info = env.reset(seed=0)
    assert "ground_truth" not in info
    assert "ground_truth" not in env.step(np.zeros(2, dtype=np.float32))[4]


def test_ground_truth_ego_pose_and_a_parked_car_in_the_ego_frame():
    env = DrivingEnv(**QUIET, observation={"mode": "state", "ground_truth": True, "ground_truth_radius_m": 30.0})
    _, info = env.reset(seed=3)
    truth = info["ground_truth"]
    assert isinstance(truth, GroundTruth) and len(truth.actors) == 0
    snapshot = env.world.snapshot()
    row = snapshot.index_of(env.ego_id)
    assert truth.ego.actor_id == env.ego_id and truth.frame == snapshot.frame
    assert (truth.ego.x_m, truth.ego.y_m) == pytest.approx(tuple(snapshot.location_m[row, :2]))
    assert truth.ego.yaw_rad == pytest.approx(float(snapshot.rotation_rad[row, 1]))
    # Park a car 12 m ahead and 3 m to the right of the ego, turned 0.4 rad, and another 80 m away.
    x, y, yaw = truth.ego.x_m, truth.ego.y_m, truth.ego.yaw_rad
    c, s = math.cos(yaw), math.sin(yaw)
    near = env.world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(x + 12 * c - 3 * s, y + 12 * s + 3 * c, 0.0,
                                                                    yaw + 0.4))
    env.world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(x + 80 * c, y + 80 * s, 0.0, yaw))
    _, _, _, _, info = env.step(np.array([-1.0, 0.0], dtype=np.float32))  # brake: the ego stays put
    truth = info["ground_truth"]
    assert list(truth.actors.actor_id) == [near]  # the far car is outside the 30 m radius
    assert truth.actors.kind[0] == ActorKind.VEHICLE
    extent = env.world.snapshot().extent_m[env.world.snapshot().index_of(near)]
    np.testing.assert_allclose(truth.actors.center_m[0, :2], [12.0, 3.0], atol=0.1)
    assert truth.actors.center_m[0, 2] == pytest.approx(extent[2], abs=0.2)  # box centre above the ground
    np.testing.assert_allclose(truth.actors.extent_m[0], extent)
    assert truth.actors.yaw_rad[0] == pytest.approx(0.4, abs=0.02)
    np.testing.assert_allclose(truth.actors.velocity_mps[0], 0.0, atol=0.05)
    assert truth.ego.speed_mps < 0.5
    with pytest.raises(ValueError):
        truth.actors.center_m[0, 0] = 1.0  # read-only


def test_ground_truth_light_is_the_next_light_on_the_route():
    env = DrivingEnv(**QUIET, observation={"mode": "state", "ground_truth": True})
    found = 0
    for seed in range(20):
        _, info = env.reset(seed=seed)
        light = info["ground_truth"].light
        state, distance = env.next_light(env.world.snapshot(), env.progress)
        if light.index < 0:
            assert light.state is None and state is None and math.isinf(light.distance_m)
            continue
        found += 1
        assert isinstance(light.state, TrafficLightState) and light.state == state
        assert light.distance_m == pytest.approx(distance) and light.distance_m > 0
        assert env.route_light(env.progress) == (light.index, light.distance_m)
        if found == 3:
            break
    assert found == 3


def test_hazard_distance_is_the_gap_to_a_car_ahead():
    env = DrivingEnv(**QUIET, observation={"mode": "state"})
    with pytest.raises(RuntimeError, match="reset"):
        env.progress  # noqa: B018
    env.reset(seed=3)
    snapshot = env.world.snapshot()
    row = snapshot.index_of(env.ego_id)
    half = float(snapshot.extent_m[row, 0])
    light, light_m = env.next_light(snapshot, env.progress)
    stop_line = max(light_m - half, 0.0) if light in (TrafficLightState.RED, TrafficLightState.YELLOW) else math.inf
    assert env.hazard_distance(snapshot, row, env.progress) == stop_line  # nothing else on the road
    x, y = snapshot.location_m[row, :2]
    yaw = float(snapshot.rotation_rad[row, 1])
    env.world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(x + 15 * math.cos(yaw), y + 15 * math.sin(yaw), 0.0, yaw))
    env.step(np.array([-1.0, 0.0], dtype=np.float32))
    snapshot = env.world.snapshot()
    row = snapshot.index_of(env.ego_id)
    # Both cars are the same model: the gap is 15 m less two half lengths.
    assert env.hazard_distance(snapshot, row, env.progress) == pytest.approx(min(15.0 - 2 * half, stop_line), abs=0.2)
