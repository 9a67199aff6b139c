"""A whole sensor suite on a live world: every sensor gives CARLA-layout data each tick."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("open3d")

from sim.api import Pose  # noqa: E402
from sim.sensors.blueprints import SensorConfigError  # noqa: E402
from sim.sensors.measurements import SEMANTIC_POINT_DTYPE  # noqa: E402
from sim.embedded.sensors.rig import SensorRig  # noqa: E402
from sim.sensors.suite import load_suite, suite_from_dict  # noqa: E402
from sim.embedded.world import EmbeddedWorld  # noqa: E402


def _populate(world: EmbeddedWorld) -> None:
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
    world.spawn_traffic(10)
    world.spawn_walkers(10)


@pytest.fixture(scope="module")
def _module_world_and_rig():
    """One world and rig for the module, so the map and the rig's 3D scene are built once."""
    world = EmbeddedWorld(map="Town01", seed=0)
    _populate(world)
    rig = SensorRig(world, load_suite("configs/sensors/default.yaml"))
    yield world, rig
    rig.close()


@pytest.fixture()
def world_and_rig(_module_world_and_rig):
    """The module's world reset to seed 0 with a fresh hero and traffic, and its rig re-attached: no test sees
    another's actors or ticks."""
    world, rig = _module_world_and_rig
    world.reset(0)
    _populate(world)
    rig.reset(0)
    return world, rig


def test_default_suite_gives_every_sensor_in_carla_layouts(world_and_rig):
    world, rig = world_and_rig
    snapshot = world.tick()
    data = rig.measure(snapshot)
    kinds = {sensor.name: sensor.blueprint_id for sensor in rig.sensors}
    for name, blueprint in kinds.items():
        if blueprint in ("sensor.other.collision", "sensor.other.lane_invasion"):
            continue  # event sensors speak only when something happens
        assert name in data, f"{name} ({blueprint}) gave nothing"
        measurement = data[name]
        assert measurement.frame == snapshot.frame and measurement.timestamp_s == snapshot.timestamp_s
        payload = measurement.data
        if blueprint == "sensor.camera.rgb":
            size = (300, 400) if name == "front_rgb" else (192, 256)  # light_rgb: the small camera for the light
            assert payload.shape == (*size, 3) and payload.dtype == np.uint8
        elif blueprint == "sensor.camera.depth":
            assert payload.shape == (300, 400) and payload.dtype == np.float32 and payload.min() > 0
        elif blueprint == "sensor.camera.semantic_segmentation":
            assert payload.dtype == np.uint8 and {1, 11} <= set(np.unique(payload).tolist())  # road and sky
        elif blueprint == "sensor.lidar.ray_cast":
            assert payload.dtype == np.float32 and payload.shape[1] == 4 and payload.shape[0] > 1000
            assert np.linalg.norm(payload[:, :3], axis=1).max() <= 100.0 + 1e-3
        elif blueprint == "sensor.lidar.ray_cast_semantic":
            assert payload.dtype == SEMANTIC_POINT_DTYPE
        elif blueprint == "sensor.other.radar":
            assert payload.dtype == np.float32 and payload.shape[1] == 4
        elif blueprint == "sensor.other.gnss":
            assert payload.shape == (3,)
    assert rig.timings.rays > 100_000


def test_depth_sees_a_vehicle_parked_ahead(world_and_rig):
    world, _ = world_and_rig
    lanes = world.lanes
    lane = int(np.argmax(np.where(lanes.is_junction, 0, lanes.length_m)))
    xyz, yaw = lanes.interpolate(np.array([lane, lane]), np.array([10.0, 30.0]))
    ego = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(float(xyz[0, 0]), float(xyz[0, 1]), 0.0, float(yaw[0])),
                              role_name="probe")
    target = world.spawn_vehicle("vehicle.lincoln.mkz_2020",
                                 Pose(float(xyz[1, 0]), float(xyz[1, 1]), 0.0, float(yaw[1])))
    suite = suite_from_dict({"sensors": [
        {"name": "d", "blueprint": "sensor.camera.depth", "attach_to": "probe",
         "transform": {"x": 2.5, "z": 1.0}, "attributes": {"image_size_x": 64, "image_size_y": 48, "fov": 30}},
        {"name": "s", "blueprint": "sensor.camera.instance_segmentation", "attach_to": "probe",
         "transform": {"x": 2.5, "z": 1.0}, "attributes": {"image_size_x": 64, "image_size_y": 48, "fov": 30}},
    ]})
    rig = SensorRig(world, suite)
    data = rig.measure(world.snapshot())
    depth, instance = data["d"].data, data["s"].data
    gap = 20.0 - 2.5 - world.actors[target].extent_m[0]
    assert depth[24, 32] == pytest.approx(gap, abs=0.6)
    assert instance[24, 32, 0] == 14
    assert int(instance[24, 32, 1]) + 256 * int(instance[24, 32, 2]) == target
    world.destroy([ego, target])


def test_suite_errors_name_the_problem(world_and_rig):
    world, _ = world_and_rig
    with pytest.raises(SensorConfigError, match="role_name 'nobody'"):
        SensorRig(world, suite_from_dict({"sensors": [
            {"name": "x", "blueprint": "sensor.other.gnss", "attach_to": "nobody"}]}))


