"""The ``learned`` localization stage: the EKF, corrected by the map-matching network.

Every frame goes through the EKF (:class:`~av_stack.localization.ekf.EkfLocalization`:
wheel speed and gyroscope prediction, GNSS and compass updates). On a frame
with a LiDAR sweep, once the EKF is initialised with a position standard
deviation of at most ``max_prior_std_m`` and the stage has a map (the
mission's lane graph):

1. the sweep becomes a BEV raster in the ego frame, the map's road and
   markings are rendered at the EKF's pose (the prior), and the network
   (:class:`~av_stack.localization.learned.model.MatchNet`) predicts the true
   pose in the prior's frame with a standard deviation per axis. The map is
   rendered by nearest cell (1/3 m), so a prior between two cells gives the
   same raster as one on a cell, and the answer is off by up to half a cell
   depending on where the prior falls (measured on Town02 with known prior
   offsets: RMS 0.09 m across the heading at 0 and 0.3 m offsets, 0.13 m at
   0.15 m), an error that stays while the car keeps its place on a straight
   road along the map's axes. So successive matches render the map at the
   prior moved across the heading by ``dither`` fractions of a cell in turn
   (3: -1/9, 0, +1/9 m), their answers composed back into the prior's frame:
   the rendering error changes from sweep to sweep and the filter averages
   it, at the cost of one network run per sweep;
2. each axis of the prediction (along and across the prior's heading, yaw)
   is fused only when the network is sure of it (std at most ``max_std_m``
   / ``max_yaw_std_deg``): where it cannot tell (along a straight road) its
   prediction is the prior it was given, and fusing that would only make the
   filter sure of its own guess. The sure axes go into the EKF
   (:meth:`EkfLocalization.update_pose`) with the network's variances
   (rotated into the world frame, times ``cov_scale``, plus the floors
   ``min_std_m`` / ``min_yaw_std_deg``; the other axes with a variance of
   1e4) behind a Mahalanobis gate ``gate_chi2``; a prediction sure of no
   axis is dropped. The matched position corrects only the position (a
   Schmidt update, ``heading_from_position: false``): the network's lateral
   error wanders slowly (about 0.1 m over seconds), and the full update read
   that wander as a heading error (yaw RMS 0.11 against 0.05 deg on the val
   split); the heading comes from the compass, the gyroscope and the
   network's own yaw when it is sure of it.

**GNSS bias.** The EKF under this stage models a GNSS bias (its
``gnss_bias_std_m``, 1 m per axis here unless the ``ekf`` section sets it;
0 in the ``ekf`` stage): a fix is the position plus a slowly varying bias
plus noise. Along a straight road the network cannot tell the position (it
fuses only the axis across the road), so GNSS is the only reference there,
and a biased GNSS cannot be told from an unbiased one: the position's
standard deviation along the road then stays at about the bias's 1 m, and
the stage reports ``valid=False`` instead of a pose it cannot back. Matches
across the road estimate the bias on that axis; after a turn (matches
across two headings) both axes of the bias are known, the position along
the new road is right again and the stage becomes valid (see
``benchmarks/localization_results.md`` for the measured trade-off: with a
1 m bias per axis no valid frame is 1 m off, at the cost of a lower valid
share on routes without a turn). ``ekf: {gnss_bias_std_m: 0}`` restores the
unbiased GNSS model (valid on straight roads, confidently wrong under a
bias).

The covariance is the EKF's. ``valid`` is stricter than the EKF's: the
stage claims a pose only while the EKF's position standard deviation (worst
axis) is at most ``valid_std_m`` (1/3 m: a 1 m error is then a 3-sigma
event; the EKF's own 0.5 m let a 2.3-sigma error of 1.1 m through on the
first valid frame of a Town02 route) and, when it has a map, once at least
``valid_min_matches`` matches have been fused since the EKF's position was
last (re)started or widened (:attr:`EkfLocalization.anchors`): the position
has been checked against the map, not only averaged from GNSS. A filter
started far off is therefore invalid until GNSS and the matches have
brought it in. :attr:`LearnedLocalization.status` says what the last match
did and why the pose is not valid, ``fits`` / ``accepted`` count the
matches. An empty or malformed sweep, a frame without LiDAR, no mission, and
non-finite inputs only skip the match (never an exception); a missing or
corrupt checkpoint is one
:class:`~av_stack.localization.learned.model.CheckpointError` when the stage
is built.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from pydantic import Field, field_validator

from av_stack.localization.ekf import EkfLocalization
from av_stack.localization.learned.model import GRID, compose, load_checkpoint, map_layers, relative_pose
from av_stack.messages import Mission, PoseEstimate, SensorFrame
from av_stack.registry import StageParams
from av_stack.shipped import shipped_file

DEFAULT_CHECKPOINT = "checkpoints/localization/matcher.pt"
_UNFUSED_VARIANCE = 1e4  # m^2 or rad^2: an axis that says nothing
GNSS_BIAS_STD_M = 1.0  # the EKF's gnss_bias_std_m in this stage unless its section sets one


class LearnedLocalization:
    """The learned localization stage (see the module docstring); ``localization: {name: learned}``."""

    counter_prefix = "match_"  # avsim eval localization reports fits / accepted as match_fits / match_accepted

    class Config(StageParams):
        """The checkpoint, when to match, the gates and the covariance, and the EKF under it."""

        checkpoint: str = Field(DEFAULT_CHECKPOINT, description="a file written by `avsim train localization`")
        lidar: str | None = Field(None, description="the LiDAR sensor's name; None: the frame's first LiDAR")
        max_prior_std_m: float = Field(3.0, gt=0, description="match while the EKF's position std is at most this")
        min_scan_cells: int = Field(50, ge=1, description="a sweep hitting fewer BEV cells is not matched")
        max_std_m: float = Field(0.3, gt=0, description="a position axis (along / across the prior's heading) is "
                                 "fused only when the network's std on it is at most this")
        max_yaw_std_deg: float = Field(0.2, gt=0, description="the yaw is fused only when its std is at most this "
                                       "(the shipped network is never this sure: the heading comes from the compass "
                                       "and the gyroscope; chosen on the val split)")
        gate_chi2: float = Field(16.3, ge=0, description="reject a match this far from the prediction "
                                 "(Mahalanobis, 3 dof; 0: no gate)")
        cov_scale: float = Field(16.0, gt=0, description="the network's variances are multiplied by this (its "
                                 "matches, 10 a second, are not independent; chosen on the val split)")
        min_std_m: float = Field(0.02, gt=0, description="position std floor of a match")
        min_yaw_std_deg: float = Field(0.05, gt=0, description="yaw std floor of a match")
        heading_from_position: bool = Field(False, description="let the matched position correct the heading "
                                            "too (False: position only, a Schmidt update; the yaw from the "
                                            "network's yaw and the compass)")
        valid_std_m: float = Field(0.33, gt=0, description="valid only while the EKF's position std (worst axis) "
                                   "is at most this (1/3 m: a 1 m error is a 3-sigma event)")
        valid_min_matches: int = Field(5, ge=0, description="and, with a map, once this many matches were fused "
                                       "since the EKF's position was last (re)started or widened")
        dither: int = Field(3, ge=1, le=8, description="successive matches render the map at the prior moved "
                            "across the heading by 1/dither of a cell in turn (1: at the prior)")
        threads: int = Field(1, ge=0, description="torch CPU threads for the network (0: torch's default)")
        ekf: EkfLocalization.Config = Field(
            default_factory=lambda: EkfLocalization.Config(gnss_bias_std_m=GNSS_BIAS_STD_M),
            description="the EKF's keys; its GNSS bias states are on here (gnss_bias_std_m 1.0 unless set)")

        @field_validator("ekf", mode="before")
        @classmethod
        def _gnss_bias_on(cls, value):
            """An ``ekf`` section without ``gnss_bias_std_m`` gets this stage's default, not the EKF's 0."""
            if isinstance(value, dict) and "gnss_bias_std_m" not in value:
                return {**value, "gnss_bias_std_m": GNSS_BIAS_STD_M}
            return value

    def __init__(self, config: Config) -> None:
        self.config = config
        self.model, _ = load_checkpoint(shipped_file(config.checkpoint))
        self.ekf = EkfLocalization(config.ekf)
        self._raster = None
        self._lanes = None
        self.reset(None)

    def reset(self, mission: Mission | None) -> None:
        """Forget the episode; the map raster is rebuilt only when the mission's lane graph changes."""
        self.ekf.reset(mission)
        self.status = "waiting for a first GNSS fix"
        self.fits = self.accepted = 0
        self.last_std: np.ndarray | None = None
        self._confirmed = 0  # matches fused since the EKF's position was last (re)started or widened
        self._anchors = self.ekf.anchors
        if mission is None:
            self._raster, self._lanes = None, None
        elif mission.lanes is not self._lanes:
            from av_stack.perception.classical import MapRaster

            self._raster = MapRaster(mission.lanes, GRID.config.pixels_per_m)
            self._lanes = mission.lanes

    def set_initial_pose(self, pose, std_m: float | None = None, yaw_std_deg: float | None = None) -> None:
        """Start the EKF from ``pose`` (see :meth:`EkfLocalization.set_initial_pose`)."""
        self.ekf.set_initial_pose(pose, std_m, yaw_std_deg)

    def step(self, frame: SensorFrame) -> PoseEstimate:
        """EKF prediction and updates, then the network's match on a LiDAR frame; the estimate."""
        self.ekf.fuse(frame)
        self._recount()
        match = self._match(frame)
        estimate = self.ekf.estimate(frame)
        doubt = self._doubt() if estimate.valid else None
        if doubt is not None:
            estimate = dataclasses.replace(estimate, valid=False)
        self.status = f"{doubt or self.ekf.status}; match: {match}"
        return estimate

    def _predict(self, scan: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's correction (dx, dy, dyaw) in ``prior``'s frame and its std; the map is rendered at
        the prior moved across the heading by this match's fraction of a cell (see ``dither``)."""
        c = self.config
        cell = 1.0 / GRID.config.pixels_per_m
        shift = ((self.fits % c.dither + 0.5) / c.dither - 0.5) * cell
        shifted = compose(prior, np.array([0.0, shift, 0.0]))
        x = np.concatenate([scan, map_layers(self._raster.view(*shifted, GRID))])[None]
        threads = torch.get_num_threads()
        if c.threads:
            torch.set_num_threads(c.threads)
        try:
            with torch.no_grad():
                delta, std = (v[0].numpy().astype(np.float64) for v in self.model.predict(torch.from_numpy(x)))
        finally:
            torch.set_num_threads(threads)
        return relative_pose(prior, compose(shifted, delta)), std

    def _recount(self) -> None:
        """Start the count of confirming matches over when the EKF's position was (re)started or widened."""
        if self.ekf.anchors != self._anchors:
            self._anchors, self._confirmed = self.ekf.anchors, 0

    def _doubt(self) -> str | None:
        """Why an estimate the EKF calls valid is not (None: it is)."""
        c = self.config
        std = self.ekf.position_std()
        if std > c.valid_std_m:
            return f"not converged: position std {std:.2f} m > {c.valid_std_m:.2f} m"
        if self._raster is not None and self._confirmed < c.valid_min_matches:
            return f"not converged: {self._confirmed} of {c.valid_min_matches} matches fused"
        return None

    def _match(self, frame: SensorFrame) -> str:
        from av_stack.perception.learned.geometry import lidar_bev

        c = self.config
        name = c.lidar or next((n for n, cal in frame.calibration.items()
                                if cal.blueprint_id.startswith("sensor.lidar.")), None)
        if name is None or name not in frame.data or name not in frame.calibration:
            return "no LiDAR sweep this frame"
        if self._raster is None:
            return "no map (no mission)"
        if not self.ekf.initialized:
            return "waiting for the EKF"
        prior_std = self.ekf.position_std()
        if prior_std > c.max_prior_std_m:
            return f"waiting for the EKF (position std {prior_std:.1f} m)"
        points = np.asarray(frame.data[name], dtype=np.float32)
        if points.ndim != 2 or points.shape[1] < 4:
            return "empty scan" if points.size == 0 else f"malformed scan of shape {points.shape}"
        points = points[np.isfinite(points[:, :4]).all(axis=1)]
        scan = lidar_bev(points, frame.calibration[name].mount, GRID)
        if int((scan[0] > 0).sum()) < c.min_scan_cells:
            return "empty scan" if len(points) == 0 else f"rejected: the sweep hits {int((scan[0] > 0).sum())} cells"
        prior = np.array(self.ekf.s[:3], dtype=np.float64)
        delta, std = self._predict(scan, prior)
        self.fits += 1
        self.last_std = std
        sure = np.array([std[0] <= c.max_std_m, std[1] <= c.max_std_m, std[2] <= math.radians(c.max_yaw_std_deg)])
        if not sure.any():
            return f"unsure: std {std[0]:.2f} / {std[1]:.2f} m, {math.degrees(std[2]):.2f} deg"
        # An axis the network cannot tell (along a straight road) is not fused: its prediction there is the
        # prior itself, and fusing it would make the filter sure of its own guess.
        floor = np.array([c.min_std_m, c.min_std_m, math.radians(c.min_yaw_std_deg)])
        variance = np.where(sure, c.cov_scale * std ** 2 + floor ** 2, _UNFUSED_VARIANCE)
        delta = np.where(sure, delta, 0.0)
        cos, sin = math.cos(prior[2]), math.sin(prior[2])
        rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
        covariance = rotation @ np.diag(variance) @ rotation.T
        if not self.ekf.update_pose(compose(prior, delta), covariance, c.gate_chi2, c.heading_from_position):
            return f"rejected: {math.hypot(delta[0], delta[1]):.2f} m from the prediction"
        self.accepted += 1
        self._confirmed += 1
        axes = "".join(name for name, on in zip(("x", "y", "yaw"), sure) if on)
        return f"fused {axes}: {delta[0]:+.2f} / {delta[1]:+.2f} m, std {std[0]:.2f} / {std[1]:.2f} m"
