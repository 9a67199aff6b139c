"""Sensor mounts (world pose composition), ``sensor.other.gnss`` and ``sensor.other.imu``."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest

from sim.api import CollisionEvent, Pose, VehicleControl, WorldSnapshot
from sim.embedded.sensors.base import (
    SensorMeasurement,
    rotation_from_matrix,
    rotation_matrix,
    sensor_world_pose,
)
from sim.embedded.sensors.gnss import GnssSensor
from sim.embedded.sensors.imu import GRAVITY_MPS2, ImuSensor
from sim.sensors.measurements import ImuData
from sim.embedded.world import EmbeddedWorld

BLUEPRINT = "vehicle.lincoln.mkz_2020"
# Centre of the largest disc of drivable/sidewalk ground in Town10HD (radius ~18 m): room to drive circles.
TOWN10_OPEN_XY = (-10.28, 20.59)


def _carla_matrix(pitch_rad: float, yaw_rad: float, roll_rad: float, xyz=(0.0, 0.0, 0.0)) -> np.ndarray:
    rotation = carla.Rotation(pitch=math.degrees(pitch_rad), yaw=math.degrees(yaw_rad), roll=math.degrees(roll_rad))
    return np.array(carla.Transform(carla.Location(*xyz), rotation).get_matrix())


@pytest.fixture(scope="module")
def _loaded_towns() -> dict[str, EmbeddedWorld]:
    """Worlds kept for the module so each town's map is loaded once; tests get them reset (see below)."""
    return {}


def _fresh(towns: dict[str, EmbeddedWorld], name: str) -> EmbeddedWorld:
    """The module's world of ``name``, reset to seed 0: no actors, frame 0, whatever earlier tests did."""
    if name not in towns:
        towns[name] = EmbeddedWorld(map=name, seed=0)
    towns[name].reset(0)
    return towns[name]


@pytest.fixture()
def town01(_loaded_towns):
    return _fresh(_loaded_towns, "Town01")


@pytest.fixture()
def town10(_loaded_towns):
    return _fresh(_loaded_towns, "Town10HD")


