"""Oriented-box collision: a k-d tree broad phase and a vectorised separating-axis narrow phase.

Boxes live in CARLA's world frame (x forward, y right, positive yaw turns x toward +y).
Each box is given by its centre, yaw (radians) and half extents along its own x and y axes,
and optionally its height interval ``z_range_m`` (N, 2) = (bottom, top): boxes whose height
intervals do not overlap (a car on a bridge and one on the road below) never touch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from sim.transforms import check_boxes

__all__ = ["Contacts", "VerletPairs", "candidate_pairs", "find_contacts", "overlap_vertically"]

_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Contacts:
    """Overlapping box pairs found by `find_contacts`.

    pairs: (K, 2) int64 box indices with i < j when the pairs came from the broad phase.
    normal_xy: (K, 2) unit vectors pointing from the first box of each pair to the second.
    depth_m: (K,) penetration depth along the normal (> 0).
    """

    pairs: np.ndarray
    normal_xy: np.ndarray
    depth_m: np.ndarray

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


def _check_z_range(z_range_m: np.ndarray | None, n: int) -> np.ndarray | None:
    if z_range_m is None:
        return None
    z = np.asarray(z_range_m, dtype=np.float64)
    if z.shape != (n, 2):
        raise ValueError(f"z_range_m must have shape ({n}, 2) (bottom, top), got {z.shape}")
    if n and not (np.isfinite(z).all() and (z[:, 1] >= z[:, 0]).all()):
        raise ValueError("z_range_m must be finite with bottom <= top")
    return z


def overlap_vertically(pairs: np.ndarray, z_range_m: np.ndarray) -> np.ndarray:
    """Boolean (K,): whether the height intervals (bottom, top) of each pair's boxes overlap.

    Intervals that only touch do not overlap (as boxes that merely touch are not in contact).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    z = np.asarray(z_range_m, dtype=np.float64)
    lo = np.maximum(z[pairs[:, 0], 0], z[pairs[:, 1], 0])
    hi = np.minimum(z[pairs[:, 0], 1], z[pairs[:, 1], 1])
    return hi > lo


def candidate_pairs(center_xy: np.ndarray, radius_m: np.ndarray, z_range_m: np.ndarray | None = None) -> np.ndarray:
    """Broad phase: index pairs (K, 2) int64, i < j, whose bounding circles overlap or touch.

    A k-d tree finds all pairs within twice the largest radius (near-linear in N for
    sparse layouts); pairs farther apart than the sum of their own radii are then culled,
    and so are pairs whose height intervals ``z_range_m`` (N, 2), if given, do not overlap.
    """
    center = np.asarray(center_xy, dtype=np.float64)
    radius = np.asarray(radius_m, dtype=np.float64)
    if center.ndim != 2 or center.shape[1] != 2:
        raise ValueError(f"center_xy must have shape (N, 2), got {center.shape}")
    if radius.shape != (center.shape[0],):
        raise ValueError(f"radius_m must have shape ({center.shape[0]},), got {radius.shape}")
    if center.shape[0] < 2:
        return _EMPTY_PAIRS.copy()
    r_max = float(radius.max())
    if not (radius.min() >= 0.0 and np.isfinite(r_max)):
        raise ValueError("radius_m must be finite and non-negative")
    tree = cKDTree(center, balanced_tree=False, compact_nodes=False)
    pairs = tree.query_pairs(2.0 * r_max, output_type="ndarray")
    if pairs.shape[0] == 0:
        return _EMPTY_PAIRS.copy()
    i, j = pairs[:, 0], pairs[:, 1]
    delta = center[j] - center[i]
    reach = radius[i] + radius[j]
    keep = np.einsum("ij,ij->i", delta, delta) <= reach * reach
    z = _check_z_range(z_range_m, center.shape[0])
    if z is not None:
        keep &= overlap_vertically(pairs, z)
    return pairs[keep].astype(np.int64, copy=False)


