"""Tests of YAML sensor suites: the shipped configs, transforms and clear errors on bad files."""

import math
from pathlib import Path

import numpy as np
import pytest

from sim.sensors.blueprints import SensorConfigError
from sim.api import Pose
from sim.sensors.suite import (
    DEFAULT_ATTACH_TO,
    SensorSpec,
    SensorSuite,
    load_suite,
    shipped_suite_path,
    suite_from_dict,
)

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "sensors"
TICK_RATE_HZ = 20.0


def _entry(name: str = "cam", blueprint: str = "sensor.camera.rgb", **extra: object) -> dict:
    return {"name": name, "blueprint": blueprint, **extra}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["default", "benchmark"])
def test_shipped_suites_load_with_the_expected_sensors(name):
    path = shipped_suite_path(name)
    assert path == CONFIG_DIR / f"{name}.yaml"
    suite = load_suite(path)
    blueprints = [spec.blueprint_id for spec in suite]
    # the default suite adds a small wide camera for the traffic light at the stop line (light_rgb)
    light = ["sensor.camera.rgb"] if name == "default" else []
    assert blueprints == [
        "sensor.camera.rgb", "sensor.camera.depth", "sensor.camera.semantic_segmentation", *light,
        "sensor.lidar.ray_cast", "sensor.other.radar", "sensor.other.gnss", "sensor.other.imu",
        "sensor.other.collision", "sensor.other.lane_invasion"]
    assert all(spec.attach_to == "hero" for spec in suite)
    for camera in suite.select("sensor.camera.*"):
        attrs = camera.attributes
        size = (256, 192, 120.0) if camera.name == "light_rgb" else (400, 300, 90.0)
        assert (attrs["image_size_x"], attrs["image_size_y"], attrs["fov"]) == size
    (lidar,) = suite.select("sensor.lidar.*")
    attrs = lidar.attributes
    assert attrs["channels"] == 32 and attrs["range"] == 100.0
    # One full sweep per 20 Hz tick, with 1024 points per channel.
    points_per_channel = attrs.get_int("points_per_second") / (TICK_RATE_HZ * attrs.get_int("channels"))
    assert points_per_channel == 1024
    assert attrs["rotation_frequency"] == TICK_RATE_HZ
    assert lidar.mount.z_m > 1.5  # on the roof


def test_benchmark_lidar_casts_every_ray():
    lidar = load_suite(shipped_suite_path("benchmark")).by_name("lidar")
    assert lidar.attributes["dropoff_general_rate"] == 0.0
    assert lidar.attributes["dropoff_zero_intensity"] == 0.0


def test_transform_degrees_become_radians():
    suite = suite_from_dict({"sensors": [_entry(transform={
        "x": 1.5, "y": -0.25, "z": 2.4, "roll_deg": 90.0, "pitch_deg": -5.0, "yaw_deg": 180.0})]})
    spec = suite.by_name("cam")
    mount = spec.mount
    assert tuple(mount.location) == (1.5, -0.25, 2.4)
    assert mount.roll_rad == pytest.approx(math.pi / 2)
    assert mount.pitch_rad == pytest.approx(math.radians(-5.0))
    assert mount.yaw_rad == pytest.approx(math.pi)
    np.testing.assert_allclose(mount.rotation, (mount.pitch_rad, mount.yaw_rad, mount.roll_rad))


def test_defaults_of_an_entry():
    suite = suite_from_dict({"sensors": [_entry(blueprint="sensor.other.gnss")]})
    spec = suite.by_name("cam")
    assert isinstance(spec, SensorSpec)
    assert spec.attach_to == DEFAULT_ATTACH_TO == "hero"
    assert spec.mount == Pose()
    assert spec.attributes["noise_seed"] == 0 and not spec.is_fixed


def test_fixed_world_sensor_and_string_attributes():
    suite = suite_from_dict({"sensors": [_entry(name="pole_cam", attach_to="world",
                                                attributes={"fov": "110", "image_size_x": "1280"})]})
    spec = suite.by_name("pole_cam")
    assert spec.is_fixed and spec.attributes["fov"] == 110.0 and spec.attributes["image_size_x"] == 1280


