"""Noise injection: seeded triangular episodes on the executed control, clipped, off when disabled."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from av_stack.data.config import NoiseConfig
from av_stack.data.noise import BRAKE, STEER, THROTTLE, NoiseProcess, NoiseSample, perturb


def _run(config: NoiseConfig, seed: int, ticks: int = 2000) -> list[NoiseSample]:
    process = NoiseProcess(config, 0.05, seed)
    return [process.step() for _ in range(ticks)]


def test_episodes_are_seeded_bounded_and_ramp_up_and_down():
    config = NoiseConfig(start_probability=0.05, duration_s=(0.5, 1.0), steer_max=0.3, throttle_max=0.2)
    first, again, other = _run(config, 1), _run(config, 1), _run(config, 2)
    assert first == again and first != other
    active = np.array([s.active for s in first])
    steer = np.array([s.steer for s in first])
    assert 0.1 < active.mean() < 0.9  # some noise, some clean driving
    assert np.abs(steer).max() <= 0.3 + 1e-9 and np.abs([s.throttle for s in first]).max() <= 0.2 + 1e-9
    assert np.all(steer[~active] == 0.0)
    # one episode: |offset| rises to its peak and falls back, lasting 10..20 ticks
    start = int(np.argmax(active))
    end = start + int(np.argmin(active[start:]))
    episode = np.abs(steer[start:end])
    assert 10 <= end - start <= 20
    peak = int(np.argmax(episode))
    assert np.all(np.diff(episode[: peak + 1]) >= -1e-12) and np.all(np.diff(episode[peak:]) <= 1e-12)


def test_disabled_noise_and_perturb_clips_to_valid_controls():
    assert not any(s.active for s in _run(NoiseConfig(enabled=False, start_probability=1.0), 0, 100))
    action = np.array([0.9, 0.9, 0.0, 0.0], dtype=np.float32)
    out = perturb(action, NoiseSample(True, 0.5, 0.5))
    assert out[STEER] == 1.0 and out[THROTTLE] == 1.0 and out[BRAKE] == 0.0 and action[STEER] == np.float32(0.9)
    braking = perturb(np.array([0.0, 0.0, 0.6, 0.0], np.float32), NoiseSample(True, -0.2, 0.25))
    assert braking[STEER] == pytest.approx(-0.2) and braking[BRAKE] == pytest.approx(0.35)
    assert np.array_equal(perturb(action, NoiseSample(False, 0.0, 0.0)), action)


def test_noise_config_rejects_bad_ranges_and_keys():
    with pytest.raises(ValidationError, match="duration_s"):
        NoiseConfig(duration_s=(2.0, 1.0))
    with pytest.raises(ValidationError, match="Extra inputs"):
        NoiseConfig(steer_noise=0.1)


def test_drift_is_seeded_bounded_continuous_and_off_by_default():
    from av_stack.data.config import DriftConfig
    from av_stack.data.noise import DriftProcess

    config = DriftConfig(enabled=True, lateral_max_m=1.2, segment_s=(1.0, 2.0))

    def run(seed: int) -> np.ndarray:
        process = DriftProcess(config, 0.05, seed)
        return np.array([process.step() for _ in range(4000)])

    first, again, other = run(1), run(1), run(2)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.abs(first).max() <= 1.2 and np.abs(first).max() > 0.9  # uses the range
    assert np.abs(np.diff(first)).max() <= 2.4 / 20 + 1e-9  # at most 2.4 m over the shortest segment (20 ticks)
    assert (first > 0.3).any() and (first < -0.3).any()
    assert not np.any([DriftProcess(DriftConfig(), 0.05, 0).step() for _ in range(100)])
    with pytest.raises(ValidationError, match="segment_s"):
        DriftConfig(enabled=True, segment_s=(2.0, 1.0))


def test_a_drifted_localization_moves_the_pose_across_its_heading():
    import math

    from av_stack.data.config import DriftConfig
    from av_stack.data.noise import DriftedLocalization, DriftProcess
    from av_stack.messages import PoseEstimate
    from sim.api import Pose

    class Fixed:
        resets = 0

        def reset(self, mission) -> None:
            self.resets += 1

        def step(self, frame) -> PoseEstimate:
            return PoseEstimate(0, 0.0, Pose(10.0, 5.0, 0.3, math.pi / 2), np.zeros(3), np.eye(3), True)

    process = DriftProcess(DriftConfig(enabled=True, lateral_max_m=1.0, segment_s=(0.05, 0.05)), 0.05, 0)
    stage = DriftedLocalization(Fixed(), process)
    stage.reset(None)
    estimate = stage.step(None)
    # Facing +y, a positive offset is to the right of the heading: towards -x (CARLA's y-right frame).
    assert estimate.pose.x_m == pytest.approx(10.0 - process.offset_m) and estimate.pose.y_m == pytest.approx(5.0)
    assert process.offset_m != 0.0 and estimate.pose.yaw_rad == pytest.approx(math.pi / 2)
    assert estimate.valid and stage.resets == 1  # everything else passes through
