"""The closed-loop runner: metrics.json, the video, route sets, env sections and errors (small settings)."""

from __future__ import annotations

import json
from statistics import fmean

import cv2
import numpy as np
import pytest

from av_stack.messages import (BEV_SPEC, Detections, EgoSignals, LightObservation, Mission, PerceptionOutput, Plan,
                               PoseEstimate, SensorFrame, VehicleControl)
from av_stack.planning import PLANNING
from av_stack.registry import StageParams
from av_stack.runner import (LatencyRecorder, RunOptions, make_env, parse_random_routes, random_route_file,
                             route_set_overrides, run_stack)
from av_stack.stack import STAGES, StackOutputs
from av_stack.video import StackVideo, colorize_bev, compose_frame, frame_size
from sim.api import Pose
from sim.config import ConfigError, WorldConfig
from sim.env.config import load_env_config
from sim.env.metrics import InfractionKind
from sim.resources import resolve_config
from sim.scenarios.routes import load_route_file

CAMERA = (160, 120)
TICKS = 40


class FailingPlanner:
    """A test planner: drives straight on a direct control, then raises at its ``fail_at``-th step (counted
    over all routes)."""

    class Config(StageParams):
        fail_at: int = 1000

    def __init__(self, config: Config) -> None:
        self.config, self.steps = config, 0

    def reset(self, mission: Mission) -> None:
        """Keeps counting across routes."""

    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        self.steps += 1
        if self.steps >= self.config.fail_at:
            raise RuntimeError(f"test planner failed at tick {self.steps}")
        return Plan(perception.frame, perception.timestamp_s, trajectory_xy=[[pose.pose.x_m, pose.pose.y_m],
                                                                             [pose.pose.x_m + 5, pose.pose.y_m]],
                    target_speed_mps=[3.0, 3.0], control=VehicleControl(throttle=0.4))


if "_test_failing" not in PLANNING.names():
    PLANNING.register("_test_failing")(FailingPlanner)


def tiny_stack(tmp_path, camera: bool = True, planning: dict | None = None, **run) -> dict:
    """A stack config on Town01's first short route with few NPCs, a small camera and a tick limit."""
    sensors = tmp_path / "small_camera.yaml"
    sensors.write_text("sensors:\n  - name: cam\n    blueprint: sensor.camera.rgb\n"
                       "    transform: {x: 1.5, z: 2.4, pitch_deg: -5.0}\n"
                       f"    attributes: {{image_size_x: {CAMERA[0]}, image_size_y: {CAMERA[1]}, fov: 90}}\n")
    observation = {"modes": ["sensors", "bev"] if camera else ["bev"], "ground_truth": True}
    env = {"base": "env/leaderboard_town01.yaml", "traffic": {"vehicles": 3, "walkers": 0}, "scenarios": [],
           "routes": {"ids": ["town01_short_00"]}, "episode": {"max_steps": TICKS},
           "action": {"mode": "vehicle_control"}, "observation": observation}
    if camera:
        env["sensors"] = str(sensors)
    return {"env": env, "planning": planning or {"name": "expert"}, "control": {"name": "stanley"},
            "run": {"video": True, "camera": "cam" if camera else None, "video_every": 2, **run}}


def _read_video(path):
    capture = cv2.VideoCapture(str(path))
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return size, frames


