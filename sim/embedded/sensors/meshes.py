"""Low-poly triangle meshes for the raycast scene: batched primitives and actor templates.

Everything is plain numpy: vertices ``(V, 3)`` float64 and triangles ``(T, 3)``
int64 in CARLA's frame (x forward, y right, z up). Primitives come in batches
(``n`` boxes, cylinders or icospheres in one call) so a town's props are
built with a handful of array operations. Triangles wind counter-clockwise
seen from outside in the numeric (x, y, z) coordinates, so ``cross(b - a, c - a)``
points outward; the scene does not rely on it (it turns normals toward the ray).

Actor templates (:func:`vehicle_mesh`, :func:`walker_mesh`) carry a part code
per triangle (:class:`Part`) that the scene maps to colours and tags
(:class:`Tag`: the CARLA semantic tags of scene triangles). Box corners come
from :func:`sim.transforms.box_corners_3d`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

from sim.transforms import box_corners_3d

__all__ = [
    "BOX_FACE_TOP",
    "Part",
    "PartMesh",
    "Tag",
    "boxes",
    "concat",
    "cylinders",
    "icospheres",
    "vehicle_mesh",
    "walker_mesh",
]


class Tag:
    """CARLA 0.9.16 semantic tags of scene triangles."""

    UNLABELED = 0
    ROAD = 1
    SIDEWALK = 2
    BUILDING = 3
    WALL = 4
    FENCE = 5
    POLE = 6
    TRAFFIC_LIGHT = 7
    TRAFFIC_SIGN = 8
    VEGETATION = 9
    TERRAIN = 10
    PEDESTRIAN = 12
    RIDER = 13
    CAR = 14
    TRUCK = 15
    BUS = 16
    MOTORCYCLE = 18
    BICYCLE = 19
    ROAD_LINE = 24


class Part(IntEnum):
    """What a triangle of an actor template is (colour and tag follow from it)."""

    BODY = 0
    GLASS = 1
    TYRE = 2
    RIDER = 3  # a motorcycle's rider: CARLA tags it 13 (rider), not 18
    SKIN = 4
    CLOTHES = 5
    TROUSERS = 6


class PartMesh(NamedTuple):
    """A template mesh in its actor frame with a :class:`Part` code per triangle."""

    vertices: np.ndarray  # (V, 3) float64
    triangles: np.ndarray  # (T, 3) int64
    part: np.ndarray  # (T,) uint8


# Two triangles per box face, faces in the order -x, +x, -y, +y, -z, +z; outward winding. Vertex k is corner k of
# ``box_corners_3d``: bits (x, y, z) = (k >> 2 & 1, k >> 1 & 1, k & 1), 1 on the + side of that axis.
_CUBE_TRIS = np.array([
    [0, 1, 3], [0, 3, 2],  # -x
    [4, 6, 7], [4, 7, 5],  # +x
    [0, 4, 5], [0, 5, 1],  # -y
    [2, 3, 7], [2, 7, 6],  # +y
    [0, 2, 6], [0, 6, 4],  # -z
    [1, 5, 7], [1, 7, 3],  # +z
], dtype=np.int64)
BOX_FACE_TOP = slice(10, 12)
"""Triangles of the +z (top) face within one box of :func:`boxes`."""


def _batch_triangles(template: np.ndarray, count: int, vertices_each: int) -> np.ndarray:
    """``count`` copies of a triangle template, each offset by ``vertices_each``."""
    offsets = (np.arange(count, dtype=np.int64) * vertices_each)[:, None, None]
    return (template[None] + offsets).reshape(-1, 3)


def _place(local: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Move (n, k, 3) local vertices to (n, 3) centres; (n * k, 3)."""
    return (local + center[:, None, :]).reshape(-1, 3)


def _as_rows(value, n: int, width: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (n, width)) if width > 1 else \
        np.broadcast_to(np.asarray(value, dtype=float), (n,))


