"""The driving environment end to end: API contract, checkers, determinism, episode ends, bad input."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import sim.env  # noqa: F401  (registers avsim/Driving-v0)
from sim.api import Pose
from sim.config import ConfigError
from sim.env.actions import ActionError
from av_stack.bridge import expert_agent
from sim.env.driving import DrivingEnv
from sim.scenarios.library import steer_towards

SMALL = {"map": "Town01", "traffic": {"vehicles": 8, "walkers": 4}, "observation": {"mode": "state"}}


@pytest.fixture(scope="module")
def env():
    environment = DrivingEnv(**SMALL)
    yield environment
    environment.close()


def test_registered_and_made_with_keywords():
    made = gymnasium.make("avsim/Driving-v0", map="Town01", traffic={"vehicles": 2, "walkers": 0},
                          observation={"mode": "state"})
    assert made.unwrapped.config.world.map == "Town01" and made.unwrapped.config.traffic.vehicles == 2
    obs, info = made.reset(seed=1)
    assert made.observation_space.contains(obs)
    assert info["route_length_m"] > 100
    made.close()


def test_gymnasium_and_sb3_checkers_pass(env):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)


def test_same_seed_same_episode():
    def rollout(seed: int) -> tuple[np.ndarray, list[float]]:
        e = DrivingEnv(**SMALL)
        obs, _ = e.reset(seed=seed)
        rewards = []
        actions = np.random.default_rng(0).uniform(-1, 1, size=(60, 2))
        stack = [obs]
        for action in actions:
            obs, reward, terminated, truncated, _ = e.step(action)
            stack.append(obs)
            rewards.append(reward)
            if terminated or truncated:
                break
        return np.stack(stack), rewards

    a_obs, a_rew = rollout(5)
    b_obs, b_rew = rollout(5)
    c_obs, _ = rollout(6)
    np.testing.assert_array_equal(a_obs, b_obs)
    assert a_rew == b_rew
    assert a_obs.shape != c_obs.shape or not np.array_equal(a_obs, c_obs)


def test_nan_action_raises_clear_error_and_out_of_range_is_clipped(env):
    env.reset(seed=0)
    with pytest.raises(ActionError, match="non-finite"):
        env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3))
    _, _, _, _, info = env.step(np.array([3.0, -0.5]))
    assert info["action_clipped"] is True
    _, _, _, _, info = env.step(np.array([0.5, -0.5]))
    assert info["action_clipped"] is False


def test_unknown_config_key_names_it():
    with pytest.raises(ConfigError, match="trafic"):
        DrivingEnv(map="Town01", trafic={"vehicles": 1})
    with pytest.raises(ConfigError, match="vehicle"):
        DrivingEnv(map="Town01", traffic={"vehicle": 1})
    with pytest.raises(ConfigError, match="does not exist"):
        DrivingEnv(config="configs/env/no_such_file.yaml")


def test_time_limit_truncates_not_terminates():
    e = DrivingEnv(**{**SMALL, "traffic": {"vehicles": 0, "walkers": 0}, "episode": {"max_steps": 5}})
    e.reset(seed=0)
    for step in range(5):
        _, _, terminated, truncated, info = e.step(np.array([-1.0, 0.0]))  # stand still on the brake
        assert not terminated
    assert truncated and info["termination_reason"] == "route_timeout"
    assert info["route_score"]["route_completion"] < 5.0


def test_driving_the_route_completes_it_and_scores_100():
    """The route follower (pure pursuit, stops for red) completes a route: terminated, completion 100, DS 100."""
    e = DrivingEnv(**{**SMALL, "traffic": {"vehicles": 0, "walkers": 0}, "action": {"mode": "vehicle_control"},
                      "routes": {"min_length_m": 60, "max_length_m": 80},
                      "episode": {"terminate_on": ["collision", "route_deviation"]}})
    e.reset(seed=2)
    agent = expert_agent()
    agent.reset(e)
    for _ in range(2000):
        _, _, terminated, truncated, info = e.step(agent(None, e))
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert info["termination_reason"] == "completed"
    assert info["route_score"]["route_completion"] == pytest.approx(100.0)
    assert info["route_score"]["driving_score"] == pytest.approx(100.0)


def test_collision_terminates_and_is_scored():
    """Driving into a parked car: terminated by the collision, penalty 0.6 in the route score."""
    e = DrivingEnv(**{**SMALL, "traffic": {"vehicles": 0, "walkers": 0}})
    e.reset(seed=3)
    ahead = e.route.points_xy[15]
    e.world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(float(ahead[0]), float(ahead[1]), 0.3,
                                                   float(e.route.yaw_rad[15])))
    for _ in range(400):
        _, reward, terminated, truncated, info = e.step(np.array([1.0, 0.0]))
        if terminated or truncated:
            break
    assert terminated and info["termination_reason"] == "collision"
    assert info["rewards"]["terminal"] < -1.0  # Roach: -1 - speed
    assert info["route_score"]["infraction_penalty"] == pytest.approx(0.6)


def test_render_rgb_array():
    e = DrivingEnv(**{**SMALL, "traffic": {"vehicles": 2, "walkers": 0}}, render_mode="rgb_array")
    e.reset(seed=0)
    e.step(np.array([0.5, 0.0]))
    frame = e.render()
    assert frame.shape == (512, 512, 3) and frame.dtype == np.uint8 and frame.std() > 5
    with pytest.raises(ValueError, match="render_mode"):
        DrivingEnv(**SMALL, render_mode="human")


def test_route_file_routes_and_wrong_town(tmp_path):
    routes = tmp_path / "routes.yaml"
    e = DrivingEnv(**SMALL)
    e.reset(seed=0)
    from sim.scenarios.routes import write_route_file

    write_route_file(routes, "Town01", [e.route])
    f = DrivingEnv(**{**SMALL, "routes": {"source": "file", "file": str(routes)}})
    _, info = f.reset(seed=0)
    assert info["route_id"] == e.route.route_id
    assert info["route_length_m"] == pytest.approx(e.route.length_m, abs=1.0)
    with pytest.raises(ConfigError, match="Town01"):
        DrivingEnv(**{**SMALL, "map": "Town02", "routes": {"source": "file", "file": str(routes)}})


def test_scripted_episode_one_vehicle_collision_and_80_percent_scores_48():
    """Drive 80% of a route, bumping into one car on the way: driving score = 80 x 0.6 = 48 (Leaderboard 2.0)."""
    e = DrivingEnv(**{**SMALL, "traffic": {"vehicles": 0, "walkers": 0},
                      "routes": {"min_length_m": 120, "max_length_m": 160},
                      "episode": {"terminate_on": [], "max_steps": 1200}})
    e.reset(seed=2)
    route = e.route
    obstacle = None
    collisions = 0
    for _ in range(1200):
        snapshot = e.world.snapshot()
        row = snapshot.index_of(e.ego_id)
        x, y = snapshot.location_m[row, :2]
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        target = route.points_xy[min(e.progress.index + 6, route.points_xy.shape[0] - 1)]
        steer = steer_towards(x, y, snapshot.rotation_rad[row, 1], target)
        completion = e.progress.completion
        if obstacle is None and collisions == 0 and completion > 0.3:
            ahead = route.points_xy[e.progress.index + 9]
            obstacle = e.world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(
                float(ahead[0]), float(ahead[1]), 0.3, float(route.yaw_rad[e.progress.index + 9])))
        light, light_m = e.next_light(snapshot, e.progress)
        stop_for_light = light in (0, 1) and light_m < 12.0  # red or yellow ahead
        acc = float(np.clip(0.5 * (6.0 - speed), -1, 1)) if completion < 0.8 and not stop_for_light else -1.0
        _, _, terminated, truncated, info = e.step(np.array([acc, steer]))
        if "collision" in info["infractions"]:
            collisions += 1
            e.world.destroy([obstacle])  # the car is gone: drive on
        if terminated or truncated:
            break
    assert truncated and collisions == 1
    score = info["route_score"]
    completion = score["route_completion"] / 100.0
    assert 0.8 <= completion < 0.82  # braked once past 80%
    assert score["infraction_penalty"] == pytest.approx(0.6)
    assert score["driving_score"] == pytest.approx(100.0 * completion * 0.6)
    assert score["driving_score"] == pytest.approx(48.0, abs=1.3)


@pytest.mark.parametrize("name", ["default", "train_state", "leaderboard_town01"])
def test_shipped_env_configs_validate(name):
    from sim.env.config import load_env_config

    config = load_env_config(f"configs/env/{name}.yaml")
    assert config.backend == "embedded"
    override = load_env_config(f"configs/env/{name}.yaml", map="Town02", traffic={"walkers": 3})
    assert override.world.map == "Town02" and override.traffic.walkers == 3
    assert override.traffic.vehicles == config.traffic.vehicles  # nested sections merge key by key


def test_bad_yaml_and_bad_values_are_named(tmp_path):
    from sim.env.config import load_env_config

    bad = tmp_path / "env.yaml"
    bad.write_text("map: [Town01\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_env_config(bad)
    with pytest.raises(ConfigError, match="terminate_on"):
        load_env_config(episode={"terminate_on": ["crash"]})
    with pytest.raises(ConfigError, match="min_length_m"):
        load_env_config(routes={"min_length_m": 500, "max_length_m": 100})
    with pytest.raises(ConfigError, match="routes.file"):
        load_env_config(routes={"source": "file"})


def test_any_xodr_file_and_procedural_towns_get_random_routes(tmp_path):
    """map= a user's .xodr path (routes generated on it) or a procedural town."""
    from sim.maps.loader import resolve_map

    user_map = tmp_path / "my_town.xodr"
    user_map.write_text(resolve_map("Town02").xodr_text)
    for map_name in (str(user_map), "procedural"):
        e = DrivingEnv(map=map_name, traffic={"vehicles": 2, "walkers": 0}, observation={"mode": "state"},
                       routes={"min_length_m": 60, "max_length_m": 120})
        obs, info = e.reset(seed=0)
        assert e.observation_space.contains(obs) and 55 <= info["route_length_m"] <= 125
        e.step(np.array([0.5, 0.0]))