# ---------------------------------------------------------------------------------------------- end to end
def test_run_writes_metrics_consistent_with_the_routes_and_a_side_by_side_video(tmp_path):
    out = tmp_path / "run"
    metrics = run_stack(tiny_stack(tmp_path), out, RunOptions(seed=3))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["complete"] is True and metrics["error"] is None
    assert metrics["stack"] == {"perception": "oracle", "localization": "oracle", "planning": "expert",
                                "control": "stanley"}
    (route,) = metrics["routes"]
    assert route["route_id"] == "town01_short_00" and route["steps"] == TICKS == metrics["ticks"]
    assert route["termination"] == "route_timeout"  # the tick limit
    for key in ("driving_score", "route_completion", "infraction_penalty"):
        assert metrics[key] == pytest.approx(fmean(r[key] for r in metrics["routes"]), abs=1e-6)
    assert 0 < metrics["route_completion"] < 100
    assert set(metrics["infractions_per_km"]) == {kind.value for kind in InfractionKind}
    km = sum(r["route_length_m"] * r["route_completion"] / 100 for r in metrics["routes"]) / 1000
    assert metrics["infractions_per_km"]["route_timeout"] == pytest.approx(1 / max(km, 0.001), rel=1e-3, abs=1e-3)
    assert set(metrics["latency_ms"]) == set(LatencyRecorder.KEYS) - {"bev_assembly"}  # this stack does not assemble
    for stats in metrics["latency_ms"].values():
        assert set(stats) == {"mean", "p50", "p95"} and 0 <= stats["p50"] <= stats["p95"]
    assert metrics["latency_ms"]["stack"]["mean"] >= metrics["latency_ms"]["planning"]["mean"]

    size, frames = _read_video(out / "video.mp4")
    assert size == frame_size(CAMERA, BEV_SPEC.config.size_px) == tuple(metrics["video"]["size"])
    assert frames == metrics["video"]["frames"] == TICKS // 2  # every 2nd tick


def test_no_video_and_no_camera_panel(tmp_path):
    out = tmp_path / "run"
    metrics = run_stack(tiny_stack(tmp_path, camera=False), out, RunOptions(video=False))
    assert metrics["video"] is None and not (out / "video.mp4").exists()
    out2 = tmp_path / "run2"
    run_stack(tiny_stack(tmp_path, camera=False), out2)
    size, frames = _read_video(out2 / "video.mp4")
    assert size == frame_size(None, BEV_SPEC.config.size_px) and frames == TICKS // 2


