"""Prior point-cloud maps for scan-to-map localization: built from logged LiDAR with ground-truth poses.

``avsim map build-prior LOG_OR_DATASET --out FILE`` accumulates every LiDAR
sweep of a log (a single ``run.mcap``) or of every log of an ``avsim collect``
dataset directory into one world-frame cloud: each sweep is taken from the
sensor frame into the ego frame (its calibrated mount) and into the world
with the logged ground-truth ego pose (x, y, z, pitch, yaw, roll). The ego's
own body, returns beyond ``max_range_m`` and, by default, the returns inside
the logged ground-truth boxes of vehicles and walkers (inflated by
``box_margin_m``: they move; a map keeps only the static world) are dropped.
The cloud is voxel-averaged (the mean of the points in each ``voxel_m`` cube)
and given surface normals (Open3D, PCA over ``normal_radius_m``). It uses
only the log, so it works for any town and either backend.

File format (``numpy.savez_compressed``, ``.npz``):

==============  ==============  ===========================================
key             dtype, shape    what
==============  ==============  ===========================================
``format``      str             ``"avsim-prior-map"``
``version``     int             1
``points``      float32 (N, 3)  voxel centroids, world frame (CARLA axes) [m]
``normals``     float32 (N, 3)  unit surface normals (sign arbitrary)
``voxel_m``     float           the voxel edge [m]
``map_name``    str             the town the logs drove
``sources``     str (JSON)      the log files it was built from
==============  ==============  ===========================================

Open3D is imported only inside :func:`finish_map` (normals), so loading and
cropping a map need only numpy (import-linter contract ``open3d-only-raycast``
names this module as an exception).
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from av_stack.files import replaced_atomically
from sim.transforms import rotation_matrix

__all__ = ["FORMAT", "PriorMap", "PriorMapError", "VoxelCloud", "accumulate_log", "build_prior_map",
           "dataset_logs", "finish_map", "load_prior_map", "save_prior_map", "scan_to_ego", "voxel_keys",
           "voxel_means"]

FORMAT = "avsim-prior-map"
VERSION = 1
_TILE_M = 20.0  # crop index tile edge
_BODY_HALF = (2.8, 1.3)  # the ego's own body in the ego frame (half length, half width) [m], as the detector's


class PriorMapError(ValueError):
    """A prior map that cannot be built, read or used; the message names the file and the problem."""


class PriorMap:
    """A prior point-cloud map: ``points`` and ``normals`` (N, 3) float32 in the world frame, the voxel size,
    the town and the logs it came from; :meth:`crop` returns the part near a position quickly (a tile index)."""

    def __init__(self, points: np.ndarray, normals: np.ndarray, voxel_m: float, map_name: str = "",
                 sources: tuple[str, ...] = ()) -> None:
        points = np.ascontiguousarray(points, dtype=np.float32)
        normals = np.ascontiguousarray(normals, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
            raise PriorMapError(f"a prior map needs points and normals of shape (N, 3), got {points.shape} and "
                                f"{normals.shape}")
        if not len(points):
            raise PriorMapError("a prior map needs at least one point")
        if not (np.isfinite(points).all() and np.isfinite(normals).all()):
            raise PriorMapError("a prior map's points and normals must be finite")
        if not (math.isfinite(voxel_m) and voxel_m > 0):
            raise PriorMapError(f"a prior map's voxel size must be > 0, got {voxel_m!r}")
        keys = self._tile_keys(points[:, :2])
        order = np.argsort(keys, kind="stable")
        self.points, self.normals = points[order], normals[order]
        self.voxel_m, self.map_name, self.sources = float(voxel_m), str(map_name), tuple(sources)
        sorted_keys = keys[order]
        unique, starts = np.unique(sorted_keys, return_index=True)
        ends = np.append(starts[1:], len(sorted_keys))
        self._tiles = {int(k): (int(s), int(e)) for k, s, e in zip(unique, starts, ends)}
        self.points.flags.writeable = False
        self.normals.flags.writeable = False

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def _tile_keys(xy: np.ndarray) -> np.ndarray:
        cells = np.floor(np.asarray(xy, dtype=np.float64) / _TILE_M).astype(np.int64)
        return (cells[:, 0] << 32) + (cells[:, 1] & 0xFFFFFFFF)

    def crop(self, x: float, y: float, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
        """(points, normals) within the square of half side ``radius_m`` about (``x``, ``y``) (copies)."""
        lo = math.floor((x - radius_m) / _TILE_M), math.floor((y - radius_m) / _TILE_M)
        hi = math.floor((x + radius_m) / _TILE_M), math.floor((y + radius_m) / _TILE_M)
        spans = [self._tiles.get((i << 32) + (j & 0xFFFFFFFF)) for i in range(lo[0], hi[0] + 1)
                 for j in range(lo[1], hi[1] + 1)]
        spans = [s for s in spans if s is not None]
        if not spans:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        index = np.concatenate([np.arange(s, e) for s, e in spans])
        points = self.points[index]
        keep = (np.abs(points[:, 0] - x) <= radius_m) & (np.abs(points[:, 1] - y) <= radius_m)
        return points[keep], self.normals[index][keep]

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners of the map's points [m]."""
        return self.points.min(axis=0), self.points.max(axis=0)


