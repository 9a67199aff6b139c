"""The classical perception stage: LiDAR boxes on a synthetic scene, the light by colour, the GNSS pose, and one
end-to-end run on the shared test dataset."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from av_stack.logs.reader import LogReader
from av_stack.messages import EgoSignals, SensorCalibration, SensorFrame
from av_stack.perception import PERCEPTION
from av_stack.perception.classical import ClassicalPerception, classify_light, gnss_to_world
from sim.api import ActorKind, Pose, TrafficLightState

MOUNT = Pose(z_m=2.5)  # the roof LiDAR: points come in its frame, 2.5 m above the ego's ground
CAR_CENTRE, CAR_HALF = np.array([10.0, 3.0]), np.array([2.3, 1.0, 0.75])
WALKER_CENTRE = np.array([6.0, -4.0])


def ground_plane(rng: np.random.Generator, n: int = 20000, half_m: float = 40.0) -> np.ndarray:
    """Ego-frame points on the ground (z = 0, a little noise)."""
    xy = rng.uniform(-half_m, half_m, (n, 2))
    return np.column_stack([xy, rng.normal(0.0, 0.02, n)])


def car_surface(rng: np.random.Generator, n: int = 600) -> np.ndarray:
    """Points on the four sides and the top of a box-shaped car (yaw 0) standing on the ground."""
    hx, hy, hz = CAR_HALF
    u = rng.uniform(-1, 1, (n, 3))
    face = rng.integers(0, 5, n)
    pts = u * [hx, hy, hz]
    pts[face == 0, 0], pts[face == 1, 0] = hx, -hx
    pts[face == 2, 1], pts[face == 3, 1] = hy, -hy
    pts[face == 4, 2] = hz
    return pts + [CAR_CENTRE[0], CAR_CENTRE[1], hz + 0.15]  # body 0.15 m above the road


def walker_surface(rng: np.random.Generator, n: int = 120) -> np.ndarray:
    """Points on a thin upright cylinder (radius 0.25 m, 1.8 m tall)."""
    angle = rng.uniform(0, 2 * math.pi, n)
    z = rng.uniform(0.0, 1.8, n)
    return np.column_stack([WALKER_CENTRE[0] + 0.25 * np.cos(angle), WALKER_CENTRE[1] + 0.25 * np.sin(angle), z])


def lidar_frame(points_ego: np.ndarray, image: np.ndarray | None = None, frame: int = 1) -> SensorFrame:
    """A SensorFrame with the points as a roof LiDAR sees them (sensor frame, intensity 1)."""
    sensor = np.column_stack([points_ego - [0.0, 0.0, MOUNT.z_m], np.ones(len(points_ego))]).astype(np.float32)
    data = {"roof_lidar": sensor}
    calibration = {"roof_lidar": SensorCalibration("roof_lidar", "sensor.lidar.ray_cast", MOUNT)}
    if image is not None:
        data["front_rgb"] = image
    return SensorFrame(frame, 0.05 * frame, EgoSignals(0.0), data, calibration)


def test_synthetic_scene_gives_a_car_and_a_pedestrian_at_their_places():
    rng = np.random.default_rng(0)
    cloud = np.concatenate([ground_plane(rng), car_surface(rng), walker_surface(rng)])
    out = ClassicalPerception().step(lidar_frame(cloud))
    det = out.detections
    assert sorted(det.kind.tolist()) == sorted([int(ActorKind.VEHICLE), int(ActorKind.WALKER)])
    car = int(np.flatnonzero(det.kind == int(ActorKind.VEHICLE))[0])
    walker = int(np.flatnonzero(det.kind == int(ActorKind.WALKER))[0])
    assert np.hypot(*(det.center_m[car, :2] - CAR_CENTRE)) < 0.3
    assert det.extent_m[car, 0] == pytest.approx(CAR_HALF[0], abs=0.3)
    assert det.extent_m[car, 1] == pytest.approx(CAR_HALF[1], abs=0.2)
    assert abs(math.sin(det.yaw_rad[car])) < 0.1  # aligned with the ego (either direction)
    assert np.hypot(*(det.center_m[walker, :2] - WALKER_CENTRE)) < 0.2
    assert ((det.score > 0) & (det.score <= 1)).all()
    # the boxes are drawn into the BEV at their places
    spec = out.bev_spec
    col, row = np.round(spec.ego_to_pixel(CAR_CENTRE[None])[0]).astype(int)
    assert out.channel("vehicles_t0")[row, col] == 1.0
    col, row = np.round(spec.ego_to_pixel(WALKER_CENTRE[None])[0]).astype(int)
    assert out.channel("pedestrians_t0")[row, col] == 1.0
    assert out.channel("road").max() == 0.0  # no map: no road


def test_ground_alone_and_an_empty_cloud_give_no_detections():
    rng = np.random.default_rng(1)
    sloped = ground_plane(rng)
    sloped[:, 2] += 0.03 * sloped[:, 0]  # a 3 % grade: still ground
    stage = ClassicalPerception()
    assert len(stage.step(lidar_frame(sloped)).detections) == 0
    empty = stage.step(lidar_frame(np.zeros((0, 3)), frame=2))
    assert len(empty.detections) == 0
    assert empty.bev.max() == 0.0


def test_a_moving_car_gets_a_track_and_a_velocity():
    rng = np.random.default_rng(2)
    stage = ClassicalPerception()
    for k in range(4):
        cloud = np.concatenate([ground_plane(rng, 5000), car_surface(rng) + [0.5 * k, 0.0, 0.0]])  # 10 m/s at 20 Hz
        det = stage.step(lidar_frame(cloud, frame=k + 1)).detections
    assert len(det) == 1 and det.track_id[0] == 0
    assert det.velocity_mps[0, 0] == pytest.approx(10.0, abs=1.5)


def red_light_image() -> np.ndarray:
    """A grey street image with a small lit red lamp high up and a big red car low down."""
    image = np.full((300, 400, 3), 90, np.uint8)
    cv2.rectangle(image, (190, 50), (202, 80), (20, 20, 20), -1)  # the light's housing
    cv2.circle(image, (196, 56), 3, (230, 20, 10), -1)
    return image


def test_a_red_blob_reads_red_and_a_plain_image_none():
    image = red_light_image()
    assert classify_light(image)[0] is TrafficLightState.RED
    plain = np.full((300, 400, 3), 90, np.uint8)
    assert classify_light(plain)[0] is None
    car = plain.copy()
    cv2.rectangle(car, (100, 10), (300, 140), (200, 15, 15), -1)  # a red wall-sized blob is not a lamp
    assert classify_light(car)[0] is None
    out = ClassicalPerception().step(lidar_frame(np.zeros((0, 3)), image=image))
    assert out.light.state is TrafficLightState.RED and 0 < out.light.score <= 1


def test_gnss_to_world_inverts_carla_geolocation():
    carla = pytest.importorskip("carla")
    from sim.maps.loader import resolve_map

    carla_map = carla.Map("Town02", resolve_map("Town02").xodr_text)
    for x, y, compass in ((120.0, -35.0, 0.0), (-80.0, 210.0, math.pi)):
        geo = carla_map.transform_to_geolocation(carla.Location(x, y, 0.0))
        got = gnss_to_world(np.array([geo.latitude, geo.longitude, geo.altitude]), compass)
        assert got[0] == pytest.approx(x, abs=1e-3) and got[1] == pytest.approx(y, abs=1e-3)
        assert math.cos(got[2] - (compass - math.pi / 2)) == pytest.approx(1.0)
    assert gnss_to_world(np.full(3, np.nan), 0.0) is None


def test_end_to_end_on_the_dataset_is_well_formed(dataset):
    # the fixture's suite has no GNSS: the map is drawn at the ground-truth pose (the ablation flag)
    stage = PERCEPTION.build({"name": "classical", "map": "Town01", "pose_source": "ground_truth"})
    stage.reset(None)
    default = PERCEPTION.build({"name": "classical"})
    default.reset(None)
    path = next(iter(sorted(dataset.glob("*.mcap"))))
    seen = 0
    for logged in LogReader(path).frames():
        if not logged.has_sensor_data:
            continue
        frame = logged.sensor_frame
        out = stage.step(frame)
        seen += 1
        assert out.frame == frame.frame and out.bev.shape == frame.bev_spec.shape
        assert out.bev_spec == frame.bev_spec
        assert set(np.unique(out.detections.kind)) <= {int(ActorKind.VEHICLE), int(ActorKind.WALKER)}
        assert np.all(np.hypot(*out.detections.center_m[:, :2].T) <= 50.0 * math.sqrt(2))
        assert out.channel("road").mean() > 0.05  # the ego is on a road and the map is drawn there
        plain = default.step(frame)  # no GNSS, no map: detections and light only
        assert plain.channel("road").max() == 0.0 and plain.bev.shape == frame.bev_spec.shape
        # with a map, vehicles off the road are dropped: what is left is a subset of the map-free boxes
        assert all(np.any(np.all(plain.detections.center_m == c, axis=1)) for c in out.detections.center_m)
    assert seen > 0


def test_a_wrong_config_key_is_one_clear_error():
    from av_stack.registry import StageConfigError

    with pytest.raises(StageConfigError, match="bogus"):
        PERCEPTION.build({"name": "classical", "bogus": 1})
