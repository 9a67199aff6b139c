"""Rigid transforms in CARLA's frame: rotation matrices, composing mounts, oriented boxes, the ego frame.

Frames and rotations
--------------------
Poses use CARLA's frame (x forward, y right, z up; left-handed) and the
``carla.Rotation`` angles in radians: pitch (nose up > 0), yaw (x toward +y > 0)
and roll (right side down > 0). The rotation matrix of (pitch p, yaw y, roll r)
is Unreal's ``FRotationMatrix`` (and ``carla.Transform.get_matrix()``): its
columns are the body's forward, right and up axes in world coordinates,

    forward = ( cp cy,               cp sy,               sp    )
    right   = ( sr sp cy - cr sy,    sr sp sy + cr cy,   -sr cp )
    up      = (-cr sp cy - sr sy,   -cr sp sy + sr cy,    cr cp )

which, read as ordinary right-handed matrices on CARLA's numbers, is
``Rz(yaw) @ Ry(-pitch) @ Rx(-roll)``. A point ``p`` of the body frame lies at
``location + R @ p`` in the world; a world vector ``v`` reads ``R.T @ v`` in the
body frame. So a sensor mounted at x = 1 m on a parent with yaw +90 deg sits at
world y = +1 m.

Rotations as arrays are always ``(pitch, yaw, roll)`` [rad], the order of
``WorldSnapshot.rotation_rad`` and of ``carla.Rotation``'s constructor.
"""

from __future__ import annotations

import math

import numpy as np

from sim.api import Pose

__all__ = [
    "body_to_world_xy", "box_corners", "box_corners_3d", "check_boxes", "compose_mount", "mount_matrix",
    "rotation_from_matrix", "rotation_matrix", "sensor_world_pose", "world_to_ego",
]


def rotation_matrix(pitch_rad: float, yaw_rad: float, roll_rad: float) -> np.ndarray:
    """The (3, 3) rotation matrix of a CARLA rotation; columns: forward, right, up (module docstring)."""
    cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
    cy, sy = math.cos(yaw_rad), math.sin(yaw_rad)
    cr, sr = math.cos(roll_rad), math.sin(roll_rad)
    return np.array([
        [cp * cy, sr * sp * cy - cr * sy, -cr * sp * cy - sr * sy],
        [cp * sy, sr * sp * sy + cr * cy, -cr * sp * sy + sr * cy],
        [sp, -sr * cp, cr * cp],
    ])


def rotation_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) [rad] of a rotation matrix built as :func:`rotation_matrix` does.

    Pitch is in [-pi/2, pi/2], yaw and roll in (-pi, pi]. At pitch +-pi/2
    (gimbal lock) roll is set to 0 and yaw absorbs the rest.
    """
    (m00, m01, _), (m10, m11, _), (m20, m21, m22) = np.asarray(matrix, dtype=float).tolist()
    pitch = math.asin(min(max(m20, -1.0), 1.0))
    if abs(m20) < 1.0 - 1e-12:
        yaw = math.atan2(m10, m00)
        roll = math.atan2(-m21, m22)
    else:
        yaw = math.atan2(-m01, m11)
        roll = 0.0
    return np.array([pitch, yaw, roll])


def sensor_world_pose(parent_location: np.ndarray, parent_rotation: np.ndarray,
                      relative: Pose) -> tuple[np.ndarray, np.ndarray]:
    """World (location (3,) [m], rotation (pitch, yaw, roll) (3,) [rad]) of a sensor mounted on a parent.

    ``parent_rotation`` is (pitch, yaw, roll) [rad] as in ``WorldSnapshot.rotation_rad``.
    """
    parent_location = np.asarray(parent_location, dtype=float)
    parent_rotation = np.asarray(parent_rotation, dtype=float)
    for name, value in (("parent_location", parent_location), ("parent_rotation", parent_rotation)):
        if value.shape != (3,) or not np.isfinite(value).all():
            raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
    location, rotation, _ = compose_mount(parent_location, parent_rotation, relative.location, mount_matrix(relative))
    return location, rotation


def mount_matrix(relative: Pose) -> np.ndarray | None:
    """The mount's rotation matrix, or None for an unrotated mount (the common case, composed faster)."""
    if relative.pitch_rad == relative.yaw_rad == relative.roll_rad == 0.0:
        return None
    return rotation_matrix(relative.pitch_rad, relative.yaw_rad, relative.roll_rad)