@pytest.mark.carla
def test_the_run_works_on_the_carla_backend(carla_endpoint, tmp_path):
    host, port, _ = carla_endpoint
    config = tiny_stack(tmp_path)
    config["env"].update(backend="carla", carla={"host": host, "port": port})
    metrics = run_stack(config, tmp_path / "run")
    assert metrics["complete"] and metrics["map"] == "Town01" and metrics["ticks"] == TICKS
    assert metrics["routes"][0]["route_completion"] > 0
    assert _read_video(tmp_path / "run" / "video.mp4") == (frame_size(CAMERA, 192), TICKS // 2)


def test_an_error_during_the_drive_keeps_the_metrics_so_far_and_a_playable_video(tmp_path):
    out = tmp_path / "run"
    config = tiny_stack(tmp_path, planning={"name": "_test_failing", "fail_at": 8}, video_every=1)
    config["env"]["routes"] = {"ids": ["town01_short_00", "town01_short_01"]}
    config["env"]["episode"] = {"max_steps": 5}
    with pytest.raises(RuntimeError, match="failed at tick 8"):
        run_stack(config, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and "failed at tick 8" in metrics["error"]
    assert [r["route_id"] for r in metrics["routes"]] == ["town01_short_00"]  # the first route ended at 5 ticks
    assert metrics["routes"][0]["steps"] == 5 and metrics["driving_score"] == metrics["routes"][0]["driving_score"]
    _, frames = _read_video(out / "video.mp4")
    assert frames == metrics["video"]["frames"] == 5 + 2  # 5 ticks of route 1, 2 of route 2 before the error


# ---------------------------------------------------------------------------------------------- errors
def test_bad_configs_raise_one_error_naming_the_problem_and_write_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="nope.yaml does not exist.*stack/oracle.yaml"):
        run_stack(str(tmp_path / "nope.yaml"), out)
    bad_key = tiny_stack(tmp_path)
    bad_key["env"]["observation"]["modez"] = ["bev"]
    with pytest.raises(ConfigError, match=r"env: .*observation\.modez: unknown key"):
        run_stack(bad_key, out)
    with pytest.raises(ConfigError, match="unknown implementation 'lidar_net'; valid: .*oracle"):
        run_stack({**tiny_stack(tmp_path), "perception": {"name": "lidar_net"}}, out)
    no_base = tiny_stack(tmp_path)
    no_base["env"]["base"] = "env/nowhere.yaml"
    with pytest.raises(ConfigError, match="nowhere.yaml does not exist.*env/leaderboard_town01.yaml"):
        run_stack(no_base, out)
    wrong_camera = tiny_stack(tmp_path)
    wrong_camera["run"]["camera"] = "front"
    with pytest.raises(ConfigError, match="run.camera 'front' is not a sensor of the env.*cam"):
        run_stack(wrong_camera, out)
    no_sensors = tiny_stack(tmp_path, camera=False)
    no_sensors["run"]["camera"] = "cam"
    with pytest.raises(ConfigError, match="run.camera 'cam' is not a sensor.*has no sensors"):
        run_stack(no_sensors, out)
    assert not out.exists()


def test_make_env_builds_the_section_with_overrides_and_names_bad_keys(tmp_path):
    config = tiny_stack(tmp_path, camera=False)
    env = make_env(config, traffic={"vehicles": 0}, map="Town01")
    try:
        assert env.config.traffic.vehicles == 0 and env.config.traffic.walkers == 0
        assert env.config.observation.ground_truth and env.config.action.mode == "vehicle_control"
        assert env.route_ids == ("town01_short_00",)
    finally:
        env.close()
    with pytest.raises(ConfigError, match="stack config: env: .*traffic.cars: unknown key"):
        make_env(config, traffic={"cars": 3})
    with pytest.raises(ConfigError, match="base must be an env config"):
        make_env({**config, "env": {"base": 3}})


# ---------------------------------------------------------------------------------------------- route sets
@pytest.mark.parametrize("spec", ["random:0", "random:x", "random:-2", "random:", "random:1001"])
def test_random_route_set_needs_a_count_from_1_to_1000(spec):
    with pytest.raises(ConfigError, match=f"route set '{spec}': random:N needs a whole number N from 1 to 1000"):
        parse_random_routes(spec)


def test_random_routes_on_a_procedural_town_are_seeded_and_loadable(tmp_path):
    world = WorldConfig(map="procedural")
    first = random_route_file(world, 4, 7, tmp_path / "a.yaml")
    again = random_route_file(world, 4, 7, tmp_path / "b.yaml")
    other = random_route_file(world, 4, 8, tmp_path / "c.yaml")
    routes = load_route_file(first)
    assert routes.town.startswith("procedural_") and len(routes.routes) == 4
    assert [r.route_id.rsplit("_", 2)[-2] for r in routes.routes] == ["short", "medium", "long", "short"]
    assert first.read_text().splitlines()[1:] == again.read_text().splitlines()[1:]
    assert load_route_file(other).routes != routes.routes


def test_named_route_sets_and_files_set_the_route_file_and_the_town(tmp_path):
    env = load_env_config(resolve_config("env/leaderboard_town01.yaml"))
    named = route_set_overrides("town02", env, 0, tmp_path)
    assert named["world"] == {"map": "Town02"} and named["routes"]["file"].endswith("town02.yaml")
    assert "world" not in route_set_overrides("town02", env, 0, tmp_path, map_given=True)
    same_town = route_set_overrides("configs/routes/town01.yaml", env, 0, tmp_path)
    assert "world" not in same_town and same_town["routes"]["ids"] is None
    generated = route_set_overrides("random:2", env, 5, tmp_path)
    assert load_route_file(generated["routes"]["file"]).town == "Town01"
    with pytest.raises(ConfigError, match="route set 'town99' is not a route file, a shipped set .*town01.*random:N"):
        route_set_overrides("town99", env, 0, tmp_path)


# ---------------------------------------------------------------------------------------------- the video
def _messages(camera: bool = True, bev: bool = True):
    """A synthetic tick: a frame and stack outputs with one vehicle ahead and a straight plan."""
    masks = np.zeros(BEV_SPEC.shape, dtype=np.uint8)
    channels = BEV_SPEC.channels
    masks[channels.index("road"), :, 80:112] = 255
    masks[channels.index("vehicles_t0"), 60:80, 90:100] = 255
    data = {"cam": np.full((CAMERA[1], CAMERA[0], 3), 90, dtype=np.uint8)} if camera else {}
    frame = SensorFrame(7, 0.35, EgoSignals(4.0), data, privileged_bev=masks)
    detections = Detections(kind=[0], center_m=[[20.0, 0.0, 0.8]], extent_m=[[2.3, 1.0, 0.8]], yaw_rad=[0.0],
                            velocity_mps=[[0.0, 0.0]], score=[1.0], track_id=[4])
    perception = PerceptionOutput(7, 0.35, detections, LightObservation(),
                                  masks.astype(np.float32) / 255.0 if bev else None)
    pose = PoseEstimate(7, 0.35, Pose(10.0, 5.0, 0.0, 0.0), np.zeros(3))
    plan = Plan(7, 0.35, trajectory_xy=[[10.0 + k, 5.0] for k in range(20)], target_speed_mps=np.full(20, 5.0))
    control = VehicleControl(throttle=0.6, steer=-0.2)
    outputs = StackOutputs(perception, pose, plan, control, {stage: 0.1 for stage in (*STAGES, "stack")})
    return frame, outputs


def test_colorize_draws_masks_and_probabilities_the_same_way():
    frame, outputs = _messages()
    truth = colorize_bev(frame.privileged_bev, BEV_SPEC.channels)
    assert truth.shape == (192, 192, 3) and truth.dtype == np.uint8
    np.testing.assert_array_equal(truth, colorize_bev(outputs.perception.bev, BEV_SPEC.channels))
    road, vehicle, background = truth[10, 85], truth[70, 95], truth[10, 10]
    assert len({tuple(road), tuple(vehicle), tuple(background)}) == 3
    half = colorize_bev(outputs.perception.bev * 0.5, BEV_SPEC.channels)
    assert np.all(np.minimum(background, road) <= half[10, 85]) and np.all(half[10, 85] <= np.maximum(background, road))
    with pytest.raises(ValueError, match="bev must have shape"):
        colorize_bev(np.zeros((3, 8, 8)), BEV_SPEC.channels)


@pytest.mark.parametrize("camera, bev", [(True, True), (False, True), (True, False)])
def test_frames_have_the_layout_size_and_show_the_overlays(camera, bev):
    frame, outputs = _messages(camera, bev)
    image = compose_frame(frame, outputs, "cam" if camera else None, "route_a", CAMERA if camera else None,
                          (2.4, 1.0, 0.8))
    width, height = frame_size(CAMERA if camera else None, 192)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    plain = compose_frame(frame, outputs.__class__(outputs.perception, outputs.pose,
                                                   Plan(7, 0.35, control=VehicleControl()), VehicleControl(), {}),
                          "cam" if camera else None, "route_a", CAMERA if camera else None)
    assert np.any(image != plain)  # the plan, the ego box and the control bars are drawn


def test_video_writes_every_nth_frame_up_to_its_cap(tmp_path):
    frame, outputs = _messages()
    video = StackVideo(tmp_path / "v.mp4", BEV_SPEC, "cam", CAMERA, fps=10, every=3, max_frames=4)
    recorded = [video.add(frame, outputs, "r") for _ in range(20)]
    video.close()
    assert recorded[:7] == [True, False, False, True, False, False, True] and sum(recorded) == 4 and video.full
    assert _read_video(tmp_path / "v.mp4") == (frame_size(CAMERA, 192), 4)
    with pytest.raises(ValueError, match="needs its image size"):
        StackVideo(tmp_path / "w.mp4", BEV_SPEC, "cam")

