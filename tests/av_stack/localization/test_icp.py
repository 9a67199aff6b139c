"""ICP localization on a synthetic scene with known truth: a known offset recovered, a featureless corridor's
covariance, the stage against the EKF under GNSS noise, bias, a 10 s dropout and a wrong start, and bad
inputs (empty scan, NaN GNSS, missing or corrupt prior map, a missing key)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.localization import LOCALIZATION
from av_stack.localization.ekf import EkfLocalization
from av_stack.localization.icp import IcpLocalization, preprocess_scan, register_scan
from av_stack.localization.prior_map import PriorMap, PriorMapError, save_prior_map
from av_stack.messages import EgoSignals, SensorCalibration, SensorFrame
from av_stack.registry import StageConfigError
from sim.api import Pose
from tests.av_stack.localization.synthetic import bicycle, frames

LIDAR_EVERY = 5  # a sweep every 0.25 s keeps the tests fast
MOUNT = Pose(0.0, 0.0, 2.0)
CALIBRATION = {"lidar": SensorCalibration("lidar", "sensor.lidar.ray_cast", MOUNT)}


# ---------------------------------------------------------------------------------------------- the scene
def _box_faces(rng, centre, half, yaw, spacing):
    """Points and outward normals on the four walls and the roof of a box."""
    points, normals = [], []
    cos, sin = math.cos(yaw), math.sin(yaw)
    rot = np.array([[cos, -sin], [sin, cos]])
    for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
        along = 1 - axis
        n = max(int(2 * half[along] * 2 * half[2] / spacing ** 2), 4)
        local = np.zeros((n, 3))
        local[:, axis] = sign * half[axis]
        local[:, along] = rng.uniform(-half[along], half[along], n)
        local[:, 2] = rng.uniform(0.0, 2 * half[2], n)
        normal = np.zeros(2)
        normal[axis] = sign
        points.append(np.c_[local[:, :2] @ rot.T + centre, local[:, 2]])
        normals.append(np.tile(np.r_[rot @ normal, 0.0], (n, 1)))
    return np.concatenate(points), np.concatenate(normals)


def scene_surfaces(seed: int, spacing: float, corridor: bool = False, extent=(-50.0, 150.0, -60.0, 50.0)):
    """(points, normals) sampled every ``spacing`` metres (on average) on a synthetic town: the ground and
    boxes of random size and heading (or, with ``corridor``, two long parallel walls along x at y = +-6 m)."""
    rng = np.random.default_rng(seed)
    x0, x1, y0, y1 = extent
    n = int((x1 - x0) * (y1 - y0) / (2 * spacing) ** 2)  # the ground, sparser: it constrains z, pitch, roll only
    ground = np.c_[rng.uniform(x0, x1, n), rng.uniform(y0, y1, n), np.zeros(n)]
    points, normals = [ground], [np.tile([0.0, 0.0, 1.0], (n, 1))]
    if corridor:
        for side in (-1.0, 1.0):
            m = int((x1 - x0) * 4.0 / spacing ** 2)
            points.append(np.c_[rng.uniform(x0, x1, m), np.full(m, 6.0 * side), rng.uniform(0, 4.0, m)])
            normals.append(np.tile([0.0, -side, 0.0], (m, 1)))
    else:
        layout = np.random.default_rng(1000)  # the same boxes for every sampling (seed) of the scene
        for _ in range(120):
            centre = layout.uniform((x0, y0), (x1, y1))
            half = layout.uniform((1.0, 1.0, 1.0), (5.0, 4.0, 4.0))
            p, q = _box_faces(rng, centre, half, layout.uniform(-math.pi, math.pi), spacing)
            points.append(p)
            normals.append(q)
    return np.concatenate(points), np.concatenate(normals)


def prior_map(corridor: bool = False) -> PriorMap:
    points, normals = scene_surfaces(0, 0.4, corridor)
    return PriorMap(points, normals, 0.4, "synthetic")


def scan_of(surfaces, x: float, y: float, yaw: float, rng, range_m: float = 35.0, noise_m: float = 0.02):
    """A sensor-frame sweep (N, 4) of ``surfaces`` seen from the ego pose (``x``, ``y``, ``yaw``): every point in
    range (no occlusion), with Gaussian noise."""
    points = surfaces[0]
    near = points[np.hypot(points[:, 0] - x, points[:, 1] - y) <= range_m]
    cos, sin = math.cos(yaw), math.sin(yaw)
    dx, dy = near[:, 0] - x, near[:, 1] - y
    ego = np.c_[dx * cos + dy * sin, -dx * sin + dy * cos, near[:, 2]] + noise_m * rng.standard_normal((len(near), 3))
    return np.c_[ego - [MOUNT.x_m, MOUNT.y_m, MOUNT.z_m], np.ones(len(ego))].astype(np.float32)


# ---------------------------------------------------------------------------------------------- a drive
def trajectory(seconds: float = 12.0, speed: float = 8.0) -> np.ndarray:
    """(N, 5) truth rows (t, x, y, yaw, yaw rate) of a gentle S-curve (rear-axle side slip as the EKF has it)."""
    return bicycle(seconds, lambda t: 0.15 * math.sin(2 * math.pi * t / 12.0), start=(0.0, -10.0, 0.1), speed=speed)


def drive_frames(truth, gnss_std=2.0, gnss_bias=0.0, dropout=(), seed=0, speed=8.0):
    """Sensor frames along ``truth``: wheel speed, gyroscope, compass, GNSS (noise, bias; NaN inside
    ``dropout``) and, every ``LIDAR_EVERY`` frames, a sweep of a fresh sampling of the scene."""
    surfaces = scene_surfaces(1, 0.8)

    def lidar(k, x, y, yaw, rng):
        return {"lidar": scan_of(surfaces, x, y, yaw, rng)} if k % LIDAR_EVERY == 0 else {}

    return frames(truth, gnss_std, gnss_bias, dropout, speed, seed, sensors=lidar, calibration=CALIBRATION)


def errors_of(stage, truth, frames):
    """(position errors [m], yaw errors [deg], valid flags) of every frame."""
    errors, yaws, valid = [], [], []
    for (t, x, y, yaw, _), frame in zip(truth, frames):
        estimate = stage.step(frame)
        assert np.isfinite(estimate.covariance).all() and math.isfinite(estimate.pose.x_m)
        errors.append(math.hypot(estimate.pose.x_m - x, estimate.pose.y_m - y))
        yaws.append(math.degrees(abs(math.remainder(estimate.pose.yaw_rad - yaw, 2 * math.pi))))
        valid.append(estimate.valid)
    return np.array(errors), np.array(yaws), np.array(valid)


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    return save_prior_map(prior_map(), tmp_path_factory.mktemp("icp") / "synthetic.npz")


@pytest.fixture(scope="module")
def truth():
    return trajectory()


def icp_stage(map_file, **keys) -> IcpLocalization:
    stage = LOCALIZATION.build({"name": "icp", "prior_map": str(map_file), **keys})
    stage.reset(None)
    return stage


# ---------------------------------------------------------------------------------------------- registration
def test_register_scan_recovers_a_known_offset():
    import open3d as o3d

    prior = prior_map()
    x, y, yaw = 40.0, -5.0, 0.4
    scan = preprocess_scan(scan_of(scene_surfaces(1, 0.8), x, y, yaw, np.random.default_rng(0)), MOUNT, 35.0, 0.8)
    points, normals = prior.crop(x, y, 50.0)
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    target.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    off_yaw = yaw + math.radians(3.0)
    init = np.eye(4)
    init[:2, :2] = [[math.cos(off_yaw), -math.sin(off_yaw)], [math.sin(off_yaw), math.cos(off_yaw)]]
    init[:3, 3] = [x + 0.6, y - 0.4, 0.3]
    fit = register_scan(scan, target, normals, init, 1.0, 30, coarse_correspondence_m=2.0)
    assert fit is not None and fit.fitness > 0.9 and fit.rmse_m < 0.1
    assert math.hypot(fit.pose[0] - x, fit.pose[1] - y) < 0.05
    assert abs(math.degrees(math.remainder(fit.pose[2] - yaw, 2 * math.pi))) < 0.2
    std = np.sqrt(np.diag(fit.covariance))
    assert np.isfinite(std).all() and std[0] < 0.05 and std[1] < 0.05


def test_a_featureless_corridor_is_uncertain_along_the_road_only():
    import open3d as o3d

    surfaces = scene_surfaces(0, 0.4, corridor=True)
    prior = PriorMap(*surfaces, 0.4)
    scan = preprocess_scan(scan_of(scene_surfaces(1, 0.8, corridor=True), 50.0, 0.0, 0.0,
                                   np.random.default_rng(0)), MOUNT, 35.0, 0.8)
    points, normals = prior.crop(50.0, 0.0, 50.0)
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    target.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    init = np.eye(4)
    init[:3, 3] = [50.0, 0.3, 0.0]
    fit = register_scan(scan, target, normals, init, 1.0)
    assert abs(fit.pose[1]) < 0.05  # the walls fix the lateral position
    std = np.sqrt(np.diag(fit.covariance))
    assert std[0] > 20 * std[1]  # nothing fixes x along the walls: the covariance says so


# ---------------------------------------------------------------------------------------------- the stage
def test_icp_beats_the_ekf_under_2m_gnss_noise(map_file, truth):
    frames = drive_frames(truth, gnss_std=2.0)
    icp_errors, icp_yaw, valid = errors_of(icp_stage(map_file), truth, frames)
    ekf_errors, _, _ = errors_of(EkfLocalization(), truth, frames)
    after = truth[:, 0] >= 3.0
    rms_icp = float(np.sqrt(np.mean(icp_errors[after] ** 2)))
    assert rms_icp < 0.1 and icp_errors[after].max() < 0.3, rms_icp
    assert float(np.sqrt(np.mean(icp_yaw[after] ** 2))) < 0.3
    assert rms_icp < 0.5 * float(np.sqrt(np.mean(ekf_errors[after] ** 2)))
    assert valid[after].all()


def test_icp_removes_a_gnss_bias_the_ekf_follows(map_file, truth):
    frames = drive_frames(truth, gnss_std=0.5, gnss_bias=1.5, seed=1)
    icp_errors, _, _ = errors_of(icp_stage(map_file), truth, frames)
    ekf_errors, _, _ = errors_of(EkfLocalization(), truth, frames)
    after = truth[:, 0] >= 3.0
    assert icp_errors[after].max() < 0.3
    assert float(np.mean(ekf_errors[after])) > 1.5  # the bias is 2.1 m; GNSS alone cannot see it


def test_icp_holds_through_a_10s_gnss_dropout(map_file, truth):
    frames = drive_frames(truth, gnss_std=2.0, dropout=(2.0, 12.0), seed=2)
    stage = icp_stage(map_file)
    errors, _, valid = errors_of(stage, truth, frames)  # the drive ends inside the dropout
    during = truth[:, 0] >= 2.0
    assert errors[during].max() < 0.3 and valid[during].all()
    assert "GNSS missing" in stage.status


def test_a_wrong_initial_pose_is_invalid_then_recovers(map_file, truth):
    stage = icp_stage(map_file)
    _, x, y, yaw, _ = truth[0]
    stage.set_initial_pose(Pose(x + 3.0, y - 4.0, 0.0, yaw + math.radians(10.0)))  # 5 m and 10 deg off
    errors, yaws, valid = errors_of(stage, truth, drive_frames(truth, gnss_std=2.0, seed=3))
    assert errors[0] > 4.0 and not valid[0]
    assert (errors[valid] < 0.5).all() and (yaws[valid] < 1.0).all()  # never valid before it has recovered
    later = truth[:, 0] >= 6.0
    assert errors[later].max() < 0.3 and yaws[later].max() < 0.5 and valid[later].all()
    assert stage.accepted > 0


def test_an_empty_scan_and_nan_gnss_are_flagged_not_a_crash(map_file, truth):
    stage = icp_stage(map_file)
    frames = drive_frames(truth[:40], gnss_std=0.5)
    for frame in frames:
        stage.step(frame)
    empty = SensorFrame(40, 2.0, frames[-1].ego, {"lidar": np.zeros((0, 4), np.float32)}, CALIBRATION)
    estimate = stage.step(empty)
    assert "empty scan" in stage.status and np.isfinite(estimate.covariance).all()
    nan = SensorFrame(41, 2.05, EgoSignals(8.0, gnss=np.full(3, np.nan)), {"lidar": np.full((50, 4), np.nan,
                                                                                             np.float32)}, CALIBRATION)
    estimate = stage.step(nan)
    assert math.isfinite(estimate.pose.x_m) and "GNSS missing" in stage.status
    fresh = icp_stage(map_file)
    assert not fresh.step(nan).valid and "waiting" in fresh.status


def test_a_missing_or_corrupt_prior_map_is_one_clear_error(tmp_path):
    with pytest.raises(PriorMapError, match="no prior map at .*nowhere.npz"):
        LOCALIZATION.build({"name": "icp", "prior_map": str(tmp_path / "nowhere.npz")})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(PriorMapError, match="bad.npz is not a readable prior map"):
        LOCALIZATION.build({"name": "icp", "prior_map": str(bad)})
    other = tmp_path / "other.npz"
    np.savez(other, points=np.zeros((3, 3)))
    with pytest.raises(PriorMapError, match="other.npz is not a prior map: it lacks"):
        LOCALIZATION.build({"name": "icp", "prior_map": str(other)})
    with pytest.raises(StageConfigError, match="prior_map"):
        LOCALIZATION.build({"name": "icp"})
    with pytest.raises(StageConfigError, match="scan_voxel"):
        LOCALIZATION.build({"name": "icp", "prior_map": str(bad), "scan_voxel": 1.0})
