"""The policy's ``target`` action: the plan it stands for, the expert's plan read back as one, the env and the
stack driving it through the same controller, its checkpoints and a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest

from av_stack.agents import make_agent
from av_stack.bridge import StackAgent, mission_of, oracle_pose
from av_stack.messages import Plan, PoseEstimate, VehicleControl
from av_stack.planning.rl.config import load_policy_config
from av_stack.planning.rl.demos import ExpertLabeler
from av_stack.planning.rl.observation import PolicyObservation
from av_stack.planning.rl.policy import load_policy, new_ppo, save_policy, target_spec_of
from av_stack.planning.rl.target import TargetActions, TargetSpec, target_label, target_plan
from av_stack.stack import Stack
from sim.config import ConfigError
from sim.env.driving import DrivingEnv
from sim.api import Pose
from sim.scenarios.routes import RoadOption, Route, RouteTracker
from tests.av_stack.planning.rl.conftest import TINY

SPEC = TargetSpec()


@pytest.fixture(scope="module")
def target_config():
    """The tiny config with target actions."""
    return load_policy_config({**TINY, "model": {"action": "target"}})


@pytest.fixture(scope="module")
def env_at_start(tiny_config):
    """The tiny town's env, reset on one seed."""
    env = DrivingEnv(tiny_config.env_overrides(tiny_config.towns[0]))
    env.reset(seed=2)
    yield env
    env.close()


def test_a_target_is_the_route_ahead_shifted_left_at_one_speed(env_at_start):
    route = env_at_start.route
    plan = target_plan(np.array([0.0, 0.0]), route, 0, SPEC, 7, 1.5, RoadOption.LEFT)
    assert plan.control is None and plan.frame == 7 and plan.command == RoadOption.LEFT
    ahead = route.s_m <= SPEC.horizon_m
    np.testing.assert_allclose(plan.trajectory_xy, route.points_xy[ahead])
    np.testing.assert_allclose(plan.target_speed_mps, 0.5 * SPEC.max_speed_mps)
    left = target_plan(np.array([1.0, 0.5]), route, 0, SPEC, 7, 1.5, RoadOption.LANEFOLLOW)
    shift = left.trajectory_xy - route.points_xy[ahead]
    np.testing.assert_allclose(np.hypot(*shift.T), 0.5 * SPEC.max_offset_m, atol=1e-9)
    # left in CARLA's frame (y to the right): the shift turns a quarter counter-clockwise on the map
    heading = np.stack([np.cos(route.yaw_rad[ahead]), np.sin(route.yaw_rad[ahead])], axis=1)
    assert np.all(heading[:, 0] * shift[:, 1] - heading[:, 1] * shift[:, 0] < 0)
    np.testing.assert_allclose(left.target_speed_mps, SPEC.max_speed_mps)
    beyond = target_plan(np.array([3.0, -7.0]), route, 0, SPEC, 7, 1.5, RoadOption.LANEFOLLOW)
    np.testing.assert_allclose(beyond.target_speed_mps, SPEC.max_speed_mps)
    with pytest.raises(ValueError, match="finite"):
        target_plan(np.array([np.nan, 0.0]), route, 0, SPEC, 7, 1.5, RoadOption.LANEFOLLOW)


@pytest.mark.parametrize("action", [(-1.0, 0.0), (0.2, 0.0), (0.8, 0.3), (-0.4, -0.6)])
def test_the_label_of_a_target_plan_is_its_action(env_at_start, action):
    pose = oracle_pose(env_at_start)
    plan = target_plan(np.array(action), env_at_start.route, 0, SPEC, 0, 0.0, RoadOption.LANEFOLLOW)
    np.testing.assert_allclose(target_label(plan, env_at_start.route, pose, SPEC), action, atol=1e-5)


