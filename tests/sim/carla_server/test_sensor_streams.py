"""Every embedded sensor through the server: the unmodified ``carla`` client decodes back the embedded data.

The server runs as a child process (``recording_server.py``) that pickles each
embedded measurement before serializing it; the client's objects, decoded by
``sim.carla_backend.decode``, must give back exactly that data (depth within
1e-4 m, IMU values as float32). One scene for the module: an ego vehicle
driving slowly with a right steer, a parked car behind it, and every sensor
mounted behind the ego looking back at that car.
"""

from __future__ import annotations

import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from sim.carla_backend.decode import decode_measurement
from sim.carla_server.process import start_server_process, stop_server_process
from sim.sensors.measurements import ImuData

HERE = Path(__file__).resolve().parent
SENSOR_ATTRIBUTES = {
    "sensor.camera.depth": {"image_size_x": "64", "image_size_y": "48"},
    "sensor.camera.semantic_segmentation": {"image_size_x": "64", "image_size_y": "48"},
    "sensor.camera.instance_segmentation": {"image_size_x": "64", "image_size_y": "48"},
    "sensor.lidar.ray_cast_semantic": {"channels": "8", "points_per_second": "8000", "range": "30",
                                       "rotation_frequency": "20"},
    "sensor.other.radar": {"points_per_second": "2000", "horizontal_fov": "40", "vertical_fov": "20"},
    "sensor.other.gnss": {},
    "sensor.other.imu": {},
    "sensor.other.lane_invasion": {},
}
MOUNT = carla.Transform(carla.Location(x=-2.7, y=0.3, z=1.4), carla.Rotation(yaw=180.0))
TICKS = 40


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Drive the scene for a few ticks; returns (received {blueprint: {frame: data}}, sensor ids, record dir, ego)."""
    out_dir = tmp_path_factory.mktemp("measurements")
    proc, port = start_server_process([sys.executable, str(HERE / "recording_server.py"), str(out_dir)])
    try:
        client = carla.Client("127.0.0.1", port)
        client.set_timeout(10.0)
        world = client.get_world()
        settings = world.get_settings()
        settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
        world.apply_settings(settings)
        library = world.get_blueprint_library()
        spawn = world.get_map().get_spawn_points()[0]
        ego = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), spawn)
        behind = carla.Transform(spawn.location - spawn.get_forward_vector() * 9.0, spawn.rotation)
        parked = world.spawn_actor(library.find("vehicle.mercedes.sprinter"), behind)
        received: dict[str, dict[int, object]] = {bp: {} for bp in SENSOR_ATTRIBUTES}
        ids: dict[str, int] = {}
        sensors = []
        for blueprint_id, attributes in SENSOR_ATTRIBUTES.items():
            bp = library.find(blueprint_id)
            for key, value in attributes.items():
                bp.set_attribute(key, value)
            sensor = world.spawn_actor(bp, MOUNT, attach_to=ego)
            ids[blueprint_id] = sensor.id
            sensors.append(sensor)
            sensor.listen(lambda data, bp_id=blueprint_id: received[bp_id].setdefault(data.frame, data))
        ego.apply_control(carla.VehicleControl(throttle=0.6, steer=0.5))
        ego_locations = {}
        for _ in range(TICKS):
            frame = world.tick()
            location = world.get_snapshot().find(ego.id).get_transform().location
            ego_locations[frame] = (location.x, location.y)
        deadline = time.monotonic() + 2.0
        streamed = [b for b in SENSOR_ATTRIBUTES if b != "sensor.other.lane_invasion"]
        last = world.get_snapshot().frame
        while not all(last in received[b] for b in streamed) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield received, ids, out_dir, (ego.id, parked.id), ego_locations
        for sensor in sensors:
            sensor.stop()
    finally:
        stop_server_process(proc)


def _pairs(run, blueprint_id: str) -> list[tuple[object, object]]:
    """(client data, embedded measurement) for every frame the client received."""
    received, ids, out_dir, _, _ = run
    frames = sorted(received[blueprint_id])
    assert len(frames) >= TICKS // 2, f"{blueprint_id}: only {len(frames)} frames arrived"
    pairs = []
    for frame in frames:
        path = out_dir / f"{ids[blueprint_id]}_{frame}.pkl"
        assert path.exists(), f"{blueprint_id}: the client got frame {frame} the server never measured"
        pairs.append((received[blueprint_id][frame], pickle.loads(path.read_bytes())))
    return pairs


def _check_header(data, measurement) -> None:
    assert data.frame == measurement.frame
    assert data.timestamp == pytest.approx(measurement.timestamp_s, abs=1e-9)
    location = data.transform.location
    np.testing.assert_allclose([location.x, location.y, location.z], measurement.location_m, atol=1e-4)
    rotation = data.transform.rotation
    pitch, yaw, roll = (math.radians(v) for v in (rotation.pitch, rotation.yaw, rotation.roll))
    np.testing.assert_allclose([pitch, yaw, roll], measurement.rotation_rad, atol=1e-5)


def test_depth_camera_round_trip(run):
    far = 0
    for data, measurement in _pairs(run, "sensor.camera.depth"):
        _check_header(data, measurement)
        assert isinstance(data, carla.Image) and (data.width, data.height) == (64, 48)
        depth = decode_measurement("sensor.camera.depth", data)
        assert depth.shape == (48, 64)
        np.testing.assert_allclose(depth, measurement.data, atol=1e-4, rtol=0)
        far += int((measurement.data >= 1000.0).sum())
    assert far > 0  # the sky is at CARLA's far plane, 1000 m, and survives the encoding


def test_semantic_camera_round_trip_and_tags(run):
    tags = set()
    for data, measurement in _pairs(run, "sensor.camera.semantic_segmentation"):
        _check_header(data, measurement)
        decoded = decode_measurement("sensor.camera.semantic_segmentation", data)
        np.testing.assert_array_equal(decoded, measurement.data)
        raw = np.frombuffer(data.raw_data, dtype=np.uint8).reshape(48, 64, 4)
        assert (raw[..., :2] == 0).all() and (raw[..., 3] == 255).all()  # CARLA's layout: B = G = 0, tag in R
        tags |= set(np.unique(decoded).tolist())
    assert {11, 14} <= tags  # sky, and the parked car


def test_instance_camera_round_trip_sees_the_parked_car(run):
    parked_id = run[3][1]
    seen = set()
    for data, measurement in _pairs(run, "sensor.camera.instance_segmentation"):
        _check_header(data, measurement)
        decoded = decode_measurement("sensor.camera.instance_segmentation", data)
        np.testing.assert_array_equal(decoded, measurement.data)
        instance = decoded[..., 1].astype(np.int64) | (decoded[..., 2].astype(np.int64) << 8)
        seen |= set(np.unique(instance).tolist())
    assert parked_id & 0xFFFF in seen


def test_semantic_lidar_round_trip(run):
    parked_id = run[3][1]
    objects = set()
    for data, measurement in _pairs(run, "sensor.lidar.ray_cast_semantic"):
        _check_header(data, measurement)
        assert isinstance(data, carla.SemanticLidarMeasurement) and data.channels == 8
        points = decode_measurement("sensor.lidar.ray_cast_semantic", data)
        assert points.dtype == measurement.data.dtype and points.tobytes() == measurement.data.tobytes()
        assert sum(data.get_point_count(c) for c in range(8)) == len(points)
        if len(points):
            first = next(iter(data))
            assert (first.point.x, first.object_idx, first.object_tag) == (
                pytest.approx(float(points["x"][0])), int(points["ObjIdx"][0]), int(points["ObjTag"][0]))
        objects |= set(points["ObjIdx"].tolist())
    assert parked_id in objects


def test_radar_round_trip(run):
    total = 0
    for data, measurement in _pairs(run, "sensor.other.radar"):
        _check_header(data, measurement)
        assert isinstance(data, carla.RadarMeasurement)
        detections = decode_measurement("sensor.other.radar", data)
        np.testing.assert_array_equal(detections, measurement.data)
        assert data.get_detection_count() == len(detections)
        if len(detections):
            first = next(iter(data))
            assert [first.velocity, first.azimuth, first.altitude, first.depth] == detections[0].tolist()
        total += len(detections)
    assert total > 0


def test_gnss_round_trip(run):
    for data, measurement in _pairs(run, "sensor.other.gnss"):
        _check_header(data, measurement)
        assert isinstance(data, carla.GnssMeasurement)
        fix = decode_measurement("sensor.other.gnss", data)
        np.testing.assert_array_equal(fix, measurement.data)  # doubles on the wire: exact
        assert abs(fix[0]) < 1.0 and abs(fix[1]) < 1.0  # Town01's geo-reference is (0, 0)


def test_imu_round_trip(run):
    turning = 0
    for data, measurement in _pairs(run, "sensor.other.imu"):
        _check_header(data, measurement)
        assert isinstance(data, carla.IMUMeasurement)
        imu = decode_measurement("sensor.other.imu", data)
        expected: ImuData = measurement.data
        # CARLA's IMU carries float32: the embedded values rounded to float32, nothing more.
        np.testing.assert_array_equal(imu.accelerometer_mps2, expected.accelerometer_mps2.astype(np.float32))
        np.testing.assert_array_equal(imu.gyroscope_rad_s, expected.gyroscope_rad_s.astype(np.float32))
        assert imu.compass_rad == float(np.float32(expected.compass_rad))
        turning += imu.gyroscope_rad_s[2] > 0.01
    assert turning > 0  # steering right: positive yaw rate


def test_lane_invasion_is_computed_by_the_client(run):
    """The client's own LaneInvasionSensor compares the parent's box with the map's lane markings each tick."""
    received, _, _, _, ego_locations = run
    events = [received["sensor.other.lane_invasion"][f] for f in sorted(received["sensor.other.lane_invasion"])]
    assert events, "steering right for 2 s crossed no lane marking"
    for event in events:
        assert isinstance(event, carla.LaneInvasionEvent) and event.frame in ego_locations
        # The event carries the parent's transform of that frame (from the episode state this server sends).
        location = event.transform.location
        assert (location.x, location.y) == pytest.approx(ego_locations[event.frame], abs=1e-4)
        assert event.crossed_lane_markings
        assert all(isinstance(m.type, carla.LaneMarkingType) for m in event.crossed_lane_markings)
        # CARLA 0.9.16's client builds these events without an episode: ``event.actor`` raises (as against
        # CARLA's own server); the parent is the actor the sensor was attached to.
        with pytest.raises(RuntimeError, match="destroyed actor"):
            _ = event.actor
