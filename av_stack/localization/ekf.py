"""EKF localization: an extended Kalman filter over wheel speed, gyroscope, GNSS and compass.

State ``s = [x, y, yaw, v, b, bx, by]``: the ego's position [m] and heading
[rad] in the world frame (CARLA axes), its forward speed [m/s], the
gyroscope's yaw-rate bias [rad/s] and the GNSS fix's bias [m] on the world's
x and y axes.

- **GNSS bias** (``gnss_bias_std_m``, off by default: 0): a fix is the
  antenna's position plus a bias ``(bx, by)`` plus white noise. The bias is a
  first-order Gauss-Markov process (``b' = -b / gnss_bias_tau_s`` + noise; its
  stationary and prior standard deviation ``gnss_bias_std_m`` per axis), so
  GNSS alone cannot tell the position to better than that: the position's
  covariance includes the bias's, and a validity threshold below it holds
  only along the axes another measurement pins (:meth:`EkfLocalization.update_pose`:
  a map match), which then also estimates the bias. The bias is in the world
  frame, so a match across one road's heading followed by one across another's
  (a turn) observes both axes, and the position stays pinned on the next
  straight. With 0 the bias states stay at 0 with no variance, and the filter
  is exactly the unbiased one.
- **Prediction** (every frame, ``dt`` from the frame timestamps): a
  kinematic bicycle about the rear axle. With the yaw rate
  ``w = gyro_z - b`` (the mean of the previous and this frame's reading), the
  pose origin (the box centre, ``rear_axle_m`` ahead of the axle) moves at
  ``v`` along the heading plus ``w * rear_axle_m`` sideways (measured in the
  logs: the centre's side velocity is 1.5 m times the yaw rate).
- **Updates**: the wheel speed (``v``), the GNSS fix converted to the map
  frame (latitude / longitude through the towns' ``+proj=tmerc`` geo-reference,
  :data:`av_stack.perception.classical.METRES_PER_DEGREE`, with the antenna's
  mount offset as lever arm), and the compass (``yaw = compass - pi/2 -
  mount yaw``, as :func:`~av_stack.perception.classical.gnss_to_world` has it).
  A GNSS fix whose Mahalanobis distance exceeds ``gate_chi2`` is rejected (a
  jump); after ``max_rejections`` rejections in a row the filter trusts GNSS
  again: it re-anchors the position at the fix with the initial uncertainty.
  When the running mean of the accepted fixes' innovations (over about
  ``consistency_frames``) is far beyond what their covariance allows, the
  position covariance is widened to the initial one: a wrong pose the filter
  was sure of recovers in about a second instead of creeping back.

A stage that adds its own measurement (map matching: :mod:`av_stack.localization.icp`)
calls :meth:`EkfLocalization.fuse`, then :meth:`EkfLocalization.update_pose`
with an (x, y, yaw) measurement and its covariance, then
:meth:`EkfLocalization.estimate`. For ``pose_authority_s`` after a fused pose
the map is the reference: GNSS that disagrees neither re-anchors the filter
nor widens its covariance (a GNSS bias cannot pull it off the map).

Missing data never raises: a non-finite GNSS fix or compass skips that update
(a dropout: the filter predicts only and its covariance grows), a missing
gyroscope predicts with zero yaw rate and a wide yaw-rate noise. Until the
first fix (or :meth:`EkfLocalization.set_initial_pose`) the estimate is the
origin with a huge covariance. ``valid`` is True only while the position
standard deviation (largest axis) is at most ``valid_std_m`` and the yaw's at
most ``valid_yaw_std_deg``; ``status`` says why not. :attr:`EkfLocalization.anchors`
counts the times the position was (re)started or widened (the first fix,
:meth:`~EkfLocalization.set_initial_pose`, a re-anchor, a widening), so that a
stage can start its own convergence checks over.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from av_stack.messages import Mission, PoseEstimate, SensorFrame
from av_stack.perception.classical import METRES_PER_DEGREE
from av_stack.registry import StageParams
from sim.api import Pose

__all__ = ["EkfLocalization", "compass_to_yaw", "gnss_to_xy"]

_X, _Y, _YAW, _V, _B, _BX, _BY = range(7)
_N = 7
_UNKNOWN_STD_M = 1e3  # the position standard deviation reported before any fix


def gnss_to_xy(gnss: np.ndarray, origin_deg: tuple[float, float] = (0.0, 0.0)) -> np.ndarray | None:
    """World (x, y) [m] of a GNSS fix (latitude, longitude, altitude), or None when it is not finite: the
    inverse of CARLA's geolocation about ``origin_deg`` (x with longitude, y with latitude)."""
    lat, lon = float(gnss[0]), float(gnss[1])
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    return np.array([(lon - origin_deg[1]) * METRES_PER_DEGREE, (lat - origin_deg[0]) * METRES_PER_DEGREE])


