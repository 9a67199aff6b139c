"""Cameras, LiDARs and radar against an analytic scene: a ground plane and one box (no Open3D needed).

The geometry is known in closed form, so ranges, depths, point counts,
angular layouts, tags and radial velocities can be checked exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from sim.api import WorldSnapshot
from sim.api import Pose
from sim.embedded.sensors.camera import DepthCamera, InstanceCamera, RgbCamera, SemanticCamera, pixel_directions
from sim.embedded.sensors.lidar import RayCastLidar, SemanticLidar
from sim.sensors.measurements import SEMANTIC_POINT_DTYPE
from sim.embedded.sensors.radar import Radar

BOX_MIN = np.array([20.0, -1.0, 0.0])
BOX_MAX = np.array([24.0, 1.0, 1.5])
BOX_ID = 7


@dataclass(frozen=True, eq=False)
class Hits:
    distance_m: np.ndarray
    tag: np.ndarray
    instance: np.ndarray
    normal: np.ndarray
    albedo: np.ndarray
    hit_velocity: np.ndarray

    def subset(self, rows):
        return Hits(*(getattr(self, f)[rows] for f in ("distance_m", "tag", "instance", "normal", "albedo",
                                                        "hit_velocity")))


class BoxScene:
    """Ground plane z = 0 (tag 1) and an axis-aligned box (tag 14, id 7) moving at ``box_velocity``."""

    def __init__(self, box_velocity=(0.0, 0.0, 0.0), ground=True):
        self.box_velocity = np.asarray(box_velocity, float)
        self.ground = ground

    def cast_rays(self, origins, directions, max_range):
        o = np.asarray(origins, float)
        d = np.asarray(directions, float)
        n = d.shape[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (BOX_MIN - o) / d
            t2 = (BOX_MAX - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        box_hit = (t_near <= t_far) & (t_far > 0)
        box_t = np.where(box_hit, np.maximum(t_near, 0), np.inf)
        axis = np.nanargmax(np.minimum(t1, t2), axis=1)
        box_normal = np.zeros((n, 3))
        box_normal[np.arange(n), axis] = -np.sign(d[np.arange(n), axis])
        ground_t = np.where((d[:, 2] < 0) & self.ground, -o[:, 2] / np.where(d[:, 2] < 0, d[:, 2], -1), np.inf)
        use_box = box_t <= ground_t
        t = np.minimum(box_t, ground_t)
        t = np.where(t <= np.broadcast_to(max_range, (n,)), t, np.inf)
        hit = np.isfinite(t)
        normal = np.where(use_box[:, None], box_normal, [0.0, 0.0, 1.0])
        return Hits(t.astype(np.float32), np.where(hit, np.where(use_box, 14, 1), 0).astype(np.uint8),
                    np.where(hit & use_box, BOX_ID, 0).astype(np.uint32), normal.astype(np.float32),
                    np.where(use_box[:, None], [200, 30, 30], [90, 90, 90]).astype(np.uint8),
                    np.where((hit & use_box)[:, None], self.box_velocity, 0.0).astype(np.float32))


class World:
    def __init__(self, scene):
        self.scene = scene


def snapshot(frame=1, dt=0.05, location=(0.0, 0.0, 0.0), yaw=0.0, velocity=(0.0, 0.0, 0.0)):
    def arr(x, dtype=float):
        return np.asarray(x, dtype=dtype)

    return WorldSnapshot(
        frame=frame, timestamp_s=frame * dt, dt_s=dt, actor_id=arr([1], np.int64), kind=arr([0], np.int8),
        type_id=("vehicle.lincoln.mkz_2020",), semantic_tag=arr([14], np.uint8), location_m=arr([location]),
        rotation_rad=arr([[0.0, yaw, 0.0]]), velocity_mps=arr([velocity]), acceleration_mps2=np.zeros((1, 3)),
        angular_velocity_rad_s=np.zeros((1, 3)), extent_m=arr([[2.4, 1.0, 0.8]]), autopilot=arr([False], bool),
        light_id=np.zeros(0, np.int64), light_state=np.zeros(0, np.int8), light_location_m=np.zeros((0, 3)),
        light_junction_id=np.zeros(0, np.int64))


MOUNT = Pose(z_m=0.75)  # sensors at the box's mid height, looking along +x


def test_depth_camera_sees_box_face_at_its_distance():
    cam = DepthCamera(1, MOUNT, image_size_x=64, image_size_y=48, fov=20)  # the 2 m face spans ~18 px
    image = cam.measure(World(BoxScene()), snapshot()).data
    assert image.shape == (48, 64) and image.dtype == np.float32
    assert image[24, 32] == pytest.approx(20.0, abs=1e-3)  # centre pixel: the box's near face
    # Depth is along the optical axis: the same for every pixel on the face, not the ray length.
    face = image[20:28, 25:39]
    np.testing.assert_allclose(face, 20.0, atol=1e-3)
    assert image[0, 0] == pytest.approx(1000.0)  # sky: far plane


def test_semantic_instance_and_rgb_cameras_share_layouts():
    scene = World(BoxScene())
    snap = snapshot()
    semantic = SemanticCamera(1, MOUNT, image_size_x=64, image_size_y=48).measure(scene, snap).data
    instance = InstanceCamera(1, MOUNT, image_size_x=64, image_size_y=48).measure(scene, snap).data
    rgb = RgbCamera(1, MOUNT, image_size_x=64, image_size_y=48).measure(scene, snap).data
    assert semantic.dtype == np.uint8 and semantic.shape == (48, 64)
    assert semantic[24, 32] == 14 and semantic[47, 0] == 1 and semantic[0, 0] == 11
    assert instance.shape == (48, 64, 3) and tuple(instance[24, 32]) == (14, BOX_ID, 0)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert rgb[24, 32, 0] > rgb[24, 32, 2]  # the red box
    assert rgb[0, 32, 2] > rgb[0, 32, 0]  # blue sky


def test_pixel_rays_follow_carla_intrinsics():
    rays = pixel_directions(400, 300, 90.0).reshape(300, 400, 3)
    focal = 400 / (2 * math.tan(math.radians(45)))
    # A pixel right of centre looks right (+y); a pixel above centre looks up (+z).
    u, v = 399, 0
    expected = np.array([1.0, (u + 0.5 - 200) / focal, -(v + 0.5 - 150) / focal])
    np.testing.assert_allclose(rays[v, u], expected / np.linalg.norm(expected), atol=1e-6)


def test_bad_camera_attributes():
    with pytest.raises(ValueError, match="fov"):
        RgbCamera(1, MOUNT, fov=0)
    with pytest.raises(ValueError, match="image_size_x"):
        RgbCamera(1, MOUNT, image_size_x=0)


def test_lidar_point_count_layout_and_ranges():
    lidar = RayCastLidar(1, MOUNT, channels=32, range=100.0, points_per_second=32 * 1024 * 20,
                         rotation_frequency=20.0, upper_fov=10.0, lower_fov=-30.0, dropoff_general_rate=0.0,
                         dropoff_intensity_limit=0.0, atmosphere_attenuation_rate=0.004)
    plan = lidar.plan(snapshot(dt=0.05))
    assert plan.directions.shape == (32 * 1024, 3)  # a full sweep per tick
    elevation = np.degrees(np.arcsin(plan.local_directions[:, 2])).reshape(32, 1024)
    np.testing.assert_allclose(elevation[:, 0], np.linspace(10.0, -30.0, 32), atol=1e-4)
    azimuth = np.degrees(np.arctan2(plan.local_directions[:, 1], plan.local_directions[:, 0])).reshape(32, 1024)
    assert np.ptp(np.mod(azimuth[0], 360.0)) > 359.0
    points = lidar.finish(snapshot(), plan, BoxScene().cast_rays(plan.origins, plan.directions, plan.max_range_m)).data
    assert points.dtype == np.float32 and points.shape[1] == 4
    # Rays straight ahead at elevation ~0 hit the box face at x = 20 m (in the sensor frame).
    ahead = points[(np.abs(points[:, 1]) < 0.5) & (np.abs(points[:, 2]) < 0.5) & (points[:, 0] > 1)]
    np.testing.assert_allclose(ahead[:, 0], 20.0, atol=1e-3)
    np.testing.assert_allclose(points[:, 3], np.exp(-0.004 * np.linalg.norm(points[:, :3], axis=1)), rtol=1e-5)
    # Ground points lie at z = -0.75 in the sensor frame; nothing beyond 100 m.
    assert np.linalg.norm(points[:, :3], axis=1).max() <= 100.0 + 1e-3
    assert (points[:, 2] >= -0.75 - 1e-3).all()


def test_lidar_rotation_continues_across_ticks():
    lidar = RayCastLidar(1, MOUNT, channels=1, points_per_second=200, rotation_frequency=10.0,
                         dropoff_general_rate=0.0, upper_fov=0.0, lower_fov=-1.0)
    first = lidar.plan(snapshot(frame=1)).local_directions
    second = lidar.plan(snapshot(frame=2)).local_directions
    assert first.shape == (10, 3)  # 200 pts/s * 0.05 s
    az1 = np.degrees(np.arctan2(first[:, 1], first[:, 0]))
    az2 = np.degrees(np.arctan2(second[:, 1], second[:, 0]))
    # 10 Hz * 360 deg * 0.05 s = 180 deg per tick, continuing where the last tick stopped.
    assert az1[0] == pytest.approx(0.0, abs=1e-4) and np.mod(az2[0], 360) == pytest.approx(180.0, abs=1e-4)


def test_lidar_dropoff_follows_carla_model():
    common = dict(channels=16, range=150.0, points_per_second=16 * 2000 * 20, rotation_frequency=20.0,
                  atmosphere_attenuation_rate=0.004, dropoff_intensity_limit=0.8, dropoff_zero_intensity=0.4)
    none = RayCastLidar(1, MOUNT, dropoff_general_rate=0.0, **{**common, "dropoff_intensity_limit": 0.0})
    general = RayCastLidar(1, MOUNT, dropoff_general_rate=0.45, **{**common, "dropoff_intensity_limit": 0.0})
    plan_all, plan_general = none.plan(snapshot()), general.plan(snapshot())
    assert plan_general.directions.shape[0] / plan_all.directions.shape[0] == pytest.approx(0.55, abs=0.02)
    # Intensity dropoff: ground points at 20 m (intensity 0.92 > 0.8) are all kept.
    limited = RayCastLidar(1, MOUNT, dropoff_general_rate=0.0, **common)
    plan = limited.plan(snapshot())
    hits = BoxScene(ground=True).cast_rays(plan.origins, plan.directions, plan.max_range_m)
    points = limited.finish(snapshot(), plan, hits).data
    full = none.finish(snapshot(), plan, hits).data
    near = lambda p: (np.linalg.norm(p[:, :3], axis=1) < 50).sum()  # noqa: E731
    assert near(points) == near(full)
    far = lambda p: (np.linalg.norm(p[:, :3], axis=1) > 60).sum()  # noqa: E731
    assert far(points) < far(full)


def test_semantic_lidar_layout():
    lidar = SemanticLidar(1, MOUNT, channels=8, range=50.0, points_per_second=8 * 360 * 20, rotation_frequency=20.0)
    measurement = lidar.measure(World(BoxScene()), snapshot())
    points = measurement.data
    assert points.dtype == SEMANTIC_POINT_DTYPE and SEMANTIC_POINT_DTYPE.itemsize == 24
    box = points[points["ObjTag"] == 14]
    assert (box["ObjIdx"] == BOX_ID).all() and len(box) > 0
    assert (points[points["ObjTag"] == 1]["ObjIdx"] == 0).all()
    assert ((box["CosAngle"] >= 0) & (box["CosAngle"] <= 1.0001)).all()


def test_bad_lidar_attributes():
    for kwargs, name in ((dict(channels=0), "channels"), (dict(range=-5.0), "range"),
                         (dict(upper_fov=-40.0), "upper_fov"), (dict(noise_stddev=-1.0), "noise_stddev")):
        with pytest.raises(ValueError, match=name):
            RayCastLidar(1, MOUNT, **kwargs)


def test_radar_sees_approaching_box_with_negative_velocity():
    # A narrow vertical fov keeps the ground out of the first 40 m.
    radar = Radar(1, MOUNT, horizontal_fov=10.0, vertical_fov=2.0, range=100.0, points_per_second=20000)
    detections = radar.measure(World(BoxScene(box_velocity=(-10.0, 0.0, 0.0))), snapshot()).data
    assert detections.dtype == np.float32 and detections.shape[1] == 4
    box = detections[np.abs(detections[:, 3] - 20.0) < 0.6]
    assert len(box) > 50
    # Radial velocity of a target approaching at 10 m/s head-on: -10 * cos(angle off the axis).
    np.testing.assert_allclose(box[:, 0], -10.0, atol=0.2)
    assert (np.abs(box[:, 1]) <= math.radians(5.0) + 1e-6).all() and (np.abs(box[:, 2]) <= math.radians(1.0) + 1e-6).all()
    # A radar moving at the box's speed sees it at rest.
    same = radar.measure(World(BoxScene(box_velocity=(5.0, 0.0, 0.0))), snapshot(frame=2, velocity=(5.0, 0, 0))).data
    np.testing.assert_allclose(same[np.abs(same[:, 3] - 20.0) < 0.6][:, 0], 0.0, atol=1e-4)


def test_sensor_follows_parent_rotation():
    cam = DepthCamera(1, MOUNT, image_size_x=32, image_size_y=24, fov=60)
    # Parent turned 90 deg to the right (+y) and moved so the box is straight ahead again.
    turned = snapshot(location=(22.0, -25.0, 0.0), yaw=math.pi / 2)
    image = cam.measure(World(BoxScene()), turned).data
    assert image[12, 16] == pytest.approx(24.0, abs=1e-3)  # box face at y = -1, 24 m away


def test_bad_radar_attributes():
    for kwargs, name in ((dict(range=0.0), "range"), (dict(points_per_second=0), "points_per_second"),
                         (dict(horizontal_fov=180.0), "horizontal_fov"), (dict(vertical_fov=-1.0), "vertical_fov")):
        with pytest.raises(ValueError, match=name):
            Radar(1, MOUNT, **kwargs)
