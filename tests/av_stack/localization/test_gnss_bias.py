"""The EKF's GNSS bias states on synthetic drives with a known constant GNSS bias: without map matches the
filter does not claim a position GNSS cannot give (the error stays inside its covariance, and a 1/3 m
validity threshold is not met), and matches of the position across the road (the learned matcher's kind)
estimate the bias once the road has turned, after which the position is right and valid again."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from av_stack.localization.ekf import EkfLocalization
from av_stack.messages import SensorFrame
from tests.av_stack.localization.synthetic import bicycle, frames as synthetic_frames

BIAS = np.array([1.0, -1.0])  # metres on the world's x and y
CHI2_2DOF_3SIGMA = 11.8  # P(chi2_2 > 11.8) = 0.0027: the 3-sigma ellipse


def drive(seconds: float, turn_at_s: float | None = None, speed: float = 8.0) -> np.ndarray:
    """Truth rows straight along x, with a 90-degree left turn of 3 s from ``turn_at_s`` when given."""
    return bicycle(seconds, lambda t: (math.pi / 2) / 3.0 if turn_at_s is not None and turn_at_s <= t < turn_at_s + 3.0
                   else 0.0, speed=speed)


def frames(truth: np.ndarray, gnss_std: float, seed: int = 0, speed: float = 8.0) -> list[SensorFrame]:
    """Sensor frames of ``truth`` with GNSS = position + :data:`BIAS` + white noise of ``gnss_std``."""
    return synthetic_frames(truth, gnss_std, BIAS, speed=speed, seed=seed)


def run(stage: EkfLocalization, truth: np.ndarray, sensor_frames: list[SensorFrame], match_std: float | None = None,
        seed: int = 1) -> dict[str, np.ndarray]:
    """Step ``stage`` through the frames; with ``match_std``, every other frame also fuses a synthetic map
    match: the true position across the road (noise ``match_std``) and nothing along it, as the learned stage
    fuses a match whose along-road axis the network cannot tell. Per frame: the error, its normalised square
    (against the estimate's covariance), the worst-axis std and ``valid``."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"error": [], "nees": [], "std": [], "valid": []}
    for k, ((t, x, y, yaw, _), frame) in enumerate(zip(truth, sensor_frames)):
        stage.fuse(frame)
        if match_std is not None and k % 2 == 0 and stage.initialized:
            across = np.array([-math.sin(yaw), math.cos(yaw)])
            measured = np.array([x, y]) + match_std * rng.standard_normal() * across
            along_across = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
            covariance = np.zeros((3, 3))
            covariance[:2, :2] = along_across @ np.diag([1e4, match_std ** 2]) @ along_across.T
            covariance[2, 2] = 1e4
            pose = np.array([measured[0], measured[1], stage.s[2]])
            stage.update_pose(pose, covariance, heading_from_position=False)
        estimate = stage.estimate(frame)
        d = np.array([estimate.pose.x_m - x, estimate.pose.y_m - y])
        out["error"].append(float(np.hypot(*d)))
        out["nees"].append(float(d @ np.linalg.solve(estimate.covariance[:2, :2], d)))
        out["std"].append(stage.position_std())
        out["valid"].append(estimate.valid)
    return {key: np.array(values) for key, values in out.items()}


def ekf(bias_std: float) -> EkfLocalization:
    """An EKF with the GNSS bias states at ``bias_std`` (0: off) and the learned stage's 1/3 m validity."""
    return EkfLocalization(EkfLocalization.Config(gnss_bias_std_m=bias_std, valid_std_m=0.33))


def test_without_matches_a_biased_gnss_is_covered_by_the_covariance_and_not_valid():
    truth = drive(20.0)
    sensor_frames = frames(truth, gnss_std=0.5)
    after = truth[:, 0] >= 2.0
    honest = run(ekf(1.0), truth, sensor_frames)
    assert honest["error"][after].min() > 1.0  # the bias is there: about 1.4 m off all along
    assert honest["nees"][after].max() < CHI2_2DOF_3SIGMA  # ... and inside the 3-sigma ellipse
    assert not honest["valid"][after].any()
    assert honest["std"][after].min() > 0.9  # the bias's 1 m, which nothing but a map match can remove
    unbiased_model = run(ekf(0.0), truth, sensor_frames)  # the old model: sure of a position 1.4 m off
    assert unbiased_model["valid"][after].all() and unbiased_model["error"][after].min() > 1.0
    assert unbiased_model["nees"][after].min() > CHI2_2DOF_3SIGMA


def test_matches_across_the_road_estimate_the_bias_after_a_turn():
    truth = drive(20.0, turn_at_s=8.0)
    t = truth[:, 0]
    stage = ekf(1.0)
    result = run(stage, truth, frames(truth, gnss_std=2.0), match_std=0.1)
    before_turn = (t >= 2.0) & (t < 8.0)
    after_turn = t >= 12.0
    # On the first straight only the axis across the road (world y) is known: not valid, error covered.
    assert not result["valid"][before_turn].any()
    assert result["nees"][before_turn].max() < CHI2_2DOF_3SIGMA
    # The turn shows the bias on the other axis: the position is right along the new road, and valid.
    assert result["error"][after_turn].max() < 0.4
    assert result["valid"][after_turn].all()
    assert np.abs(stage.gnss_bias - BIAS).max() < 0.4
    assert result["nees"][t >= 2.0].max() < CHI2_2DOF_3SIGMA


def test_matches_of_the_whole_position_estimate_the_bias_on_a_straight_road():
    truth = drive(10.0)
    stage = ekf(2.0)
    rng = np.random.default_rng(5)
    for (t, x, y, yaw, _), frame in zip(truth, frames(truth, gnss_std=2.0, seed=4)):
        stage.fuse(frame)
        stage.update_pose(np.array([x, y, yaw]) + [*(0.1 * rng.standard_normal(2)), 0.0],
                          np.diag([0.01, 0.01, 1e4]), heading_from_position=False)
        estimate = stage.estimate(frame)
    assert math.hypot(estimate.pose.x_m - x, estimate.pose.y_m - y) < 0.2 and estimate.valid
    assert np.abs(stage.gnss_bias - BIAS).max() < 0.4


def test_without_the_bias_states_the_bias_stays_zero():
    truth = drive(5.0, turn_at_s=1.0)
    stage = ekf(0.0)
    run(stage, truth, frames(truth, gnss_std=2.0), match_std=0.1)
    assert (stage.gnss_bias == 0.0).all()


def test_the_learned_stage_has_the_bias_states_on_unless_its_section_turns_them_off():
    from av_stack.localization.learned.stage import GNSS_BIAS_STD_M, LearnedLocalization

    assert LearnedLocalization.Config().ekf.gnss_bias_std_m == GNSS_BIAS_STD_M > 0
    assert LearnedLocalization.Config(ekf={"gnss_std_m": 1.0}).ekf.gnss_bias_std_m == GNSS_BIAS_STD_M
    assert LearnedLocalization.Config(ekf={"gnss_bias_std_m": 0.0}).ekf.gnss_bias_std_m == 0.0
    assert EkfLocalization.Config().gnss_bias_std_m == 0.0  # the ekf baseline keeps GNSS unbiased


@pytest.mark.parametrize("section", [{"gnss_bias_std_m": -1.0}, {"gnss_bias_tau_s": 0.0}])
def test_bad_bias_keys_are_one_clear_error(section):
    with pytest.raises(ValidationError, match="gnss_bias"):
        EkfLocalization.Config(**section)