# ---------------------------------------------------------------------------------------------- file
def save_prior_map(prior: PriorMap, path: str | Path) -> Path:
    """Write ``prior`` to ``path`` (the module docstring's format), atomically: a file already there is
    replaced only once the new one is complete. The path is returned."""
    path = Path(path)
    if path.suffix != ".npz":
        raise PriorMapError(f"a prior map is a .npz file; got {path}")
    with replaced_atomically(path) as partial, open(partial, "wb") as stream:
        np.savez_compressed(stream, format=np.array(FORMAT), version=np.array(VERSION), points=prior.points,
                            normals=prior.normals, voxel_m=np.array(prior.voxel_m),
                            map_name=np.array(prior.map_name), sources=np.array(json.dumps(list(prior.sources))))
    return path


_LOADED: dict[tuple[str, int, int], PriorMap] = {}


def load_prior_map(path: str | Path) -> PriorMap:
    """The prior map at ``path``; :class:`PriorMapError` naming the file if it is missing, not a prior map,
    of another version, or damaged. Loaded maps are kept (per file, size and modification time), so a stage
    rebuilt per route does not read the file again."""
    path = Path(path)
    if not path.is_file():
        raise PriorMapError(f"no prior map at {path} (build one with `avsim map build-prior LOG_OR_DATASET "
                            f"--out {path}`)")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _LOADED:
        return _LOADED[key]
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"format", "version", "points", "normals", "voxel_m"} - names
            if missing:
                raise PriorMapError(f"{path} is not a prior map: it lacks {', '.join(sorted(missing))}")
            if str(archive["format"]) != FORMAT:
                raise PriorMapError(f"{path} is not a prior map (format {str(archive['format'])!r})")
            version = int(archive["version"])
            if version != VERSION:
                raise PriorMapError(f"{path} is prior-map version {version}; this avsim reads version {VERSION}")
            sources = tuple(json.loads(str(archive["sources"]))) if "sources" in names else ()
            prior = PriorMap(archive["points"], archive["normals"], float(archive["voxel_m"]),
                             str(archive["map_name"]) if "map_name" in names else "", sources)
    except PriorMapError as exc:
        message = str(exc)
        raise PriorMapError(message if str(path) in message else f"{path}: {message}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise PriorMapError(f"{path} is not a readable prior map ({type(exc).__name__}: {exc})") from None
    _LOADED.clear()  # keep one map: a town's is tens of megabytes
    _LOADED[key] = prior
    return prior


# ---------------------------------------------------------------------------------------------- building
_KEY_BITS = 21  # per axis: voxel indices within +-2**20 (200 km at 0.2 m)
_KEY_OFFSET = 1 << (_KEY_BITS - 1)


def voxel_keys(points: np.ndarray, voxel_m: float) -> np.ndarray:
    """(N,) int64: one key per voxel of edge ``voxel_m`` holding each point (N, 3)."""
    cells = np.floor(np.asarray(points, dtype=np.float64) / voxel_m).astype(np.int64) + _KEY_OFFSET
    if len(cells) and (cells.min() < 0 or cells.max() >= 1 << _KEY_BITS):
        raise PriorMapError(f"points beyond {_KEY_OFFSET * voxel_m / 1e3:.0f} km from the origin cannot be mapped")
    return (cells[:, 0] << (2 * _KEY_BITS)) | (cells[:, 1] << _KEY_BITS) | cells[:, 2]


def voxel_means(points: np.ndarray, voxel_m: float) -> np.ndarray:
    """(M, 3) the mean of the points (N, 3) in each occupied voxel."""
    points = np.asarray(points, dtype=np.float64)
    if not len(points):
        return points.reshape(0, 3)
    _, inverse, counts = np.unique(voxel_keys(points, voxel_m), return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.stack([np.bincount(inverse, points[:, k], len(counts)) for k in range(3)], axis=1)
    return sums / counts[:, None]


@dataclass
class VoxelCloud:
    """Points accumulated as per-voxel sums and counts (exact means across any number of merges), and per
    voxel the number of logs that saw it (``logs``: 1 within one log; merging clouds of different logs adds)."""

    voxel_m: float
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    logs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, points: np.ndarray) -> None:
        """Accumulate world-frame points (N, 3) of this cloud's log."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        self._merge(voxel_keys(points, self.voxel_m), points, np.ones(len(points), np.int64), None)

    def merge(self, other: VoxelCloud) -> None:
        """Accumulate the cloud of another log (or set of logs) of the same voxel size."""
        if not math.isclose(other.voxel_m, self.voxel_m):
            raise PriorMapError(f"cannot merge clouds of voxel {other.voxel_m} m and {self.voxel_m} m")
        self._merge(other.keys, other.sums, other.counts, other.logs)

    def _merge(self, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray, logs: np.ndarray | None) -> None:
        if not len(keys):
            return
        unique, inverse = np.unique(np.concatenate([self.keys, keys]), return_inverse=True)
        inverse = inverse.reshape(-1)
        all_sums = np.concatenate([self.sums, sums])
        self.sums = np.stack([np.bincount(inverse, all_sums[:, k], len(unique)) for k in range(3)], axis=1)
        self.counts = np.bincount(inverse, np.concatenate([self.counts, counts]), len(unique)).astype(np.int64)
        if logs is None:  # points of this cloud's own log: a voxel is seen by one log however often it is hit
            self.logs = np.maximum(np.bincount(inverse[:len(self.keys)], self.logs, len(unique)), 1).astype(np.int64)
        else:
            self.logs = np.bincount(inverse, np.concatenate([self.logs, logs]), len(unique)).astype(np.int64)
        self.keys = unique

    def __len__(self) -> int:
        return len(self.keys)

    def means(self) -> np.ndarray:
        """(M, 3) the mean point of each voxel."""
        return self.sums / np.maximum(self.counts, 1)[:, None]


def scan_to_ego(points: np.ndarray, mount) -> np.ndarray:
    """(N, 3) ego-frame points of a sensor-frame cloud (N, >=3) through the sensor's mount (a
    :class:`sim.api.Pose`), non-finite rows dropped."""
    rows = np.asarray(points, dtype=np.float64).reshape(len(points), -1)[:, :3]
    rows = rows[np.isfinite(rows).all(axis=1)]
    rotation = rotation_matrix(mount.pitch_rad, mount.yaw_rad, mount.roll_rad)
    return rows @ rotation.T + np.array([mount.x_m, mount.y_m, mount.z_m])


def _outside_boxes(ego: np.ndarray, boxes: np.ndarray, margin_m: float) -> np.ndarray:
    """Mask of ego-frame points outside every (centre x, y, z, half extents, yaw) box, inflated by margin."""
    keep = np.ones(len(ego), bool)
    for cx, cy, cz, hx, hy, hz, yaw in np.asarray(boxes, dtype=np.float64).reshape(-1, 7):
        cos, sin = math.cos(yaw), math.sin(yaw)
        dx, dy = ego[:, 0] - cx, ego[:, 1] - cy
        inside = ((np.abs(dx * cos + dy * sin) <= hx + margin_m) & (np.abs(-dx * sin + dy * cos) <= hy + margin_m)
                  & (np.abs(ego[:, 2] - cz) <= hz + margin_m))
        keep &= ~inside
    return keep


def _lidar_name(log, lidar: str | None) -> str:
    calibration = log.calibration
    lidars = [name for name, c in calibration.items() if c.blueprint_id.startswith("sensor.lidar.")]
    if lidar is not None:
        if lidar not in lidars:
            raise PriorMapError(f"{log.path} has no LiDAR named {lidar!r} (its LiDARs: {', '.join(lidars) or 'none'})")
        return lidar
    if not lidars:
        raise PriorMapError(f"{log.path} has no LiDAR: a prior map is built from logged LiDAR sweeps")
    return lidars[0]


def _sweeps(log, lidar: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(sensor-frame points, ego pose (x, y, z, pitch, yaw, roll), actor boxes (N, 7) in the ego frame) of
    every sweep with a ground-truth pose at the same time."""
    from av_stack.logs import topics as T
    from av_stack.logs.reader import decode_sensor

    blueprint = log.calibration[lidar].blueprint_id
    topic = T.sensor_topic(lidar)
    current_t, points, truth = None, None, None

    def done():
        if points is None or truth is None:
            return None
        e, a = truth["ego"], truth["actors"]
        pose = np.array([float(e[k]) for k in ("x_m", "y_m", "z_m", "pitch_rad", "yaw_rad", "roll_rad")])
        boxes = np.concatenate([np.array(a["center_m"], np.float64).reshape(-1, 3),
                                np.array(a["extent_m"], np.float64).reshape(-1, 3),
                                np.array(a["yaw_rad"], np.float64).reshape(-1, 1)], axis=1)
        return points, pose, boxes

    for message in log.messages([topic, T.GT_FRAME]):
        if current_t is not None and not math.isclose(message.t_s, current_t, abs_tol=1e-6):
            sweep = done()
            if sweep is not None:
                yield sweep
            points, truth = None, None
        current_t = message.t_s
        if message.topic == topic:
            points = decode_sensor(blueprint, message.value)
        else:
            truth = message.value
    sweep = done()
    if sweep is not None:
        yield sweep