def test_the_speed_label_reads_ahead_by_the_anticipation_time(env_at_start):
    route, pose = env_at_start.route, oracle_pose(env_at_start)
    ahead = route.s_m <= SPEC.horizon_m
    s = route.s_m[ahead]
    profile = np.where(s < 4.0, 6.0, 0.0)  # a stop 4 m ahead
    plan = Plan(0, 0.0, route.points_xy[ahead], profile)
    standing = target_label(plan, route, pose, SPEC)
    assert standing[0] == pytest.approx(2 * 6.0 / SPEC.max_speed_mps - 1)
    moving = type(pose)(pose.frame, pose.timestamp_s, pose.pose,
                        np.array([8.0 * np.cos(pose.yaw_rad), 8.0 * np.sin(pose.yaw_rad), 0.0]))
    assert target_label(plan, route, moving, SPEC)[0] == pytest.approx(-1.0), "at 8 m/s the stop is within 0.7 s"
    braking = Plan(0, 0.0, route.points_xy[ahead], profile, control=VehicleControl(brake=1.0))
    assert target_label(braking, route, pose, SPEC) is None


def test_the_expert_labels_targets_and_drives_with_its_own_control(tiny_config, env_at_start):
    labeler = ExpertLabeler(SPEC)
    env = env_at_start
    obs, _ = env.reset(seed=2)
    labeler.reset(env)
    labels = []
    for _ in range(60):
        label, valid = labeler(obs, env)
        assert valid and np.all(np.abs(label) <= 1.0)
        labels.append(label)
        obs, *_ = env.step(labeler.expert_action)
    labels = np.array(labels)
    assert labels[-1, 0] > -0.5, "the expert asks for speed once it drives"
    assert np.abs(labels[:, 1]).max() < 0.05, "no offset on a clear lane"
    assert float(np.hypot(*oracle_pose(env).velocity_mps[:2])) > 2.0


def test_target_actions_drive_the_env_at_the_target_speed_along_the_route(target_config):
    env = TargetActions(PolicyObservation(DrivingEnv({**target_config.env_overrides(target_config.towns[0]),
                                                      "traffic": {"vehicles": 0, "walkers": 0}}), 3), SPEC)
    env.reset(seed=1)
    assert env.action_space.shape == (2,)
    tracker = RouteTracker(env.unwrapped.route)
    speeds, lateral = [], []
    for _ in range(140):
        env.step(np.array([-0.1, 0.0], dtype=np.float32))  # 4.5 m/s on the route
        pose = oracle_pose(env.unwrapped)
        progress = tracker.update(pose.pose.x_m, pose.pose.y_m, pose.yaw_rad)
        speeds.append(float(np.hypot(*pose.velocity_mps[:2])))
        lateral.append(progress.lateral_m)
    assert progress.s_m > 22.0  # 7 s, most of it at 4.5 m/s
    assert abs(float(np.mean(speeds[-30:])) - 4.5) < 0.4
    assert np.abs(lateral[-60:]).max() < 0.4
    env.close()


def test_a_target_policy_round_trips_and_the_stage_plans_what_the_env_drives(target_config, tmp_path):
    space_env = PolicyObservation(DrivingEnv(target_config.env_overrides(target_config.towns[0])), 3)
    model = new_ppo(space_env, target_config.model, n_steps=8, batch_size=8)
    path = save_policy(model.policy, model.observation_space, model.action_space, target_config.model,
                       tmp_path / "target.zip")
    space_env.close()
    loaded = load_policy(path)
    assert target_spec_of(loaded) == target_config.model.target
    assert target_spec_of(new_ppo(space_env, load_policy_config(TINY).model, n_steps=8, batch_size=8)) is None

    env = DrivingEnv(target_config.env_overrides(target_config.towns[0]))
    trained_env = TargetActions(PolicyObservation(DrivingEnv(target_config.env_overrides(target_config.towns[0])),
                                                  3), target_config.model.target)
    agent = StackAgent(Stack.from_config({"planning": {"name": "rl", "checkpoint": str(path)}}))
    direct = make_agent(f"policy:{path}")
    obs, _ = env.reset(seed=5)
    policy_obs, _ = trained_env.reset(seed=5)
    agent.reset(env)
    direct.reset(env)
    for _ in range(20):
        stack_action = agent(obs, env)
        plan = agent.outputs.plan
        assert plan.control is None and np.ptp(plan.target_speed_mps) == 0.0
        policy_action = loaded.predict(policy_obs, deterministic=True)[0]
        assert plan.target_speed_mps[0] == pytest.approx((np.clip(policy_action[0], -1, 1) + 1) / 2 * 10.0,
                                                         abs=1e-4)
        np.testing.assert_allclose(direct(obs, env), stack_action, atol=1e-5)
        obs, *_ = env.step(stack_action)
        policy_obs, *_ = trained_env.step(policy_action)
        np.testing.assert_allclose(oracle_pose(env).xy, oracle_pose(trained_env.unwrapped).xy, atol=1e-4)
    assert mission_of(env).route is env.route
    env.close()
    trained_env.close()


