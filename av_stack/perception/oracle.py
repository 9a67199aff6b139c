"""Oracle perception: the privileged BEV and the ground-truth boxes and light, as a perception stage would see them.

It reads the privileged part of the :class:`~av_stack.messages.SensorFrame`
(``ground_truth``, ``privileged_bev``), which the env fills with
``observation.ground_truth: true`` (and the ``bev`` mode for the BEV), so
that every later stage can be tested with perfect perception. Detections
carry the actors' ids as track ids and score 1; the BEV masks (0 / 255)
become probabilities 0 / 1.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from av_stack.messages import Detections, LightObservation, Mission, PerceptionOutput, SensorFrame
from av_stack.registry import StageParams


class OracleInputError(ValueError):
    """An oracle stage was given a frame without the privileged data it reads."""


class OraclePerception:
    """Perception from ground truth (see the module docstring)."""

    class Config(StageParams):
        """``range_m``: detections farther from the ego than this are left out."""

        range_m: float = Field(60.0, gt=0.0)

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or self.Config()

    def reset(self, mission: Mission) -> None:
        """Nothing to forget."""

    def step(self, frame: SensorFrame) -> PerceptionOutput:
        """The ground truth of ``frame`` as a :class:`PerceptionOutput`."""
        truth = frame.ground_truth
        if truth is None:
            raise OracleInputError("oracle perception needs the env's ground truth: set observation.ground_truth: "
                                   "true in the stack's env section")
        actors = truth.actors
        keep = np.hypot(actors.center_m[:, 0], actors.center_m[:, 1]) <= self.config.range_m
        n = int(keep.sum())
        detections = Detections(kind=actors.kind[keep], center_m=actors.center_m[keep],
                                extent_m=actors.extent_m[keep], yaw_rad=actors.yaw_rad[keep],
                                velocity_mps=actors.velocity_mps[keep, :2], score=np.ones(n),
                                track_id=actors.actor_id[keep])
        light = truth.light
        observed = LightObservation(light.state, float(light.distance_m) if light.state is not None else math.inf)
        bev = None
        if frame.privileged_bev is not None:
            bev = frame.privileged_bev.astype(np.float32) / 255.0
        return PerceptionOutput(frame.frame, frame.timestamp_s, detections, observed, bev, frame.bev_spec)