# ---------------------------------------------------------------------------- mounts and world poses
def test_parent_yaw_90_puts_a_forward_mount_at_plus_y():
    location, rotation = sensor_world_pose(np.array([10.0, 20.0, 0.0]), np.array([0.0, math.pi / 2, 0.0]),
                                           Pose(x_m=1.0))
    np.testing.assert_allclose(location, [10.0, 21.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rotation, [0.0, math.pi / 2, 0.0], atol=1e-12)


@pytest.mark.parametrize("parent_rotation, mount, expected_offset", [
    ((math.pi / 2, 0.0, 0.0), Pose(x_m=1.0), (0.0, 0.0, 1.0)),    # nose up: forward is up
    ((0.0, 0.0, math.pi / 2), Pose(y_m=1.0), (0.0, 0.0, -1.0)),   # roll right: right side goes down
    ((0.0, math.pi, 0.0), Pose(x_m=2.0, y_m=1.0), (-2.0, -1.0, 0.0)),
    ((0.0, -math.pi / 2, 0.0), Pose(z_m=1.5), (0.0, 0.0, 1.5)),
])
def test_mount_offsets_rotate_with_the_parent(parent_rotation, mount, expected_offset):
    location, _ = sensor_world_pose(np.array([1.0, 2.0, 3.0]), np.array(parent_rotation), mount)
    np.testing.assert_allclose(location - [1.0, 2.0, 3.0], expected_offset, atol=1e-12)


@pytest.mark.parametrize("pitch, yaw, roll", [
    (0.0, 0.0, 0.0), (0.3, 0.0, 0.0), (0.0, 0.0, 0.4), (0.2, 1.0, -0.5), (-0.7, -2.5, 1.2), (0.5, 3.0, 2.8),
])
def test_rotation_matrix_is_carlas_transform_matrix(pitch, yaw, roll):
    np.testing.assert_allclose(rotation_matrix(pitch, yaw, roll), _carla_matrix(pitch, yaw, roll)[:3, :3], atol=1e-6)
    np.testing.assert_allclose(rotation_from_matrix(rotation_matrix(pitch, yaw, roll)), [pitch, yaw, roll], atol=1e-12)


def test_rotation_from_matrix_at_gimbal_lock():
    for pitch in (math.pi / 2, -math.pi / 2):
        recovered = rotation_from_matrix(rotation_matrix(pitch, 0.7, 0.0))
        np.testing.assert_allclose(rotation_matrix(*recovered), rotation_matrix(pitch, 0.7, 0.0), atol=1e-9)


@pytest.mark.parametrize("parent, mount", [
    ((0.0, 0.0, 0.0), Pose(1.0, -0.5, 1.7, roll_rad=0.0, pitch_rad=0.0, yaw_rad=0.0)),
    ((0.0, 1.2, 0.0), Pose(1.5, 0.3, 2.0, roll_rad=0.0, pitch_rad=-0.2, yaw_rad=0.0)),
    ((0.25, -2.0, 0.1), Pose(-1.0, 0.8, 0.5, roll_rad=0.3, pitch_rad=0.4, yaw_rad=1.9)),
    ((-0.4, 2.9, -0.3), Pose(0.2, 0.0, 1.0, roll_rad=-1.0, pitch_rad=0.6, yaw_rad=-3.0)),
])
def test_composition_matches_carla_transforms(parent, mount):
    """World pose == carla parent Transform o mount Transform (location and full rotation)."""
    parent_xyz = (5.0, -3.0, 0.5)
    location, rotation = sensor_world_pose(np.array(parent_xyz), np.array(parent), mount)
    expected = _carla_matrix(*parent, parent_xyz) @ _carla_matrix(mount.pitch_rad, mount.yaw_rad, mount.roll_rad,
                                                                   (mount.x_m, mount.y_m, mount.z_m))
    np.testing.assert_allclose(location, expected[:3, 3], atol=1e-5)
    np.testing.assert_allclose(rotation_matrix(*rotation), expected[:3, :3], atol=1e-5)


def test_bad_mounts_and_parents_are_refused():
    with pytest.raises(ValueError, match="Pose.x_m"):
        Pose(x_m=float("nan"))
    with pytest.raises(ValueError, match="Pose.yaw_rad"):
        Pose(yaw_rad="east")
    with pytest.raises(ValueError, match="parent_rotation"):
        sensor_world_pose(np.zeros(3), np.zeros(2), Pose())
    with pytest.raises(ValueError, match="parent_id"):
        GnssSensor("ego")
    with pytest.raises(ValueError, match="transform"):
        GnssSensor(1, (0.0, 0.0, 1.0))


# ---------------------------------------------------------------------------- GNSS
@pytest.mark.parametrize("town", ["town01", "town10"])
def test_gnss_round_trips_through_geolocation_to_transform(town, request):
    world = request.getfixturevalue(town)
    mount = Pose(x_m=0.5, y_m=-0.3, z_m=1.8, yaw_rad=0.4)
    lane_xyz = world.lanes.points_xyz
    rows = np.linspace(0, lane_xyz.shape[0] - 1, 4).astype(int)
    sensors = []
    for k, row in enumerate(rows.tolist()):
        pose = Pose(float(lane_xyz[row, 0]), float(lane_xyz[row, 1]), 0.0, -2.0 + 1.3 * k)
        sensors.append(GnssSensor(world.spawn_vehicle(BLUEPRINT, pose, clearance_m=0.0), mount))
    snapshot = world.tick()
    for sensor in sensors:
        m = sensor.measure(world, snapshot)
        assert isinstance(m, SensorMeasurement) and m.blueprint_id == "sensor.other.gnss"
        assert m.frame == snapshot.frame and m.timestamp_s == snapshot.timestamp_s
        assert m.data.shape == (3,) and m.data.dtype == np.float64 and not m.data.flags.writeable
        row = snapshot.index_of(sensor.parent_id)
        expected, _ = sensor_world_pose(snapshot.location_m[row], snapshot.rotation_rad[row], mount)
        np.testing.assert_allclose(m.location_m, expected, atol=1e-9)
        lat, lon, alt = m.data.tolist()
        back = world.carla_map.geolocation_to_transform(carla.GeoLocation(lat, lon, alt))
        assert math.dist((back.x, back.y, back.z), expected) < 0.01
        assert alt == pytest.approx(expected[2], abs=1e-3)


@pytest.fixture(scope="module")
def parked():
    """A parked vehicle in its own Town01 world: (its id, the world, a snapshot); tests only read them."""
    world = EmbeddedWorld(map="Town01", seed=0)
    xyz = world.lanes.points_xyz[len(world.lanes.points_xyz) // 2]
    ego = world.spawn_vehicle(BLUEPRINT, Pose(float(xyz[0]), float(xyz[1]), 0.0, 0.0), clearance_m=0.0)
    return ego, world, world.tick()


def test_gnss_noise_spread_bias_and_seed_determinism(parked):
    ego, world, snapshot = parked
    clean = GnssSensor(ego).measure(world, snapshot).data
    stddev = np.array([2e-5, 3e-5, 0.5])
    bias = np.array([1e-4, -2e-4, 2.0])

    def readings(seed: int) -> np.ndarray:
        sensor = GnssSensor(ego, noise_lat_stddev=stddev[0], noise_lon_stddev=stddev[1], noise_alt_stddev=stddev[2],
                            noise_lat_bias=bias[0], noise_lon_bias=bias[1], noise_alt_bias=bias[2], noise_seed=seed)
        return np.array([sensor.measure(world, snapshot).data for _ in range(4000)])

    a, b, c = readings(7), readings(7), readings(8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(a.std(axis=0), stddev, rtol=0.05)
    np.testing.assert_allclose(a.mean(axis=0), clean + bias, atol=4 * stddev.max() / math.sqrt(4000))
    assert abs(a.mean(axis=0)[0] - clean[0]) > 50 * stddev[0] / math.sqrt(4000)  # the bias really shifts


def test_gnss_bias_alone_shifts_without_noise(parked):
    ego, world, snapshot = parked
    clean = GnssSensor(ego).measure(world, snapshot).data
    biased = GnssSensor(ego, noise_lat_bias=1e-3, noise_alt_bias=-1.0)
    np.testing.assert_allclose(biased.measure(world, snapshot).data - clean, [1e-3, 0.0, -1.0], atol=1e-12)
    np.testing.assert_array_equal(biased.measure(world, snapshot).data, biased.measure(world, snapshot).data)


def test_sensor_tick_half_second_measures_every_tenth_tick():
    world = EmbeddedWorld(map="Town01", seed=0)
    assert world.dt_s == pytest.approx(0.05)
    ego = world.spawn_vehicle(BLUEPRINT)
    gnss = GnssSensor(ego, sensor_tick=0.5)
    every = GnssSensor(ego, name="every_tick")
    frames, all_frames = [], []
    for _ in range(45):
        snapshot = world.tick()
        if (m := gnss.measure(world, snapshot)) is not None:
            frames.append(m.frame)
        all_frames.append(every.measure(world, snapshot).frame)
    assert frames == [1, 11, 21, 31, 41]
    assert all_frames == list(range(1, 46))
    assert every.name == "every_tick" and gnss.name == "sensor.other.gnss"


@pytest.mark.parametrize("attribute, value", [
    ("noise_lat_stddev", -1e-6), ("noise_lon_stddev", float("nan")), ("noise_alt_stddev", -0.1),
    ("noise_lat_bias", float("inf")), ("noise_lon_bias", "north"), ("noise_seed", -1), ("noise_seed", 1.5),
    ("sensor_tick", -0.05),
])
def test_gnss_bad_attributes_name_the_attribute(attribute, value):
    with pytest.raises(ValueError, match=attribute):
        GnssSensor(1, **{attribute: value})


def test_measuring_without_the_parent_names_sensor_and_parent(parked):
    _, world, snapshot = parked
    with pytest.raises(KeyError, match="parent actor 9999"):
        GnssSensor(9999, name="lost").measure(world, snapshot)


# ---------------------------------------------------------------------------- IMU
def _imu(world, ego, snapshot, **kwargs) -> ImuData:
    return ImuSensor(ego, **kwargs).measure(world, snapshot).data


def test_imu_at_rest_reads_gravity_up_and_no_rotation(parked):
    ego, world, snapshot = parked
    data = _imu(world, ego, snapshot)
    assert isinstance(data, ImuData)
    np.testing.assert_allclose(data.accelerometer_mps2, [0.0, 0.0, GRAVITY_MPS2], atol=1e-9)
    np.testing.assert_allclose(data.gyroscope_rad_s, 0.0, atol=1e-12)
    # The specific force points up: a mount pitched nose-up reads it on x, one rolled right on -y.
    up = _imu(world, ego, snapshot, transform=Pose(pitch_rad=math.pi / 2)).accelerometer_mps2
    np.testing.assert_allclose(up, [GRAVITY_MPS2, 0.0, 0.0], atol=1e-9)
    rolled = _imu(world, ego, snapshot, transform=Pose(x_m=1.0, roll_rad=math.pi / 2)).accelerometer_mps2
    np.testing.assert_allclose(rolled, [0.0, -GRAVITY_MPS2, 0.0], atol=1e-9)


@pytest.mark.parametrize("yaw, mount_yaw, compass", [
    (0.0, 0.0, math.pi / 2),            # facing +x: east
    (-math.pi / 2, 0.0, 0.0),           # facing -y: north
    (math.pi / 2, 0.0, math.pi),        # facing +y: south
    (math.pi, 0.0, 3 * math.pi / 2),    # facing -x: west
    (0.0, math.pi / 2, math.pi),        # mount turned right on a parent facing east: south
    (-math.pi / 2 - 0.1, 0.0, 2 * math.pi - 0.1),
])
def test_imu_compass(yaw, mount_yaw, compass):
    world = EmbeddedWorld(map="Town01", seed=0)
    ego = world.spawn_vehicle(BLUEPRINT, Pose(100.0, 100.0, 0.0, yaw))
    data = _imu(world, ego, world.tick(), transform=Pose(yaw_rad=mount_yaw))
    assert data.compass_rad == pytest.approx(compass, abs=1e-9)
    assert 0.0 <= data.compass_rad < 2 * math.pi


@pytest.fixture(scope="module")
def circle():
    """A kinematic car circling right at constant steer and throttle in Town10HD's open area.

    Returns (snapshots, measurements per sensor name) over 3 s after 2 s of settling.
    """
    world = EmbeddedWorld(map="Town10HD", seed=0, dynamics="kinematic")
    cx, cy = TOWN10_OPEN_XY
    ego = world.spawn_vehicle(BLUEPRINT, Pose(cx, cy - 6.5, 0.0, 0.0), speed_mps=5.0)
    sensors = [ImuSensor(ego, name="centre"), ImuSensor(ego, Pose(x_m=1.5, y_m=-0.4, z_m=1.2), name="front"),
               ImuSensor(ego, Pose(z_m=1.0, roll_rad=math.pi), name="upside_down")]
    # Throttle 0.031 balances rolling resistance and drag near 5 m/s: the speed stays steady.
    world.apply_control(ego, VehicleControl(throttle=0.031, steer=0.7))
    snapshots, readings = [], {s.name: [] for s in sensors}
    for tick in range(100):
        snapshot = world.tick()
        measured = {s.name: s.measure(world, snapshot) for s in sensors}
        if tick >= 40:
            snapshots.append(snapshot)
            for name, m in measured.items():
                readings[name].append(m)
    row = snapshots[0].index_of(ego)
    hits = [e for s in snapshots for e in s.events_of(ego) if isinstance(e, CollisionEvent)]
    assert not hits, "the circle must stay clear of obstacles"
    return row, snapshots, readings


def test_imu_in_a_steady_right_turn(circle):
    row, snapshots, readings = circle
    speed = np.array([s.speed_mps()[row] for s in snapshots])
    yaw_rate = np.array([s.angular_velocity_rad_s[row, 2] for s in snapshots])
    yaw = np.unwrap([s.rotation_rad[row, 1] for s in snapshots])
    assert np.ptp(speed) < 0.05 and speed.mean() > 4.0  # settled
    dt = snapshots[0].dt_s
    # The snapshot's yaw rate is the real one (finite differences of the yaw), and positive turning right.
    np.testing.assert_allclose(np.diff(yaw) / dt, yaw_rate[1:], rtol=1e-3)
    assert yaw_rate.mean() > 0.5
    centre = [m.data for m in readings["centre"]]
    gyro = np.array([d.gyroscope_rad_s for d in centre])
    np.testing.assert_allclose(gyro[:, 2], yaw_rate, rtol=1e-9)
    np.testing.assert_allclose(gyro[:, :2], 0.0, atol=1e-12)
    accel = np.array([d.accelerometer_mps2 for d in centre])
    np.testing.assert_allclose(accel[:, 2], GRAVITY_MPS2, atol=1e-9)
    # Horizontal specific force = v^2 / R with R = v / yaw_rate; lateral part positive (to the right).
    np.testing.assert_allclose(np.hypot(accel[:, 0], accel[:, 1]), speed * yaw_rate, rtol=0.01)
    assert (accel[:, 1] > 0.9 * speed * yaw_rate).all()
    # The path is a circle of that radius, and the acceleration points to its centre.
    xy = np.array([s.location_m[row, :2] for s in snapshots])
    a_mat = np.column_stack([2 * xy, np.ones(len(xy))])
    cx, cy, c = np.linalg.lstsq(a_mat, (xy ** 2).sum(axis=1), rcond=None)[0]
    radius = math.sqrt(c + cx * cx + cy * cy)
    np.testing.assert_allclose(radius, (speed / yaw_rate).mean(), rtol=0.01)
    accel_world = np.array([rotation_matrix(*m.rotation_rad) @ m.data.accelerometer_mps2 for m in readings["centre"]])
    to_centre = np.array([cx, cy]) - xy
    cosine = (accel_world[:, :2] * to_centre).sum(axis=1) / (np.linalg.norm(accel_world[:, :2], axis=1)
                                                            * np.linalg.norm(to_centre, axis=1))
    assert cosine.min() > 0.999
    # Compass advances with the yaw (clockwise from north).
    compass = np.array([d.compass_rad for d in centre])
    offset = (compass - yaw - math.pi / 2 + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(offset, 0.0, atol=1e-9)


def test_imu_mount_rotation_and_lever_arm_in_the_turn(circle):
    row, snapshots, readings = circle
    yaw_rate = np.array([s.angular_velocity_rad_s[row, 2] for s in snapshots])
    upside_down = np.array([m.data.gyroscope_rad_s for m in readings["upside_down"]])
    np.testing.assert_allclose(upside_down[:, 2], -yaw_rate, rtol=1e-9)
    np.testing.assert_allclose([m.data.accelerometer_mps2[2] for m in readings["upside_down"]], -GRAVITY_MPS2,
                               atol=1e-9)
    # A mount off the origin measures its own acceleration: the second difference of its world positions.
    front = readings["front"]
    positions = np.array([m.location_m for m in front])
    dt = snapshots[0].dt_s
    second_difference = (positions[2:] - 2 * positions[1:-1] + positions[:-2]) / dt ** 2
    accel_world = np.array([rotation_matrix(*m.rotation_rad) @ m.data.accelerometer_mps2 for m in front])
    accel_world[:, 2] -= GRAVITY_MPS2
    np.testing.assert_allclose(accel_world[1:-1], second_difference, atol=0.01)
    centre_norm = np.linalg.norm([m.data.accelerometer_mps2[:2] for m in readings["centre"]], axis=1)
    assert (np.linalg.norm(accel_world[:, :2], axis=1) > centre_norm + 0.5).all()  # farther from the turn centre


def _one_actor_snapshot(frame: int, yaw_rad: float, yaw_rate_rad_s: float,
                        acceleration_mps2=(0.0, 0.0, 0.0)) -> WorldSnapshot:
    """A hand-made snapshot of one vehicle at the origin (closed-form IMU checks)."""
    return WorldSnapshot(
        frame=frame, timestamp_s=0.05 * frame, dt_s=0.05, actor_id=np.array([7]), kind=np.zeros(1, np.int8),
        type_id=(BLUEPRINT,), semantic_tag=np.array([14], np.uint8), location_m=np.zeros((1, 3)),
        rotation_rad=np.array([[0.0, yaw_rad, 0.0]]), velocity_mps=np.zeros((1, 3)),
        acceleration_mps2=np.array([acceleration_mps2], dtype=float),
        angular_velocity_rad_s=np.array([[0.0, 0.0, yaw_rate_rad_s]]), extent_m=np.ones((1, 3)),
        autopilot=np.zeros(1, bool), light_id=np.zeros(0, np.int64), light_state=np.zeros(0, np.int8),
        light_location_m=np.zeros((0, 3)), light_junction_id=np.zeros(0, np.int64))


def test_imu_lever_arm_closed_form():
    """A mount 2 m ahead: centripetal -w^2 r on x, tangential alpha r on y (alpha from consecutive ticks)."""
    imu = ImuSensor(7, Pose(x_m=2.0, z_m=1.0))
    first = imu.measure(None, _one_actor_snapshot(1, 0.0, 0.5)).data
    np.testing.assert_allclose(first.accelerometer_mps2, [-0.25 * 2.0, 0.0, GRAVITY_MPS2], atol=1e-12)
    second = imu.measure(None, _one_actor_snapshot(2, 0.0, 0.6, (1.0, 0.0, 0.0))).data
    alpha = (0.6 - 0.5) / 0.05
    np.testing.assert_allclose(second.accelerometer_mps2, [1.0 - 0.36 * 2.0, alpha * 2.0, GRAVITY_MPS2], atol=1e-9)
    # Facing +y (yaw 90 deg) the same motion reads the same in the sensor frame.
    imu.reset()
    imu.measure(None, _one_actor_snapshot(1, math.pi / 2, 0.5))
    turned = imu.measure(None, _one_actor_snapshot(2, math.pi / 2, 0.6, (0.0, 1.0, 0.0))).data
    np.testing.assert_allclose(turned.accelerometer_mps2, second.accelerometer_mps2, atol=1e-9)
    np.testing.assert_allclose(turned.gyroscope_rad_s, [0.0, 0.0, 0.6], atol=1e-12)


def test_imu_noise_spread_bias_and_seed_determinism(parked):
    ego, world, snapshot = parked
    kwargs = {"noise_accel_stddev_x": 0.1, "noise_accel_stddev_y": 0.2, "noise_accel_stddev_z": 0.3,
              "noise_gyro_stddev_x": 0.01, "noise_gyro_stddev_y": 0.02, "noise_gyro_stddev_z": 0.03,
              "noise_gyro_bias_x": 0.5, "noise_gyro_bias_y": -0.5, "noise_gyro_bias_z": 0.05}

    def readings(seed: int) -> tuple[np.ndarray, np.ndarray]:
        sensor = ImuSensor(ego, noise_seed=seed, **kwargs)
        data = [sensor.measure(world, snapshot).data for _ in range(4000)]
        return np.array([d.accelerometer_mps2 for d in data]), np.array([d.gyroscope_rad_s for d in data])

    (acc_a, gyro_a), (acc_b, gyro_b), (acc_c, _) = readings(3), readings(3), readings(4)
    np.testing.assert_array_equal(acc_a, acc_b)
    np.testing.assert_array_equal(gyro_a, gyro_b)
    assert not np.allclose(acc_a, acc_c)
    np.testing.assert_allclose(acc_a.std(axis=0), [0.1, 0.2, 0.3], rtol=0.05)
    np.testing.assert_allclose(gyro_a.std(axis=0), [0.01, 0.02, 0.03], rtol=0.05)
    np.testing.assert_allclose(acc_a.mean(axis=0), [0.0, 0.0, GRAVITY_MPS2], atol=0.02)
    np.testing.assert_allclose(gyro_a.mean(axis=0), [0.5, -0.5, 0.05], atol=0.002)
    bias_only = ImuSensor(ego, noise_gyro_bias_z=0.25).measure(world, snapshot).data
    np.testing.assert_allclose(bias_only.gyroscope_rad_s, [0.0, 0.0, 0.25], atol=1e-12)
    np.testing.assert_allclose(bias_only.accelerometer_mps2, [0.0, 0.0, GRAVITY_MPS2], atol=1e-9)


@pytest.mark.parametrize("attribute, value", [
    ("noise_accel_stddev_x", -0.1), ("noise_accel_stddev_z", float("nan")), ("noise_gyro_stddev_y", -1.0),
    ("noise_gyro_bias_x", float("inf")), ("noise_gyro_bias_z", None), ("noise_seed", -3), ("sensor_tick", -1.0),
])
def test_imu_bad_attributes_name_the_attribute(attribute, value):
    with pytest.raises(ValueError, match=attribute):
        ImuSensor(1, **{attribute: value})


def test_imu_sensor_tick_and_frame_stamps():
    world = EmbeddedWorld(map="Town01", seed=0)
    ego = world.spawn_vehicle(BLUEPRINT)
    imu = ImuSensor(ego, sensor_tick=0.2)
    stamps = []
    for _ in range(12):
        snapshot = world.tick()
        if (m := imu.measure(world, snapshot)) is not None:
            stamps.append((m.frame, m.timestamp_s))
    assert [f for f, _ in stamps] == [1, 5, 9]
    assert [t for _, t in stamps] == pytest.approx([0.05, 0.25, 0.45])