def compass_to_yaw(compass_rad: float) -> float | None:
    """World yaw [rad] of a compass reading (0 facing -y), or None when it is not finite."""
    if not math.isfinite(compass_rad):
        return None
    return math.remainder(compass_rad - math.pi / 2, 2 * math.pi)


def _wrap(angle: float) -> float:
    return math.remainder(angle, 2 * math.pi)


class EkfLocalization:
    """The EKF localization stage (see the module docstring); ``localization: {name: ekf, ...}``."""

    class Config(StageParams):
        """Noise model (standard deviations), gating and the validity thresholds."""

        gnss_std_m: float = Field(2.0, gt=0, description="GNSS position noise per axis assumed by the filter")
        compass_std_deg: float = Field(3.0, gt=0, description="compass noise")
        speed_std_mps: float = Field(0.1, gt=0, description="wheel-speed noise")
        accel_std_mps2: float = Field(3.0, gt=0, description="speed random walk between frames")
        gyro_std_rad_s: float = Field(0.02, gt=0, description="yaw-rate noise")
        gyro_bias_walk: float = Field(1e-4, ge=0, description="gyro-bias random walk [rad/s per sqrt(s)]")
        gyro_bias_std_rad_s: float = Field(0.01, ge=0, description="initial gyro-bias uncertainty")
        no_gyro_std_rad_s: float = Field(0.5, gt=0, description="yaw-rate noise when there is no gyroscope")
        position_walk: float = Field(0.05, ge=0, description="unmodelled motion [m per sqrt(s)]")
        rear_axle_m: float | None = Field(None, description="rear axle behind the pose origin; None: from the "
                                          "mission's vehicle, else the generic car's 1.65 m")
        init_std_m: float = Field(5.0, gt=0, description="position uncertainty of set_initial_pose / re-anchor")
        init_yaw_std_deg: float = Field(10.0, gt=0, description="yaw uncertainty of set_initial_pose")
        valid_std_m: float = Field(0.5, gt=0, description="valid while the position std is at most this")
        valid_yaw_std_deg: float = Field(3.0, gt=0, description="and the yaw std at most this")
        gate_chi2: float = Field(13.8, ge=0, description="GNSS outlier gate (chi-square, 2 dof; 0: no gate)")
        max_rejections: int = Field(20, ge=1, description="rejected fixes in a row before re-anchoring")
        consistency_frames: int = Field(20, ge=2, description="GNSS fixes in the innovations' running mean that "
                                        "widens an overconfident covariance")
        origin_deg: tuple[float, float] = Field((0.0, 0.0), description="map geo-reference (lat_0, lon_0)")
        pose_authority_s: float = Field(2.0, ge=0, description="after a fused pose measurement (update_pose), "
                                        "disagreeing GNSS neither re-anchors nor widens the position this long")
        gnss_bias_std_m: float = Field(0.0, ge=0, description="GNSS bias per world axis: prior and stationary std "
                                       "of a first-order Gauss-Markov bias state (0: GNSS is unbiased, no states)")
        gnss_bias_tau_s: float = Field(1800.0, gt=0, description="the GNSS bias's correlation time [s]: a bias a map "
                                       "match has pinned becomes uncertain again over about this long")

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or self.Config()
        c = self.config
        self._compass_var = math.radians(c.compass_std_deg) ** 2
        self._gnss_var = c.gnss_std_m ** 2
        self._bias_var = c.gnss_bias_std_m ** 2
        self.rear_axle_m = 1.65
        self.reset(None)

    # -------------------------------------------------------------- lifecycle
    def reset(self, mission: Mission | None) -> None:
        """Forget the previous episode (``mission`` may be None: the filter needs no map)."""
        c = self.config
        if c.rear_axle_m is not None:
            self.rear_axle_m = c.rear_axle_m
        elif mission is not None:
            from av_stack.control.vehicles import vehicle_params

            self.rear_axle_m = vehicle_params(mission.vehicle.blueprint_id).rear_axle_m
        self.s = np.zeros(_N)
        self.P = np.diag([_UNKNOWN_STD_M ** 2, _UNKNOWN_STD_M ** 2, math.pi ** 2, 10.0 ** 2,
                          max(c.gyro_bias_std_rad_s, 1e-9) ** 2, self._bias_var, self._bias_var])
        self.initialized = False
        self.status = "waiting for a first GNSS fix"
        self.rejections = 0
        self._innovation_mean = np.zeros(2)
        self._innovation_count = 0
        self._last_t: float | None = None
        self._last_rate: float | None = None
        self._z_m = 0.0
        self._t = 0.0
        self._pose_fused_t: float | None = None
        self._no_gnss = self._no_gyro = True
        self.anchors = 0  # times the position was (re)started or widened: a stage's checks since then start over

    def set_initial_pose(self, pose: Pose, std_m: float | None = None, yaw_std_deg: float | None = None) -> None:
        """Start from ``pose`` (e.g. a route's start) with the given uncertainty (default ``init_std_m`` and
        ``init_yaw_std_deg``); the filter then converges on GNSS and compass."""
        c = self.config
        std_m = c.init_std_m if std_m is None else std_m
        yaw_std = math.radians(c.init_yaw_std_deg if yaw_std_deg is None else yaw_std_deg)
        self.s[:] = [pose.x_m, pose.y_m, _wrap(pose.yaw_rad), 0.0, 0.0, 0.0, 0.0]
        self.P = np.diag([std_m ** 2, std_m ** 2, yaw_std ** 2, 1.0, max(c.gyro_bias_std_rad_s, 1e-9) ** 2,
                          self._bias_var, self._bias_var])
        self._z_m = pose.z_m
        self.initialized = True
        self.anchors += 1

    # -------------------------------------------------------------- one frame
    def step(self, frame: SensorFrame) -> PoseEstimate:
        """Predict to ``frame``'s time, fuse its wheel speed, GNSS and compass; the estimate."""
        self.fuse(frame)
        return self.estimate(frame)

    def fuse(self, frame: SensorFrame) -> None:
        """:meth:`step` without the estimate: predict to ``frame``'s time and fuse its ego signals (a stage
        that adds its own measurements, e.g. :meth:`update_pose`, calls this, then :meth:`estimate`)."""
        ego = frame.ego
        mounts = _mounts(frame)
        gyro = float(ego.gyroscope_rad_s[2])
        rate = gyro if math.isfinite(gyro) else None
        gnss_xy = gnss_to_xy(ego.gnss, self.config.origin_deg)
        yaw_meas = compass_to_yaw(ego.compass_rad)
        if yaw_meas is not None:
            yaw_meas = _wrap(yaw_meas - mounts["imu_yaw"])
        self._t = float(frame.timestamp_s)
        if not self.initialized and gnss_xy is not None:
            self._initialize(gnss_xy, yaw_meas, ego.speed_mps, mounts["gnss"])
        elif self.initialized:
            t = float(frame.timestamp_s)
            dt = 0.0 if self._last_t is None else t - self._last_t
            if dt > 0.0:
                mean_rate = rate if rate is None or self._last_rate is None else 0.5 * (rate + self._last_rate)
                self._predict(dt, mean_rate)
            self._update_speed(ego.speed_mps)
            if yaw_meas is not None:
                self._update_yaw(yaw_meas)
            if gnss_xy is not None:
                self._update_gnss(gnss_xy, mounts["gnss"])
            self._check_finite()
        if math.isfinite(float(ego.gnss[2])):
            self._z_m = float(ego.gnss[2]) - mounts["gnss_z"]
        self._last_t = float(frame.timestamp_s)
        self._last_rate = rate
        self._no_gnss, self._no_gyro = gnss_xy is None, rate is None

    def update_pose(self, pose: np.ndarray, covariance: np.ndarray, gate_chi2: float = 0.0,
                    heading_from_position: bool = True) -> bool:
        """Fuse a measurement of the pose ``(x, y, yaw)`` with its (3, 3) covariance (map matching, e.g. ICP);
        False (and nothing fused) before the filter is initialised, for a non-finite measurement, or when its
        Mahalanobis distance to the prediction exceeds ``gate_chi2`` (3 dof; 0: no gate). Once one is fused,
        GNSS that disagrees neither re-anchors nor widens the position for ``pose_authority_s``: the map is
        the better reference.

        ``heading_from_position=False``: the measured position corrects only the position and the GNSS bias
        (a Schmidt update: the yaw, speed and gyro bias keep their values, their covariance stays consistent);
        the yaw is corrected by the measured yaw alone (first, as a separate update; the covariance must not
        correlate the yaw with the position). For a position whose error wanders slowly (a learned match), which the
        full update would read as a heading error."""
        z = np.asarray(pose, dtype=np.float64).reshape(3)
        R = np.asarray(covariance, dtype=np.float64).reshape(3, 3)
        if not self.initialized or not (np.isfinite(z).all() and np.isfinite(R).all()):
            return False
        H = np.zeros((3, _N))
        H[0, _X] = H[1, _Y] = H[2, _YAW] = 1.0
        innovation = z - self.s[:3]
        innovation[2] = _wrap(innovation[2])
        if gate_chi2 > 0:
            S = H @ self.P @ H.T + R
            if float(innovation @ np.linalg.solve(S, innovation)) > gate_chi2:
                return False
        if heading_from_position:
            self._correct(innovation, H, R)
        else:
            self._correct(innovation[2:], H[2:], R[2:, 2:])
            self._correct(z[:2] - self.s[:2], H[:2], R[:2, :2], only=(_X, _Y, _BX, _BY))
        self._check_finite()
        self._pose_fused_t = self._t
        self.rejections = 0
        self._innovation_mean[:] = 0.0
        self._innovation_count = 0
        return True

    def widen_position(self, std_m: float) -> None:
        """Make the position at least ``std_m`` uncertain on each axis (its correlations dropped), e.g. when a
        map match shows the filter is wrong."""
        variances = np.maximum(np.diag(self.P)[:2], std_m ** 2)
        self._restart_position(self.s[:2], variances)

    @property
    def gnss_bias(self) -> np.ndarray:
        """The estimated GNSS bias (x, y) [m] in the world frame (zeros when ``gnss_bias_std_m`` is 0)."""
        return self.s[_BX:_BY + 1].copy()

    def _restart_position(self, xy: np.ndarray, variances: np.ndarray) -> None:
        """Put the position at ``xy`` with the given per-axis variances and no correlation (a re-anchor or a
        widening; the other states keep theirs); counts in :attr:`anchors`."""
        self.s[_X], self.s[_Y] = xy
        self.P[:2, :] = 0.0
        self.P[:, :2] = 0.0
        self.P[_X, _X], self.P[_Y, _Y] = variances
        self.anchors += 1

    @property
    def height_m(self) -> float:
        """The ego origin's height [m]: the GNSS altitude less the antenna's mount height."""
        return self._z_m

    def position_std(self) -> float:
        """The position's standard deviation along its worst axis [m]."""
        return math.sqrt(max(float(np.linalg.eigvalsh(self.P[:2, :2]).max()), 0.0))

    def _map_anchored(self) -> bool:
        return self._pose_fused_t is not None and self._t - self._pose_fused_t <= self.config.pose_authority_s

    def _check_finite(self) -> None:
        if not (np.isfinite(self.s).all() and np.isfinite(self.P).all()):
            self.reset(None)  # cannot happen with finite inputs; never hand on a NaN pose
            self.status = "filter diverged (non-finite state): restarted"

    # -------------------------------------------------------------- filter
    def _initialize(self, gnss_xy: np.ndarray, yaw: float | None, speed: float, lever: np.ndarray) -> None:
        c = self.config
        yaw0 = 0.0 if yaw is None else yaw
        cos, sin = math.cos(yaw0), math.sin(yaw0)
        x = gnss_xy[0] - (cos * lever[0] - sin * lever[1])
        y = gnss_xy[1] - (sin * lever[0] + cos * lever[1])
        self.s[:] = [x, y, yaw0, speed, 0.0, 0.0, 0.0]
        yaw_var = self._compass_var if yaw is not None else math.pi ** 2
        # The position is the fix less the bias: its variance holds the bias's, and it is anti-correlated with it.
        self.P = np.diag([self._gnss_var + self._bias_var, self._gnss_var + self._bias_var, yaw_var,
                          c.speed_std_mps ** 2, max(c.gyro_bias_std_rad_s, 1e-9) ** 2, self._bias_var,
                          self._bias_var])
        self.P[_X, _BX] = self.P[_BX, _X] = self.P[_Y, _BY] = self.P[_BY, _Y] = -self._bias_var
        self.initialized = True
        self.anchors += 1

    def _predict(self, dt: float, rate: float | None) -> None:
        c = self.config
        x, y, yaw, v, b = self.s[:5]
        d = self.rear_axle_m
        w = (rate - b) if rate is not None else 0.0
        rate_var = c.gyro_std_rad_s ** 2 if rate is not None else c.no_gyro_std_rad_s ** 2
        mid = yaw + 0.5 * w * dt
        cos, sin = math.cos(mid), math.sin(mid)
        self.s[_X] = x + (v * cos - w * d * sin) * dt
        self.s[_Y] = y + (v * sin + w * d * cos) * dt
        self.s[_YAW] = _wrap(yaw + w * dt)
        F = np.eye(_N)
        F[_X, _YAW] = (-v * sin - w * d * cos) * dt
        F[_Y, _YAW] = (v * cos - w * d * sin) * dt
        F[_X, _V], F[_Y, _V] = cos * dt, sin * dt
        if rate is not None:  # the yaw rate depends on the bias only when it is measured
            F[_X, _B], F[_Y, _B], F[_YAW, _B] = d * sin * dt, -d * cos * dt, -dt
        g = np.zeros(_N)  # how a yaw-rate error moves the state
        g[_X], g[_Y], g[_YAW] = -d * sin * dt, d * cos * dt, dt
        Q = rate_var * np.outer(g, g)
        Q[_X, _X] += c.position_walk ** 2 * dt
        Q[_Y, _Y] += c.position_walk ** 2 * dt
        Q[_V, _V] += c.accel_std_mps2 ** 2 * dt
        Q[_B, _B] += c.gyro_bias_walk ** 2 * dt
        if self._bias_var > 0:  # Gauss-Markov: decays towards 0, its variance towards gnss_bias_std_m ** 2
            decay = math.exp(-dt / c.gnss_bias_tau_s)
            self.s[_BX] *= decay
            self.s[_BY] *= decay
            F[_BX, _BX] = F[_BY, _BY] = decay
            Q[_BX, _BX] = Q[_BY, _BY] = self._bias_var * (1.0 - decay ** 2)
        self.P = F @ self.P @ F.T + Q

    def _correct(self, innovation: np.ndarray, H: np.ndarray, R: np.ndarray,
                 only: tuple[int, ...] | None = None) -> None:
        """Kalman update in Joseph form (keeps P symmetric positive semi-definite; valid for any gain, so
        ``only``, the states the update may move, zeroes the others' gain rows)."""
        S = H @ self.P @ H.T + R
        K = np.linalg.solve(S, H @ self.P).T
        if only is not None:
            K[[k for k in range(len(self.s)) if k not in only]] = 0.0
        self.s = self.s + K @ innovation
        self.s[_YAW] = _wrap(self.s[_YAW])
        A = np.eye(_N) - K @ H
        self.P = A @ self.P @ A.T + K @ R @ K.T
        self.P = 0.5 * (self.P + self.P.T)

    def _update_speed(self, speed: float) -> None:
        H = np.zeros((1, _N))
        H[0, _V] = 1.0
        self._correct(np.array([speed - self.s[_V]]), H, np.array([[self.config.speed_std_mps ** 2]]))

    def _update_yaw(self, yaw: float) -> None:
        H = np.zeros((1, _N))
        H[0, _YAW] = 1.0
        self._correct(np.array([_wrap(yaw - self.s[_YAW])]), H, np.array([[self._compass_var]]))

    def _update_gnss(self, z: np.ndarray, lever: np.ndarray) -> None:
        c = self.config
        x, y, yaw = self.s[:3]
        cos, sin = math.cos(yaw), math.sin(yaw)
        predicted = np.array([x + cos * lever[0] - sin * lever[1] + self.s[_BX],
                              y + sin * lever[0] + cos * lever[1] + self.s[_BY]])
        H = np.zeros((2, _N))
        H[0, _X] = H[1, _Y] = 1.0
        H[0, _BX] = H[1, _BY] = 1.0
        H[0, _YAW] = -sin * lever[0] - cos * lever[1]
        H[1, _YAW] = cos * lever[0] - sin * lever[1]
        R = np.eye(2) * self._gnss_var
        innovation = z - predicted
        if c.gate_chi2 > 0:
            S = H @ self.P @ H.T + R
            distance = float(innovation @ np.linalg.solve(S, innovation))
            if distance > c.gate_chi2:
                self.rejections += 1
                if self.rejections < c.max_rejections or self._map_anchored():
                    return
                # GNSS disagrees for too long: the filter, not the fix, is wrong. Re-anchor at the fix (less
                # the lever arm and the bias estimate).
                self._restart_position(z - (predicted - self.s[:2]), np.full(2, c.init_std_m ** 2))
                self.P[_YAW, _YAW] = max(self.P[_YAW, _YAW], math.radians(c.init_yaw_std_deg) ** 2)
                self.rejections = 0
                return
        self.rejections = 0
        self._check_consistency(innovation, H @ self.P @ H.T + R)
        self._correct(innovation, H, R)

    def _check_consistency(self, innovation: np.ndarray, S: np.ndarray) -> None:
        """Widen the position covariance when the innovations' running mean is far beyond what ``S`` allows
        (the filter is sure of a wrong position: each fix passes the gate but it would creep back slowly)."""
        c = self.config
        alpha = 1.0 / c.consistency_frames
        self._innovation_mean = (1 - alpha) * self._innovation_mean + alpha * innovation
        self._innovation_count += 1
        if c.gate_chi2 <= 0 or self._innovation_count < c.consistency_frames or self._map_anchored():
            return
        spread = S * alpha / (2 - alpha)  # the running mean's covariance for white innovations
        if float(self._innovation_mean @ np.linalg.solve(spread, self._innovation_mean)) > 2 * c.gate_chi2:
            self.P[_X, _X] = max(self.P[_X, _X], c.init_std_m ** 2)
            self.P[_Y, _Y] = max(self.P[_Y, _Y], c.init_std_m ** 2)
            self._innovation_mean[:] = 0.0
            self._innovation_count = 0
            self.anchors += 1

    # -------------------------------------------------------------- output
    def estimate(self, frame: SensorFrame) -> PoseEstimate:
        """The estimate after the last :meth:`fuse` (and any :meth:`update_pose`), stamped with ``frame``;
        ``valid`` and :attr:`status` as the module docstring says."""
        c = self.config
        no_gnss, no_gyro = self._no_gnss, self._no_gyro
        x, y, yaw, v = self.s[:4]
        cov = self.P[:3, :3].copy()
        pos_std = math.sqrt(max(float(np.linalg.eigvalsh(cov[:2, :2]).max()), 0.0))
        yaw_std = math.degrees(math.sqrt(max(cov[2, 2], 0.0)))
        valid = self.initialized and pos_std <= c.valid_std_m and yaw_std <= c.valid_yaw_std_deg
        if not self.initialized:
            self.status = "waiting for a first GNSS fix"
        elif valid:
            self.status = "ok" + (" (GNSS missing: predicting)" if no_gnss else "") + \
                (" (no gyroscope)" if no_gyro else "")
        else:
            self.status = (f"not converged: position std {pos_std:.2f} m, yaw std {yaw_std:.1f} deg"
                           + (" (GNSS missing)" if no_gnss else ""))
        velocity = np.array([v * math.cos(yaw), v * math.sin(yaw), 0.0])
        pose = Pose(float(x), float(y), self._z_m, float(yaw))
        return PoseEstimate(frame.frame, frame.timestamp_s, pose, velocity, cov, bool(valid))


def _mounts(frame: SensorFrame) -> dict:
    """The GNSS antenna's (x, y) offset and z in the ego frame and the IMU's mount yaw, from the calibration
    (zero when the frame has none)."""
    gnss = next((c for c in frame.calibration.values() if c.blueprint_id == "sensor.other.gnss"), None)
    imu = next((c for c in frame.calibration.values() if c.blueprint_id == "sensor.other.imu"), None)
    return {"gnss": np.array([gnss.mount.x_m, gnss.mount.y_m]) if gnss is not None else np.zeros(2),
            "gnss_z": gnss.mount.z_m if gnss is not None else 0.0,
            "imu_yaw": imu.mount.yaw_rad if imu is not None else 0.0}
