"""Pinhole cameras in CARLA's layouts: RGB, depth, semantic and instance segmentation.

Intrinsics follow CARLA: ``f = W / (2 tan(fov / 2))`` with the horizontal
``fov`` in degrees, principal point at the image centre. The camera looks
along its +x axis; image columns grow along +y (right) and rows along -z
(down). One ray goes through each pixel centre; cameras with the same pose,
size and fov share their rays within a tick.

Data (``SensorMeasurement.data``):

- ``sensor.camera.rgb``: (H, W, 3) uint8 RGB (CARLA sends BGRA; conversion
  happens at the CARLA boundary). Surfaces take their material colour lit by
  a sun (Lambert) plus ambient light; rays that hit nothing show a sky
  gradient.
- ``sensor.camera.depth``: (H, W) float32 metres along the optical axis
  (not along the ray), 1000 m where nothing is hit (CARLA's far plane).
- ``sensor.camera.semantic_segmentation``: (H, W) uint8 CARLA tags (11 sky
  where nothing is hit).
- ``sensor.camera.instance_segmentation``: (H, W, 3) uint8 with R = tag and
  (G, B) = the instance id's low and high byte (0 for the static world).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.embedded.sensors.base import SensorMeasurement, check_finite
from sim.embedded.sensors.raycast import RayPlan, RaycastSensor, homogeneous

FAR_PLANE_M = 1000.0
SKY_TAG = 11
CAMERA_KINDS = ("rgb", "depth", "semantic_segmentation", "instance_segmentation")


@dataclass(frozen=True)
class Lighting:
    """Sun and sky for the RGB camera: the sun's direction (towards the sun, world frame), light levels, sky colours."""

    sun_elevation_rad: float = math.radians(50.0)
    sun_azimuth_rad: float = math.radians(-30.0)
    ambient: float = 0.45
    diffuse: float = 0.65
    sky_horizon_rgb: tuple[int, int, int] = (196, 214, 232)
    sky_zenith_rgb: tuple[int, int, int] = (92, 140, 205)

    @property
    def sun_direction(self) -> np.ndarray:
        """Unit vector towards the sun, CARLA world frame (z up)."""
        ce = math.cos(self.sun_elevation_rad)
        return np.array([ce * math.cos(self.sun_azimuth_rad), ce * math.sin(self.sun_azimuth_rad),
                         math.sin(self.sun_elevation_rad)], dtype=np.float32)


