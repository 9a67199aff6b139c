"""Sensor arrays, poses and boxes to Foxglove's well-known protobuf schemas, and back.

Frames. The simulator's arrays are in CARLA's left-handed frame (x forward,
y right, z up). Foxglove (like ROS) is right-handed, so what Foxglove draws is
mirrored the way carla-ros-bridge does it: y negated, pitch and yaw negated.
Every encoder here applies that mirror and every decoder undoes it, exactly
(a sign change), so a replayed array equals the recorded one.

Cameras: RGB as JPEG (``jpeg_quality``), everything whose values matter as
lossless PNG: semantic tags (one channel), instance ids (three channels) and
depth as CARLA's own 24-bit depth encoding (``R + 256 G + 65536 B`` over
1000 m: 0.06 mm steps), which Foxglove shows as CARLA's raw depth image.
LiDAR, semantic LiDAR and radar: ``foxglove.PointCloud`` with float32 fields;
radar keeps its four raw columns beside the x, y, z Foxglove draws.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.CubePrimitive_pb2 import CubePrimitive
from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.KeyValuePair_pb2 import KeyValuePair
from foxglove_schemas_protobuf.LocationFix_pb2 import LocationFix
from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
from foxglove_schemas_protobuf.SceneEntity_pb2 import SceneEntity
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from google.protobuf.timestamp_pb2 import Timestamp

from sim.api import Pose
from sim.sensors.layout import DEPTH_FAR_M

RGB_CAMERAS = frozenset({"sensor.camera.rgb"})
LOSSLESS_CAMERAS = frozenset({"sensor.camera.semantic_segmentation", "sensor.camera.instance_segmentation",
                              "sensor.camera.depth"})
POINT_CLOUDS = {
    "sensor.lidar.ray_cast": ("x", "y", "z", "intensity"),
    "sensor.lidar.ray_cast_semantic": ("x", "y", "z", "cos_inc_angle", "object_idx", "object_tag"),
    "sensor.other.radar": ("velocity", "azimuth", "altitude", "depth"),
}
_DEPTH_SCALE = float(2**24 - 1)
_FLOAT32 = PackedElementField.FLOAT32


class EncodingError(ValueError):
    """A recorded message cannot be turned back into the array it came from; the message says why."""


def timestamp(t_s: float) -> Timestamp:
    """A protobuf timestamp of simulation time ``t_s`` [s]."""
    sec = int(math.floor(t_s))
    return Timestamp(seconds=sec, nanos=int(round((t_s - sec) * 1e9)) % 1_000_000_000)


def seconds(stamp: Timestamp) -> float:
    """Simulation time [s] of a protobuf timestamp."""
    return stamp.seconds + stamp.nanos * 1e-9


# ---------------------------------------------------------------------------------------------- cameras
def encode_camera(blueprint: str, frame_id: str, t_s: float, array: np.ndarray, jpeg_quality: int = 90
                  ) -> CompressedImage:
    """A camera array (the layouts of :mod:`sim.sensors.layout`) as a compressed image."""
    if blueprint in RGB_CAMERAS:
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(array[..., ::-1]),
                                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        fmt = "jpeg"
    elif blueprint == "sensor.camera.depth":
        ok, data = cv2.imencode(".png", _depth_to_bgr(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        fmt = "png"
    elif blueprint == "sensor.camera.instance_segmentation":
        ok, data = cv2.imencode(".png", np.ascontiguousarray(array[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        fmt = "png"
    else:
        ok, data = cv2.imencode(".png", np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        fmt = "png"
    if not ok:
        raise EncodingError(f"OpenCV could not encode {frame_id} ({blueprint}, {array.shape} {array.dtype})")
    return CompressedImage(timestamp=timestamp(t_s), frame_id=frame_id, data=data.tobytes(), format=fmt)


def decode_camera(blueprint: str, message: CompressedImage) -> np.ndarray:
    """The camera array an image message was encoded from (RGB: the JPEG's pixels)."""
    flags = cv2.IMREAD_GRAYSCALE if blueprint == "sensor.camera.semantic_segmentation" else cv2.IMREAD_COLOR
    image = cv2.imdecode(np.frombuffer(message.data, np.uint8), flags)
    if image is None:
        raise EncodingError(f"{message.frame_id}: the {message.format} image does not decode")
    if blueprint == "sensor.camera.depth":
        return _bgr_to_depth(image)
    if blueprint == "sensor.camera.semantic_segmentation":
        return image
    return np.ascontiguousarray(image[..., ::-1])


def _depth_to_bgr(depth_m: np.ndarray) -> np.ndarray:
    code = np.rint(np.clip(depth_m / DEPTH_FAR_M, 0.0, 1.0) * _DEPTH_SCALE).astype(np.uint32)
    bgr = np.empty((*code.shape, 3), np.uint8)
    bgr[..., 2] = code & 0xFF  # CARLA: R holds the lowest byte
    bgr[..., 1] = (code >> 8) & 0xFF
    bgr[..., 0] = (code >> 16) & 0xFF
    return bgr


def _bgr_to_depth(bgr: np.ndarray) -> np.ndarray:
    code = (bgr[..., 2].astype(np.uint32) | (bgr[..., 1].astype(np.uint32) << 8)
            | (bgr[..., 0].astype(np.uint32) << 16))
    return (code.astype(np.float64) / _DEPTH_SCALE * DEPTH_FAR_M).astype(np.float32)


# ---------------------------------------------------------------------------------------------- point clouds
def encode_points(blueprint: str, frame_id: str, t_s: float, array: np.ndarray) -> PointCloud:
    """LiDAR / semantic LiDAR / radar rows as a point cloud in the sensor's frame (mirrored for Foxglove)."""
    columns = POINT_CLOUDS[blueprint]
    rows = np.asarray(array, dtype=np.float32).reshape(-1, len(columns))
    if blueprint == "sensor.other.radar":
        names = ("x", "y", "z", *columns)
        packed = np.empty((rows.shape[0], 7), np.float32)
        velocity, azimuth, altitude, depth = rows.T
        packed[:, 0] = depth * np.cos(altitude) * np.cos(azimuth)
        packed[:, 1] = -(depth * np.cos(altitude) * np.sin(azimuth))
        packed[:, 2] = depth * np.sin(altitude)
        packed[:, 3:] = rows
    else:
        names = columns
        packed = rows.copy()
        packed[:, 1] = -packed[:, 1]
    fields = [PackedElementField(name=name, offset=4 * k, type=_FLOAT32) for k, name in enumerate(names)]
    return PointCloud(timestamp=timestamp(t_s), frame_id=frame_id, point_stride=4 * len(names), fields=fields,
                      data=packed.tobytes())


def decode_points(blueprint: str, message: PointCloud) -> np.ndarray:
    """The (rows, columns) float32 array a point-cloud message was encoded from."""
    columns = POINT_CLOUDS[blueprint]
    names = [f.name for f in message.fields]
    width = message.point_stride // 4
    if len(message.data) % max(message.point_stride, 1):
        raise EncodingError(f"{message.frame_id}: {len(message.data)} bytes is not a whole number of "
                            f"{message.point_stride}-byte points")
    packed = np.frombuffer(message.data, np.float32).reshape(-1, width)
    try:
        rows = packed[:, [names.index(c) for c in columns]].copy()
    except ValueError:
        raise EncodingError(f"{message.frame_id}: fields {names}, expected {list(columns)}") from None
    if blueprint != "sensor.other.radar":
        rows[:, 1] = -rows[:, 1]
    return rows


# ---------------------------------------------------------------------------------------------- GNSS
def encode_gnss(frame_id: str, t_s: float, array: np.ndarray) -> LocationFix:
    """(latitude, longitude, altitude) as a location fix."""
    lat, lon, alt = (float(v) for v in array)
    return LocationFix(timestamp=timestamp(t_s), frame_id=frame_id, latitude=lat, longitude=lon, altitude=alt)


def decode_gnss(message: LocationFix) -> np.ndarray:
    """The (3,) float64 array of a location fix."""
    return np.array([message.latitude, message.longitude, message.altitude], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- transforms
def _quaternion(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of right-handed roll, pitch, yaw [rad] (Z-Y-X)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def _set_pose(target, x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> None:
    """Write a CARLA-frame pose (radians) into a protobuf with translation/rotation or position/orientation."""
    qx, qy, qz, qw = _quaternion(roll, -pitch, -yaw)
    position = target.translation if hasattr(target, "translation") else target.position
    orientation = target.rotation if hasattr(target, "rotation") else target.orientation
    position.x, position.y, position.z = x, -y, z
    orientation.x, orientation.y, orientation.z, orientation.w = qx, qy, qz, qw


def frame_transform(parent: str, child: str, t_s: float, pose: Pose) -> FrameTransform:
    """The transform of ``child`` in ``parent`` for a :class:`sim.api.Pose` (CARLA frame, radians)."""
    transform = FrameTransform(timestamp=timestamp(t_s), parent_frame_id=parent, child_frame_id=child)
    _set_pose(transform, pose.x_m, pose.y_m, pose.z_m, pose.roll_rad, pose.pitch_rad, pose.yaw_rad)
    return transform


def frame_transforms(transforms: list[FrameTransform]) -> FrameTransforms:
    """Several transforms in one message."""
    return FrameTransforms(transforms=transforms)


# ---------------------------------------------------------------------------------------------- boxes
_KIND_COLORS = {0: (0.2, 0.6, 1.0), 1: (1.0, 0.55, 0.1)}  # vehicles blue, walkers orange (sim.api.ActorKind)


def scene_update(frame_id: str, t_s: float, ids: np.ndarray, kinds: np.ndarray, center_m: np.ndarray,
                 extent_m: np.ndarray, yaw_rad: np.ndarray, alpha: float = 0.5, prefix: str = "") -> SceneUpdate:
    """Boxes (centre, half extents, yaw in ``frame_id``, CARLA frame) as scene entities, one per box."""
    entities = []
    for k in range(len(ids)):
        r, g, b = _KIND_COLORS.get(int(kinds[k]), (0.7, 0.7, 0.7))
        entity = SceneEntity(timestamp=timestamp(t_s), frame_id=frame_id, id=f"{prefix}{int(ids[k])}",
                             frame_locked=False,
                             metadata=[KeyValuePair(key="kind", value=str(int(kinds[k])))])
        cube = CubePrimitive()
        cx, cy, cz = (float(v) for v in center_m[k])
        _set_pose(cube.pose, cx, cy, cz, 0.0, 0.0, float(yaw_rad[k]))
        cube.size.x, cube.size.y, cube.size.z = (2.0 * float(v) for v in extent_m[k])
        cube.color.r, cube.color.g, cube.color.b, cube.color.a = r, g, b, alpha
        entity.cubes.append(cube)
        entities.append(entity)
    return SceneUpdate(entities=entities)
