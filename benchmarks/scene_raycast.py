"""Raycast cost of the sensor scene: how to add moving actors without rebuilding the static BVH.

Run ``python -m benchmarks.scene_raycast`` (``--json`` prints one JSON object
last). On a town with NPC traffic and pedestrians it casts, every tick, one
batch of rays: a 400x300 pinhole camera (fov 90) and a 32x1024 LiDAR sweep
(+10 to -30 degrees), both mounted on one vehicle -- 152,768 rays in a single
call, with Open3D using all cores. Three ways of including the actors are
timed, each producing the nearest hit distance and actor id of every ray:

- ``merged``: a small second Embree scene with all actor meshes, rebuilt per
  tick; both scenes are cast and the nearer hit wins (what ``Scene`` does);
- ``actor_frames``: rays near an actor's bounding sphere are moved into its
  frame and cast against a per-type scene built once; the nearest wins;
- ``single_scene``: one scene with the static and actor triangles rebuilt
  every tick.

Also reported: the static scene's build time and triangle counts, the static
cast alone, and ``Scene.update`` + ``Scene.cast_rays`` end to end (all hit
attributes), in one call, in one call per sensor, and per sensor through
``RayBundle`` + ``Scene.cast_ray_array`` with real ranges (camera 1000 m,
LiDAR 100 m), as sensors would. Results are recorded in ``benchmarks/scene_results.md``.
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads spin after a multi-threaded call and, on two cores, steal time from the
# raycast that follows; sensors avoid such calls on their hot path, and so do these timings.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import math
import time

import numpy as np

from benchmarks.world_bench import machine_info
from sim.api import ActorKind, WorldSnapshot
from sim.embedded.world import EmbeddedWorld

CAMERA_SIZE = (400, 300)
CAMERA_FOV_DEG = 90.0
LIDAR_CHANNELS, LIDAR_POINTS = 32, 1024
LIDAR_FOV_DEG = (10.0, -30.0)


def camera_directions(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Unit ray directions (H*W, 3) of a pinhole camera in its own frame (x forward, y right, z up)."""
    f = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d = np.stack([np.full(u.shape, f), u - width / 2.0, -(v - height / 2.0)], axis=-1).reshape(-1, 3)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def lidar_directions(channels: int, points: int, upper_deg: float, lower_deg: float) -> np.ndarray:
    """Unit ray directions (channels*points, 3) of a full LiDAR sweep in its own frame."""
    pitch = np.radians(np.linspace(upper_deg, lower_deg, channels))[:, None]
    yaw = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)[None, :]
    d = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch) + 0 * yaw], axis=-1)
    return d.reshape(-1, 3)


