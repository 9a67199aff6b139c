"""Registries, stack configs, mixed stacks and the oracle stages on the env's frames."""

from __future__ import annotations

from dataclasses import replace

import math

import numpy as np
import pytest

from av_stack.bridge import FrameBuilder, StackAgent, calibration_of, mission_of
from av_stack.control import CONTROL
from av_stack.localization import LOCALIZATION
from av_stack.messages import (Detections, LightObservation, Mission, PerceptionOutput, Plan, PoseEstimate,
                               SensorFrame, VehicleControl)
from av_stack.perception import PERCEPTION
from av_stack.perception.oracle import OracleInputError, OraclePerception
from av_stack.localization.oracle import OracleLocalization
from av_stack.planning import PLANNING
from av_stack.registry import Registry, StageConfigError, StageParams
from av_stack.stack import Stack, load_stack_config
from sim.api import ActorKind, Pose
from sim.config import ConfigError
from sim.env.driving import DrivingEnv


class ConstantPlanner:
    """A test planner: drive straight at a fixed throttle (an end-to-end plan with a direct control)."""

    class Config(StageParams):
        throttle: float = 0.3

    def __init__(self, config: Config) -> None:
        self.config = config
        self.resets = 0

    def reset(self, mission: Mission) -> None:
        self.resets += 1

    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        return Plan(perception.frame, perception.timestamp_s, control=VehicleControl(throttle=self.config.throttle))


@pytest.fixture(scope="module")
def env():
    e = DrivingEnv(map="Town01", traffic={"vehicles": 25, "walkers": 0}, action={"mode": "vehicle_control"},
                   observation={"modes": ["bev"], "ground_truth": True, "ground_truth_radius_m": 100.0},
                   routes={"min_length_m": 100, "max_length_m": 200})
    yield e
    e.close()


def test_every_stage_has_a_registry_that_lists_valid_names_on_an_unknown_one():
    shipped = {name for name in PERCEPTION.names() if not name.startswith("_test")}  # tests register their own
    assert shipped == {"oracle", "classical", "learned"}
    assert {"oracle", "ekf"} <= set(LOCALIZATION.names())
    assert "expert" in PLANNING.names() and {"pure_pursuit", "stanley"} <= set(CONTROL.names())
    with pytest.raises(StageConfigError, match="perception: unknown implementation 'camera_net'; valid: .*classical, learned, oracle"):
        PERCEPTION.build({"name": "camera_net"})
    with pytest.raises(StageConfigError, match="missing 'name'"):
        PLANNING.build({"cruise_mps": 5.0})
    with pytest.raises(StageConfigError, match="expected a mapping"):
        PLANNING.build("expert")


def test_a_registry_registers_by_decorator_and_lazily_and_refuses_a_taken_name():
    registry: Registry = Registry("planning")
    registry.register("constant")(ConstantPlanner)
    registry.register_lazy("expert", "av_stack.planning.expert:ExpertPlanner")
    assert registry.names() == ("constant", "expert")
    planner = registry.build({"name": "constant", "throttle": 0.5})
    assert isinstance(planner, ConstantPlanner) and planner.config.throttle == 0.5
    with pytest.raises(StageConfigError, match=r"planning \(constant\): thrust: unknown key \(valid: throttle\)"):
        registry.build({"name": "constant", "thrust": 0.5})
    with pytest.raises(ValueError, match="already registered"):
        registry.register("constant")(OraclePerception)
    with pytest.raises(ValueError, match="module:Class"):
        registry.register_lazy("x", "no_colon")


def test_stack_configs_name_the_file_and_the_bad_key(tmp_path):
    path = tmp_path / "stack.yaml"
    path.write_text("perception: {name: oracle}\nplaning: {name: expert}\n")
    with pytest.raises(ConfigError, match=r"stack.yaml: planing: unknown key \(valid: env, perception"):
        load_stack_config(path)
    path.write_text("control: {name: pure_pursuit, gain: 2}\n")
    with pytest.raises(ConfigError, match=r"stack.yaml: control \(pure_pursuit\): gain: unknown key"):
        load_stack_config(path)
    path.write_text("planning: {name: dreamer}\n")
    with pytest.raises(ConfigError, match="planning: unknown implementation 'dreamer'; valid: .*expert"):
        load_stack_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_stack_config(tmp_path / "missing.yaml")
    assert Stack.from_config({}).names == {"perception": "oracle", "localization": "oracle", "planning": "expert",
                                           "control": "stanley"}


def test_a_stage_without_reset_and_step_is_refused():
    with pytest.raises(TypeError, match="planning stage object lacks reset"):
        Stack(OraclePerception(), OracleLocalization(), object(), CONTROL.build({"name": "stanley"}))


