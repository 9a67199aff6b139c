"""Frames per second through CARLA's protocol (``avsim serve``) against the same work in-process.

Run through ``avsim bench serve`` (``--json`` prints one JSON object last).
The unmodified ``carla`` client drives a server started as a child process
(the client keeps the GIL while it waits, so the server cannot share its
process): synchronous mode at 20 Hz, one vehicle with a 400x300 RGB camera
(fov 90) and a 32-channel LiDAR (100 m, a full sweep of 32 x 1024 rays per
tick). One frame = ``world.tick()`` plus both sensors' data of that frame
received and decoded by the client (``np.frombuffer``). The in-process
reference runs the same map, vehicle and sensors on ``EmbeddedWorld`` +
``SensorRig`` in this process. Reported: ``fps``, ``inprocess_fps``,
``ratio`` = fps / inprocess_fps, what the client received in the timed
window (``received``: camera frames, their first and last frame number, the
image shape, LiDAR points per frame) and the machine.
"""

from __future__ import annotations

import queue
import time

import numpy as np

from benchmarks.world_bench import BenchError, machine_info
from sim.carla_server.process import serve_command, start_server_process, stop_server_process

CAMERA = {"image_size_x": 400, "image_size_y": 300, "fov": 90}
LIDAR = {"channels": 32, "range": 100.0, "points_per_second": 655360, "rotation_frequency": 20.0,
         "dropoff_general_rate": 0.0, "dropoff_intensity_limit": 1.0, "dropoff_zero_intensity": 0.0}
CAMERA_POSE = {"x": 1.5, "z": 2.4}
LIDAR_POSE = {"z": 2.5}


def _client_fps(port: int, ticks: int, warmup: int) -> tuple[float, dict]:
    import carla

    client = carla.Client("127.0.0.1", port)
    client.set_timeout(20.0)
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = 0.05
    world.apply_settings(settings)
    actors = []
    try:
        library = world.get_blueprint_library()
        vehicle = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), world.get_map().get_spawn_points()[0])
        actors.append(vehicle)
        received: dict[str, queue.Queue] = {"camera": queue.Queue(), "lidar": queue.Queue()}
        for name, blueprint_id, attributes, pose in (("camera", "sensor.camera.rgb", CAMERA, CAMERA_POSE),
                                                     ("lidar", "sensor.lidar.ray_cast", LIDAR, LIDAR_POSE)):
            bp = library.find(blueprint_id)
            for key, value in attributes.items():
                bp.set_attribute(key, str(value))
            sensor = world.spawn_actor(bp, carla.Transform(carla.Location(**pose)), attach_to=vehicle)
            sensor.listen(received[name].put)
            actors.append(sensor)

        delivered = {"frames": [], "camera_shape": None, "lidar_points": []}

        def frame_done(frame: int) -> None:
            for name, q in received.items():
                while True:
                    data = q.get(timeout=10.0)
                    if data.frame >= frame:
                        break
                if name == "camera":
                    image = np.frombuffer(data.raw_data, dtype=np.uint8).reshape(data.height, data.width, 4)
                    delivered["camera_shape"] = list(image.shape)
                    delivered["frames"].append(data.frame)
                else:
                    points = np.frombuffer(data.raw_data, dtype=np.float32).reshape(-1, 4)
                    delivered["lidar_points"].append(int(points.shape[0]))

        for _ in range(warmup):  # streams subscribe asynchronously after listen()
            world.tick()
        for q in received.values():
            while not q.empty():
                q.get_nowait()
        start = time.perf_counter()
        for _ in range(ticks):
            frame_done(world.tick())
        elapsed = time.perf_counter() - start
        frames = delivered["frames"]
        received_summary = {"frames": len(frames), "first_frame": frames[0] if frames else None,
                            "last_frame": frames[-1] if frames else None, "camera_shape": delivered["camera_shape"],
                            "lidar_points_per_frame": (round(float(np.mean(delivered["lidar_points"])), 1)
                                                       if delivered["lidar_points"] else 0.0)}
        return ticks / elapsed, received_summary
    except queue.Empty as exc:
        raise BenchError("a sensor sent no data for 10 s through avsim serve") from exc
    finally:
        for actor in reversed(actors):
            actor.destroy()
        world.apply_settings(original)


def _inprocess_fps(map_name: str, ticks: int, warmup: int) -> float:
    from sim.embedded.sensors.rig import SensorRig
    from sim.sensors.suite import suite_from_dict
    from sim.embedded.world import EmbeddedWorld

    world = EmbeddedWorld(map=map_name, seed=0)
    world.spawn_vehicle("vehicle.lincoln.mkz_2020", world.spawn_points[0], role_name="hero")
    suite = suite_from_dict({"sensors": [
        {"name": "camera", "blueprint": "sensor.camera.rgb", "transform": CAMERA_POSE, "attributes": CAMERA},
        {"name": "lidar", "blueprint": "sensor.lidar.ray_cast", "transform": LIDAR_POSE, "attributes": LIDAR}]})
    rig = SensorRig(world, suite)
    try:
        for _ in range(warmup):
            rig.measure(world.tick())
        start = time.perf_counter()
        for _ in range(ticks):
            rig.measure(world.tick())
        return ticks / (time.perf_counter() - start)
    finally:
        rig.close()


def run_serve_bench(map_name: str = "Town01", ticks: int = 200, warmup: int = 20) -> dict:
    """Client FPS through ``avsim serve`` and in-process FPS for the same work; returns the result record."""
    try:
        import carla  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"the carla client package is needed: {exc}") from exc
    try:
        proc, port = start_server_process(serve_command(map_name))
    except RuntimeError as exc:
        raise BenchError(str(exc)) from exc
    try:
        fps, received = _client_fps(port, ticks, warmup)
    finally:
        stop_server_process(proc)
    inprocess = _inprocess_fps(map_name, ticks, warmup)
    return {"benchmark": "serve", "map": map_name, "ticks": ticks, "camera": "400x300 rgb",
            "lidar": "32 channels x 1024 points per tick, 100 m", "fps": round(fps, 1),
            "inprocess_fps": round(inprocess, 1), "ratio": round(fps / inprocess, 3), "received": received,
            "machine": machine_info()}