@lru_cache(maxsize=16)
def pixel_directions(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Unit ray directions (H * W, 3) float32 through every pixel centre, camera frame, row-major."""
    focal = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    u = (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) / focal
    v = (np.arange(height, dtype=np.float64) + 0.5 - height / 2.0) / focal
    uu, vv = np.meshgrid(u, v)
    rays = np.stack([np.ones_like(uu), uu, -vv], axis=-1).reshape(-1, 3)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    rays.flags.writeable = False
    return rays.astype(np.float32)


@lru_cache(maxsize=16)
def pixel_homogeneous(width: int, height: int, fov_deg: float) -> np.ndarray:
    """:func:`pixel_directions` as (H * W, 4) ``[d, 1]`` rows (see ``RayPlan.write``)."""
    rows = homogeneous(pixel_directions(width, height, fov_deg))
    rows.flags.writeable = False
    return rows


class Camera(RaycastSensor):
    """A pinhole camera of one kind (see the module docstring); ``image_size_x/y`` [px], ``fov`` [deg]."""

    kind: str = "rgb"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 image_size_x: int = 800, image_size_y: int = 600, fov: float = 90.0, sensor_tick: float = 0.0,
                 lighting: Lighting | None = None) -> None:
        super().__init__(parent_id, transform, name=name, sensor_tick=sensor_tick)
        fov = check_finite("fov", fov)
        if not 0.0 < fov < 180.0:
            raise ValueError(f"{self.blueprint_id}: fov must be in (0, 180) degrees, got {fov}")
        for attr, value in (("image_size_x", image_size_x), ("image_size_y", image_size_y)):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"{self.blueprint_id}: {attr} must be a positive integer, got {value!r}")
        self.width, self.height, self.fov_deg = int(image_size_x), int(image_size_y), fov
        self.lighting = lighting or Lighting()

    def local_rays(self, snapshot: WorldSnapshot):
        """One ray per pixel; shared by every camera with the same pose, size and fov."""
        directions = pixel_directions(self.width, self.height, self.fov_deg)
        return directions, np.full(directions.shape[0], FAR_PLANE_M, np.float32), \
            ("camera", self.width, self.height, self.fov_deg), None

    def local_homogeneous(self, local: np.ndarray) -> np.ndarray:
        """The cached homogeneous pixel rays."""
        return pixel_homogeneous(self.width, self.height, self.fov_deg)

    def actor_candidates(self, plan: RayPlan, corners: np.ndarray) -> np.ndarray | None:
        """Pixels inside the image rectangles that bound the actors' boxes (clipped at the camera plane)."""
        rect = projected_rectangles(corners, plan.location, plan.matrix, self.width, self.height, self.fov_deg)
        mask = np.zeros((self.height, self.width), dtype=bool)
        for r0, r1, c0, c1 in rect.tolist():
            mask[r0:r1, c0:c1] = True
        return np.flatnonzero(mask.ravel())

    def finish(self, snapshot: WorldSnapshot, plan: RayPlan, hits) -> SensorMeasurement:
        """The image of this camera's kind from the hits."""
        image = render_image(self.kind, plan, hits, self.width, self.height, self.lighting)
        return self._measurement(snapshot, plan.location.copy(), plan.rotation.copy(), image)


_NEAR_M = 0.02
# Box corner k has bits (x, y, z) = (k >> 2 & 1, k >> 1 & 1, k & 1); edges join corners one bit apart.
_BOX_EDGES = np.array([(a, a | bit) for a in range(8) for bit in (1, 2, 4) if not a & bit])


def projected_rectangles(corners: np.ndarray, location: np.ndarray, matrix: np.ndarray, width: int, height: int,
                         fov_deg: float) -> np.ndarray:
    """Pixel rectangles (K, 4) ``row0, row1, col0, col1`` (half-open) bounding boxes seen by a camera.

    ``corners`` (A, 8, 3) world corners of each box (bit order: see
    ``_BOX_EDGES``). The part of a box in front of the camera is its corners
    there plus the points where its edges cross the near plane; the bounding
    rectangle of their projections, widened by a pixel, holds every pixel
    whose ray can hit the box. Boxes wholly behind the camera give none.
    """
    if corners.shape[0] == 0:
        return np.zeros((0, 4), dtype=np.int64)
    local = (corners - location) @ matrix  # columns of matrix: forward, right, up; small (A, 8, 3): no BLAS threads
    a = local[:, _BOX_EDGES[:, 0]]
    b = local[:, _BOX_EDGES[:, 1]]
    xa, xb = a[..., 0], b[..., 0]
    crosses = (xa > _NEAR_M) != (xb > _NEAR_M)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, (_NEAR_M - xa) / (xb - xa), 0.0)
    cut = a + (b - a) * t[..., None]
    points = np.concatenate([local, cut], axis=1)  # (A, 20, 3)
    valid = np.concatenate([local[..., 0] > _NEAR_M, crosses], axis=1)
    x = np.where(valid, np.maximum(points[..., 0], _NEAR_M), 1.0)
    focal = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    u = width / 2.0 + focal * points[..., 1] / x
    v = height / 2.0 - focal * points[..., 2] / x
    seen = valid.any(axis=1)
    big = np.float64(1e9)
    u_min = np.where(valid, u, big).min(axis=1)[seen]
    u_max = np.where(valid, u, -big).max(axis=1)[seen]
    v_min = np.where(valid, v, big).min(axis=1)[seen]
    v_max = np.where(valid, v, -big).max(axis=1)[seen]
    # Pixel (row, col) casts through (col + 0.5, row + 0.5); one pixel of slack on every side.
    c0 = np.clip(np.floor(u_min - 0.5) - 1, 0, width).astype(np.int64)
    c1 = np.clip(np.ceil(u_max - 0.5) + 2, 0, width).astype(np.int64)
    r0 = np.clip(np.floor(v_min - 0.5) - 1, 0, height).astype(np.int64)
    r1 = np.clip(np.ceil(v_max - 0.5) + 2, 0, height).astype(np.int64)
    keep = (c1 > c0) & (r1 > r0)
    return np.stack([r0, r1, c0, c1], axis=1)[keep]