def accumulate_log(path: str | Path, voxel_m: float = 0.2, max_range_m: float = 60.0, drop_actors: bool = True,
                   box_margin_m: float = 0.3, lidar: str | None = None) -> tuple[VoxelCloud, str, int]:
    """(the voxel cloud of every LiDAR sweep of the log at ``path`` in the world frame, its map name, the
    number of sweeps); see the module docstring. :class:`PriorMapError` for a log without LiDAR or ground
    truth, ``LogError`` for an unreadable one."""
    from av_stack.logs.reader import LogReader

    log = LogReader(path)
    name = _lidar_name(log, lidar)
    mount = log.calibration[name].mount
    cloud = VoxelCloud(voxel_m)
    batch: list[np.ndarray] = []
    sweeps = 0
    for points, pose, boxes in _sweeps(log, name):
        ego = scan_to_ego(points, mount)
        keep = np.hypot(ego[:, 0], ego[:, 1]) <= max_range_m
        keep &= ~((np.abs(ego[:, 0]) < _BODY_HALF[0]) & (np.abs(ego[:, 1]) < _BODY_HALF[1]))
        if drop_actors and len(boxes):
            keep &= _outside_boxes(ego, boxes, box_margin_m)
        ego = ego[keep]
        x, y, z, pitch, yaw, roll = pose
        batch.append(ego @ rotation_matrix(pitch, yaw, roll).T + np.array([x, y, z]))
        sweeps += 1
        if sum(len(b) for b in batch) > 1_000_000:
            cloud.add(np.concatenate(batch))
            batch = []
    if batch:
        cloud.add(np.concatenate(batch))
    if not sweeps:
        raise PriorMapError(f"{path} has no LiDAR sweep with a ground-truth pose (record with ground truth on)")
    return cloud, log.map_name, sweeps


