"""Sensor data onto the BEV grid: LiDAR and radar rasters, and the camera's inverse perspective mapping.

Frames. Everything here is in CARLA's axes: the ego frame has its origin at
the vehicle's origin (on the ground, under the box), x forward, y right, z
up; a sensor's mount (:class:`sim.api.Pose`, relative to the vehicle) takes
points from the sensor frame into the ego frame. The BEV grid is
:class:`av_stack.messages.BevSpec`'s: ``col = cx + y * ppm``, ``row = cy - x *
ppm`` (the ego's heading up). ``scale`` coarsens a grid: the network's feature
maps are the BEV at ``1 / scale`` resolution.

The camera is lifted by inverse perspective mapping: the centre of every BEV
cell on the ground plane (z = 0 in the ego frame) is projected into the image
with the camera's intrinsics and mount; the network samples its image
features there (``torch.nn.functional.grid_sample``). Cells behind the camera
or outside the image are masked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from av_stack.messages import BevSpec
from sim.api import Pose
from sim.transforms import rotation_matrix

LIDAR_CHANNELS = ("lidar_count", "lidar_max_z", "lidar_min_z", "lidar_intensity")
RADAR_CHANNELS = ("radar_count", "radar_velocity")
_MAX_Z_M = 4.0
_MIN_Z_M = -1.0


@dataclass(frozen=True)
class NetworkGrid:
    """The grid the network sees: the shared BEV grid (the planner's), or a larger one around it so that
    detection reaches ``range_m`` on every side of the ego (the issue allows a wider range for detection as
    long as the output is delivered on the shared grid).

    ``spec`` is a square grid at the shared grid's resolution, centred on the ego's column, with the shared
    grid a window in it: the shared grid's coarse cell (r, c) is the network's (``row0`` + r, ``col0`` + c).
    """

    spec: BevSpec
    scale: int
    row0: int = 0
    col0: int = 0

    @property
    def cells(self) -> int:
        """Side of the network's feature grid in cells."""
        return self.spec.config.size_px // self.scale


def network_grid(shared: BevSpec, scale: int, range_m: float | None = None) -> NetworkGrid:
    """The :class:`NetworkGrid` of a model with feature ``scale`` on the ``shared`` grid: the shared grid itself
    when ``range_m`` is None, else the shared grid padded by whole cells until it reaches ``range_m`` (to within
    a cell) to the left, right and back of the ego (and keeps at least the shared grid's reach ahead)."""
    c = shared.config
    size = c.size_px
    if size % scale:
        raise ValueError(f"BEV size {size} px is not a multiple of scale {scale}")
    if range_m is None:
        return NetworkGrid(shared, scale)
    reach_px = range_m * c.pixels_per_m
    side = max(0, math.ceil((reach_px - size // 2) / scale))  # cells added left and right
    ego_row = size - 1 - c.ego_from_bottom_px
    top = min(2 * side, max(0, math.ceil((reach_px - ego_row) / scale)))  # cells added ahead
    bottom = 2 * side - top  # the rest behind, so the grid stays square
    config = replace(c, size_px=size + 2 * side * scale, ego_from_bottom_px=c.ego_from_bottom_px + bottom * scale)
    return NetworkGrid(BevSpec(config), scale, row0=top, col0=side)


def mount_transform(mount: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(R (3, 3), t (3,)) taking sensor-frame points to the ego frame: ``p_ego = R @ p + t``."""
    return (rotation_matrix(mount.pitch_rad, mount.yaw_rad, mount.roll_rad),
            np.array([mount.x_m, mount.y_m, mount.z_m], dtype=np.float64))


def grid_shape(spec: BevSpec, scale: int = 1) -> tuple[int, int]:
    """(H, W) of the BEV grid coarsened ``scale`` times."""
    size = spec.config.size_px
    if size % scale:
        raise ValueError(f"BEV size {size} px is not a multiple of scale {scale}")
    return size // scale, size // scale


def ego_to_cell(xy_m: np.ndarray, spec: BevSpec, scale: int = 1) -> np.ndarray:
    """(N, 2) ego-frame points to (N, 2) integer (row, col) cells of the grid coarsened ``scale`` times
    (cells outside the grid included; callers mask them)."""
    pixel = spec.ego_to_pixel(xy_m)  # (col, row) at full resolution, pixel centres at integers
    return np.stack([np.floor((pixel[:, 1] + 0.5) / scale), np.floor((pixel[:, 0] + 0.5) / scale)],
                    axis=1).astype(np.int64)


def cell_centres_ego(spec: BevSpec, scale: int = 1) -> np.ndarray:
    """(H, W, 2) ego-frame (x, y) of every cell centre of the grid coarsened ``scale`` times."""
    c = spec.config
    height, width = grid_shape(spec, scale)
    rows = (np.arange(height) + 0.5) * scale - 0.5
    cols = (np.arange(width) + 0.5) * scale - 0.5
    cx, cy = c.size_px // 2, c.size_px - 1 - c.ego_from_bottom_px
    x = (cy - rows)[:, None] / c.pixels_per_m * np.ones((1, width))
    y = (cols - cx)[None, :] / c.pixels_per_m * np.ones((height, 1))
    return np.stack([x, y], axis=-1)


def _cells(points_ego: np.ndarray, spec: BevSpec, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat cell index of each point and the mask of points inside the grid."""
    height, width = grid_shape(spec, scale)
    cells = ego_to_cell(points_ego[:, :2], spec, scale)
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < height) & (cells[:, 1] >= 0) & (cells[:, 1] < width)
    return cells[:, 0] * width + cells[:, 1], inside


def lidar_points_ego(points: np.ndarray, mount: Pose, mirror: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """((N, 3) ego-frame xyz, (N,) intensity) of a LiDAR sweep (CARLA rows x, y, z, intensity in the sensor
    frame); ``mirror``: the scene mirrored left to right (ego-frame y negated)."""
    rows = np.asarray(points, dtype=np.float64).reshape(-1, points.shape[-1] if points.ndim == 2 else 4)
    rotation, translation = mount_transform(mount)
    ego = rows[:, :3] @ rotation.T + translation
    if mirror:
        ego[:, 1] *= -1.0
    return ego, rows[:, 3]


def lidar_bev(points: np.ndarray, mount: Pose, spec: BevSpec, scale: int = 1, mirror: bool = False) -> np.ndarray:
    """(4, H, W) float32 LiDAR raster (:data:`LIDAR_CHANNELS`): log(1 + points), highest and lowest z [m]
    above the ego's ground (clipped to [-1, 4], 0 where empty) and mean intensity per cell. ``mirror``: the
    scene mirrored left to right (ego-frame y negated; a training augmentation)."""
    return lidar_raster(*lidar_points_ego(points, mount, mirror), spec, scale)


def lidar_raster(ego: np.ndarray, intensity: np.ndarray, spec: BevSpec, scale: int = 1,
                 channels_last: bool = False) -> np.ndarray:
    """:func:`lidar_bev` of points already in the ego frame (:func:`lidar_points_ego`); ``channels_last``: the
    (4, H, W) array is a view of an (H, W, 4) one (what a channels-last tensor takes without a copy)."""
    height, width = grid_shape(spec, scale)
    buffer, out = _raster(4, height * width, channels_last)
    if ego.shape[0] == 0:
        return _shaped(buffer, out, height, width)
    index, inside = _cells(ego, spec, scale)
    index, z, intensity = index[inside], np.clip(ego[inside, 2], _MIN_Z_M, _MAX_Z_M), intensity[inside]
    count = np.bincount(index, minlength=height * width).astype(np.float32)
    out[0] = np.log1p(count)
    max_z = np.full(height * width, -np.inf)
    np.maximum.at(max_z, index, z)
    min_z = np.full(height * width, np.inf)
    np.minimum.at(min_z, index, z)
    hit = count > 0
    out[1, hit] = max_z[hit]
    out[2, hit] = min_z[hit]
    out[3, hit] = np.bincount(index, weights=intensity, minlength=height * width)[hit] / count[hit]
    return _shaped(buffer, out, height, width)


def _raster(channels: int, cells: int, channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """(buffer, its (channels, cells) view to fill): the buffer is (cells, channels) when ``channels_last``."""
    if channels_last:
        buffer = np.zeros((cells, channels), np.float32)
        return buffer, buffer.T
    buffer = np.zeros((channels, cells), np.float32)
    return buffer, buffer


def _shaped(buffer: np.ndarray, out: np.ndarray, height: int, width: int) -> np.ndarray:
    """The filled raster as (C, H, W): a transposed view of (H, W, C) for a channels-last buffer."""
    if buffer is out:
        return out.reshape(-1, height, width)
    return buffer.reshape(height, width, -1).transpose(2, 0, 1)


def radar_bev(rows: np.ndarray, mount: Pose, spec: BevSpec, scale: int = 1, mirror: bool = False,
              channels_last: bool = False) -> np.ndarray:
    """(2, H, W) float32 radar raster (:data:`RADAR_CHANNELS`): detections per cell and their mean radial
    velocity [m/s] (CARLA's radar rows: velocity, azimuth, altitude, depth); ``mirror`` and ``channels_last``
    as :func:`lidar_bev` and :func:`lidar_raster`."""
    height, width = grid_shape(spec, scale)
    buffer, out = _raster(2, height * width, channels_last)
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    if data.shape[0] == 0:
        return _shaped(buffer, out, height, width)
    velocity, azimuth, altitude, depth = data.T
    sensor = np.stack([depth * np.cos(altitude) * np.cos(azimuth), depth * np.cos(altitude) * np.sin(azimuth),
                       depth * np.sin(altitude)], axis=1)
    rotation, translation = mount_transform(mount)
    ego = sensor @ rotation.T + translation
    if mirror:
        ego[:, 1] *= -1.0
    index, inside = _cells(ego, spec, scale)
    index, velocity = index[inside], velocity[inside]
    count = np.bincount(index, minlength=height * width).astype(np.float32)
    out[0] = count
    hit = count > 0
    out[1, hit] = np.bincount(index, weights=velocity, minlength=height * width)[hit] / count[hit]
    return _shaped(buffer, out, height, width)


def mirror_bev(bev: np.ndarray, spec: BevSpec) -> np.ndarray:
    """A full-resolution BEV (..., S, S) mirrored left to right about the ego's column ``cx``: pixel ``col``
    goes to ``2 cx - col`` (columns with no source are zero)."""
    cx = spec.config.size_px // 2
    out = np.zeros_like(bev)
    width = bev.shape[-1]
    cols = np.arange(width)
    source = 2 * cx - cols
    valid = (source >= 0) & (source < width)
    out[..., valid] = bev[..., source[valid]]
    return out


def is_mirror_symmetric(mount: Pose, tolerance: float = 1e-3) -> bool:
    """Whether a sensor sits on the ego's centre line looking straight along it (y = 0, yaw = roll = 0), so
    that its data mirror with the scene (the camera image flips left to right)."""
    return abs(mount.y_m) < tolerance and abs(mount.yaw_rad) < tolerance and abs(mount.roll_rad) < tolerance


def camera_ground_grid(intrinsics: np.ndarray, image_size: tuple[int, int], mount: Pose, spec: BevSpec,
                       scale: int = 1, max_range_m: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Where each BEV cell's ground point falls in the image: (H, W, 2) normalised (u, v) in [-1, 1] as
    ``grid_sample`` reads them (align_corners=False), and the (H, W) bool mask of cells the camera sees."""
    width_px, height_px = image_size
    ground = cell_centres_ego(spec, scale)
    points = np.concatenate([ground, np.zeros((*ground.shape[:2], 1))], axis=-1).reshape(-1, 3)
    rotation, translation = mount_transform(mount)
    sensor = (points - translation) @ rotation  # R^T (p - t), row-wise
    forward, right, up = sensor[:, 0], sensor[:, 1], sensor[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics[0, 0] * right / forward + intrinsics[0, 2]
        v = intrinsics[1, 1] * (-up) / forward + intrinsics[1, 2]
    visible = (forward > 0.5) & (u >= 0) & (u <= width_px - 1) & (v >= 0) & (v <= height_px - 1)
    visible &= np.hypot(ground[..., 0], ground[..., 1]).reshape(-1) <= max_range_m
    grid = np.stack([(u + 0.5) / width_px * 2.0 - 1.0, (v + 0.5) / height_px * 2.0 - 1.0], axis=-1)
    grid[~visible] = -2.0  # outside: grid_sample gives zeros there (padding_mode="zeros")
    height, width = grid_shape(spec, scale)
    return grid.reshape(height, width, 2).astype(np.float32), visible.reshape(height, width)