def render_image(kind: str, plan: RayPlan, hits, width: int, height: int, lighting: Lighting) -> np.ndarray:
    """An image of ``kind`` (one of :data:`CAMERA_KINDS`) from per-pixel hits."""
    hit = np.isfinite(hits.distance_m)
    if kind == "depth":
        depth = np.where(hit, hits.distance_m * plan.local_directions[:, 0], FAR_PLANE_M)
        return depth.astype(np.float32).reshape(height, width)
    if kind == "semantic_segmentation":
        return np.where(hit, hits.tag, SKY_TAG).astype(np.uint8).reshape(height, width)
    if kind == "instance_segmentation":
        image = np.empty((hits.tag.shape[0], 3), dtype=np.uint8)
        image[:, 0] = np.where(hit, hits.tag, SKY_TAG)
        instance = np.where(hit, hits.instance, 0).astype(np.uint32)
        image[:, 1] = instance & 0xFF
        image[:, 2] = (instance >> 8) & 0xFF
        return image.reshape(height, width, 3)
    if kind == "rgb":
        return _shade(plan, hits, hit, lighting).reshape(height, width, 3)
    raise ValueError(f"unknown camera kind {kind!r}; valid: {', '.join(CAMERA_KINDS)}")


def _shade(plan: RayPlan, hits, hit: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Lambert-lit material colours, sky gradient where nothing is hit: (N, 3) uint8."""
    # Hit normals face the ray (the scene's contract), so surfaces are lit on the side the camera sees.
    n = hit.shape[0]
    towards_sun = cv2.transform(hits.normal.reshape(n, 1, 3), lighting.sun_direction.reshape(1, 3))
    light = np.maximum(towards_sun, 0.0, out=towards_sun).reshape(n, 1)
    light *= lighting.diffuse
    light += lighting.ambient
    # OpenCV rounds and saturates at 255 in one pass (numpy: float (N, 3) temporaries, ~5x slower).
    image = cv2.multiply(hits.albedo.reshape(n, 1, 3), cv2.merge([light, light, light]), dtype=cv2.CV_8U)
    image = image.reshape(n, 3)
    miss = ~hit
    if miss.any():
        # Sky colour of every pixel by one table lookup, copied where nothing was hit (OpenCV: about 3x faster
        # than gathering and scattering the missed rows with numpy).
        level = np.clip(plan.directions[:, 2], 0.0, 1.0)
        level *= 255.0
        level = level.astype(np.uint8)
        sky = cv2.LUT(cv2.merge([level, level, level]).reshape(1, n, 3), _sky_lut(lighting))
        cv2.copyTo(sky, miss.view(np.uint8).reshape(1, n), image.reshape(1, n, 3))
    return image


@lru_cache(maxsize=8)
def _sky_lut(lighting: Lighting) -> np.ndarray:
    """:func:`_sky_table` as a (1, 256, 3) OpenCV lookup table."""
    return np.ascontiguousarray(_sky_table(lighting).reshape(1, 256, 3))


@lru_cache(maxsize=8)
def _sky_table(lighting: Lighting) -> np.ndarray:
    """Sky colour (256, 3) uint8 by ray elevation sin(angle) in 1/255 steps: horizon colour to zenith colour."""
    elevation = np.linspace(0.0, 1.0, 256)[:, None]
    sky = (np.asarray(lighting.sky_horizon_rgb, np.float64) * (1.0 - elevation)
           + np.asarray(lighting.sky_zenith_rgb, np.float64) * elevation)
    return sky.astype(np.uint8)


class RgbCamera(Camera):
    """``sensor.camera.rgb``: (H, W, 3) uint8 RGB."""

    blueprint_id = "sensor.camera.rgb"
    kind = "rgb"


class DepthCamera(Camera):
    """``sensor.camera.depth``: (H, W) float32 metres along the optical axis."""

    blueprint_id = "sensor.camera.depth"
    kind = "depth"


class SemanticCamera(Camera):
    """``sensor.camera.semantic_segmentation``: (H, W) uint8 CARLA tags."""

    blueprint_id = "sensor.camera.semantic_segmentation"
    kind = "semantic_segmentation"


class InstanceCamera(Camera):
    """``sensor.camera.instance_segmentation``: (H, W, 3) uint8, R tag, G/B instance id bytes."""

    blueprint_id = "sensor.camera.instance_segmentation"
    kind = "instance_segmentation"
