"""Tests of the CARLA-like sensor blueprint library: names, defaults, conversion and validation."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from sim.sensors.blueprints import (
    BLUEPRINTS,
    AttributeType,
    SensorAttributes,
    SensorConfigError,
    find_blueprints,
    get_blueprint,
    resolve_attributes,
)

ISSUE_BLUEPRINTS = {
    "sensor.camera.rgb", "sensor.camera.depth", "sensor.camera.semantic_segmentation",
    "sensor.camera.instance_segmentation", "sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic",
    "sensor.other.radar", "sensor.other.gnss", "sensor.other.imu", "sensor.other.collision",
    "sensor.other.lane_invasion",
}


def test_library_holds_exactly_the_carla_sensor_blueprints():
    assert set(BLUEPRINTS) == ISSUE_BLUEPRINTS
    assert get_blueprint("sensor.lidar.ray_cast").tags == ("sensor", "lidar", "ray_cast")


@pytest.mark.parametrize("blueprint_id", sorted(ISSUE_BLUEPRINTS))
def test_every_blueprint_resolves_with_defaults(blueprint_id):
    blueprint = get_blueprint(blueprint_id)
    attributes = blueprint.resolve()
    assert attributes.blueprint_id == blueprint_id
    assert set(attributes) == set(blueprint.attributes)
    assert "role_name" in attributes
    for name, spec in blueprint.attributes.items():
        assert attributes[name] == spec.default
        # Every default is valid for its own spec, and converts to itself.
        assert spec.convert(spec.default) == spec.default
        assert spec.recommended, f"{blueprint_id}.{name} has no recommended values"


def test_camera_defaults_match_carla():
    rgb = resolve_attributes("sensor.camera.rgb")
    assert rgb["image_size_x"] == 800 and rgb["image_size_y"] == 600
    assert rgb["fov"] == 90.0 and rgb["sensor_tick"] == 0.0
    assert rgb["gamma"] == 2.2 and rgb["fstop"] == 1.4 and rgb["iso"] == 100.0
    assert rgb["shutter_speed"] == 200.0 and rgb["bloom_intensity"] == 0.675
    assert rgb["lens_flare_intensity"] == 0.1 and rgb["motion_blur_intensity"] == 0.45
    assert rgb["exposure_mode"] == "histogram" and rgb["enable_postprocess_effects"] is True
    assert rgb["lens_circle_falloff"] == 5.0 and rgb["lens_k"] == -1.0 and rgb["lens_x_size"] == 0.08
    assert rgb["temp"] == 6500.0 and rgb["white_clip"] == 0.04 and rgb["blade_count"] == 5
    assert rgb["role_name"] == "front"
    assert isinstance(rgb["image_size_x"], int) and isinstance(rgb["fov"], float)
    # The other cameras have the basic and lens attributes only, as in CARLA.
    for camera in ("sensor.camera.depth", "sensor.camera.semantic_segmentation",
                   "sensor.camera.instance_segmentation"):
        names = set(get_blueprint(camera).attributes)
        assert names == {"role_name", "sensor_tick", "image_size_x", "image_size_y", "fov", "lens_circle_falloff",
                         "lens_circle_multiplier", "lens_k", "lens_kcube", "lens_x_size", "lens_y_size"}
    assert "gamma" in get_blueprint("sensor.camera.rgb").attributes


def test_lidar_and_radar_defaults_match_carla():
    lidar = resolve_attributes("sensor.lidar.ray_cast")
    expected = {"channels": 32, "range": 10.0, "points_per_second": 56000, "rotation_frequency": 10.0,
                "upper_fov": 10.0, "lower_fov": -30.0, "horizontal_fov": 360.0,
                "atmosphere_attenuation_rate": 0.004, "dropoff_general_rate": 0.45,
                "dropoff_intensity_limit": 0.8, "dropoff_zero_intensity": 0.4, "noise_stddev": 0.0,
                "noise_seed": 0, "sensor_tick": 0.0}
    assert {name: lidar[name] for name in expected} == expected
    semantic = get_blueprint("sensor.lidar.ray_cast_semantic").attributes
    # The semantic LiDAR has no intensity, drop-off or noise model.
    for absent in ("atmosphere_attenuation_rate", "dropoff_general_rate", "dropoff_intensity_limit",
                   "dropoff_zero_intensity", "noise_stddev", "noise_seed"):
        assert absent not in semantic
    assert semantic["channels"].default == 32 and semantic["range"].default == 10.0

    radar = resolve_attributes("sensor.other.radar")
    assert (radar["horizontal_fov"], radar["vertical_fov"], radar["range"], radar["points_per_second"]) == (
        30.0, 30.0, 100.0, 1500)
    assert radar["role_name"] == "default"


def test_gnss_imu_and_event_sensor_attributes():
    gnss = get_blueprint("sensor.other.gnss").attributes
    assert set(gnss) == {"role_name", "sensor_tick", "noise_seed", "noise_lat_bias", "noise_lat_stddev",
                         "noise_lon_bias", "noise_lon_stddev", "noise_alt_bias", "noise_alt_stddev"}
    imu = get_blueprint("sensor.other.imu").attributes
    assert set(imu) == {"role_name", "sensor_tick", "noise_seed"} | {
        f"noise_{kind}_{axis}" for kind in ("accel_stddev", "gyro_stddev", "gyro_bias") for axis in "xyz"}
    assert all(spec.default == 0.0 for name, spec in imu.items() if name.startswith("noise_") and name != "noise_seed")
    for event in ("sensor.other.collision", "sensor.other.lane_invasion"):
        assert set(get_blueprint(event).attributes) == {"role_name"}


def test_recommended_values_are_kept_as_metadata():
    rgb = get_blueprint("sensor.camera.rgb")
    assert rgb.attribute("image_size_x").recommended == (800,)
    assert rgb.attribute("role_name").recommended[:2] == ("front", "back")
    assert rgb.attribute("exposure_mode").choices == ("histogram", "manual")
    assert rgb.attribute("fov").type is AttributeType.FLOAT
    assert rgb.attribute("fov").range_text() == "(0, 180)"


def test_string_values_convert_by_type_like_carla():
    attributes = resolve_attributes("sensor.camera.rgb", {
        "fov": "60", "image_size_x": "400", "image_size_y": 300.0,
        "enable_postprocess_effects": "False", "gamma": 2, "role_name": "front_cam"})
    assert attributes["fov"] == 60.0 and isinstance(attributes["fov"], float)
    assert attributes["image_size_x"] == 400 and isinstance(attributes["image_size_x"], int)
    assert attributes["image_size_y"] == 300 and isinstance(attributes["image_size_y"], int)
    assert attributes["enable_postprocess_effects"] is False
    assert attributes.get_float("gamma") == 2.0 and attributes.get_str("role_name") == "front_cam"
    assert resolve_attributes("sensor.camera.rgb", {"enable_postprocess_effects": "true"}).get_bool(
        "enable_postprocess_effects") is True
    lidar = resolve_attributes("sensor.lidar.ray_cast", {"channels": "64", "range": "100.5"})
    assert lidar.get_int("channels") == 64 and lidar.get_float("range") == 100.5
    assert lidar.get_float("channels") == 64.0


def test_resolved_attributes_are_immutable_comparable_and_updatable():
    first = resolve_attributes("sensor.camera.depth", {"fov": 70})
    second = resolve_attributes("sensor.camera.depth", {"fov": "70"})
    assert first == second and hash(first) == hash(second)
    assert first != resolve_attributes("sensor.camera.depth")
    with pytest.raises(TypeError):
        first.values["fov"] = 10.0  # type: ignore[index]
    wider = first.updated({"fov": 120})
    assert wider["fov"] == 120.0 and first["fov"] == 70.0
    assert isinstance(wider, SensorAttributes)
    assert first.as_dict()["image_size_x"] == 800


def test_unknown_blueprint_names_the_id_and_suggests_a_close_one():
    with pytest.raises(SensorConfigError) as info:
        get_blueprint("sensor.camera.rbg")
    message = str(info.value)
    assert "'sensor.camera.rbg'" in message and "did you mean 'sensor.camera.rgb'" in message
    assert "sensor.other.imu" in message  # the valid ids are listed
    with pytest.raises(SensorConfigError, match="unknown sensor blueprint"):
        get_blueprint("sensor.other.obstacle")
    with pytest.raises(SensorConfigError, match="unknown sensor blueprint"):
        get_blueprint(None)  # type: ignore[arg-type]


def test_unknown_attribute_lists_valid_ones_and_suggests():
    with pytest.raises(SensorConfigError) as info:
        resolve_attributes("sensor.lidar.ray_cast", {"chanels": 32})
    message = str(info.value)
    assert "sensor.lidar.ray_cast" in message and "'chanels'" in message
    assert "did you mean 'channels'" in message and "points_per_second" in message
    # An attribute of another sensor is unknown too (the semantic LiDAR has no noise model).
    with pytest.raises(SensorConfigError, match="has no attribute 'noise_stddev'"):
        resolve_attributes("sensor.lidar.ray_cast_semantic", {"noise_stddev": 0.1})
    with pytest.raises(SensorConfigError, match="has no attribute 'fov'"):
        resolve_attributes("sensor.other.collision", {"fov": 90})
    with pytest.raises(SensorConfigError, match="valid attributes"):
        resolve_attributes("sensor.camera.rgb")["nope"]


@pytest.mark.parametrize(("blueprint_id", "name", "value", "valid"), [
    ("sensor.camera.rgb", "fov", 0, "(0, 180)"),
    ("sensor.camera.depth", "fov", -10, "(0, 180)"),
    ("sensor.camera.semantic_segmentation", "fov", 180, "(0, 180)"),
    ("sensor.camera.rgb", "image_size_x", 0, ">= 1"),
    ("sensor.lidar.ray_cast", "channels", 0, ">= 1"),
    ("sensor.lidar.ray_cast", "range", -5.0, "> 0"),
    ("sensor.lidar.ray_cast_semantic", "range", 0, "> 0"),
    ("sensor.lidar.ray_cast", "points_per_second", 0, ">= 1"),
    ("sensor.lidar.ray_cast", "rotation_frequency", 0, "> 0"),
    ("sensor.lidar.ray_cast", "horizontal_fov", 361, "(0, 360]"),
    ("sensor.lidar.ray_cast", "dropoff_general_rate", 1.5, "[0, 1]"),
    ("sensor.other.radar", "horizontal_fov", 0, "(0, 180]"),
    ("sensor.other.radar", "vertical_fov", 200, "(0, 180]"),
    ("sensor.other.radar", "range", -1, "> 0"),
    ("sensor.other.gnss", "noise_lat_stddev", -0.1, ">= 0"),
    ("sensor.other.imu", "noise_accel_stddev_z", -1, ">= 0"),
    ("sensor.other.imu", "sensor_tick", -0.05, ">= 0"),
])
def test_impossible_values_name_blueprint_attribute_and_valid_range(blueprint_id, name, value, valid):
    with pytest.raises(SensorConfigError) as info:
        resolve_attributes(blueprint_id, {name: value})
    message = str(info.value)
    assert blueprint_id in message and f"'{name}'" in message and valid in message


def test_upper_fov_must_be_above_lower_fov():
    for blueprint_id in ("sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic"):
        with pytest.raises(SensorConfigError) as info:
            resolve_attributes(blueprint_id, {"upper_fov": -30.0, "lower_fov": -30.0})
        assert "upper_fov" in str(info.value) and "lower_fov" in str(info.value)
        with pytest.raises(SensorConfigError, match="upper_fov"):
            resolve_attributes(blueprint_id, {"upper_fov": -40.0})
    assert resolve_attributes("sensor.lidar.ray_cast", {"upper_fov": 2.0, "lower_fov": -24.8})["upper_fov"] == 2.0


@pytest.mark.parametrize(("name", "value"), [
    ("fov", "wide"), ("fov", float("nan")), ("fov", math.inf), ("fov", True), ("fov", None),
    ("image_size_x", 3.5), ("image_size_x", "3.5"), ("enable_postprocess_effects", "maybe"),
    ("enable_postprocess_effects", 1), ("role_name", 5), ("exposure_mode", "auto"),
])
def test_values_of_the_wrong_type_are_rejected(name, value):
    with pytest.raises(SensorConfigError, match=f"'{name}'"):
        resolve_attributes("sensor.camera.rgb", {name: value})


def test_bad_overrides_container_is_rejected():
    with pytest.raises(SensorConfigError, match="mapping"):
        get_blueprint("sensor.camera.rgb").resolve([("fov", 90)])  # type: ignore[arg-type]


def test_find_blueprints_filters_by_wildcard():
    cameras = {bp.id for bp in find_blueprints("sensor.camera.*")}
    assert cameras == {bid for bid in ISSUE_BLUEPRINTS if bid.startswith("sensor.camera.")}
    assert [bp.id for bp in find_blueprints("*ray_cast")] == ["sensor.lidar.ray_cast"]
    assert len(find_blueprints()) == len(ISSUE_BLUEPRINTS)


def test_blueprint_and_suite_modules_do_not_import_open3d():
    code = ("import sys; import sim.sensors.blueprints, sim.sensors.suite; "
            "sys.exit(1 if 'open3d' in sys.modules else 0)")
    repo_root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=repo_root, check=False)
    assert result.returncode == 0, result.stderr
