"""The EKF localization stage on a synthetic S-curve with known truth: convergence under GNSS noise, a 10 s
GNSS dropout, a wrong initial pose, NaN and missing sensors, a bad config key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.localization import LOCALIZATION
from av_stack.localization.ekf import EkfLocalization
from av_stack.messages import EgoSignals, SensorFrame
from av_stack.registry import StageConfigError
from av_stack.stages import Localization
from sim.api import Pose
from tests.av_stack.localization.synthetic import bicycle, frames


def s_curve(seconds: float = 40.0, speed: float = 8.0) -> np.ndarray:
    """Truth of an S-curve: left, right, left."""
    return bicycle(seconds, lambda t: 0.25 * math.sin(2 * math.pi * t / 20.0), (10.0, -20.0, 0.3), speed)


def run(stage: EkfLocalization, truth: np.ndarray, sensor_frames: list[SensorFrame]):
    """(position errors [m], lateral errors [m], valid flags) of every frame."""
    errors, lateral, valid = [], [], []
    for (t, x, y, yaw, _), frame in zip(truth, sensor_frames):
        estimate = stage.step(frame)
        assert np.isfinite(estimate.covariance).all() and math.isfinite(estimate.pose.x_m)
        dx, dy = estimate.pose.x_m - x, estimate.pose.y_m - y
        errors.append(math.hypot(dx, dy))
        lateral.append(-dx * math.sin(yaw) + dy * math.cos(yaw))
        valid.append(estimate.valid)
    return np.array(errors), np.array(lateral), np.array(valid)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return s_curve()


def test_registered_and_a_localization_stage():
    stage = LOCALIZATION.build({"name": "ekf", "gnss_std_m": 1.5})
    assert isinstance(stage, EkfLocalization) and isinstance(stage, Localization)
    assert stage.config.gnss_std_m == 1.5


def test_converges_well_under_the_gnss_noise(truth):
    stage = EkfLocalization()
    stage.reset(None)
    errors, lateral, valid = run(stage, truth, frames(truth, gnss_std=2.0))
    after = truth[:, 0] >= 5.0
    rms_lateral = float(np.sqrt(np.mean(lateral[after] ** 2)))
    assert rms_lateral < 0.6, rms_lateral  # the GNSS alone is 2 m per axis
    assert float(np.sqrt(np.mean(errors[after] ** 2))) < 0.8
    assert valid[after].all()
    assert not valid[0]  # one 2 m fix is not converged


def test_covariance_is_consistent_with_the_error(truth):
    stage = EkfLocalization()
    sensor_frames = frames(truth, gnss_std=2.0, seed=3)
    ratios = []
    for (t, x, y, *_), frame in zip(truth, sensor_frames):
        estimate = stage.step(frame)
        if t >= 5.0:
            d = np.array([estimate.pose.x_m - x, estimate.pose.y_m - y])
            ratios.append(float(d @ np.linalg.solve(estimate.covariance[:2, :2], d)))
    assert 0.2 < np.mean(ratios) < 6.0  # the normalised error squared is about 2 for a consistent filter


def test_a_10s_gnss_dropout_stays_bounded_and_recovers(truth):
    stage = EkfLocalization()
    errors, _, valid = run(stage, truth, frames(truth, gnss_std=2.0, dropout=(15.0, 25.0)))
    t = truth[:, 0]
    during = (t >= 15.0) & (t < 25.0)
    assert errors[during].max() < 2.0
    assert errors[t >= 30.0].max() < 1.2
    assert float(np.sqrt(np.mean(errors[t >= 30.0] ** 2))) < 0.6
    assert valid[t >= 30.0].all()


def test_a_wrong_initial_pose_recovers_and_is_invalid_first(truth):
    stage = EkfLocalization()
    _, x, y, yaw, _ = truth[0]
    wrong = Pose(x + 3.0, y - 4.0, 0.0, yaw + math.radians(10.0))  # 5 m and 10 deg off
    stage.set_initial_pose(wrong)
    errors, _, valid = run(stage, truth, frames(truth, gnss_std=2.0, seed=1))
    assert not valid[:5].any()
    t = truth[:, 0]
    assert errors[t >= 10.0].max() < 1.5
    assert valid[t >= 10.0].all()


def test_an_overconfident_wrong_pose_is_reanchored_on_gnss(truth):
    stage = EkfLocalization()
    _, x, y, yaw, _ = truth[0]
    stage.set_initial_pose(Pose(x + 3.0, y - 4.0, 0.0, yaw), std_m=0.05, yaw_std_deg=1.0)
    errors, _, _ = run(stage, truth, frames(truth, gnss_std=0.5, seed=2))
    assert errors[0] > 4.0
    assert errors[truth[:, 0] >= 5.0].max() < 1.0


def test_noisy_odometry_and_a_gyro_bias_still_converge(truth):
    rng = np.random.default_rng(7)
    noisy = []
    for frame in frames(truth, gnss_std=2.0, seed=4):
        ego = frame.ego
        gyro = np.array(ego.gyroscope_rad_s) + [0.0, 0.0, 0.01 + 0.01 * rng.standard_normal()]  # bias 0.57 deg/s
        noisy.append(SensorFrame(frame.frame, frame.timestamp_s,
                                 EgoSignals(ego.speed_mps + 0.1 * rng.standard_normal(), ego.accelerometer_mps2,
                                            gyro, ego.compass_rad + math.radians(1.0) * rng.standard_normal(),
                                            ego.gnss)))
    stage = EkfLocalization()
    errors, _, valid = run(stage, truth, noisy)
    after = truth[:, 0] >= 10.0
    assert float(np.sqrt(np.mean(errors[after] ** 2))) < 0.8 and valid[after].all()
    assert abs(stage.s[4] - 0.01) < 0.005  # the gyro bias is estimated


def test_a_constant_gnss_bias_stays_a_bounded_offset(truth):
    errors, _, valid = run(EkfLocalization(), truth, frames(truth, gnss_std=1.0, gnss_bias=1.0))
    after = truth[:, 0] >= 5.0
    assert abs(float(np.mean(errors[after])) - math.sqrt(2)) < 0.5 and valid[after].all()


def test_nan_gnss_and_missing_sensors_are_flagged_without_a_crash(truth):
    stage = EkfLocalization()
    nan_frames = frames(truth[:40], dropout=(0.0, 100.0))
    for frame in nan_frames:
        estimate = stage.step(frame)
        assert not estimate.valid and np.isfinite(estimate.covariance).all()
    assert "GNSS" in stage.status
    empty = SensorFrame(99, 2.0, EgoSignals(3.0))  # no IMU, no GNSS at all: NaN signals
    assert not stage.step(empty).valid
    # Without a gyroscope or compass the GNSS alone still locates the car, with a wider yaw.
    stage = EkfLocalization()
    for frame in frames(truth[:200], gnss_std=0.5):
        ego = frame.ego
        blind = EgoSignals(ego.speed_mps, gnss=ego.gnss)
        estimate = stage.step(SensorFrame(frame.frame, frame.timestamp_s, blind))
    assert np.isfinite(estimate.covariance).all()
    _, x, y, *_ = truth[199]
    assert math.hypot(estimate.pose.x_m - x, estimate.pose.y_m - y) < 3.0


def test_a_missionless_reset_starts_over(truth):
    stage = EkfLocalization()
    for frame in frames(truth[:200]):
        assert stage.step(frame) is not None
    assert stage.initialized
    stage.reset(None)
    assert not stage.initialized
    estimate = stage.step(frames(truth[:1])[0])
    assert not estimate.valid and stage.initialized


def test_repeated_or_backward_timestamps_do_not_predict(truth):
    stage = EkfLocalization()
    frame = frames(truth[:1], gnss_std=0.0)[0]
    first = stage.step(frame)
    again = stage.step(frame)
    assert math.isclose(first.pose.x_m, again.pose.x_m, abs_tol=1e-6)


@pytest.mark.parametrize("section, word", [({"name": "ekf", "gnss_std": 1.0}, "gnss_std"),
                                           ({"name": "ekf", "gnss_std_m": -1.0}, "gnss_std_m")])
def test_a_bad_config_key_is_one_clear_error(section, word):
    with pytest.raises(StageConfigError, match=word) as info:
        LOCALIZATION.build(section)
    assert "ekf" in str(info.value) and "\n" not in str(info.value)


def test_a_position_only_pose_update_leaves_the_heading_alone(truth):
    stage = EkfLocalization()
    for frame in frames(truth[:60], gnss_std=2.0):
        stage.step(frame)
    before = stage.s.copy()
    pose = before[:3] + [0.5, -0.3, 0.0]
    covariance = np.diag([0.1, 0.1, 1e4])
    assert stage.update_pose(pose, covariance, heading_from_position=False)
    assert np.allclose(stage.s[2:], before[2:]) and np.linalg.norm(stage.s[:2] - before[:2]) > 0.15
    np.linalg.cholesky(stage.P[:5, :5])  # still a covariance (the GNSS bias states are off: zero rows)
    assert not stage.P[5:].any() and not stage.s[5:].any()
    full = EkfLocalization()
    for frame in frames(truth[:60], gnss_std=2.0):
        full.step(frame)
    full.update_pose(pose, covariance)
    assert abs(full.s[2] - before[2]) > 1e-4  # the full update turns the heading through the cross-covariance


def test_a_wandering_position_fix_does_not_turn_the_heading_when_kept_to_the_position(truth):
    """Map matches whose lateral error wanders slowly (0.15 m, 3 s period) on every other frame: the full
    update reads the wander as heading error; the position-only update keeps the compass's heading."""
    yaw_errors = {}
    for heading in (True, False):
        stage = EkfLocalization()
        errors = []
        for k, ((t, x, y, yaw, _), frame) in enumerate(zip(truth, frames(truth, gnss_std=2.0, seed=4))):
            stage.fuse(frame)
            if k % 2 == 0 and t > 1.0:
                wander = 0.15 * math.sin(2 * math.pi * t / 3.0)
                fix = np.array([x - wander * math.sin(yaw), y + wander * math.cos(yaw), yaw])
                stage.update_pose(fix, np.diag([0.04 ** 2 * 16, 0.04 ** 2 * 16, 1e4]), 16.3, heading)
            estimate = stage.estimate(frame)
            if t >= 5.0:
                errors.append(math.remainder(estimate.pose.yaw_rad - yaw, 2 * math.pi))
        yaw_errors[heading] = math.degrees(float(np.sqrt(np.mean(np.square(errors)))))
    assert yaw_errors[False] < 0.8 * yaw_errors[True], yaw_errors