def test_target_actions_need_the_previous_action_hidden():
    with pytest.raises(ConfigError, match="action: target needs ignore_measurements"):
        load_policy_config({**TINY, "model": {"action": "target", "ignore_measurements": []}})
    with pytest.raises(ConfigError, match="max_speed_mps"):
        load_policy_config({**TINY, "model": {"action": "target", "target": {"max_speed_mps": 0}}})


def test_a_tiny_target_run_records_target_labels_and_ships_a_target_policy(target_config, tmp_path):
    from av_stack.planning.rl.demos import load_shards
    from av_stack.planning.rl.train import train_policy

    config = load_policy_config({**TINY, "model": {"action": "target"}, "ppo": {**TINY["ppo"], "total_steps": 0}})
    train_policy(config, tmp_path, workers=1)
    assert target_spec_of(load_policy(tmp_path / "policy.zip")) == config.model.target
    demos = load_shards(sorted((tmp_path / "demos").glob("round0_*.npz")))
    speeds = (demos.action[:, 0] + 1) / 2 * 10.0
    assert speeds.max() > 4.0 and speeds.min() >= 0.0, "speed labels of an expert that drives off"
    assert np.abs(demos.action[:, 1]).max() < 1.0


def test_the_l1_action_loss_is_the_weighted_absolute_error(target_config):
    import torch

    from av_stack.planning.rl.bc import bc_losses
    from av_stack.planning.rl.demos import Demonstrations
    from av_stack.planning.rl.policy import SpacesEnv

    space = PolicyObservation(DrivingEnv(target_config.env_overrides(target_config.towns[0])), 3)
    model = new_ppo(SpacesEnv(space.observation_space, space.action_space), target_config.model, n_steps=8,
                    batch_size=8)
    space.close()
    rng = np.random.default_rng(0)
    shape = space.observation_space["bev"].shape
    n = 6
    bits = np.packbits(rng.random((n, int(np.prod(shape)))) > 0.9, axis=1)
    demos = Demonstrations(bits, shape, rng.normal(size=(n, space.observation_space["measurements"].shape[0])
                                                   ).astype(np.float32),
                           np.array([[-1.0, 0.0]] * 3 + [[0.6, 0.1]] * 3, dtype=np.float32), np.ones(n, bool),
                           np.zeros(n, np.float32))
    index = np.arange(n)
    with torch.no_grad():
        obs = {"bev": torch.as_tensor(demos.bev(index)), "measurements": torch.as_tensor(demos.measurements)}
        mean = model.policy.action_net(model.policy.mlp_extractor(model.policy.extract_features(obs))[0]).numpy()
        error = mean - demos.action
        weights = np.array([1.0, target_config.bc.steer_weight])
        for kind, per_dim in (("mse", error ** 2), ("l1", np.abs(error))):
            bc = target_config.bc.model_copy(update={"action_loss": kind})
            loss, _ = bc_losses(model.policy, demos, index, bc, 1.0)
            assert float(loss) == pytest.approx(float((per_dim * weights).sum(axis=1).mean()), rel=1e-5)
    with pytest.raises(ConfigError, match="action_loss"):
        load_policy_config({**TINY, "bc": {**TINY["bc"], "action_loss": "huber"}})


