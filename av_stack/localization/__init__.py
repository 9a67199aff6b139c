"""Localization stages: sensors to the ego's pose (:class:`av_stack.stages.Localization`).

Registered: ``oracle`` (the ground-truth pose) and ``ekf`` (an extended Kalman filter on wheel speed, gyroscope,
compass and GNSS, :mod:`av_stack.localization.ekf`).
"""

from __future__ import annotations

from av_stack.registry import Registry

LOCALIZATION: Registry = Registry("localization")
LOCALIZATION.register_lazy("oracle", "av_stack.localization.oracle:OracleLocalization")
LOCALIZATION.register_lazy("ekf", "av_stack.localization.ekf:EkfLocalization")
LOCALIZATION.register_lazy("icp", "av_stack.localization.icp:IcpLocalization")