def compose_mount(parent_location: np.ndarray, parent_rotation: np.ndarray, rel_location: np.ndarray,
             rel_matrix: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor world location, rotation and rotation matrix from the parent's pose and the mount."""
    pitch, yaw, roll = parent_rotation.tolist()
    parent_matrix = rotation_matrix(pitch, yaw, roll)
    location = parent_location + parent_matrix @ rel_location
    if rel_matrix is None:
        return location, np.array([pitch, yaw, roll]), parent_matrix
    matrix = parent_matrix @ rel_matrix
    return location, rotation_from_matrix(matrix), matrix


def world_to_ego(points_xy: np.ndarray, ego_xy: np.ndarray, ego_yaw_rad: float) -> np.ndarray:
    """World points (..., 2) [m] in the ego's planar frame (x forward, y right; CARLA's axes), same shape.

    The point is moved by ``-ego_xy`` and turned by ``-ego_yaw_rad``. For a
    vector (a velocity), pass ``ego_xy = (0, 0)``: it is only turned.
    """
    points = np.asarray(points_xy, dtype=float)
    if points.shape[-1:] != (2,):
        raise ValueError(f"points_xy must have shape (..., 2), got {points.shape}")
    dx = points[..., 0] - float(ego_xy[0])
    dy = points[..., 1] - float(ego_xy[1])
    cos, sin = math.cos(ego_yaw_rad), math.sin(ego_yaw_rad)
    return np.stack([dx * cos + dy * sin, -dx * sin + dy * cos], axis=-1)


_BOX_SIGNS_XY = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])
_BOX_SIGNS_XYZ = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=np.float64) * 2.0 - 1.0


def body_to_world_xy(local_xy: np.ndarray, centre_xy: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
    """Points (N, K, 2) given in N bodies' frames (x forward, y right) as world (x, y), for bodies at
    ``centre_xy`` (N, 2) heading ``yaw_rad`` (N,)."""
    cos, sin = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    lx, ly = local_xy[..., 0], local_xy[..., 1]
    return np.stack([centre_xy[:, None, 0] + lx * cos - ly * sin,
                     centre_xy[:, None, 1] + lx * sin + ly * cos], axis=-1)


def check_boxes(centre_xy: np.ndarray, yaw_rad: np.ndarray, half_extent_xy: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oriented boxes as float arrays: centres (N, 2), yaws (N,), half extents (N, 2); ``ValueError`` naming the
    argument on a wrong shape or a negative extent."""
    centre = np.asarray(centre_xy, dtype=np.float64)
    yaw = np.asarray(yaw_rad, dtype=np.float64)
    half = np.asarray(half_extent_xy, dtype=np.float64)
    if centre.ndim != 2 or centre.shape[1] != 2:
        raise ValueError(f"centre_xy must have shape (N, 2), got {centre.shape}")
    n = centre.shape[0]
    if yaw.shape != (n,):
        raise ValueError(f"yaw_rad must have shape ({n},), got {yaw.shape}")
    if half.shape != (n, 2):
        raise ValueError(f"half_extent_xy must have shape ({n}, 2), got {half.shape}")
    if n and not half.min() >= 0.0:
        raise ValueError("half_extent_xy must be non-negative")
    return centre, yaw, half


def box_corners(centre_xy: np.ndarray, yaw_rad: np.ndarray, half_extent_xy: np.ndarray) -> np.ndarray:
    """Corners (N, 4, 2) of oriented boxes: front-left, front-right, rear-right, rear-left.

    "Left" is -y in the box frame (CARLA: y points right). ``ValueError`` on
    mismatched shapes or negative extents.
    """
    centre, yaw, half = check_boxes(centre_xy, yaw_rad, half_extent_xy)
    return body_to_world_xy(_BOX_SIGNS_XY[None, :, :] * half[:, None, :], centre, yaw)


def box_corners_3d(centre_xyz: np.ndarray, yaw_rad: np.ndarray, half_extent_xyz: np.ndarray) -> np.ndarray:
    """Corners (N, 8, 3) of boxes turned by ``yaw_rad`` about z; corner k has bits (x, y, z) =
    (k >> 2 & 1, k >> 1 & 1, k & 1): 0 the low side, 1 the high side of that axis."""
    centre = np.asarray(centre_xyz, dtype=np.float64)
    local = _BOX_SIGNS_XYZ[None, :, :] * np.asarray(half_extent_xyz, dtype=np.float64)[:, None, :]
    corners = np.empty_like(local)
    corners[..., :2] = body_to_world_xy(local[..., :2], centre[:, :2], np.asarray(yaw_rad, dtype=np.float64))
    corners[..., 2] = centre[:, None, 2] + local[..., 2]
    return corners
