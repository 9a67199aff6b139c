"""The env's config: the nested world section and its shorthands, typed reward parameters, observation modes."""

from __future__ import annotations

import pytest

from sim.config import ConfigError, WorldConfig
from sim.env.config import EnvConfig, load_env_config
from sim.env.driving import DrivingEnv
from sim.env.rewards import CarlParams, RewardInput, RoachParams, make_reward


# ------------------------------------------------------------------ world
def test_world_defaults_and_shorthands_fill_the_world_section():
    default = load_env_config()
    assert default.world.map == "Town01"  # the env's default, not WorldConfig's
    assert default.world.dt_s == pytest.approx(0.05) and default.world.dynamics == "dynamic"
    short = load_env_config(map="Town02", seed=3, dt_s=0.1, dynamics="kinematic")
    assert (short.world.map, short.world.seed, short.world.dt_s, short.world.dynamics) == \
        ("Town02", 3, 0.1, "kinematic")
    # A shorthand and the same value under world is no conflict.
    assert load_env_config(map="Town02", world={"map": "Town02", "seed": 4}).world.seed == 4
    # world without a map keeps the env's default map.
    assert load_env_config(world={"seed": 9}).world.map == "Town01"
    assert EnvConfig(map="Town02").world.map == "Town02"  # the model itself takes the shorthands too


def test_keyword_shorthands_override_the_files_world(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("world: {map: Town02, seed: 5, lights: {green_s: 20}}\n")
    config = load_env_config(path, map="Town10HD")
    assert config.world.map == "Town10HD"
    assert config.world.seed == 5 and config.world.lights.green_s == 20  # the rest of the file's world is kept
    path.write_text("map: Town02\nseed: 5\n")  # shorthands in a file
    assert load_env_config(path).world.seed == 5
    assert load_env_config(path, world={"seed": 6}).world.seed == 6


def test_conflicting_shorthand_names_both_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"map \('Town02'\) and world.map \('Town10HD'\) conflict"):
        load_env_config(map="Town02", world={"map": "Town10HD"})
    with pytest.raises(ConfigError, match=r"seed \(1\) and world.seed \(2\)"):
        DrivingEnv(seed=1, world={"seed": 2})
    path = tmp_path / "env.yaml"
    path.write_text("dt_s: 0.1\nworld: {dt_s: 0.05}\n")
    with pytest.raises(ConfigError, match=rf"env config {path}: dt_s \(0.1\) and world.dt_s \(0.05\)"):
        load_env_config(path)


def test_unknown_world_key_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"world.traffic.lane_change: unknown key \(valid: .*lane_changes"):
        load_env_config(world={"traffic": {"lane_change": True}})
    with pytest.raises(ConfigError, match="world.colour"):
        load_env_config(world={"colour": "red"})


def test_env_world_gets_light_timing_traffic_behaviour_and_procedural_towns():
    env = DrivingEnv(world={"map": "procedural", "procedural": {"grid_rows": 2, "grid_cols": 3, "seed": 4},
                            "lights": {"green_s": 17.0}, "traffic": {"lane_changes": True}},
                     traffic={"vehicles": 2, "walkers": 0}, observation={"mode": "state"},
                     routes={"min_length_m": 40, "max_length_m": 120})
    try:
        assert env.world.source.name.startswith("procedural_2x3_seed4")
        assert env.world.config.lights.green_s == 17.0 and env.world.config.traffic.lane_changes
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_world_config_object_is_accepted():
    config = load_env_config(world=WorldConfig(seed=8))
    assert config.world.seed == 8 and config.world.map == "Town01"  # its unset map takes the env's default
    assert load_env_config(config).world == config.world  # an EnvConfig round-trips


# ------------------------------------------------------------------ rewards
def test_reward_params_are_typed_per_reward():
    roach = load_env_config(reward={"params": {"v_max_mps": 4.0}})
    assert isinstance(roach.reward.params, RoachParams) and roach.reward.params.v_max_mps == 4.0
    carl = load_env_config(reward={"name": "carl", "params": {"centre_weight": 0.25}})
    assert isinstance(carl.reward.params, CarlParams) and carl.reward.params.centre_weight == 0.25
    assert isinstance(load_env_config(reward={"name": "carl"}).reward.params, CarlParams)


def test_unknown_reward_key_is_a_config_error_listing_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"reward 'roach': params.v_maxx: unknown parameter \(valid: v_max_mps, "):
        load_env_config(reward={"params": {"v_maxx": 3.0}})
    # A Roach parameter is unknown to CaRL.
    with pytest.raises(ConfigError, match=r"reward 'carl': params.v_max_mps: unknown parameter \(valid: speeding_"):
        load_env_config(reward={"name": "carl", "params": {"v_max_mps": 3.0}})
    path = tmp_path / "env.yaml"
    path.write_text("reward: {name: roach, params: {stop_metres: 2}}\n")
    with pytest.raises(ConfigError, match=rf"env config {path}: reward 'roach': params.stop_metres"):
        load_env_config(path)
    with pytest.raises(ConfigError, match="v_max_mps"):
        load_env_config(reward={"params": {"v_max_mps": -1.0}})
    with pytest.raises(ConfigError, match="reward.name"):
        load_env_config(reward={"name": "nope"})


def test_typed_params_give_the_same_reward_as_a_dict():
    step = RewardInput(speed_mps=5.0, speed_limit_mps=10.0, lateral_m=0.4, heading_error_rad=-0.2, steer=0.3,
                       previous_steer=0.1, completion=0.5, previous_completion=0.49, hazard_distance_m=9.0,
                       ending_infraction=None, completed=False)
    config = load_env_config(reward={"params": {"v_max_mps": 8.0, "stop_m": 2.0}})
    assert make_reward("roach", config.reward.params)(step) == make_reward("roach", {"v_max_mps": 8.0,
                                                                                     "stop_m": 2.0})(step)
    with pytest.raises(ConfigError, match="expected CarlParams"):
        make_reward("carl", RoachParams())


# ------------------------------------------------------------------ observation modes
def test_mode_is_a_one_element_shorthand_for_modes():
    assert load_env_config(observation={"mode": "state"}).observation.modes == ("state",)
    assert load_env_config(observation={"modes": ["state", "bev"]}).observation.modes == ("state", "bev")
    assert load_env_config().observation.modes == ("bev",)
    # A keyword mode replaces a file's modes (the CLI's --observation does this).
    assert load_env_config({"observation": {"modes": ["bev", "state"]}},
                           observation={"mode": "state"}).observation.modes == ("state",)


@pytest.mark.parametrize(("observation", "message"), [
    ({"modes": ["bev", "lidar"]}, r"observation.modes: unknown mode 'lidar' \(valid: bev, state, sensors\)"),
    ({"mode": "pixels"}, r"unknown mode 'pixels'"),
    ({"modes": []}, r"observation.modes is empty: name at least one of bev, state, sensors"),
    ({"modes": ["bev", "bev"]}, r"names a mode twice"),
    ({"mode": "bev", "modes": ["state"]}, r"observation.mode \('bev'\) and observation.modes \(\['state'\]\) conflict"),
    ({"moods": ["bev"]}, r"observation.moods: unknown key \(valid: modes, "),
])
def test_bad_observation_modes_are_named(observation, message):
    with pytest.raises(ConfigError, match=message):
        load_env_config(observation=observation)


def test_sensor_mode_among_several_needs_a_suite():
    with pytest.raises(ConfigError, match="sensor suite"):
        load_env_config(observation={"modes": ["bev", "sensors"]})
