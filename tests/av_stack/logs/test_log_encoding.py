"""Sensor arrays to Foxglove messages and back (av_stack/logs/encoding.py): exact where the values matter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.logs import encoding as enc
from sim.api import Pose

RNG = np.random.default_rng(0)


def test_lossless_cameras_round_trip_exactly():
    semantic = RNG.integers(0, 29, (30, 40), dtype=np.uint8)
    instance = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(enc.decode_camera("sensor.camera.semantic_segmentation", enc.encode_camera(
        "sensor.camera.semantic_segmentation", "sem", 1.0, semantic)), semantic)
    assert np.array_equal(enc.decode_camera("sensor.camera.instance_segmentation", enc.encode_camera(
        "sensor.camera.instance_segmentation", "inst", 1.0, instance)), instance)


def test_depth_keeps_carlas_24_bit_precision():
    depth = RNG.uniform(0.1, 999.0, (30, 40)).astype(np.float32)
    depth[0, 0] = 1000.0
    message = enc.encode_camera("sensor.camera.depth", "depth", 0.5, depth)
    assert message.format == "png"
    back = enc.decode_camera("sensor.camera.depth", message)
    assert back.dtype == np.float32 and back.shape == depth.shape
    assert np.abs(back - depth).max() <= 1000.0 / (2**24 - 1) + 1e-4  # one step of the encoding (0.06 mm)


def test_rgb_is_jpeg_and_close():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (200, 30, 30)
    rgb[:, 40:] = (20, 40, 220)
    message = enc.encode_camera("sensor.camera.rgb", "cam", 0.0, rgb, jpeg_quality=95)
    assert message.format == "jpeg" and message.data[:2] == b"\xff\xd8"
    back = enc.decode_camera("sensor.camera.rgb", message)
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 3.0
    assert back[30, 10, 0] > 150 and back[30, 70, 2] > 150  # channel order kept (RGB, not BGR)


@pytest.mark.parametrize("blueprint,columns", [("sensor.lidar.ray_cast", 4), ("sensor.lidar.ray_cast_semantic", 6),
                                               ("sensor.other.radar", 4)])
def test_point_clouds_round_trip_exactly(blueprint, columns):
    rows = RNG.normal(size=(257, columns)).astype(np.float32)
    message = enc.encode_points(blueprint, "sensor", 2.0, rows)
    assert np.array_equal(enc.decode_points(blueprint, message), rows)
    names = [f.name for f in message.fields]
    assert names[:3] == ["x", "y", "z"]  # Foxglove draws x, y, z


def test_points_are_mirrored_into_foxglove_right_handed_frame():
    """A LiDAR point to the right (CARLA +y) shows on Foxglove's -y; radar x, y, z come from its polar columns."""
    lidar = enc.encode_points("sensor.lidar.ray_cast", "l", 0.0, np.array([[1.0, 2.0, 3.0, 0.5]], np.float32))
    assert np.frombuffer(lidar.data, np.float32)[:3].tolist() == [1.0, -2.0, 3.0]
    radar = enc.encode_points("sensor.other.radar", "r", 0.0,
                              np.array([[-1.5, math.radians(30), 0.0, 10.0]], np.float32))  # velocity, az, alt, depth
    x, y, z = np.frombuffer(radar.data, np.float32)[:3]
    assert x == pytest.approx(10 * math.cos(math.radians(30)), abs=1e-5)
    assert y == pytest.approx(-5.0, abs=1e-5) and z == pytest.approx(0.0, abs=1e-6)


def test_a_point_cloud_with_wrong_fields_is_a_clear_error():
    message = enc.encode_points("sensor.lidar.ray_cast", "l", 0.0, np.zeros((3, 4), np.float32))
    with pytest.raises(enc.EncodingError, match="fields"):
        enc.decode_points("sensor.lidar.ray_cast_semantic", message)
    message.data = message.data[:-3]
    with pytest.raises(enc.EncodingError, match="whole number"):
        enc.decode_points("sensor.lidar.ray_cast", message)


def test_gnss_round_trips():
    fix = np.array([48.1, 11.5, 520.25])
    assert np.array_equal(enc.decode_gnss(enc.encode_gnss("gnss", 0.0, fix)), fix)


def test_frame_transform_mirrors_y_and_yaw():
    transform = enc.frame_transform("world", "ego", 1.25, Pose(10.0, 5.0, 0.5, math.pi / 2))
    assert (transform.translation.x, transform.translation.y, transform.translation.z) == (10.0, -5.0, 0.5)
    q = transform.rotation  # CARLA yaw +90 deg (towards +y, to the right) is -90 deg about Foxglove's z
    assert (q.z, q.w) == pytest.approx((-math.sqrt(0.5), math.sqrt(0.5)))
    assert enc.seconds(transform.timestamp) == pytest.approx(1.25)


def test_scene_update_has_one_cube_per_box():
    update = enc.scene_update("ego", 0.0, np.array([7, 8]), np.array([0, 1]), np.array([[5.0, 1.0, 0.8]] * 2),
                              np.array([[2.0, 1.0, 0.8]] * 2), np.array([0.0, 0.3]), prefix="gt-")
    assert [e.id for e in update.entities] == ["gt-7", "gt-8"]
    assert update.entities[0].cubes[0].size.x == pytest.approx(4.0)
    assert update.entities[0].cubes[0].pose.position.y == pytest.approx(-1.0)