def finish_map(cloud: VoxelCloud, map_name: str, sources: Iterable[str], normal_radius_m: float | None = None,
               min_logs: int = 1) -> PriorMap:
    """The :class:`PriorMap` of an accumulated cloud: the voxel means seen by at least ``min_logs`` logs, with
    normals (Open3D: PCA over the neighbours within ``normal_radius_m``, default 3 voxels, at most 30)."""
    import open3d as o3d

    means = cloud.means()[cloud.logs >= min_logs]
    if not len(means):
        raise PriorMapError("no LiDAR point is left to build a prior map from")
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(means))
    radius = normal_radius_m if normal_radius_m is not None else 3.0 * cloud.voxel_m
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=30))
    normals = np.asarray(pcd.normals)
    if len(normals) != len(means):  # a point without neighbours: open3d leaves no normal
        normals = np.tile([0.0, 0.0, 1.0], (len(means), 1))
    return PriorMap(means, normals, cloud.voxel_m, map_name, tuple(sources))


def dataset_logs(path: str | Path) -> list[tuple[Path, str]]:
    """(log file, town) of a single ``.mcap`` log or of every log of an ``avsim collect`` dataset directory;
    :class:`PriorMapError` when ``path`` is neither."""
    path = Path(path)
    if path.is_file():
        return [(path, "")]
    if path.is_dir():
        from av_stack.data.manifest import DatasetError, read_manifest

        try:
            manifest = read_manifest(path)
        except DatasetError as exc:
            raise PriorMapError(str(exc)) from None
        logs = [(path / entry["file"], str(entry.get("town", ""))) for entry in manifest["logs"]]
        if not logs:
            raise PriorMapError(f"dataset {path} has no logs")
        return logs
    raise PriorMapError(f"no log file or dataset directory at {path}")


