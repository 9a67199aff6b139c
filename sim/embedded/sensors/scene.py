"""The 3D scene every sensor raycasts: the static town, moving actors, one ``cast_rays``.

- :class:`StaticScene` is a map's :class:`~sim.embedded.sensors.town.TownLayout`
  (roads, markings, buildings, props: tagged, coloured triangles) with its
  Embree BVH, built once per map.
- :class:`DynamicActors` poses the snapshot's vehicles and pedestrians
  (:class:`~sim.embedded.sensors.actor_meshes.ActorMeshes`) in a small second
  Embree scene, rebuilt every tick.
- :class:`Scene` casts rays against both and keeps the nearest hit: the
  static BVH is never rebuilt (``benchmarks/scene_results.md`` compares this
  with rebuilding one merged scene and with casting rays in actor frames).
  Traffic-light lamps change colour with the lights' states.

Open3D's ``RaycastingScene`` (Embree) does the raycasting; this is the only
module that imports Open3D (the ``open3d-only-raycast`` import contract).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from functools import cached_property

import cv2
import numpy as np
import open3d as o3d

from sim.api import WorldSnapshot
from sim.embedded.sensors.actor_meshes import ActorMeshes
from sim.embedded.sensors.town import LAMP_DARK, LAMP_LIT, Tag, TownLayout

__all__ = ["LAMP_DARK", "LAMP_LIT", "DynamicActors", "RayBundle", "RayHits", "Scene", "StaticScene", "Tag"]

_o3c = o3d.core


def _raycasting_scene(vertices: np.ndarray, triangles: np.ndarray) -> o3d.t.geometry.RaycastingScene:
    """An Embree scene over one mesh, committed (its BVH built) before returning."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(_o3c.Tensor.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)),
                        _o3c.Tensor.from_numpy(np.ascontiguousarray(triangles, dtype=np.uint32)))
    scene.cast_rays(_o3c.Tensor(np.array([[0, 0, 1e6, 0, 0, 1]], dtype=np.float32)))  # commits the BVH
    return scene


# ---------------------------------------------------------------------------------------------- static town
@dataclass(frozen=True, eq=False)
class StaticScene(TownLayout):
    """A map's town layout and its Embree scene; build it with :meth:`build` (or :meth:`from_layout`).

    Every field of :class:`TownLayout` (triangles, per-triangle tag, instance
    and albedo, lamps, building boxes), plus ``raycasting_scene`` over the
    triangles; ``build_time_s`` counts the layout and the BVH.
    """

    raycasting_scene: o3d.t.geometry.RaycastingScene = field(repr=False)

    @classmethod
    def build(cls, world, seed: int | None = None) -> StaticScene:
        """Build the static scene of ``world``'s map; props are placed with ``seed`` (default: fixed by the map)."""
        return cls.from_layout(TownLayout.build(world, seed=seed))

    @classmethod
    def from_layout(cls, layout: TownLayout) -> StaticScene:
        """The static scene of an already built layout (its arrays are shared, not copied)."""
        if not isinstance(layout, TownLayout):
            raise TypeError(f"layout must be a TownLayout, got {type(layout).__name__}")
        start = time.perf_counter()
        scene = _raycasting_scene(layout.vertices, layout.triangles)
        values = {f.name: getattr(layout, f.name) for f in fields(TownLayout)}
        values["build_time_s"] = layout.build_time_s + time.perf_counter() - start
        return cls(**values, raycasting_scene=scene)


# ---------------------------------------------------------------------------------------------- dynamic actors
class DynamicActors(ActorMeshes):
    """The posed actor meshes in a small Embree scene rebuilt per update.

    After :meth:`update`, ``raycasting_scene`` holds the actors' triangles
    (None when there is no actor); the rest is :class:`ActorMeshes`'s.
    """

    def __init__(self) -> None:
        super().__init__()
        self.raycasting_scene: o3d.t.geometry.RaycastingScene | None = None

    def update(self, snapshot: WorldSnapshot, hidden_actor_ids: tuple[int, ...] = ()) -> None:
        """Pose every actor of ``snapshot`` (except ``hidden_actor_ids``) and rebuild the actor scene."""
        super().update(snapshot, hidden_actor_ids)
        if self.triangles.shape[0] == 0:
            self.raycasting_scene = None
            return
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(_o3c.Tensor.from_numpy(self.vertices), _o3c.Tensor.from_numpy(self.triangles))
        self.raycasting_scene = scene