def boxes(center: np.ndarray, half: np.ndarray, yaw_rad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` boxes (8 vertices, 12 triangles each) from centres (n, 3), half sizes (n, 3) and yaws (n,)."""
    center = np.atleast_2d(np.asarray(center, dtype=float))
    n = center.shape[0]
    yaw = np.zeros(n) if yaw_rad is None else _as_rows(yaw_rad, n, 1)
    corners = box_corners_3d(center, yaw, _as_rows(half, n, 3))
    return corners.reshape(-1, 3), _batch_triangles(_CUBE_TRIS, n, 8)


def _ring_template(segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vertical prism: ``segments`` bottom ring vertices, then the top ring; sides and caps."""
    angle = np.arange(segments) * (2 * np.pi / segments)
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    verts = np.concatenate([np.column_stack([ring, np.zeros(segments)]), np.column_stack([ring, np.ones(segments)])])
    k = np.arange(segments)
    k1 = (k + 1) % segments
    sides = np.concatenate([np.stack([k, k1, k1 + segments], 1), np.stack([k, k1 + segments, k + segments], 1)])
    fan = np.arange(1, segments - 1)
    bottom = np.stack([np.zeros_like(fan), fan + 1, fan], 1)
    top = np.stack([np.full_like(fan, segments), fan + segments, fan + 1 + segments], 1)
    return verts, np.concatenate([sides, bottom, top]).astype(np.int64)


def cylinders(center_xy: np.ndarray, z0: np.ndarray, z1: np.ndarray, radius: np.ndarray,
              segments: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vertical prisms with ``segments`` sides from z0 to z1 (a low-poly cylinder each)."""
    if segments < 3:
        raise ValueError(f"segments must be >= 3, got {segments}")
    center_xy = np.atleast_2d(np.asarray(center_xy, dtype=float))
    n = center_xy.shape[0]
    z0, z1, radius = (_as_rows(v, n, 1) for v in (z0, z1, radius))
    unit, tris = _ring_template(segments)
    local = np.empty((n, unit.shape[0], 3))
    local[..., :2] = unit[None, :, :2] * radius[:, None, None]
    local[..., 2] = z0[:, None] + unit[None, :, 2] * (z1 - z0)[:, None]
    center = np.column_stack([center_xy, np.zeros(n)])
    return _place(local, center), _batch_triangles(tris, n, unit.shape[0])


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    t = (1.0 + 5.0 ** 0.5) / 2.0
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=float)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


_ICO_VERTS, _ICO_TRIS = _icosahedron()


def icospheres(center: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` icosahedra (20 triangles) with centres (n, 3) and radii (n,) or per-axis radii (n, 3)."""
    center = np.atleast_2d(np.asarray(center, dtype=float))
    n = center.shape[0]
    radius = np.asarray(radius, dtype=float)
    radius = np.broadcast_to(radius[..., None] if radius.ndim < 2 else radius, (n, 3))
    local = _ICO_VERTS[None] * radius[:, None, :]
    return _place(local, center), _batch_triangles(_ICO_TRIS, n, _ICO_VERTS.shape[0])


def concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Join meshes into one, offsetting triangle indices."""
    if not parts:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    counts = np.cumsum([0] + [v.shape[0] for v, _ in parts[:-1]])
    return (np.concatenate([v for v, _ in parts]),
            np.concatenate([t + off for (_, t), off in zip(parts, counts.tolist())]))


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return boxes(((lo_a + hi_a) / 2)[None], ((hi_a - lo_a) / 2)[None])


def _prism_xz(profile_xz: list[tuple[float, float]], half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """A convex x-z profile (counter-clockwise in (x, z)) extruded over y in [-half_width, half_width]."""
    p = np.asarray(profile_xz, dtype=float)
    k = p.shape[0]
    near = np.column_stack([p[:, 0], np.full(k, -half_width), p[:, 1]])
    far = np.column_stack([p[:, 0], np.full(k, half_width), p[:, 1]])
    i = np.arange(k)
    j = (i + 1) % k
    sides = np.concatenate([np.stack([i, i + k, j + k], 1), np.stack([i, j + k, j], 1)])
    fan = np.arange(1, k - 1)
    caps = np.concatenate([np.stack([np.zeros_like(fan), fan, fan + 1], 1),
                           np.stack([np.full_like(fan, k), fan + 1 + k, fan + k], 1)])
    return np.concatenate([near, far]), np.concatenate([sides, caps]).astype(np.int64)


def _wheels(xs: list[float], ys: list[float], radius: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Wheels as boxes (2 radius long and high, ``width`` wide) resting on the ground.

    Boxes rather than round prisms: actor meshes are rebuilt into a BVH every
    tick, at a cost proportional to their triangles.
    """
    centers = np.array([[x, y, radius] for x in xs for y in ys], dtype=float)
    return boxes(centers, (radius, width / 2, radius))


def _part_mesh(pieces: list[tuple[tuple[np.ndarray, np.ndarray], Part]]) -> PartMesh:
    verts, tris = concat([mesh for mesh, _ in pieces])
    part = np.concatenate([np.full(mesh[1].shape[0], int(code), dtype=np.uint8) for mesh, code in pieces])
    return PartMesh(verts, tris, part)


VEHICLE_BODIES = ("car", "van", "truck", "bus", "motorcycle")


def vehicle_mesh(extent_m: tuple[float, float, float] | np.ndarray, body: str = "car") -> PartMesh:
    """A low-poly vehicle filling the box of half sizes ``extent_m``, origin on the ground under its centre.

    ``body`` is one of :data:`VEHICLE_BODIES`. The front of the lower body is
    the plane x = +extent_x (so a ray from ahead meets the box front), the
    roof reaches z = 2 * extent_z. Wheels are boxes.
    """
    ex, ey, ez = (float(v) for v in extent_m)
    if not all(np.isfinite(v) and v > 0 for v in (ex, ey, ez)):
        raise ValueError(f"extent_m must be three positive half sizes, got {tuple(extent_m)}")
    if body not in VEHICLE_BODIES:
        raise ValueError(f"unknown vehicle body {body!r}; valid: {VEHICLE_BODIES}")
    h = 2.0 * ez
    if body == "motorcycle":
        r = min(0.3, 0.35 * ex)
        return _part_mesh([
            (_box((-0.75 * ex, -0.6 * ey, r), (0.75 * ex, 0.6 * ey, 0.55 * h)), Part.BODY),
            (_wheels([-ex + r, ex - r], [0.0], r, min(0.2, ey)), Part.TYRE),
            (_box((-0.35 * ex, -0.8 * ey, 0.55 * h), (0.15 * ex, 0.8 * ey, 0.85 * h)), Part.RIDER),
            (_box((-0.2 * ex, -0.4 * ey, 0.85 * h), (0.05 * ex, 0.4 * ey, h)), Part.RIDER),
        ])
    r = min(0.35 if body == "car" else 0.5, 0.22 * h)
    clearance = 0.6 * r
    wheel_x = [-0.62 * ex, 0.62 * ex] if body != "bus" else [-0.55 * ex, 0.65 * ex]
    wheels = (_wheels(wheel_x, [-ey + 0.15, ey - 0.15], r, 0.25), Part.TYRE)
    if body == "car":
        shoulder = 0.55 * h
        return _part_mesh([
            (_box((-ex, -ey, clearance), (ex, ey, shoulder)), Part.BODY),
            (_prism_xz([(-0.8 * ex, shoulder), (0.35 * ex, shoulder), (0.05 * ex, h), (-0.6 * ex, h)], 0.85 * ey),
             Part.GLASS),
            wheels,
        ])
    if body == "van":
        shoulder = 0.5 * h
        return _part_mesh([
            (_box((-ex, -ey, clearance), (ex, ey, shoulder)), Part.BODY),
            (_prism_xz([(-ex, shoulder), (0.85 * ex, shoulder), (0.55 * ex, h), (-ex, h)], 0.97 * ey), Part.BODY),
            (_box((0.62 * ex, -0.9 * ey, 0.62 * h), (0.72 * ex, 0.9 * ey, 0.9 * h)), Part.GLASS),
            wheels,
        ])
    if body == "truck":
        return _part_mesh([
            (_box((-ex, -0.8 * ey, clearance), (ex, 0.8 * ey, clearance + 0.35)), Part.BODY),  # chassis
            (_box((0.45 * ex, -ey, clearance), (ex, ey, 0.55 * h)), Part.BODY),  # cab, lower
            (_box((0.45 * ex, -0.95 * ey, 0.55 * h), (0.95 * ex, 0.95 * ey, 0.8 * h)), Part.GLASS),  # cab, windows
            (_box((-ex, -ey, clearance + 0.35), (0.4 * ex, ey, h)), Part.BODY),  # cargo box
            wheels,
        ])
    # bus
    return _part_mesh([
        (_box((-ex, -ey, clearance), (ex, ey, 0.45 * h)), Part.BODY),
        (_box((-0.98 * ex, -0.98 * ey, 0.45 * h), (0.98 * ex, 0.98 * ey, 0.85 * h)), Part.GLASS),
        (_box((-ex, -ey, 0.85 * h), (ex, ey, h)), Part.BODY),
        wheels,
    ])


def walker_mesh(extent_m: tuple[float, float, float] | np.ndarray) -> PartMesh:
    """A blocky pedestrian (two legs, torso with arms, head) filling the box ``extent_m``, origin at its centre."""
    ex, ey, ez = (float(v) for v in extent_m)
    if not all(np.isfinite(v) and v > 0 for v in (ex, ey, ez)):
        raise ValueError(f"extent_m must be three positive half sizes, got {tuple(extent_m)}")
    h = 2.0 * ez
    hip, neck = -ez + 0.5 * h, -ez + 0.82 * h
    gap, leg_w = 0.1 * ey, 0.55 * ey
    return _part_mesh([
        (_box((-0.4 * ex, -gap - leg_w, -ez), (0.4 * ex, -gap, hip)), Part.TROUSERS),
        (_box((-0.4 * ex, gap, -ez), (0.4 * ex, gap + leg_w, hip)), Part.TROUSERS),
        (_box((-0.5 * ex, -ey, hip), (0.5 * ex, ey, neck)), Part.CLOTHES),
        (_box((-0.45 * ex, -0.4 * ey, neck), (0.45 * ex, 0.4 * ey, ez)), Part.SKIN),
    ])