def test_a_mixed_stack_runs_in_the_env_with_per_stage_latency(env):
    """Oracle perception and localization, a custom planner with a direct control: the control reaches the env."""
    planner = ConstantPlanner(ConstantPlanner.Config(throttle=0.6))
    stack = Stack(OraclePerception(), OracleLocalization(), planner, CONTROL.build({"name": "stanley"}))
    agent = StackAgent(stack)
    obs, _ = env.reset(seed=4)
    agent.reset(env)
    assert planner.resets == 1
    for _ in range(20):
        action = agent(obs, env)
        obs, *_ = env.step(action)
    assert action.tolist() == pytest.approx([0.6, 0.0, 0.0, 0.0])
    assert set(agent.outputs.latency_ms) == {"perception", "localization", "planning", "control", "stack"}
    assert agent.outputs.latency_ms["stack"] >= agent.outputs.latency_ms["perception"] >= 0.0
    snapshot = env.world.snapshot()
    assert float(np.hypot(*snapshot.velocity_mps[snapshot.index_of(env.ego_id), :2])) > 1.0


def test_an_assembling_stack_gives_the_planner_the_map_at_the_pose(env):
    """``bev: {assemble: true}``: the planner's BEV has the map's route and road at the pose, perception's
    vehicles, and the step reports the assembly's time."""
    from av_stack.stack import StackConfig

    class BlankPerception(OraclePerception):
        def step(self, frame):
            out = super().step(frame)
            bev = out.bev.copy()
            for name in ("road", "route"):
                bev[frame.bev_spec.channels.index(name)] = 0.0
            return replace(out, bev=bev)

    seen = []

    class Recorder(ConstantPlanner):
        def step(self, perception, pose):
            seen.append(perception)
            return super().step(perception, pose)

    config = StackConfig.model_validate({"bev": {"assemble": True}})
    stack = Stack(BlankPerception(), OracleLocalization(), Recorder(Recorder.Config()), CONTROL.build({"name": "stanley"}),
                  config=config)
    agent = StackAgent(stack)
    obs, _ = env.reset(seed=5)
    agent.reset(env)
    for _ in range(3):
        obs, *_ = env.step(agent(obs, env))
    channels = seen[-1].bev_spec.channels
    truth = obs["bev"] > 127
    for name in ("road", "route"):
        k = channels.index(name)
        assembled = seen[-1].bev[k] > 0.5
        assert np.count_nonzero(assembled & truth[k]) / max(np.count_nonzero(assembled | truth[k]), 1) > 0.8, name
    assert "bev_assembly" in agent.outputs.latency_ms


def test_the_learned_stack_config_builds():
    stack = Stack.from_config("stack/learned.yaml")
    assert stack.names == {"perception": "learned", "localization": "learned", "planning": "rl", "control": "stanley"}
    assert stack.assembler is not None and stack.assembler.config.road_and_lanes == "map"


def test_oracle_stages_report_the_ground_truth(env):
    obs, info = env.reset(seed=5)
    frame = FrameBuilder(env)(obs, 0.0)
    truth = info["ground_truth"]
    perception = OraclePerception().step(frame)
    pose = OracleLocalization().step(frame)
    assert (pose.pose.x_m, pose.pose.y_m, pose.yaw_rad) == (truth.ego.x_m, truth.ego.y_m, truth.ego.yaw_rad)
    near = np.hypot(truth.actors.center_m[:, 0], truth.actors.center_m[:, 1]) <= 60.0
    assert len(perception.detections) == int(near.sum()) > 0
    assert perception.detections.track_id.tolist() == truth.actors.actor_id[near].tolist()
    assert set(perception.detections.kind.tolist()) <= {int(ActorKind.VEHICLE), int(ActorKind.WALKER)}
    np.testing.assert_array_equal(perception.bev, obs["bev"] / 255.0)
    assert perception.light.state == truth.light.state
    with pytest.raises(OracleInputError, match="observation.ground_truth: true"):
        OraclePerception().step(SensorFrame(0, 0.0, frame.ego))
    with pytest.raises(OracleInputError, match="observation.ground_truth: true"):
        OracleLocalization().step(SensorFrame(0, 0.0, frame.ego))


def test_the_mission_and_the_camera_calibration_come_from_the_env(env):
    env.reset(seed=6)
    mission = mission_of(env)
    assert mission.route is env.route and mission.lanes is env.lanes
    assert mission.vehicle.blueprint_id == "vehicle.lincoln.mkz_2020" and mission.vehicle.extent_m[0] > 2.0
    from sim.sensors.suite import load_suite

    calibration = calibration_of(load_suite("configs/sensors/default.yaml"))
    camera = calibration["front_rgb"]
    assert camera.image_size == (400, 300)
    focal = 400 / (2.0 * math.tan(math.radians(90.0) / 2.0))
    np.testing.assert_allclose(camera.intrinsics, [[focal, 0, 200], [0, focal, 150], [0, 0, 1]])
    assert camera.mount.x_m == 1.5 and calibration["roof_lidar"].intrinsics is None