def test_world_and_non_raycast_sensors_import_without_open3d():
    import subprocess
    import sys

    code = ("import sys; import sim.api, sim.backends, sim.env.driving, sim.embedded.world, sim.embedded.sensors.rig, "
            "sim.embedded.sensors.gnss, sim.embedded.sensors.imu, sim.embedded.sensors.camera, launch.cli; "
            "print('open3d' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_open3d_is_a_clear_error(world_and_rig, monkeypatch):
    world, _ = world_and_rig
    monkeypatch.setitem(sys.modules, "open3d", None)
    monkeypatch.delitem(sys.modules, "sim.embedded.sensors.scene", raising=False)
    rig = SensorRig(world, suite_from_dict({"sensors": [
        {"name": "cam", "blueprint": "sensor.camera.rgb", "attributes": {"image_size_x": 8, "image_size_y": 6}}]}))
    with pytest.raises(SensorConfigError, match="Open3D.*sensors"):
        rig.measure(world.tick())


def test_radar_and_lidar_see_an_approaching_vehicle(world_and_rig):
    world, _ = world_and_rig
    lanes = world.lanes
    lane = int(np.argmax(np.where(lanes.is_junction, 0, lanes.length_m)))
    xyz, yaw = lanes.interpolate(np.array([lane, lane]), np.array([10.0, 40.0]))
    probe = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(float(xyz[0, 0]), float(xyz[0, 1]), 0.0,
                                                                 float(yaw[0])), role_name="radar_probe")
    # Oncoming at 10 m/s, facing the probe.
    oncoming = world.spawn_vehicle("vehicle.lincoln.mkz_2020",
                                   Pose(float(xyz[1, 0]), float(xyz[1, 1]), 0.0, float(yaw[1]) + np.pi),
                                   speed_mps=10.0)
    suite = suite_from_dict({"sensors": [
        {"name": "radar", "blueprint": "sensor.other.radar", "attach_to": "radar_probe",
         "transform": {"x": 2.6, "z": 0.8},
         "attributes": {"horizontal_fov": 6.0, "vertical_fov": 2.0, "points_per_second": 20000}},  # no ground < 45 m
        {"name": "lidar", "blueprint": "sensor.lidar.ray_cast_semantic", "attach_to": "radar_probe",
         "transform": {"z": 2.4}, "attributes": {"channels": 32, "range": 60.0, "points_per_second": 655360,
                                                  "rotation_frequency": 20.0}},
    ]})
    rig = SensorRig(world, suite)
    data = rig.measure(world.snapshot())
    detections = data["radar"].data
    gap = 30.0 - 2.6 - world.actors[oncoming].extent_m[0]
    on_target = detections[np.abs(detections[:, 3] - gap) < 1.5]
    assert len(on_target) > 20
    np.testing.assert_allclose(on_target[:, 0], -10.0, atol=0.5)  # negative: approaching
    points = data["lidar"].data
    car_points = points[points["ObjIdx"] == oncoming]
    assert len(car_points) > 20 and (car_points["ObjTag"] == 14).all()
    world.destroy([probe, oncoming])


def test_culling_actor_rays_changes_nothing():
    """Rays left out of the actor cast by the cameras' box rectangles could not have hit an actor."""
    world = EmbeddedWorld(map="Town10HD", seed=4)
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
    world.spawn_traffic(40)
    world.spawn_walkers(30)
    suite = load_suite("configs/sensors/benchmark.yaml")
    culled, full = SensorRig(world, suite, cull_actor_rays=True), SensorRig(world, suite, cull_actor_rays=False)
    actor_pixels = 0
    for _ in range(30):
        snapshot = world.tick()
        a, b = culled.measure(snapshot), full.measure(snapshot)
        for name in ("rgb", "depth", "semantic", "lidar", "radar"):
            np.testing.assert_array_equal(a[name].data, b[name].data, err_msg=name)
        actor_pixels += int(np.isin(a["semantic"].data, (12, 13, 14, 15, 16, 18)).sum())
    assert actor_pixels > 1000, "the cameras must actually have seen actors for this to mean anything"


def test_culling_actor_rays_changes_nothing_for_lidars_that_drop_rays():
    """With CARLA's default drop-off (45% of rays dropped before tracing) the culled LiDAR grid still covers every actor."""
    world = EmbeddedWorld(map="Town10HD", seed=5)
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
    world.spawn_traffic(40)
    lidar = {"transform": {"z": 2.5}, "attributes": {"channels": 16, "points_per_second": 120000,
                                                     "rotation_frequency": 20.0}}
    suite = suite_from_dict({"sensors": [
        {"name": "lidar", "blueprint": "sensor.lidar.ray_cast", **lidar},
        {"name": "semantic_lidar", "blueprint": "sensor.lidar.ray_cast_semantic", **lidar},
    ]})
    culled, full = SensorRig(world, suite, cull_actor_rays=True), SensorRig(world, suite, cull_actor_rays=False)
    actor_points = 0
    for _ in range(20):
        snapshot = world.tick()
        a, b = culled.measure(snapshot), full.measure(snapshot)
        for name in ("lidar", "semantic_lidar"):
            np.testing.assert_array_equal(a[name].data, b[name].data, err_msg=name)
        actor_points += int((a["semantic_lidar"].data["ObjIdx"] > 0).sum())
    assert actor_points > 100, "the LiDAR must actually have hit actors for this to mean anything"