def test_event_sensors_cannot_be_fixed_in_the_world():
    with pytest.raises(SensorConfigError, match="attach_to cannot be 'world'"):
        suite_from_dict({"sensors": [_entry(name="hits", blueprint="sensor.other.collision", attach_to="world")]})


def test_unknown_key_error_names_file_sensor_and_key(tmp_path):
    path = _write(tmp_path, "sensors:\n  - name: front\n    blueprint: sensor.camera.rgb\n    colour: red\n")
    with pytest.raises(SensorConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message and "'front'" in message and "'colour'" in message
    assert "attach_to" in message  # the valid keys are listed


def test_unknown_transform_key_suggests_the_degree_name(tmp_path):
    path = _write(tmp_path, "sensors:\n  - name: front\n    blueprint: sensor.camera.rgb\n"
                            "    transform: {x: 1.0, yaw: 90}\n")
    with pytest.raises(SensorConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message and "'front'" in message and "did you mean 'yaw_deg'" in message


def test_unknown_top_level_key_is_reported_before_the_missing_one():
    with pytest.raises(SensorConfigError, match="unknown key 'sensor'.*did you mean 'sensors'"):
        suite_from_dict({"sensor": []}, source="x.yaml")


def test_bad_attribute_error_names_file_and_sensor(tmp_path):
    path = _write(tmp_path, "sensors:\n  - name: roof\n    blueprint: sensor.lidar.ray_cast\n"
                            "    attributes: {channels: 0}\n")
    with pytest.raises(SensorConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path) in message and "'roof'" in message and "'channels'" in message and ">= 1" in message


def test_unknown_blueprint_and_attribute_in_a_suite():
    with pytest.raises(SensorConfigError, match=r"sensor 'cam'.*did you mean 'sensor.camera.rgb'"):
        suite_from_dict({"sensors": [_entry(blueprint="sensor.camera.RGB")]})
    with pytest.raises(SensorConfigError, match=r"sensor 'cam'.*has no attribute 'resolution'"):
        suite_from_dict({"sensors": [_entry(attributes={"resolution": 400})]})


def test_duplicate_sensor_names_are_rejected():
    with pytest.raises(SensorConfigError, match=r"sensor 'cam' \(sensors\[1\]\): duplicate sensor name"):
        suite_from_dict({"sensors": [_entry(), _entry(blueprint="sensor.camera.depth")]})
    spec = suite_from_dict({"sensors": [_entry()]}).by_name("cam")
    with pytest.raises(SensorConfigError, match="duplicate"):
        SensorSuite((spec, spec))


def test_duplicate_yaml_keys_are_rejected(tmp_path):
    path = _write(tmp_path, "sensors:\n  - name: cam\n    blueprint: sensor.camera.rgb\n"
                            "    attributes: {fov: 90, fov: 100}\n")
    with pytest.raises(SensorConfigError, match="duplicate key 'fov'"):
        load_suite(path)


def test_missing_file_bad_yaml_and_wrong_shapes(tmp_path):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(SensorConfigError, match="absent.yaml does not exist"):
        load_suite(missing)
    with pytest.raises(SensorConfigError, match="not valid YAML"):
        load_suite(_write(tmp_path, "sensors: [\n"))
    with pytest.raises(SensorConfigError, match="expected a mapping"):
        load_suite(_write(tmp_path, ""))
    with pytest.raises(SensorConfigError, match="missing key 'name'"):
        suite_from_dict({"sensors": [{"blueprint": "sensor.camera.rgb"}]})
    with pytest.raises(SensorConfigError, match="key 'name'"):
        suite_from_dict({"sensors": [_entry(name="front cam")]})
    with pytest.raises(SensorConfigError, match="transform.x"):
        suite_from_dict({"sensors": [_entry(transform={"x": float("nan")})]})
    with pytest.raises(SensorConfigError, match="no shipped sensor suite 'nope'"):
        shipped_suite_path("nope")


def test_suite_lookup_helpers():
    suite = load_suite(shipped_suite_path("default"))
    assert len(suite) == 10 and suite.names[0] == "front_rgb" and "light_rgb" in suite.names
    assert [s.name for s in suite.select("sensor.other.*")] == ["front_radar", "gnss", "imu", "collision",
                                                               "lane_invasion"]
    with pytest.raises(SensorConfigError, match="did you mean 'front_rgb'"):
        suite.by_name("front_rbg")
