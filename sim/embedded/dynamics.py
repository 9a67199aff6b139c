"""Vectorised planar vehicle dynamics: kinematic and dynamic bicycle models.

All vehicles live in one `BicycleFleet` as a structure of arrays, and `step`
advances them all with a fixed number of numpy calls (no loop over vehicles).
Inputs follow CARLA's `VehicleControl`: throttle 0..1, steer -1..1 (positive =
right), brake 0..1, hand_brake, reverse.

Frame (CARLA's, seen from above): x forward, y right; yaw turns x toward +y, so
positive steer gives a positive yaw rate (a right turn) and a body's lateral
velocity is positive to the right. With these labels the planar equations are
the ordinary ones: x' = v cos(yaw), y' = v sin(yaw), yaw' = r.

Longitudinal model (both models), per vehicle with speed v = v_long:
  drive  = throttle * min(max_accel, max_power / (m * max(|v|, 1))) * (-1 if reverse else +1)
  resist = max_brake * max(brake, hand_brake * lf / L) + drag_area * v^2 / m + c_rr * g
  v' = sign(v + drive dt) * max(|v + drive dt| - resist dt, 0)
(reverse drive stops adding speed beyond MAX_REVERSE_SPEED_MPS backwards).
The resisting terms only ever shrink |v| toward zero: braking, drag and rolling
resistance never reverse the direction of travel, and a vehicle at rest with no
throttle stays at rest.

Kinematic bicycle, referenced at the centre of gravity (CG), lr = L - lf:
  beta = atan(lr / L * tan(delta))      (CG slip angle)
  v_lat = v_long * tan(beta) = lr * yaw_rate
  yaw_rate = v_long * tan(delta) / L
The CG travels a circle of radius R = L / (cos(beta) tan(delta)) = lr / sin(beta)
= sqrt(lr^2 + (L / tan(delta))^2) at constant delta.

Dynamic bicycle with linear tyres (small angles), u = max(|v_long|, V_BLEND_LOW_MPS):
  alpha_f = (v_lat + lf r - v_long delta) / u,   alpha_r = (v_lat - lr r) / u
  F_yf = -C_f alpha_f,  F_yr = -C_r alpha_r
  v_lat' = (F_yf + F_yr) / m - v_long r
  r'     = (lf F_yf - lr F_yr) / I_z
The longitudinal equation omits v_lat r and -F_yf sin(delta) / m: to first order
they cancel in steady cornering, so speed is set by the longitudinal forces
alone. The (v_lat, r) system is linear for a given v_long and delta and is
integrated with one backward-Euler step per tick (a closed-form 2x2 solve),
which is stable at any dt and exact in steady state, so no substeps are needed.
Steady cornering then satisfies delta = L / R + K a_lat with the understeer
gradient K = m / L (lr / C_f - lf / C_r). Below V_BLEND_HIGH_MPS the lateral
state is blended (smoothstep in |v_long|) into the kinematic values, reaching
pure kinematic at V_BLEND_LOW_MPS, which avoids the 1/v singularity at rest.

Steering: the road-wheel angle delta moves toward steer * max_steer by at most
max_steer_rate * dt per step.

Pose: yaw advances by the mean yaw rate over the step; the position moves by the
mean body velocity rotated to the mid-step heading and scaled by the chord
factor sin(dyaw / 2) / (dyaw / 2), which is exact for constant-speed circles and
for constant acceleration in a straight line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from sim.embedded.vehicle_types import GRAVITY_MPS2, VehicleType

V_BLEND_LOW_MPS = 2.0
"""Below this forward speed the dynamic model is purely kinematic."""
V_BLEND_HIGH_MPS = 4.0
"""Above this forward speed the dynamic model is purely dynamic."""

MAX_REVERSE_SPEED_MPS = 8.0
"""Top speed of the reverse gear; the linear bicycle is also unstable when reversing fast."""

_TWO_PI = 2.0 * np.pi


class DynamicsModel(str, Enum):
    """Which bicycle model a fleet integrates."""

    KINEMATIC = "kinematic"
    DYNAMIC = "dynamic"


def _float_field(name: str, value: object, lo: float, hi: float) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"control field {name!r} must be a 1-D array, got shape {arr.shape}")
    total = arr.dot(arr)  # NaN iff some entry is NaN; one cheap call on the per-tick path
    if total != total:
        bad = np.flatnonzero(np.isnan(arr)).tolist()
        raise ValueError(f"control field {name!r} is NaN for rows {bad}")
    return np.minimum(np.maximum(arr, lo), hi)


def _bool_field(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"control field {name!r} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"control field {name!r} is NaN for rows "
                             f"{np.flatnonzero(np.isnan(arr)).tolist()}")
        arr = arr.astype(np.bool_)
    return arr


@dataclass(frozen=True)
class ControlArrays:
    """Controls for every vehicle of a fleet, one row each, with CARLA `VehicleControl` semantics.

    throttle 0..1, steer -1..1 (negative = left), brake 0..1 are clamped to
    their ranges on construction (CARLA's client does not clamp); a NaN raises
    ValueError naming the field. hand_brake and reverse are booleans.
    """

    throttle: np.ndarray
    steer: np.ndarray
    brake: np.ndarray
    hand_brake: np.ndarray
    reverse: np.ndarray

    def __post_init__(self) -> None:
        fields = (
            ("throttle", _float_field("throttle", self.throttle, 0.0, 1.0)),
            ("steer", _float_field("steer", self.steer, -1.0, 1.0)),
            ("brake", _float_field("brake", self.brake, 0.0, 1.0)),
            ("hand_brake", _bool_field("hand_brake", self.hand_brake)),
            ("reverse", _bool_field("reverse", self.reverse)),
        )
        n = fields[0][1].shape[0]
        for name, arr in fields:
            if arr.shape[0] != n:
                raise ValueError(
                    f"control field {name!r} has {arr.shape[0]} rows, throttle has {n}"
                )
            object.__setattr__(self, name, arr)

    @property
    def n(self) -> int:
        """Number of rows (vehicles)."""
        return int(self.throttle.shape[0])

    @classmethod
    def full(
        cls,
        n: int,
        throttle: float = 0.0,
        steer: float = 0.0,
        brake: float = 0.0,
        hand_brake: bool = False,
        reverse: bool = False,
    ) -> ControlArrays:
        """The same control for `n` vehicles."""
        return cls(
            throttle=np.full(n, throttle, dtype=np.float64),
            steer=np.full(n, steer, dtype=np.float64),
            brake=np.full(n, brake, dtype=np.float64),
            hand_brake=np.full(n, hand_brake, dtype=np.bool_),
            reverse=np.full(n, reverse, dtype=np.bool_),
        )


# Per-vehicle constants derived from the VehicleType, stored as arrays so that
# `step` reads them without touching Python objects.
_PARAM_NAMES = (
    "_max_steer",
    "_max_steer_rate",
    "_max_accel",
    "_power_per_mass",
    "_max_brake",
    "_hand_brake_share",
    "_drag_per_mass",
    "_rolling_decel",
    "_inv_wheelbase",
    "_lr",
    "_c_sum_m",  # (Cf + Cr) / m
    "_c_moment_m",  # (lf Cf - lr Cr) / m
    "_c_moment_iz",  # (lf Cf - lr Cr) / Iz
    "_c_moment2_iz",  # (lf^2 Cf + lr^2 Cr) / Iz
    "_cf_m",  # Cf / m
    "_lf_cf_iz",  # lf Cf / Iz
)
_STATE_NAMES = (
    "x_m",
    "y_m",
    "yaw_rad",
    "v_long_mps",
    "v_lat_mps",
    "yaw_rate_rad_s",
    "steer_rad",
    "accel_long_mps2",
    "_dv_lat_dt",
)


def _params_of(vtype: VehicleType) -> tuple[float, ...]:
    m, iz, length = vtype.mass_kg, vtype.yaw_inertia_kgm2, vtype.wheelbase_m
    lf, lr = vtype.cg_to_front_axle_m, vtype.cg_to_rear_axle_m
    cf, cr = vtype.cornering_stiffness_front_n_per_rad, vtype.cornering_stiffness_rear_n_per_rad
    return (
        vtype.max_steer_rad,
        vtype.max_steer_rate_rad_s,
        vtype.max_accel_mps2,
        vtype.max_power_w / m,
        vtype.max_brake_mps2,
        lf / length,
        vtype.drag_area_kg_per_m / m,
        vtype.rolling_resistance_coeff * GRAVITY_MPS2,
        1.0 / length,
        lr,
        (cf + cr) / m,
        (lf * cf - lr * cr) / m,
        (lf * cf - lr * cr) / iz,
        (lf * lf * cf + lr * lr * cr) / iz,
        cf / m,
        lf * cf / iz,
    )


def _check_finite(**values: object) -> None:
    for name, value in values.items():
        if value is not None and not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise ValueError(f"{name} must be finite, got {value!r}")


def _wrap(angle: np.ndarray) -> np.ndarray:
    # Leaves angles already in [-pi, pi] bit-for-bit unchanged (unlike a remainder).
    return angle - _TWO_PI * np.rint(angle * (1.0 / _TWO_PI))


class BicycleFleet:
    """Vehicles' planar state as arrays, advanced together by a bicycle model.

    State arrays, one row per vehicle (read them; change them with `set_state`):
    x_m, y_m, yaw_rad (CG pose, world frame; yaw wrapped to [-pi, pi]),
    v_long_mps (body-frame forward speed, negative when reversing),
    v_lat_mps (body-frame lateral speed, + = right), yaw_rate_rad_s (+ = turning
    right), steer_rad (actual road-wheel angle), accel_long_mps2 (d v_long / dt
    over the last step, for IMU and snapshots). `ids` holds a stable id per row,
    `types` the VehicleType and `extent_m` (N, 3) the bounding-box half sizes.

    Row indices shift when vehicles are removed: keep the `ids` (or the mapping
    `remove` returns) to find a vehicle again. Every method replaces the state
    arrays instead of writing into them, so an array read earlier is a stable
    snapshot; do not write into them yourself.
    """

    def __init__(self, model: DynamicsModel | str = "kinematic") -> None:
        try:
            self.model = DynamicsModel(model)
        except ValueError:
            valid = ", ".join(m.value for m in DynamicsModel)
            raise ValueError(f"unknown dynamics model {model!r}; valid: {valid}") from None
        self.x_m = np.zeros(0)
        self.y_m = np.zeros(0)
        self.yaw_rad = np.zeros(0)
        self.v_long_mps = np.zeros(0)
        self.v_lat_mps = np.zeros(0)
        self.yaw_rate_rad_s = np.zeros(0)
        self.steer_rad = np.zeros(0)
        self.accel_long_mps2 = np.zeros(0)
        self._dv_lat_dt = np.zeros(0)
        for name in _PARAM_NAMES:
            setattr(self, name, np.zeros(0))
        self.extent_m = np.zeros((0, 3))
        self.ids = np.zeros(0, dtype=np.int64)
        self.types: list[VehicleType] = []
        self._next_id = 0

    @property
    def n(self) -> int:
        """Number of vehicles."""
        return int(self.x_m.shape[0])

    def add(
        self,
        vtype: VehicleType,
        x_m: float,
        y_m: float,
        yaw_rad: float,
        speed_mps: float = 0.0,
        vehicle_id: int | None = None,
    ) -> int:
        """Append a vehicle at CG pose (x, y, yaw), wheels straight, moving forward at `speed_mps`.

        Returns its row.

        `vehicle_id` is stored in `ids` (default: the next unused integer).
        """
        _check_finite(x_m=x_m, y_m=y_m, yaw_rad=yaw_rad, speed_mps=speed_mps)
        if vehicle_id is None:
            vehicle_id = self._next_id
        elif vehicle_id in self.ids:
            raise ValueError(f"vehicle_id {vehicle_id} is already in the fleet")
        self._next_id = max(self._next_id, int(vehicle_id)) + 1
        state = (x_m, y_m, float(_wrap(np.float64(yaw_rad))), speed_mps, 0.0, 0.0, 0.0, 0.0, 0.0)
        for name, value in zip(_STATE_NAMES, state, strict=True):
            setattr(self, name, np.append(getattr(self, name), float(value)))
        for name, value in zip(_PARAM_NAMES, _params_of(vtype), strict=True):
            setattr(self, name, np.append(getattr(self, name), value))
        self.extent_m = np.vstack([self.extent_m, np.asarray(vtype.extent_m, dtype=np.float64)])
        self.ids = np.append(self.ids, np.int64(vehicle_id))
        self.types.append(vtype)
        return self.n - 1

    def remove(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """Delete vehicles by row and compact the arrays (later rows shift down).

        Returns `old_to_new`, an int array of the old length mapping each old row
        to its new row, or -1 for removed rows.
        """
        rows = self._rows(rows)
        keep = np.ones(self.n, dtype=bool)
        keep[rows] = False
        for name in _STATE_NAMES + _PARAM_NAMES + ("extent_m", "ids"):
            setattr(self, name, getattr(self, name)[keep])
        self.types = [t for t, k in zip(self.types, keep.tolist(), strict=True) if k]
        old_to_new = np.full(keep.shape[0], -1, dtype=np.int64)
        old_to_new[keep] = np.arange(int(keep.sum()))
        return old_to_new

    def rows_of(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """Current rows of the vehicles with the given ids (ValueError if one is absent)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        order = np.argsort(self.ids)
        pos = np.searchsorted(self.ids, ids, sorter=order)
        pos = np.minimum(pos, max(self.n - 1, 0))
        rows = order[pos] if self.n else np.zeros(0, dtype=np.int64)
        if rows.shape != ids.shape or not np.array_equal(self.ids[rows], ids):
            missing = sorted(set(ids.tolist()) - set(self.ids.tolist()))
            raise ValueError(f"vehicle ids not in the fleet: {missing}")
        return rows

    def set_state(
        self,
        rows: np.ndarray | Sequence[int] | int,
        x_m: float | np.ndarray | None = None,
        y_m: float | np.ndarray | None = None,
        yaw_rad: float | np.ndarray | None = None,
        speed_mps: float | np.ndarray | None = None,
    ) -> None:
        """Teleport and/or set the forward speed of some vehicles; None leaves a value as is.

        Setting `speed_mps` also resets v_lat and yaw rate to the kinematic
        values for the current road-wheel angle and clears the accelerations.
        """
        _check_finite(x_m=x_m, y_m=y_m, yaw_rad=yaw_rad, speed_mps=speed_mps)
        rows = self._rows(rows)
        if x_m is not None:
            self.x_m = self._replaced(self.x_m, rows, x_m)
        if y_m is not None:
            self.y_m = self._replaced(self.y_m, rows, y_m)
        if yaw_rad is not None:
            self.yaw_rad = self._replaced(
                self.yaw_rad, rows, _wrap(np.asarray(yaw_rad, dtype=np.float64))
            )
        if speed_mps is not None:
            v = np.broadcast_to(np.asarray(speed_mps, dtype=np.float64), rows.shape)
            yaw_rate = v * np.tan(self.steer_rad[rows]) * self._inv_wheelbase[rows]
            self.v_long_mps = self._replaced(self.v_long_mps, rows, v)
            self.yaw_rate_rad_s = self._replaced(self.yaw_rate_rad_s, rows, yaw_rate)
            self.v_lat_mps = self._replaced(self.v_lat_mps, rows, yaw_rate * self._lr[rows])
            self.accel_long_mps2 = self._replaced(self.accel_long_mps2, rows, 0.0)
            self._dv_lat_dt = self._replaced(self._dv_lat_dt, rows, 0.0)

    @staticmethod
    def _replaced(arr: np.ndarray, rows: np.ndarray, values: object) -> np.ndarray:
        # Copy-on-write, so arrays read from the fleet earlier stay unchanged snapshots.
        out = arr.copy()
        out[rows] = values
        return out

    def _rows(self, rows: np.ndarray | Sequence[int] | int) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(rows))
        if arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= self.n):
            raise ValueError(f"rows must be integers in [0, {self.n}), got {rows!r}")
        return arr.astype(np.int64, copy=False)

    def step(self, controls: ControlArrays, dt_s: float) -> None:
        """Advance every vehicle by `dt_s` seconds under `controls` (one row per vehicle).

        See the module docstring for the equations.
        """
        if not dt_s > 0.0 or dt_s == float("inf"):
            raise ValueError(f"dt_s must be a positive finite number of seconds, got {dt_s!r}")
        if controls.n != self.n:
            raise ValueError(f"controls have {controls.n} rows, the fleet has {self.n} vehicles")
        dt = float(dt_s)

        # Steering actuator: rate-limited move toward the commanded angle.
        max_turn = self._max_steer_rate * dt
        delta0 = self.steer_rad
        turn = controls.steer * self._max_steer - delta0
        delta = delta0 + np.minimum(np.maximum(turn, -max_turn), max_turn)

        # Longitudinal: propulsive term first, then resistances shrink |v| toward 0.
        v0 = self.v_long_mps
        abs_v0 = np.abs(v0)
        drive = controls.throttle * np.minimum(
            self._max_accel, self._power_per_mass / np.maximum(abs_v0, 1.0)
        )
        v_free = v0 + np.where(controls.reverse, -dt, dt) * drive
        # Reverse gear tops out at MAX_REVERSE_SPEED_MPS (a faster existing speed is kept).
        v_free = np.maximum(v_free, np.minimum(v0, -MAX_REVERSE_SPEED_MPS))
        brake = np.maximum(controls.brake, controls.hand_brake * self._hand_brake_share)
        resist = brake * self._max_brake + self._drag_per_mass * (v0 * v0) + self._rolling_decel
        v = np.copysign(np.maximum(np.abs(v_free) - resist * dt, 0.0), v_free)

        # Kinematic lateral state (CG reference).
        yaw_rate = v * np.tan(delta) * self._inv_wheelbase
        v_lat = yaw_rate * self._lr
        vy0, r0 = self.v_lat_mps, self.yaw_rate_rad_s
        if self.model is DynamicsModel.DYNAMIC:
            v_lat, yaw_rate = self._dynamic_lateral(v, delta, vy0, r0, v_lat, yaw_rate, dt)

        # Pose: mean rates over the step, mid-step heading, chord factor.
        inv_dt = 1.0 / dt
        dyaw = (r0 + yaw_rate) * (0.5 * dt)
        heading = self.yaw_rad + 0.5 * dyaw
        chord = np.sinc(dyaw * (1.0 / _TWO_PI)) * (0.5 * dt)
        vx_mean = (v0 + v) * chord
        vy_mean = (vy0 + v_lat) * chord
        cos_h, sin_h = np.cos(heading), np.sin(heading)
        self.x_m = self.x_m + vx_mean * cos_h - vy_mean * sin_h
        self.y_m = self.y_m + vx_mean * sin_h + vy_mean * cos_h
        self.yaw_rad = _wrap(self.yaw_rad + dyaw)
        self.accel_long_mps2 = (v - v0) * inv_dt
        self._dv_lat_dt = (v_lat - vy0) * inv_dt
        self.v_long_mps = v
        self.v_lat_mps = v_lat
        self.yaw_rate_rad_s = yaw_rate
        self.steer_rad = delta

    def _dynamic_lateral(
        self,
        v: np.ndarray,
        delta: np.ndarray,
        vy0: np.ndarray,
        r0: np.ndarray,
        vy_kin: np.ndarray,
        r_kin: np.ndarray,
        dt: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Backward-Euler step of the linear-tyre (v_lat, r) system, blended with kinematics."""
        abs_v = np.abs(v)
        h_u = dt / np.maximum(abs_v, V_BLEND_LOW_MPS)  # dt / u
        # (I - dt A) s1 = s0 + dt b delta, with A and b from the module docstring.
        m00 = 1.0 + self._c_sum_m * h_u
        m01 = self._c_moment_m * h_u + dt * v
        m10 = self._c_moment_iz * h_u
        m11 = 1.0 + self._c_moment2_iz * h_u
        steer_in = delta * v * h_u
        rhs0 = vy0 + self._cf_m * steer_in
        rhs1 = r0 + self._lf_cf_iz * steer_in
        inv_det = 1.0 / (m00 * m11 - m01 * m10)
        vy_dyn = (m11 * rhs0 - m01 * rhs1) * inv_det
        r_dyn = (m00 * rhs1 - m10 * rhs0) * inv_det
        # Smoothstep weight: 0 (kinematic) at V_BLEND_LOW_MPS, 1 (dynamic) at V_BLEND_HIGH_MPS.
        t = (abs_v - V_BLEND_LOW_MPS) * (1.0 / (V_BLEND_HIGH_MPS - V_BLEND_LOW_MPS))
        t = np.minimum(np.maximum(t, 0.0), 1.0)
        w = t * t * (3.0 - 2.0 * t)
        return vy_kin + w * (vy_dyn - vy_kin), r_kin + w * (r_dyn - r_kin)

    def speed_mps(self) -> np.ndarray:
        """Ground speed of each CG, sqrt(v_long^2 + v_lat^2) (always >= 0), shape (N,)."""
        return np.hypot(self.v_long_mps, self.v_lat_mps)

    def velocity_world(self) -> np.ndarray:
        """World-frame CG velocity, shape (N, 2): R(yaw) [v_long, v_lat]."""
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        vx, vy = self.v_long_mps, self.v_lat_mps
        return np.stack([vx * c - vy * s, vx * s + vy * c], axis=1)

    def acceleration_world(self) -> np.ndarray:
        """World-frame CG acceleration over the last step, shape (N, 2).

        In the body frame a = (dv_long/dt - r v_lat, dv_lat/dt + r v_long): the
        rate of change of the body velocities plus the centripetal part of the
        rotating frame; it is then rotated by yaw.
        """
        r = self.yaw_rate_rad_s
        ax = self.accel_long_mps2 - r * self.v_lat_mps
        ay = self._dv_lat_dt + r * self.v_long_mps
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        return np.stack([ax * c - ay * s, ax * s + ay * c], axis=1)
