"""ICP localization: the EKF, corrected by scan-to-map ICP (Open3D point-to-plane) against a prior map.

Every frame goes through the EKF (:class:`~av_stack.localization.ekf.EkfLocalization`:
wheel speed and gyroscope prediction, GNSS and compass updates). On frames
with a LiDAR sweep, once the EKF's position standard deviation is at most
``max_prior_std_m``:

1. **Scan**: the sweep in the ego frame (its mount), the ego's own body and
   returns beyond ``scan_range_m`` dropped, with ``ground: drop`` the returns
   below ``ground_height_m`` too, voxel-downsampled to ``scan_voxel_m``.
2. **Map**: the prior map (:mod:`av_stack.localization.prior_map`) cropped
   around the predicted position (kept while the car stays within
   ``recrop_m`` of the crop's centre).
3. **ICP**: point-to-plane, from the predicted pose (x, y, yaw; z from the
   GNSS altitude), 6 degrees of freedom, with a Tukey robust kernel against
   what the map does not have (parked and moving cars, walkers). While the
   prior is loose (position std above half of ``max_correspondence_m``) a
   coarse pass with a correspondence distance of 2.5 standard deviations (at
   most ``coarse_correspondence_m``) runs first.
4. **Gates**: a fit is rejected when its fitness (the share of scan points
   with a map point within ``max_correspondence_m``) is below
   ``min_fitness``, its RMS point-to-plane residual is above ``max_rmse_m``,
   the scan or the map crop has too few points, or it is farther from the
   prediction than ``gate_chi2`` (Mahalanobis, 3 dof) allows. The defaults
   come from Town02 fits: against a map of the same world fitness >= 0.98
   and residual <= 0.095 m, against a map of another world (the embedded
   simulator's props differ per seed) fitness <= 0.7 and residual >= 0.2 m. Good fits that only the last
   gate rejects, ``max_gate_rejections`` in a row and agreeing with each
   other (offsets within ``agree_m``), mean the filter is wrong, not the map
   (a GNSS bias the EKF followed): the EKF's position is widened to
   ``ekf.init_std_m`` and the fit fused.
5. **Fusion**: an accepted fit is an (x, y, yaw) measurement
   (:meth:`EkfLocalization.update_pose`) with the covariance of the
   point-to-plane least squares at the solution: ``sigma^2 H^-1`` over the
   inlier correspondences (``H = sum J^T J``, ``J = [(p - c) x n, n]`` about
   the ego position ``c``; ``sigma`` the residuals' RMS), marginalised to
   (x, y, yaw), times ``cov_scale`` (the residuals are not independent) and
   at least ``min_std_m`` / ``min_yaw_std_deg``. Along a featureless stretch
   (a straight wall-lined road) ``H`` is nearly singular along the road and
   the measurement says so: the filter keeps its own longitudinal estimate.

``valid`` and the covariance are the EKF's; :attr:`IcpLocalization.status`
says what the last ICP did. An empty or missing scan, a map crop without
points and a failed fit only skip the ICP update (never an exception); a
missing or corrupt ``prior_map`` file is one :class:`~av_stack.localization.prior_map.PriorMapError`
when the stage is built. Open3D is imported on first use, inside this module
only (import-linter: ``open3d-only-raycast`` names it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from av_stack.localization.ekf import EkfLocalization
from av_stack.localization.prior_map import PriorMap, load_prior_map, scan_to_ego, voxel_keys, voxel_means
from av_stack.messages import Mission, PoseEstimate, SensorFrame
from av_stack.registry import StageParams

__all__ = ["IcpFit", "IcpLocalization", "preprocess_scan", "register_scan"]

_BODY_HALF = (2.8, 1.3)


@dataclass(frozen=True)
class IcpFit:
    """One scan-to-map registration: the ego's world pose ``transform`` (4, 4), ``fitness`` (share of scan
    points matched), ``rmse_m`` (the matched points' RMS distance to the map's surface, point to plane),
    ``pose`` (x, y, yaw), its ``covariance`` (3, 3) before any scaling, and ``inliers`` (matched points)."""

    transform: np.ndarray
    fitness: float
    rmse_m: float
    pose: np.ndarray
    covariance: np.ndarray
    inliers: int


def preprocess_scan(points: np.ndarray, mount, range_m: float, voxel_m: float, drop_ground: bool = False,
                    ground_height_m: float = 0.3) -> np.ndarray:
    """(M, 3) ego-frame points of a sensor-frame sweep: body and far returns (and, with ``drop_ground``, those
    below ``ground_height_m``) dropped, voxel-averaged to ``voxel_m``."""
    ego = scan_to_ego(points, mount)
    keep = np.hypot(ego[:, 0], ego[:, 1]) <= range_m
    keep &= ~((np.abs(ego[:, 0]) < _BODY_HALF[0]) & (np.abs(ego[:, 1]) < _BODY_HALF[1]))
    if drop_ground:
        keep &= ego[:, 2] > ground_height_m
    return voxel_means(ego[keep], voxel_m)


def _pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    cos, sin = math.cos(yaw), math.sin(yaw)
    T = np.eye(4)
    T[:2, :2] = [[cos, -sin], [sin, cos]]
    T[:3, 3] = [x, y, z]
    return T


def register_scan(scan: np.ndarray, target, target_normals: np.ndarray, init: np.ndarray,
                  max_correspondence_m: float, max_iterations: int = 30, coarse_correspondence_m: float | None = None,
                  kernel_m: float | None = None) -> IcpFit | None:
    """Point-to-plane ICP of the ego-frame ``scan`` (M, 3) onto ``target`` (an Open3D point cloud with
    normals, world frame; ``target_normals`` its normals as an array) from the ego pose ``init`` (4, 4); the
    fit, or None without points to match. A ``coarse_correspondence_m`` pass runs first when given."""
    import open3d as o3d

    reg = o3d.pipelines.registration
    if len(scan) < 6 or len(target_normals) < 6:
        return None
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(scan, dtype=np.float64)))
    transform = np.asarray(init, dtype=np.float64)
    passes = ([coarse_correspondence_m] if coarse_correspondence_m else []) + [max_correspondence_m]
    result = None
    for distance in passes:
        kernel = reg.TukeyLoss(k=kernel_m if kernel_m else distance)
        result = reg.registration_icp(source, target, distance, transform,
                                      reg.TransformationEstimationPointToPlane(kernel),
                                      reg.ICPConvergenceCriteria(max_iteration=max_iterations))
        transform = np.asarray(result.transformation)
    pairs = np.asarray(result.correspondence_set)
    if len(pairs) < 6:
        return None
    moved = np.asarray(scan, dtype=np.float64)[pairs[:, 0]] @ transform[:3, :3].T + transform[:3, 3]
    q = np.asarray(target.points)[pairs[:, 1]]
    n = np.asarray(target_normals, dtype=np.float64)[pairs[:, 1]]
    residual = np.einsum("ij,ij->i", moved - q, n)
    J = np.concatenate([np.cross(moved - transform[:3, 3], n), n], axis=1)  # (rx, ry, rz, tx, ty, tz)
    H = J.T @ J
    sigma2 = float(residual @ residual) / max(len(residual) - 6, 1)
    try:
        full = sigma2 * np.linalg.inv(H + 1e-9 * np.eye(6))
    except np.linalg.LinAlgError:
        return None
    pick = [3, 4, 2]  # x, y, yaw (the rotation about z through the ego position)
    covariance = full[np.ix_(pick, pick)]
    yaw = math.atan2(transform[1, 0], transform[0, 0])
    return IcpFit(transform, float(result.fitness), math.sqrt(float(np.mean(residual ** 2))),
                  np.array([transform[0, 3], transform[1, 3], yaw]), covariance, len(pairs))


class IcpLocalization:
    """The ICP localization stage (see the module docstring); ``localization: {name: icp, prior_map: FILE}``."""

    class Config(StageParams):
        """The prior map, the scan's preparation, ICP, its gates and its covariance, and the EKF under it."""

        prior_map: str = Field(..., description="prior map file (.npz) written by `avsim map build-prior`")
        lidar: str | None = Field(None, description="the LiDAR sensor's name; None: the frame's first LiDAR")
        scan_range_m: float = Field(40.0, gt=0, description="scan returns farther than this are dropped")
        scan_voxel_m: float = Field(0.8, gt=0, description="the scan's voxel size")
        map_voxel_m: float = Field(0.4, ge=0, description="the map crop is thinned to one point per voxel of "
                                   "this size (0: as built)")
        ground: Literal["keep", "drop"] = Field("keep", description="keep or drop the scan's ground returns")
        ground_height_m: float = Field(0.3, description="with ground: drop, returns below this ego-frame z go")
        crop_margin_m: float = Field(10.0, ge=0, description="the map crop reaches this beyond the scan range")
        recrop_m: float = Field(5.0, ge=0, description="the map is cropped again after the car moved this far")
        max_correspondence_m: float = Field(1.0, gt=0, description="ICP correspondence distance")
        coarse_correspondence_m: float = Field(3.0, gt=0, description="the coarse pass's largest distance")
        max_iterations: int = Field(15, ge=1, description="ICP iterations per pass")
        max_prior_std_m: float = Field(2.0, gt=0, description="ICP runs while the EKF's position std is at most "
                                       "this (a looser prior: GNSS first)")
        min_fitness: float = Field(0.8, ge=0, le=1, description="reject a fit matching fewer scan points")
        max_rmse_m: float = Field(0.15, gt=0, description="reject a fit with a larger point-to-plane RMS residual")
        min_scan_points: int = Field(100, ge=6, description="reject a scan with fewer points after preparation")
        min_map_points: int = Field(500, ge=6, description="reject a map crop with fewer points")
        gate_chi2: float = Field(16.3, ge=0, description="reject a fit this far from the prediction "
                                 "(Mahalanobis, 3 dof; 0: no gate)")
        max_gate_rejections: int = Field(5, ge=1, description="good fits rejected by gate_chi2 alone in a row "
                                         "(and agreeing) before the EKF's position is widened to take them")
        agree_m: float = Field(0.3, gt=0, description="how far those fits' offsets may spread")
        cov_scale: float = Field(20.0, gt=0, description="the least-squares covariance is multiplied by this")
        min_std_m: float = Field(0.05, gt=0, description="position std floor of a fit")
        min_yaw_std_deg: float = Field(0.2, gt=0, description="yaw std floor of a fit")
        ekf: EkfLocalization.Config = Field(default_factory=EkfLocalization.Config, description="the EKF's keys")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.prior: PriorMap = load_prior_map(config.prior_map)
        self.ekf = EkfLocalization(config.ekf)
        self.status = "waiting for a first GNSS fix"
        self.fits = self.accepted = self.resets = 0
        self.last_fit: IcpFit | None = None
        self._gated: list[np.ndarray] = []
        self._crop_centre: tuple[float, float] | None = None
        self._target = None
        self._target_normals = np.zeros((0, 3))

    def reset(self, mission: Mission | None) -> None:
        """Forget the episode (the prior map stays)."""
        self.ekf.reset(mission)
        self.status = "waiting for a first GNSS fix"
        self.fits = self.accepted = self.resets = 0
        self.last_fit = None
        self._gated = []

    def set_initial_pose(self, pose, std_m: float | None = None, yaw_std_deg: float | None = None) -> None:
        """Start the EKF from ``pose`` (see :meth:`EkfLocalization.set_initial_pose`)."""
        self.ekf.set_initial_pose(pose, std_m, yaw_std_deg)

    def step(self, frame: SensorFrame) -> PoseEstimate:
        """EKF prediction and updates, then ICP on a LiDAR frame; the estimate."""
        self.ekf.fuse(frame)
        self.status = self._icp(frame)
        estimate = self.ekf.estimate(frame)
        self.status = f"{self.ekf.status}; ICP: {self.status}"
        return estimate

    # -------------------------------------------------------------- ICP
    def _icp(self, frame: SensorFrame) -> str:
        c = self.config
        name = c.lidar or next((n for n, cal in frame.calibration.items()
                                if cal.blueprint_id.startswith("sensor.lidar.")), None)
        if name is None or name not in frame.data or name not in frame.calibration:
            return "no LiDAR sweep this frame"
        if not self.ekf.initialized:
            return "waiting for the EKF"
        prior_std = self.ekf.position_std()
        if prior_std > c.max_prior_std_m:
            return f"waiting for the EKF (position std {prior_std:.1f} m)"
        points = np.asarray(frame.data[name])
        if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] < 3:
            return "empty scan" if points.size == 0 else f"malformed scan of shape {points.shape}"
        scan = preprocess_scan(points, frame.calibration[name].mount, c.scan_range_m, c.scan_voxel_m,
                               c.ground == "drop", c.ground_height_m)
        if len(scan) < c.min_scan_points:
            return f"rejected: {len(scan)} scan points"
        x, y, yaw = (float(v) for v in self.ekf.s[:3])
        self._crop(x, y)
        if len(self._target_normals) < c.min_map_points:
            return f"rejected: {len(self._target_normals)} map points here"
        coarse = None
        if prior_std > 0.5 * c.max_correspondence_m:
            coarse = min(max(2.5 * prior_std, c.max_correspondence_m), c.coarse_correspondence_m)
        fit = register_scan(scan, self._target, self._target_normals, _pose_matrix(x, y, self.ekf.height_m, yaw),
                            c.max_correspondence_m, c.max_iterations, coarse)
        self.fits += 1
        self.last_fit = fit
        if fit is None or fit.fitness < c.min_fitness or fit.rmse_m > c.max_rmse_m:
            self._gated = []
            if fit is None:
                return "rejected: no correspondences"
            return f"rejected: fitness {fit.fitness:.2f}, RMSE {fit.rmse_m:.2f} m"
        covariance = c.cov_scale * fit.covariance
        covariance[:2, :2] += np.eye(2) * c.min_std_m ** 2
        covariance[2, 2] += math.radians(c.min_yaw_std_deg) ** 2
        if not self.ekf.update_pose(fit.pose, covariance, c.gate_chi2):
            offset = fit.pose[:2] - (x, y)
            self._gated.append(offset)
            if len(self._gated) < c.max_gate_rejections or np.ptp(np.array(self._gated), axis=0).max() > c.agree_m:
                self._gated = self._gated[-(c.max_gate_rejections - 1):] if c.max_gate_rejections > 1 else []
                return f"rejected: {np.hypot(*offset):.2f} m from the prediction"
            # The map keeps disagreeing with a confident filter, always by the same offset: trust the map.
            self.ekf.widen_position(self.ekf.config.init_std_m)
            self.ekf.update_pose(fit.pose, covariance)
            self.resets += 1
        self._gated = []
        self.accepted += 1
        return f"fitness {fit.fitness:.2f}, RMSE {fit.rmse_m:.2f} m"

    def _crop(self, x: float, y: float) -> None:
        c = self.config
        if self._crop_centre is not None and math.hypot(x - self._crop_centre[0],
                                                        y - self._crop_centre[1]) <= c.recrop_m:
            return
        import open3d as o3d

        points, normals = self.prior.crop(x, y, c.scan_range_m + c.crop_margin_m + c.recrop_m)
        if c.map_voxel_m > self.prior.voxel_m:  # fewer target points: Open3D builds its k-d tree every fit
            _, first = np.unique(voxel_keys(points, c.map_voxel_m), return_index=True)
            points, normals = points[first], normals[first]
        target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        target.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
        self._target, self._target_normals, self._crop_centre = target, normals, (x, y)