# ---------------------------------------------------------------------------------------------- the scene
class _HitTables:
    """Per-triangle lookup tables of one scene at one tick, shared by every slice of a cast's hits."""

    def __init__(self, tag: np.ndarray, instance: np.ndarray, rgb: np.ndarray, num_static: int,
                 surface_velocity) -> None:
        self.tag, self.instance, self.rgb = tag, instance, rgb
        self.num_static = num_static
        self.surface_velocity = surface_velocity


class RayHits:
    """First hits of N rays (world frame).

    ``distance_m`` (N,) float32 along the unit direction, inf for no hit
    within range; ``triangle`` (N,) int32 row in the scene's triangle tables
    (-1: a miss). The rest is looked up on first access, so a sensor pays
    only for what it reads: ``tag`` (N,) uint8 semantic tag (0 on a miss:
    the camera paints the sky); ``instance`` (N,) uint32 (actor id, 0 for
    the static world and misses); ``normal`` (N, 3) float32 unit surface
    normal facing the ray (0 on a miss); ``albedo`` (N, 3) uint8 base
    colour; ``hit_velocity`` (N, 3) float32 world velocity of the surface
    point hit (0 for static). :meth:`select` gives the hits of a subset of
    the rays without computing anything. Lookups read the scene as it is, so
    read what you need before the next :meth:`Scene.update`.
    """

    def __init__(self, distance_m: np.ndarray, triangle: np.ndarray, normal: np.ndarray, rays: np.ndarray,
                 tables: _HitTables) -> None:
        self.distance_m = distance_m
        self.triangle = triangle
        self._raw_normal = normal
        self._rays = rays
        self._tables = tables

    def __len__(self) -> int:
        return int(self.distance_m.shape[0])

    def select(self, rows: slice | np.ndarray) -> RayHits:
        """The hits of ``rays[rows]`` (a slice gives views, no copy)."""
        return RayHits(self.distance_m[rows], self.triangle[rows], self._raw_normal[rows], self._rays[rows],
                       self._tables)

    @property
    def hit(self) -> np.ndarray:
        """(N,) bool: the ray hit something within range."""
        return np.isfinite(self.distance_m)

    @cached_property
    def tag(self) -> np.ndarray:
        """(N,) uint8 CARLA semantic tag of the surface hit (0 on a miss)."""
        return np.take(self._tables.tag, self.triangle)

    @cached_property
    def instance(self) -> np.ndarray:
        """(N,) uint32 actor id of the surface hit (0 for the static world and misses)."""
        return np.take(self._tables.instance, self.triangle)

    @cached_property
    def albedo(self) -> np.ndarray:
        """(N, 3) uint8 base colour of the surface hit (0 on a miss)."""
        packed = np.take(self._tables.rgb, self.triangle).view(np.uint8).reshape(1, -1, 4)
        # Dropping the fourth byte with OpenCV (as one image row: an N x 1 column is 30x slower) gives a
        # contiguous (N, 3) far faster than numpy's strided copy.
        return cv2.cvtColor(packed, cv2.COLOR_RGBA2RGB).reshape(-1, 3)

    @cached_property
    def normal(self) -> np.ndarray:
        """(N, 3) float32 unit surface normal facing the ray (0 on a miss)."""
        normal = self._raw_normal.copy()
        directions = self._rays[:, 3:]
        facing = normal[:, 0] * directions[:, 0]
        facing += normal[:, 1] * directions[:, 1]
        facing += normal[:, 2] * directions[:, 2]
        back = np.flatnonzero(facing > 0)
        normal[back] *= -1.0  # static surfaces face up or outward: few rays meet a back face
        return normal

    @cached_property
    def hit_velocity(self) -> np.ndarray:
        """(N, 3) float32 world velocity of the surface point hit (0 for the static world and misses)."""
        velocity = np.zeros((self.triangle.shape[0], 3), dtype=np.float32)
        actor = np.flatnonzero(self.triangle >= self._tables.num_static)
        if actor.size:
            rays = self._rays[actor]
            points = rays[:, :3] + rays[:, 3:] * self.distance_m[actor, None]
            velocity[actor] = self._tables.surface_velocity(self.triangle[actor] - self._tables.num_static, points)
        return velocity