def test_a_stop_band_makes_the_low_actions_stop_and_labels_slow_speeds_as_stop(env_at_start):
    banded = TargetSpec(stop_band=0.5)
    assert banded.speed_mps(-1.0) == banded.speed_mps(-0.6) == banded.speed_mps(-0.5) == 0.0
    assert banded.speed_mps(1.0) == pytest.approx(10.0) and banded.speed_mps(0.25) == pytest.approx(5.0)
    assert banded.speed_action(0.2) == -1.0 and banded.speed_action(5.0) == pytest.approx(0.25)
    assert TargetSpec().speed_mps(-0.6) == pytest.approx(2.0), "no band: linear over the whole range"
    route, pose = env_at_start.route, oracle_pose(env_at_start)
    creeping = target_plan(np.array([-0.7, 0.0]), route, 0, banded, 0, 0.0, RoadOption.LANEFOLLOW)
    np.testing.assert_allclose(creeping.target_speed_mps, 0.0)
    for action in ((0.25, 0.0), (-0.2, 0.1)):
        plan = target_plan(np.array(action), route, 0, banded, 0, 0.0, RoadOption.LANEFOLLOW)
        np.testing.assert_allclose(target_label(plan, route, pose, banded), action, atol=1e-5)
    assert target_label(creeping, route, pose, banded)[0] == -1.0


def _hairpin_route() -> Route:
    """40 m along +x, a left U-turn of radius 2.5 m, 40 m back along -x: the legs lie 5 m apart."""
    out = np.stack([np.arange(0.0, 40.0, 1.0), np.zeros(40)], axis=1)
    turn = np.linspace(0.0, np.pi, 9)[1:-1]
    bend = np.stack([40.0 + 2.5 * np.sin(turn), -2.5 + 2.5 * np.cos(turn)], axis=1)
    back = np.stack([np.arange(40.0, -1.0, -1.0), np.full(41, -5.0)], axis=1)
    xy = np.concatenate([out, bend, back])
    step = np.diff(xy, axis=0)
    yaw = np.arctan2(step[:, 1], step[:, 0])
    yaw = np.append(yaw, yaw[-1])
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*step.T))])
    n = len(xy)
    return Route("hairpin", (0,), xy, yaw, s, np.zeros(n, dtype=np.int32), np.zeros(n, dtype=bool),
                 np.full(n, int(RoadOption.LANEFOLLOW), dtype=np.int8), xy[[0, -1]])


def test_the_offset_label_keeps_to_the_stretch_of_route_around_the_ego():
    """A plan 3 m left of the first leg passes 2 m from the way back: with the ego's route index the offset
    is measured against the first leg (3 m), not the nearest point of the whole route."""
    route = _hairpin_route()
    plan_x = np.arange(10.0, 40.0, 1.0)
    plan = Plan(0, 0.0, np.stack([plan_x, np.full_like(plan_x, -3.0)], axis=1), np.full(plan_x.shape, 5.0))
    pose = PoseEstimate(0, 0.0, Pose(10.0, -3.0, 0.0, 0.0), np.zeros(3))
    index = RouteTracker(route).update(10.0, 0.0, 0.0).index
    windowed = target_label(plan, route, pose, SPEC, index)
    assert windowed[1] == pytest.approx(3.0 / SPEC.max_offset_m, abs=1e-6)
    assert target_label(plan, route, pose, SPEC)[1] == pytest.approx(2.0 / SPEC.max_offset_m, abs=1e-6), \
        "the whole route's nearest point is on the way back"
    assert windowed[0] == pytest.approx(SPEC.speed_action(5.0))