def build_prior_map(source: str | Path, voxel_m: float = 0.2, max_range_m: float = 60.0, drop_actors: bool = True,
                    town: str | None = None, lidar: str | None = None, progress=None) -> PriorMap:
    """The prior map of a log or dataset directory (of its logs of ``town`` when given; a dataset mixing
    towns needs one). ``progress(done, total)`` is called after each log."""
    if not (math.isfinite(voxel_m) and voxel_m > 0 and max_range_m > 0):
        raise PriorMapError(f"the voxel size and range must be > 0, got {voxel_m!r} and {max_range_m!r}")
    logs = dataset_logs(source)
    if town is not None:
        logs = [(p, t) for p, t in logs if t == town]
        if not logs:
            raise PriorMapError(f"{source} has no log of town {town!r}")
    towns = {t for _, t in logs if t}
    if len(towns) > 1:
        raise PriorMapError(f"{source} holds logs of several towns ({', '.join(sorted(towns))}): a prior map is "
                            "of one town; pick it with --town")
    cloud, names = VoxelCloud(voxel_m), set()
    for k, (path, _) in enumerate(logs):
        part, map_name, _ = accumulate_log(path, voxel_m, max_range_m, drop_actors, lidar=lidar)
        cloud.merge(part)
        names.add(map_name)
        if progress is not None:
            progress(k + 1, len(logs))
    if len(names) > 1:
        raise PriorMapError(f"{source}: the logs drove different maps ({', '.join(sorted(names))})")
    return finish_map(cloud, names.pop(), [p.name for p, _ in logs])
