"""Oracle localization: the ego's ground-truth pose and velocity, with zero covariance."""

from __future__ import annotations

import numpy as np

from av_stack.messages import Mission, PoseEstimate, SensorFrame
from av_stack.perception.oracle import OracleInputError
from av_stack.registry import StageParams
from sim.api import Pose


class OracleLocalization:
    """The pose from the frame's privileged ground truth (``observation.ground_truth: true``)."""

    class Config(StageParams):
        """No keys."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or self.Config()

    def reset(self, mission: Mission) -> None:
        """Nothing to forget."""

    def step(self, frame: SensorFrame) -> PoseEstimate:
        """The ground-truth pose of ``frame``."""
        truth = frame.ground_truth
        if truth is None:
            raise OracleInputError("oracle localization needs the env's ground truth: set observation.ground_truth: "
                                   "true in the stack's env section")
        ego = truth.ego
        pose = Pose(ego.x_m, ego.y_m, ego.z_m, ego.yaw_rad, pitch_rad=ego.pitch_rad, roll_rad=ego.roll_rad)
        return PoseEstimate(frame.frame, frame.timestamp_s, pose, np.array(ego.velocity_mps), np.zeros((3, 3)), True)
