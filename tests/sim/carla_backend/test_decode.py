"""CARLA sensor buffers decode to exactly the layouts the embedded sensors produce."""

from __future__ import annotations

import numpy as np
import pytest

from sim.carla_backend.decode import (DEPTH_SCALE_M, DecodeError, decode_depth, decode_instance, decode_lidar,
                                      decode_radar, decode_rgb, decode_semantic, decode_semantic_lidar)
from sim.sensors.measurements import SEMANTIC_POINT_DTYPE


def bgra(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> bytes:
    """An image as CARLA sends it: BGRA bytes, alpha 255."""
    return np.dstack([b, g, r, np.full_like(r, 255)]).astype(np.uint8).tobytes()


@pytest.fixture(scope="module")
def embedded_images():
    """One tick of real embedded camera and LiDAR data (needs Open3D)."""
    pytest.importorskip("open3d")
    from sim.embedded.sensors.rig import SensorRig
    from sim.sensors.suite import suite_from_dict
    from sim.embedded.world import EmbeddedWorld

    world = EmbeddedWorld(map="Town01", seed=0)
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
    world.spawn_traffic(15)
    cam = {"transform": {"x": 1.5, "z": 2.4}, "attributes": {"image_size_x": 96, "image_size_y": 64}}
    suite = suite_from_dict({"sensors": [
        {"name": "rgb", "blueprint": "sensor.camera.rgb", **cam},
        {"name": "depth", "blueprint": "sensor.camera.depth", **cam},
        {"name": "semantic", "blueprint": "sensor.camera.semantic_segmentation", **cam},
        {"name": "instance", "blueprint": "sensor.camera.instance_segmentation", **cam},
        {"name": "lidar", "blueprint": "sensor.lidar.ray_cast", "transform": {"z": 2.5},
         "attributes": {"channels": 16, "points_per_second": 64000, "range": 50}},
        {"name": "slidar", "blueprint": "sensor.lidar.ray_cast_semantic", "transform": {"z": 2.5},
         "attributes": {"channels": 16, "points_per_second": 64000, "range": 50}},
    ]})
    rig = SensorRig(world, suite)
    for _ in range(3):
        data = rig.measure(world.tick())
    return {name: m.data for name, m in data.items()}


def test_rgb_from_bgra(embedded_images):
    rgb = embedded_images["rgb"]
    out = decode_rgb(bgra(rgb[..., 0], rgb[..., 1], rgb[..., 2]), 96, 64)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous and out.dtype == np.uint8


def test_depth_from_carla_encoding(embedded_images):
    depth = embedded_images["depth"]
    code = np.round(depth.astype(np.float64) / DEPTH_SCALE_M).astype(np.int64)
    out = decode_depth(bgra(code & 255, (code >> 8) & 255, (code >> 16) & 255), 96, 64)
    np.testing.assert_allclose(out, depth, atol=1e-4)  # quantum: 1000 m / (2^24 - 1) = 6e-5 m
    assert out.dtype == np.float32


def test_semantic_and_instance_from_their_channels(embedded_images):
    tags = embedded_images["semantic"]
    zeros = np.zeros_like(tags)
    np.testing.assert_array_equal(decode_semantic(bgra(tags, zeros, zeros), 96, 64), tags)
    instance = embedded_images["instance"]
    out = decode_instance(bgra(instance[..., 0], instance[..., 1], instance[..., 2]), 96, 64)
    np.testing.assert_array_equal(out, instance)
    ids = out[..., 1].astype(int) + 256 * out[..., 2].astype(int)
    assert np.all(ids[tags == 1] == 0)  # the static world (road) has instance 0


def test_point_clouds_from_raw_floats(embedded_images):
    lidar = embedded_images["lidar"]
    np.testing.assert_array_equal(decode_lidar(lidar.astype(np.float32).tobytes()), lidar)
    semantic = embedded_images["slidar"]
    assert semantic.dtype == SEMANTIC_POINT_DTYPE and SEMANTIC_POINT_DTYPE.itemsize == 24
    np.testing.assert_array_equal(decode_semantic_lidar(semantic.tobytes()), semantic)
    radar = np.array([[-10.0, 0.1, 0.0, 25.0], [2.0, -0.2, 0.05, 60.0]], dtype=np.float32)
    np.testing.assert_array_equal(decode_radar(radar.tobytes()), radar)


def test_bad_buffers_are_named():
    with pytest.raises(DecodeError, match="96x64"):
        decode_rgb(b"\x00" * 100, 96, 64)
    with pytest.raises(DecodeError, match="LiDAR"):
        decode_lidar(b"\x00" * 20)
    with pytest.raises(DecodeError, match="semantic LiDAR"):
        decode_semantic_lidar(b"\x00" * 30)