def sensor_poses(snapshot: WorldSnapshot, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation (3, 3) and origins of a camera (1.5 m ahead, 2.4 m up) and a roof LiDAR (2.5 m up) on ``row``."""
    yaw = float(snapshot.rotation_rad[row, 1])
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    base = snapshot.location_m[row]
    return rot, base + rot @ np.array([1.5, 0.0, 2.4]), base + np.array([0.0, 0.0, 2.5])


def sensor_rays(snapshot: WorldSnapshot, row: int) -> tuple[np.ndarray, np.ndarray, list[tuple[slice, np.ndarray]]]:
    """World rays of the camera and LiDAR of :func:`sensor_poses` on the vehicle at ``row``.

    Returns origins (N, 3), directions (N, 3) and the (slice, origin) of each sensor.
    """
    rot, cam_origin, lidar_origin = sensor_poses(snapshot, row)
    cam = camera_directions(*CAMERA_SIZE, CAMERA_FOV_DEG) @ rot.T
    lidar = lidar_directions(LIDAR_CHANNELS, LIDAR_POINTS, *LIDAR_FOV_DEG) @ rot.T
    directions = np.concatenate([cam, lidar]).astype(np.float32)
    origins = np.concatenate([np.broadcast_to(cam_origin, cam.shape),
                              np.broadcast_to(lidar_origin, lidar.shape)]).astype(np.float32)
    groups = [(slice(0, cam.shape[0]), cam_origin), (slice(cam.shape[0], directions.shape[0]), lidar_origin)]
    return origins, directions, groups


class _Merged:
    """(a) Static scene + a per-tick actor scene, nearer hit wins."""

    name = "merged"

    def __init__(self, static, dynamic_cls, o3c) -> None:
        self.static, self.dynamic, self.o3c = static, dynamic_cls(), o3c

    def run(self, snapshot, rays, groups) -> tuple[np.ndarray, np.ndarray]:
        self.dynamic.update(snapshot)
        tensor = self.o3c.Tensor.from_numpy(rays)
        t = self.static.raycasting_scene.cast_rays(tensor)["t_hit"].numpy()
        instance = np.zeros(t.shape, np.uint32)
        out = self.dynamic.raycasting_scene.cast_rays(tensor)
        t_d = out["t_hit"].numpy()
        nearer = np.flatnonzero(t_d < t)
        t[nearer] = t_d[nearer]
        instance[nearer] = self.dynamic.triangle_instance[out["primitive_ids"].numpy()[nearer]]
        return t, instance


class _SingleScene:
    """(c) One scene, static and actor triangles re-added every tick."""

    name = "single_scene"

    def __init__(self, static, dynamic_cls, o3c) -> None:
        import open3d as o3d

        self.o3d, self.o3c = o3d, o3c
        self.static, self.dynamic = static, dynamic_cls()
        self.static_v = o3c.Tensor.from_numpy(np.ascontiguousarray(static.vertices))
        self.static_t = o3c.Tensor.from_numpy(static.triangles.astype(np.uint32))

    def run(self, snapshot, rays, groups) -> tuple[np.ndarray, np.ndarray]:
        self.dynamic.update(snapshot)
        scene = self.o3d.t.geometry.RaycastingScene()
        static_id = scene.add_triangles(self.static_v, self.static_t)
        scene.add_triangles(self.o3c.Tensor.from_numpy(self.dynamic.vertices),
                            self.o3c.Tensor.from_numpy(self.dynamic.triangles))
        out = scene.cast_rays(self.o3c.Tensor.from_numpy(rays))
        t = out["t_hit"].numpy()
        geometry = out["geometry_ids"].numpy()
        prim = out["primitive_ids"].numpy()
        instance = np.zeros(t.shape, np.uint32)
        dyn = np.flatnonzero((geometry != static_id) & np.isfinite(t))
        instance[dyn] = self.dynamic.triangle_instance[prim[dyn]]
        return t, instance


class _ActorFrames:
    """(b) Rays near an actor's bounding sphere, moved into its frame, cast against a per-type scene."""

    name = "actor_frames"

    def __init__(self, static, dynamic_cls, o3c) -> None:
        from sim.embedded.sensors.scene import _raycasting_scene

        self.static, self.o3c = static, o3c
        self.templates = dynamic_cls()
        self.scenes: dict[int, object] = {}
        self.make_scene = _raycasting_scene
        self.candidates_s = 0.0

    def _actor_scenes(self, snapshot) -> list:
        keys = []
        for row in range(snapshot.num_actors):
            mesh = self.templates.template(int(snapshot.kind[row]), snapshot.type_id[row],
                                           int(snapshot.semantic_tag[row]), np.asarray(snapshot.extent_m[row]))
            if id(mesh) not in self.scenes:  # built once per type, outside the per-tick work in steady state
                self.scenes[id(mesh)] = self.make_scene(mesh.vertices, mesh.triangles)
            keys.append(id(mesh))
        return keys

    def run(self, snapshot, rays, groups) -> tuple[np.ndarray, np.ndarray]:
        keys = np.array(self._actor_scenes(snapshot))
        tensor = self.o3c.Tensor.from_numpy(rays)
        t = self.static.raycasting_scene.cast_rays(tensor)["t_hit"].numpy()
        instance = np.zeros(t.shape, np.uint32)
        start = time.perf_counter()
        extent = snapshot.extent_m
        centre = snapshot.location_m + np.where(snapshot.kind[:, None] == ActorKind.VEHICLE,
                                                extent * [0.0, 0.0, 1.0], 0.0)
        radius = np.linalg.norm(extent, axis=1)
        ray_idx, actor_idx = [], []
        for rows, origin in groups:  # rays of one sensor share an origin: a cone test per actor
            offset = centre - origin
            dist = np.linalg.norm(offset, axis=1)
            cos_half = np.sqrt(np.clip(1.0 - (radius / np.maximum(dist, 1e-9)) ** 2, 0.0, 1.0))
            cos_half[dist <= radius] = -1.0  # the origin is inside: every ray is a candidate
            inside = (rays[rows, 3:] @ (offset / np.maximum(dist, 1e-9)[:, None]).T.astype(np.float32)
                      >= cos_half.astype(np.float32))
            r, a = np.nonzero(inside)
            ray_idx.append(r + rows.start)
            actor_idx.append(a)
        ray_idx, actor_idx = np.concatenate(ray_idx), np.concatenate(actor_idx)
        self.candidates_s = time.perf_counter() - start
        if ray_idx.size == 0:
            return t, instance
        yaw = snapshot.rotation_rad[actor_idx, 1]
        c, s = np.cos(yaw), np.sin(yaw)
        rel = rays[ray_idx, :3] - snapshot.location_m[actor_idx]
        d = rays[ray_idx, 3:]
        local = np.empty((ray_idx.size, 6), np.float32)
        local[:, 0] = c * rel[:, 0] + s * rel[:, 1]
        local[:, 1] = -s * rel[:, 0] + c * rel[:, 1]
        local[:, 2] = rel[:, 2]
        local[:, 3] = c * d[:, 0] + s * d[:, 1]
        local[:, 4] = -s * d[:, 0] + c * d[:, 1]
        local[:, 5] = d[:, 2]
        pair_t = np.full(ray_idx.size, np.inf, np.float32)
        pair_key = keys[actor_idx]
        for key in np.unique(pair_key):
            sel = np.flatnonzero(pair_key == key)
            pair_t[sel] = self.scenes[int(key)].cast_rays(self.o3c.Tensor.from_numpy(local[sel]))["t_hit"].numpy()
        order = np.lexsort((pair_t, ray_idx))
        first = order[np.concatenate([[True], np.diff(ray_idx[order]) != 0])]
        hit = first[pair_t[first] < t[ray_idx[first]]]
        t[ray_idx[hit]] = pair_t[hit]
        instance[ray_idx[hit]] = snapshot.actor_id[actor_idx[hit]]
        return t, instance


def _static_build(map_name: str, seed: int) -> dict:
    from sim.embedded.sensors.scene import StaticScene

    world = EmbeddedWorld(map=map_name, seed=seed)
    start = time.perf_counter()
    _ = world.geometry, world.area_raster  # built lazily: time them apart from the scene
    geometry_s = time.perf_counter() - start
    static = StaticScene.build(world, seed=seed)
    return {"map": map_name, "geometry_and_raster_s": round(geometry_s, 3), "static_build_s":
            round(static.build_time_s, 3), "triangles": static.num_triangles,
            "triangles_by_tag": static.triangle_counts(), "buildings": static.num_buildings}


def run(map_name: str = "Town10HD", vehicles: int = 50, walkers: int = 30, ticks: int = 15, seed: int = 0,
        warmup_ticks: int = 40, rounds: int = 3) -> dict:
    """Time every approach on ``ticks`` recorded snapshots; medians and minima in ms.

    Each approach replays the snapshots in a block (``rounds`` times, the
    order of approaches rotating between rounds), so caches it keeps between
    ticks stay warm and other approaches' allocations do not land in its timing.
    """
    import open3d as o3d

    from sim.embedded.sensors.scene import DynamicActors, RayBundle, Scene, StaticScene

    o3c = o3d.core
    world = EmbeddedWorld(map=map_name, seed=seed)
    static = StaticScene.build(world, seed=seed)
    world.spawn_traffic(vehicles)
    world.spawn_walkers(walkers)
    for _ in range(warmup_ticks):
        world.tick()
    snapshots = [world.tick() for _ in range(ticks)]
    ego = int(np.flatnonzero(snapshots[0].kind == ActorKind.VEHICLE)[0])
    rays_per_tick = [sensor_rays(snapshot, ego) for snapshot in snapshots]
    approaches = [_Merged(static, DynamicActors, o3c), _ActorFrames(static, DynamicActors, o3c),
                  _SingleScene(static, DynamicActors, o3c)]
    scene = Scene(static)

    def static_only(snapshot, origins, directions, rays, groups):
        return static.raycasting_scene.cast_rays(o3c.Tensor.from_numpy(rays))

    def scene_update(snapshot, origins, directions, rays, groups):
        scene.update(snapshot)

    def scene_cast(snapshot, origins, directions, rays, groups):
        scene.update(snapshot)
        return scene.cast_rays(origins, directions)

    def scene_cast_per_sensor(snapshot, origins, directions, rays, groups):
        scene.update(snapshot)
        return [scene.cast_rays(origin, directions[rows]) for rows, origin in groups]

    bundles = (RayBundle(camera_directions(*CAMERA_SIZE, CAMERA_FOV_DEG)),
               RayBundle(lidar_directions(LIDAR_CHANNELS, LIDAR_POINTS, *LIDAR_FOV_DEG)))

    def scene_ray_bundles(snapshot, origins, directions, rays, groups):
        scene.update(snapshot)
        rot, cam_origin, lidar_origin = sensor_poses(snapshot, ego)
        return [scene.cast_ray_array(bundle.world_rays(origin, rot), max_range)
                for bundle, origin, max_range in ((bundles[0], cam_origin, 1000.0), (bundles[1], lidar_origin, 100.0))]

    jobs = {a.name: (lambda snapshot, origins, directions, rays, groups, run=a.run: run(snapshot, rays, groups))
            for a in approaches}
    jobs.update({"static_only": static_only, "scene_update": scene_update,
                 "scene_update_and_cast_rays": scene_cast, "scene_update_and_cast_rays_per_sensor": scene_cast_per_sensor,
                 "scene_update_and_ray_bundles_per_sensor": scene_ray_bundles})
    times: dict[str, list[float]] = {name: [] for name in [*jobs, "actor_frames_candidates"]}
    names = list(jobs)
    for round_index in range(rounds + 1):  # round 0 warms up (per-type scenes, templates) and is not counted
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            for snapshot, (origins, directions, groups) in zip(snapshots, rays_per_tick):
                rays = np.concatenate([origins, directions], axis=1)
                start = time.perf_counter()
                jobs[name](snapshot, origins, directions, rays, groups)
                if round_index:
                    times[name].append(time.perf_counter() - start)
                    if name == "actor_frames":
                        times["actor_frames_candidates"].append(approaches[1].candidates_s)
    # The approaches must agree: nearest distance and actor id of every ray.
    agreement = []
    for snapshot, (origins, directions, groups) in zip(snapshots[:3], rays_per_tick[:3]):
        rays = np.concatenate([origins, directions], axis=1)
        results = [a.run(snapshot, rays, groups) for a in approaches]
        scene.update(snapshot)
        hits = scene.cast_rays(origins, directions)
        ref_t, ref_i = results[-1]
        both_inf = np.isinf(ref_t)
        for t, instance in [*results, (hits.distance_m, hits.instance)]:
            close = np.where(both_inf, np.isinf(t), np.abs(t - np.where(both_inf, 0.0, ref_t)) < 1e-3)
            agreement.append(float(np.mean(close & (instance == ref_i))))
    summary = {name: {"median_ms": round(1e3 * float(np.median(v)), 2), "min_ms": round(1e3 * min(v), 2)}
               for name, v in times.items()}
    return {
        "map": map_name, "vehicles": vehicles, "walkers": walkers, "rays": int(rays_per_tick[0][1].shape[0]),
        "ticks": ticks, "rounds": rounds, "actor_triangles": scene.dynamic.num_triangles,
        "static_triangles": static.num_triangles, "actors_hit_share": round(float(np.mean(hits.instance > 0)), 4),
        "min_agreement": round(min(agreement), 5), "times": summary,
    }


def main(argv: list[str] | None = None) -> dict:
    """Command line entry: print a table (and one JSON object last with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="Town10HD")
    parser.add_argument("--vehicles", type=int, default=50)
    parser.add_argument("--walkers", type=int, default=30)
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if args.ticks < 1:
        parser.error(f"--ticks must be >= 1, got {args.ticks}")
    builds = [_static_build(name, args.seed) for name in dict.fromkeys([args.map, "Town01", "Town10HD"])]
    result = run(args.map, args.vehicles, args.walkers, args.ticks, args.seed)
    result = {"machine": machine_info(), "static_builds": builds, **result}
    for build in builds:
        print(f"{build['map']}: static scene {build['triangles']} triangles built in {build['static_build_s']} s "
              f"(+ {build['geometry_and_raster_s']} s map geometry), {build['buildings']} buildings")
    print(f"{result['map']}, {result['vehicles']} vehicles + {result['walkers']} walkers "
          f"({result['actor_triangles']} actor triangles), {result['rays']} rays per call, "
          f"agreement between approaches {result['min_agreement']}")
    for name, t in result["times"].items():
        print(f"  {name:40s} median {t['median_ms']:7.2f} ms   min {t['min_ms']:7.2f} ms")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
