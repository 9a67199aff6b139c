"""Perception stages: sensors to a BEV, detections and the governing light (:class:`av_stack.stages.Perception`).

Registered: ``oracle`` (the privileged BEV and ground-truth boxes).
"""

from __future__ import annotations

from av_stack.registry import Registry

PERCEPTION: Registry = Registry("perception")
PERCEPTION.register_lazy("oracle", "av_stack.perception.oracle:OraclePerception")