def find_contacts(
    center_xy: np.ndarray,
    yaw_rad: np.ndarray,
    half_extent_xy: np.ndarray,
    pairs: np.ndarray | None = None,
    z_range_m: np.ndarray | None = None,
) -> Contacts:
    """Narrow phase: separating-axis test on candidate pairs; returns only overlapping pairs.

    Two rectangles overlap iff their projections overlap on all four box axes. The axis of
    minimum penetration gives the contact normal (pointing from the first box to the second)
    and the depth. Boxes that merely touch (depth 0) are not in contact. If `pairs` is None
    the broad phase runs with radius = hypot of the half extents. With ``z_range_m`` (N, 2),
    the (bottom, top) of each box, pairs whose height intervals do not overlap are never in
    contact.
    """
    center, yaw, half = check_boxes(center_xy, yaw_rad, half_extent_xy)
    z_range = _check_z_range(z_range_m, center.shape[0])
    if pairs is None:
        pairs = candidate_pairs(center, np.hypot(half[:, 0], half[:, 1]), z_range)
    else:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and (pairs.min() < 0 or pairs.max() >= center.shape[0]):
            raise ValueError(f"pairs index out of range for {center.shape[0]} boxes")
        if z_range is not None:
            pairs = pairs[overlap_vertically(pairs, z_range)]
    if pairs.shape[0] == 0:
        return Contacts(_EMPTY_PAIRS.copy(), np.zeros((0, 2)), np.zeros(0))

    # 2-D vectors as complex numbers: a box's x axis is e^{i yaw}, its y axis i e^{i yaw};
    # multiplying by conj(e^{i yaw}) expresses a vector in that box's frame.
    i, j = pairs[:, 0], pairs[:, 1]
    pos = np.ascontiguousarray(center).view(np.complex128)[:, 0]
    back = np.exp(-1j * yaw)
    back_a, back_b = back[i], back[j]
    delta = pos[j] - pos[i]
    dist_a = _as_xy(delta * back_a)  # centre offset along (x_a, y_a)
    dist_b = _as_xy(delta * back_b)  # centre offset along (x_b, y_b)
    cos_sin = np.abs(_as_xy(back_a / back_b))  # |cos|, |sin| of yaw_b - yaw_a
    sin_cos = cos_sin[:, ::-1]
    half_pairs = half[pairs]  # (K, 2 boxes, 2)
    half_a, half_b = half_pairs[:, 0], half_pairs[:, 1]
    # Projected half-length of both boxes on each axis, minus the centre offset on it.
    overlap_a = half_a + half_b[:, 0:1] * cos_sin + half_b[:, 1:2] * sin_cos - np.abs(dist_a)
    overlap_b = half_b + half_a[:, 0:1] * cos_sin + half_a[:, 1:2] * sin_cos - np.abs(dist_b)
    depth = np.minimum(
        np.minimum(overlap_a[:, 0], overlap_a[:, 1]), np.minimum(overlap_b[:, 0], overlap_b[:, 1])
    )
    hit = np.flatnonzero(depth > 0.0)
    if hit.size == 0:
        return Contacts(_EMPTY_PAIRS.copy(), np.zeros((0, 2)), np.zeros(0))
    # Minimum-penetration axis (columns x_a, y_a, x_b, y_b), oriented from box a to box b.
    best = np.concatenate([overlap_a[hit], overlap_b[hit]], axis=1).argmin(axis=1)
    along = np.concatenate([dist_a[hit], dist_b[hit]], axis=1)[np.arange(hit.size), best]
    x_axis = np.where(best < 2, 1.0 / back_a[hit], 1.0 / back_b[hit])  # e^{i yaw}
    axis = x_axis * np.where(best % 2 == 1, 1j, 1.0)
    normal = _as_xy(np.where(along < 0.0, -axis, axis))
    return Contacts(pairs[hit], normal, depth[hit])


def _as_xy(z: np.ndarray) -> np.ndarray:
    """(K,) complex -> (K, 2) float view of (real, imag)."""
    return z.view(np.float64).reshape(-1, 2)


class VerletPairs:
    """Broad-phase pairs reused across ticks (a Verlet neighbour list); never misses a contact.

    Pairs whose circles are within ``skin_m`` of touching are found with the
    k-d tree and kept until some box has moved more than ``skin_m / 2`` since:
    until then any two boxes whose circles overlap now were already listed.
    Each call returns only the listed pairs whose circles overlap now.
    Call :meth:`invalidate` whenever boxes are added, removed or reordered.
    """

    def __init__(self, skin_m: float = 3.0) -> None:
        if not skin_m > 0:
            raise ValueError(f"skin_m must be positive, got {skin_m}")
        self.skin_m = skin_m
        self.rebuilds = 0
        self._center: np.ndarray | None = None
        self._pairs = _EMPTY_PAIRS

    def invalidate(self) -> None:
        """Forget the list; the next call rebuilds it."""
        self._center = None

    def pairs(self, center_xy: np.ndarray, radius_m: np.ndarray, z_range_m: np.ndarray | None = None
              ) -> np.ndarray:
        """Index pairs (K, 2), i < j, whose bounding circles overlap or touch now (and whose
        height intervals ``z_range_m`` (N, 2), if given, overlap)."""
        center = np.asarray(center_xy, dtype=np.float64)
        radius = np.asarray(radius_m, dtype=np.float64)
        stale = self._center is None or self._center.shape != center.shape
        if not stale:
            moved = center - self._center
            stale = float(np.einsum("ij,ij->i", moved, moved).max(initial=0.0)) > (0.5 * self.skin_m) ** 2
        if stale:
            self._pairs = candidate_pairs(center, radius + 0.5 * self.skin_m)
            self._center = center.copy()
            self.rebuilds += 1
        if self._pairs.shape[0] == 0:
            return self._pairs
        i, j = self._pairs[:, 0], self._pairs[:, 1]
        delta = center[j] - center[i]
        reach = radius[i] + radius[j]
        keep = np.einsum("ij,ij->i", delta, delta) <= reach * reach
        z = _check_z_range(z_range_m, center.shape[0])
        if z is not None:
            keep &= overlap_vertically(self._pairs, z)
        return self._pairs[keep]
