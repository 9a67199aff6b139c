"""Speed of the embedded simulator's full sensor suite: world + every sensor, frames per second.

Run through ``avsim bench sensors`` (``--json`` prints one JSON object last).
The issue's suite (``configs/sensors/benchmark.yaml``: RGB, depth and
semantic cameras 400x300 fov 90, a 32-channel 100 m LiDAR with 1024 points
per channel per tick, radar, GNSS, IMU, collision, lane invasion) rides on a
hero vehicle on autopilot through Town10HD with 50 NPC vehicles and 30
pedestrians. Reported:

- ``fps``: ticks per second of world tick + all sensors (median of chunks);
- ``ms_per_sensor``: each sensor's own work (ray planning and turning hits
  into data) plus its share of the shared raycast, split by ray count;
- ``raycast_reference_fps``: in the same run, a bare Open3D RaycastingScene
  holding the same static and actor triangles (built once, never updated)
  casting the same rays, calls per second;
- ``efficiency`` = fps / raycast_reference_fps.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.world_bench import BenchError, machine_info
from sim.maps.loader import MapLoadError
from sim.api import SpawnError
from sim.embedded.world import EmbeddedWorld

SUITE = Path(__file__).resolve().parents[1] / "configs" / "sensors" / "benchmark.yaml"


def _reference_scene(scene):
    """A bare RaycastingScene with the static and current actor triangles in one BVH."""
    import open3d as o3d

    static, dynamic = scene.static, scene.dynamic
    vertices = np.concatenate([static.vertices, dynamic.vertices.astype(np.float32)])
    triangles = np.concatenate([static.triangles.astype(np.uint32),
                                dynamic.triangles.astype(np.uint32) + static.vertices.shape[0]])
    reference = o3d.t.geometry.RaycastingScene()
    reference.add_triangles(o3d.core.Tensor.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32)),
                            o3d.core.Tensor.from_numpy(np.ascontiguousarray(triangles, dtype=np.uint32)))
    return reference


def run_sensor_bench(map_name: str = "Town10HD", vehicles: int = 50, walkers: int = 30, ticks: int = 300,
                     warmup: int = 30, seed: int = 0, suite_path: Path = SUITE) -> dict:
    """Build the world and rig, warm up, time ``ticks`` ticks; returns the result record."""
    import open3d as o3d

    from sim.embedded.sensors.rig import SensorRig
    from sim.sensors.suite import load_suite

    try:
        world = EmbeddedWorld(map=map_name, seed=seed)
        world.spawn_vehicle("vehicle.lincoln.mkz_2020", None, autopilot=True, role_name="hero")
        world.spawn_traffic(vehicles)
        if walkers:
            world.spawn_walkers(walkers)
    except (MapLoadError, SpawnError, ValueError) as exc:
        raise BenchError(str(exc)) from exc
    rig = SensorRig(world, load_suite(suite_path), scene_seed=seed)
    start = time.perf_counter()
    _ = rig.scene
    scene_build_s = time.perf_counter() - start
    for _ in range(warmup):
        rig.measure(world.tick())
    chunks = 5
    per_chunk = max(1, ticks // chunks)
    rates, sensor_s, raycast_s, update_s, world_s = [], {}, 0.0, 0.0, 0.0
    for _ in range(chunks):
        chunk_start = time.perf_counter()
        for _ in range(per_chunk):
            t0 = time.perf_counter()
            snapshot = world.tick()
            world_s += time.perf_counter() - t0
            rig.measure(snapshot)
            timings = rig.timings
            raycast_s += timings.raycast_s
            update_s += timings.scene_update_s
            for name, seconds in timings.per_sensor_s.items():
                sensor_s[name] = sensor_s.get(name, 0.0) + seconds
        rates.append(per_chunk / (time.perf_counter() - chunk_start))
    n = per_chunk * chunks
    # Share of the raycast per sensor by ray count (cameras with the same rays split theirs).
    plans = [(s, s.plan(snapshot)) for s in rig._raycast]
    shares: dict[str, float] = {}
    groups: dict[object, list[str]] = {}
    for sensor, plan in plans:
        key = plan.share_key if plan.share_key is not None else sensor.name
        groups.setdefault(key, []).append(sensor.name)
        shares[sensor.name] = plan.directions.shape[0]
    for members in groups.values():
        for name in members:
            shares[name] /= len(members)
    total_rays = sum(shares.values())
    ms_per_sensor = {name: round(1e3 * seconds / n, 3) for name, seconds in sensor_s.items()}
    for name, count in shares.items():
        ms_per_sensor[name] = round(ms_per_sensor.get(name, 0.0) + 1e3 * raycast_s / n * count / total_rays, 3)
    # Reference: the same rays against one bare scene, same process, same moment.
    reference = _reference_scene(rig.scene)
    unique = {}
    for sensor, plan in plans:
        unique.setdefault(plan.share_key if plan.share_key is not None else sensor.name, plan)
    batch = np.concatenate([np.concatenate([np.broadcast_to(p.origins, p.directions.shape), p.directions], axis=1)
                            for p in unique.values()]).astype(np.float32)
    tensor = o3d.core.Tensor.from_numpy(batch)
    reference.cast_rays(tensor)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        reference.cast_rays(tensor)
    reference_fps = reps / (time.perf_counter() - t0)
    fps = float(np.median(rates))
    return {
        "benchmark": "sensors", "map": world.source.name, "vehicles": vehicles, "walkers": walkers,
        "ticks": n, "fps": round(fps, 1), "fps_min": round(min(rates), 1), "fps_max": round(max(rates), 1),
        "ms_per_sensor": ms_per_sensor, "world_tick_ms": round(1e3 * world_s / n, 3),
        "scene_update_ms": round(1e3 * update_s / n, 3), "raycast_ms": round(1e3 * raycast_s / n, 3),
        "rays_per_tick": int(batch.shape[0]), "raycast_reference_fps": round(reference_fps, 1),
        "efficiency": round(fps / reference_fps, 3), "scene_build_s": round(scene_build_s, 2),
        "scene_triangles": int(rig.scene.static.num_triangles), "machine": machine_info(),
    }