class RayBundle:
    """Unit ray directions fixed in a sensor's frame, turned into world rays by a matrix product.

    ``world_rays(origin, rotation)`` returns the C-contiguous (N, 6) float32
    array :meth:`Scene.cast_ray_array` takes: ``[origin, rotation @ d]`` per
    ray, as (N, 4) x (4, 6) products (~0.2 ms for 150k rays, against
    ~1.3 ms for rotating and packing separately). The product runs in
    blocks small enough for OpenBLAS to stay on one thread: its idle worker
    threads spin for a while after a multi-threaded call, and on two cores
    that slowed the raycast that follows by ~40%.
    """

    BLOCK_ROWS = 8192  # 8192 x 6 x 4 multiply-adds: below OpenBLAS's threshold for threading

    def __init__(self, directions: np.ndarray) -> None:
        directions = np.asarray(directions, dtype=np.float64)
        if directions.ndim != 2 or directions.shape[1] != 3:
            raise ValueError(f"directions must have shape (N, 3), got {directions.shape}")
        norms = np.linalg.norm(directions, axis=1)
        if not np.all(np.abs(norms - 1.0) < 1e-4):
            raise ValueError("directions must be unit vectors")
        self._homogeneous = np.column_stack([directions, np.ones(directions.shape[0])]).astype(np.float32)

    def __len__(self) -> int:
        return self._homogeneous.shape[0]

    def world_rays(self, origin: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """(N, 6) float32 world rays from the sensor at ``origin`` (3,) turned by ``rotation`` (3, 3)."""
        origin = np.asarray(origin, dtype=np.float32)
        rotation = np.asarray(rotation, dtype=np.float32)
        if origin.shape != (3,) or rotation.shape != (3, 3):
            raise ValueError(f"origin must be (3,) and rotation (3, 3), got {origin.shape} and {rotation.shape}")
        transform = np.zeros((4, 6), dtype=np.float32)
        transform[:3, 3:] = rotation.T
        transform[3, :3] = origin
        rays = np.empty((len(self), 6), dtype=np.float32)
        for start in range(0, len(self), self.BLOCK_ROWS):
            np.matmul(self._homogeneous[start:start + self.BLOCK_ROWS], transform,
                      out=rays[start:start + self.BLOCK_ROWS])
        return rays


def _pack_rays(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """(N, 6) float32 rays [origin, direction] for Open3D.

    Copied as 12-byte items: numpy's row-wise copy of 3 floats into a strided
    half-row is about twice as slow.
    """
    rays = np.empty((directions.shape[0], 6), dtype=np.float32)
    items = rays.view(_XYZ)  # (N, 2): origin, direction
    items[:, 1] = _as_xyz_items(directions)
    items[:, 0] = _as_xyz_items(origins.reshape(-1, 3))
    return rays


_XYZ = np.dtype((np.void, 12))


def _as_xyz_items(points: np.ndarray) -> np.ndarray:
    """(N, 3) float32 as (N,) 12-byte items, without a copy when each row's 3 floats are adjacent."""
    if points.strides[1] != 4:
        points = np.ascontiguousarray(points)
    return points.view(_XYZ)[:, 0]


def _pack_rgb(albedo: np.ndarray) -> np.ndarray:
    """(T, 3) uint8 colours as (T,) uint32 (bytes R, G, B, 0): one 4-byte gather per ray instead of three."""
    packed = np.zeros((albedo.shape[0], 4), dtype=np.uint8)
    packed[:, :3] = albedo
    return packed.view(np.uint32).ravel()


class Scene:
    """Static and dynamic geometry behind one raycast API for every sensor.

    ``update(snapshot)`` once per tick (actors and traffic-light lamps), then
    any number of :meth:`cast_rays`. ``nthreads`` is passed to Open3D (0: all
    cores). Rays are cast against the static scene and the actor scene and
    the nearer hit wins; per-triangle attributes are looked up in tables
    holding static rows, then actor rows, then a 'miss' row (index -1).
    """

    def __init__(self, static: StaticScene, nthreads: int = 0) -> None:
        if not isinstance(static, StaticScene):
            raise TypeError(f"static must be a StaticScene, got {type(static).__name__}")
        if nthreads < 0:
            raise ValueError(f"nthreads must be >= 0 (0: all cores), got {nthreads}")
        self.static = static
        self.nthreads = int(nthreads)
        self.dynamic = DynamicActors()
        self._static_rgb = _pack_rgb(static.triangle_albedo)
        self._lit: np.ndarray | None = None
        self._tables_version = -1
        self._build_tables()

    def _build_tables(self) -> None:
        d = self.dynamic
        self._tag = np.concatenate([self.static.triangle_tag, d.triangle_tag, [0]]).astype(np.uint8)
        self._instance = np.concatenate([self.static.triangle_instance, d.triangle_instance, [0]]).astype(np.uint32)
        self._rgb = np.concatenate([self._static_rgb, _pack_rgb(d.triangle_albedo), [0]]).astype(np.uint32)
        self._tables_version = d.structure_version

    def update(self, snapshot: WorldSnapshot, hidden_actor_ids: tuple[int, ...] = ()) -> None:
        """Move actors to ``snapshot`` and set traffic-light lamps from its ``light_state``.

        ``hidden_actor_ids`` leaves actors out (e.g. a vehicle whose sensors sit inside its box).
        """
        lamps = self.static.lamps
        if snapshot.light_state.shape[0] != self.static.num_lights:
            raise ValueError(f"snapshot has {snapshot.light_state.shape[0]} traffic lights, the scene was built "
                             f"for {self.static.num_lights}: is it the same map?")
        self.dynamic.update(snapshot, hidden_actor_ids)
        if self._tables_version != self.dynamic.structure_version:
            self._build_tables()
        if lamps.triangles.size:
            lit = snapshot.light_state[lamps.light] == lamps.colour
            if self._lit is None or not np.array_equal(lit, self._lit):
                self._lit = lit
                colours = np.where(lit[:, None], _LAMP_LIT_TABLE[lamps.colour], _LAMP_DARK_TABLE[lamps.colour])
                self._static_rgb[lamps.triangles] = _pack_rgb(colours)
                self._rgb[lamps.triangles] = self._static_rgb[lamps.triangles]

    def cast_rays(self, origins: np.ndarray, directions: np.ndarray,
                  max_range_m: float | np.ndarray = math.inf) -> RayHits:
        """First hits of rays ``origins + t * directions`` with ``0 <= t <= max_range_m``.

        ``origins`` (N, 3) or (3,) for rays sharing one origin; ``directions``
        (N, 3) unit vectors; ``max_range_m`` a scalar or (N,). Call
        :meth:`update` first for actors to appear. Sensors casting the same
        directions every tick save the packing (~1 ms per 150k rays) with
        :class:`RayBundle` and :meth:`cast_ray_array`.
        """
        directions = np.asarray(directions, dtype=np.float32)
        origins = np.asarray(origins, dtype=np.float32)
        if directions.ndim != 2 or directions.shape[1] != 3:
            raise ValueError(f"directions must have shape (N, 3), got {directions.shape}")
        n = directions.shape[0]
        if origins.shape not in ((n, 3), (3,)):
            raise ValueError(f"origins must have shape ({n}, 3) or (3,), got {origins.shape}")
        return self.cast_ray_array(_pack_rays(origins, directions), max_range_m)

    def cast_ray_array(self, rays: np.ndarray, max_range_m: float | np.ndarray = math.inf,
                       actor_rays: np.ndarray | None = None) -> RayHits:
        """Like :meth:`cast_rays` for rays packed as a C-contiguous (N, 6) float32 array [origin, direction].

        ``actor_rays``: indices of the only rays that can hit an actor (from
        conservative bounds, see ``RaycastSensor.actor_candidates``); the others
        skip the actor scene. None: every ray is cast against the actors.
        (Casting the static scene on another thread while this one builds and
        casts the actor scene was tried: on 2 cores it was ~20% slower.)
        """
        if not (isinstance(rays, np.ndarray) and rays.dtype == np.float32 and rays.ndim == 2
                and rays.shape[1] == 6 and rays.flags.c_contiguous):
            raise ValueError("rays must be a C-contiguous (N, 6) float32 array, got "
                             f"{getattr(rays, 'dtype', type(rays).__name__)} {getattr(rays, 'shape', '')}")
        n = rays.shape[0]
        max_range = np.asarray(max_range_m, dtype=np.float32)
        if max_range.shape not in ((), (n,)) or np.isnan(max_range).any() or (max_range < 0).any():
            raise ValueError(f"max_range_m must be a non-negative scalar or shape ({n},), got {max_range_m!r}")
        if n:
            probe = rays[:: max(1, n // 64), 3:]
            norms = np.einsum("ij,ij->i", probe, probe)
            if not np.all(np.abs(norms - 1.0) < 1e-3):
                raise ValueError("directions must be unit vectors (one has norm "
                                 f"{math.sqrt(float(norms[np.argmax(np.abs(norms - 1.0))])):.4f})")
        tensor = _o3c.Tensor.from_numpy(rays)
        out = self.static.raycasting_scene.cast_rays(tensor, nthreads=self.nthreads)
        actor = self._cast_actors(tensor, rays, actor_rays)
        t = out["t_hit"].numpy()
        index = out["primitive_ids"].numpy().view(np.int32)  # Open3D's INVALID_ID reads -1: the miss row
        normal = out["primitive_normals"].numpy()  # zero on a miss
        if actor is not None:
            rows, out_d = actor
            t_d = out_d["t_hit"].numpy()
            local = np.flatnonzero(t_d < (t if rows is None else t[rows]))
            nearer = local if rows is None else rows[local]
            if nearer.size:
                t[nearer] = t_d[local]
                index[nearer] = out_d["primitive_ids"].numpy()[local].view(np.int32) + self.static.num_triangles
                normal[nearer] = out_d["primitive_normals"].numpy()[local]
        if max_range.ndim or math.isfinite(float(max_range)):
            beyond = np.flatnonzero(~(t <= max_range) & (t < np.inf))
            t[beyond] = np.inf
            index[beyond] = -1
            normal[beyond] = 0.0
        tables = _HitTables(self._tag, self._instance, self._rgb, self.static.num_triangles, self._surface_velocity)
        return RayHits(t, index, normal, rays, tables)

    def _cast_actors(self, tensor, rays: np.ndarray, rows: np.ndarray | None) -> tuple[np.ndarray | None, dict] | None:
        """Open3D's result for ``rays[rows]`` (all rays when None) against the actor scene; None if nothing to cast."""
        scene = self.dynamic.raycasting_scene
        if scene is None or (rows is not None and rows.size == 0):
            return None
        subset = tensor if rows is None else _o3c.Tensor.from_numpy(np.ascontiguousarray(rays[rows]))
        return rows, scene.cast_rays(subset, nthreads=self.nthreads)

    def _surface_velocity(self, triangle: np.ndarray, point: np.ndarray) -> np.ndarray:
        """Velocity of the actor surface points hit: v + yaw_rate x r."""
        snapshot = self.dynamic.snapshot
        row = self.dynamic.triangle_row[triangle]
        v = snapshot.velocity_mps[row].astype(np.float32)
        omega = snapshot.angular_velocity_rad_s[row, 2]
        r = point - snapshot.location_m[row]
        v[:, 0] -= omega * r[:, 1]
        v[:, 1] += omega * r[:, 0]
        return v


_LAMP_LIT_TABLE = np.zeros((5, 3), np.uint8)
_LAMP_DARK_TABLE = np.zeros((5, 3), np.uint8)
for _state, _colour in LAMP_LIT.items():
    _LAMP_LIT_TABLE[_state] = _colour
for _state, _colour in LAMP_DARK.items():
    _LAMP_DARK_TABLE[_state] = _colour
