"""Perception stages: sensors to a BEV, detections and the governing light (:class:`av_stack.stages.Perception`).

Registered: ``oracle`` (the privileged BEV and ground-truth boxes) and ``learned`` (the camera + LiDAR +
radar fusion network, :mod:`av_stack.perception.learned`; imports torch when built).
"""

from __future__ import annotations

from av_stack.registry import Registry

PERCEPTION: Registry = Registry("perception")
PERCEPTION.register_lazy("oracle", "av_stack.perception.oracle:OraclePerception")
PERCEPTION.register_lazy("learned", "av_stack.perception.learned.stage:LearnedPerception")
PERCEPTION.register_lazy("classical", "av_stack.perception.classical:ClassicalPerception")
