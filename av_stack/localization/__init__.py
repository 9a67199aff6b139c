"""Localization stages: sensors to the ego's pose (:class:`av_stack.stages.Localization`).

Registered: ``oracle`` (the ground-truth pose), ``ekf`` (an extended Kalman filter on wheel speed, gyroscope,
compass and GNSS, :mod:`av_stack.localization.ekf`) and ``icp`` (the EKF corrected by Open3D point-to-plane ICP
of the LiDAR sweep against a prior point-cloud map, :mod:`av_stack.localization.icp`; maps from
``avsim map build-prior``, :mod:`av_stack.localization.prior_map`). Open3D is imported only when an ``icp``
stage runs. ``learned``: the EKF corrected by a small CNN matching the LiDAR sweep against the map rendered at the
EKF's pose (:mod:`av_stack.localization.learned`; ``avsim train localization``).
"""

from __future__ import annotations

from av_stack.registry import Registry

LOCALIZATION: Registry = Registry("localization")
LOCALIZATION.register_lazy("oracle", "av_stack.localization.oracle:OracleLocalization")
LOCALIZATION.register_lazy("ekf", "av_stack.localization.ekf:EkfLocalization")
LOCALIZATION.register_lazy("icp", "av_stack.localization.icp:IcpLocalization")
LOCALIZATION.register_lazy("learned", "av_stack.localization.learned.stage:LearnedLocalization")
