"""The unmodified ``carla`` 0.9.16 client against ``avsim serve`` (run as a child process on a free port).

The server runs in its own process: the carla Python binding keeps the GIL
while it waits for some answers (``get_world``), so a server on threads of
the test process would never get to answer.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest

carla = pytest.importorskip("carla")

from sim.carla_server.process import start_server_process, stop_server_process

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server():
    proc, port = start_server_process()
    try:
        yield proc, port
    finally:
        stop_server_process(proc)


@pytest.fixture(scope="module")
def client(server):
    c = carla.Client("127.0.0.1", server[1])
    c.set_timeout(10.0)
    return c


@pytest.fixture()
def sync_world(client):
    """The world in synchronous mode at 20 Hz; the original settings come back afterwards."""
    world = client.get_world()
    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = 0.05
    world.apply_settings(settings)
    try:
        yield world
    finally:
        for actor in world.get_actors():
            if not actor.type_id.startswith("traffic."):  # the map's lights stay
                actor.destroy()
        world.apply_settings(original)


def test_version_and_default_settings(client):
    assert client.get_server_version() == "0.9.16"
    settings = client.get_world().get_settings()
    assert settings.synchronous_mode is False and settings.fixed_delta_seconds is None


def test_synchronous_flow_with_camera_and_lidar(sync_world):
    world = sync_world
    library = world.get_blueprint_library()
    carla_map = world.get_map()
    assert carla_map.name == "Town01" and len(carla_map.get_spawn_points()) > 100
    spawn = carla_map.get_spawn_points()[0]

    bp = library.find("vehicle.lincoln.mkz_2020")
    bp.set_attribute("role_name", "hero")
    vehicle = world.spawn_actor(bp, spawn)
    assert vehicle.attributes["role_name"] == "hero" and vehicle.attributes["number_of_wheels"] == "4"
    assert vehicle.bounding_box.extent.x == pytest.approx(2.45)

    cam_bp = library.find("sensor.camera.rgb")
    cam_bp.set_attribute("image_size_x", "64")
    cam_bp.set_attribute("image_size_y", "48")
    cam_bp.set_attribute("fov", "90")
    camera = world.spawn_actor(cam_bp, carla.Transform(carla.Location(x=1.5, z=2.4)), attach_to=vehicle)
    lidar_bp = library.find("sensor.lidar.ray_cast")
    for key, value in (("channels", "16"), ("points_per_second", "16000"), ("rotation_frequency", "20"),
                       ("range", "40"), ("dropoff_general_rate", "0")):
        lidar_bp.set_attribute(key, value)
    lidar = world.spawn_actor(lidar_bp, carla.Transform(carla.Location(z=2.5)), attach_to=vehicle)
    assert camera.parent.id == vehicle.id and lidar.parent.id == vehicle.id

    images, clouds = {}, {}
    camera.listen(lambda image: images.setdefault(image.frame, (image.width, image.height, bytes(image.raw_data))))
    lidar.listen(lambda data: clouds.setdefault(data.frame, (
        data.channels, np.frombuffer(data.raw_data, dtype=np.float32).reshape(-1, 4).copy(),
        [data.get_point_count(c) for c in range(data.channels)])))
    # The stream connections open asynchronously, as in CARLA: tick until data flows, then count.
    for _ in range(40):
        world.tick()
        if images and clouds:
            break
    start = world.get_snapshot().frame
    frames = [world.tick() for _ in range(5)]
    assert frames == list(range(start + 1, start + 6))
    assert world.get_snapshot().frame == frames[-1]
    deadline = time.monotonic() + 2.0
    while not all(f in images and f in clouds for f in frames) and time.monotonic() < deadline:
        time.sleep(0.01)
    for frame in frames:
        width, height, raw = images[frame]
        assert (width, height, len(raw)) == (64, 48, 64 * 48 * 4)
        bgra = np.frombuffer(raw, dtype=np.uint8).reshape(48, 64, 4)
        assert (bgra[..., 3] == 255).all() and bgra[..., :3].std() > 1.0  # an image, not a blank
        channels, points, counts = clouds[frame]
        # 16000 points/s at 20 Hz over 16 channels: 50 per channel per tick; ground and buildings send most back.
        assert channels == 16 and points.shape[0] == sum(counts) and 0 < points.shape[0] <= 800
        assert (np.linalg.norm(points[:, :3], axis=1) <= 40.0 + 1e-3).all()

    before = vehicle.get_transform()
    assert before.location.x == pytest.approx(spawn.location.x, abs=1e-3)
    assert before.rotation.yaw == pytest.approx(spawn.rotation.yaw, abs=1e-3)
    vehicle.apply_control(carla.VehicleControl(throttle=1.0))
    for _ in range(20):
        world.tick()
    after = vehicle.get_transform()
    heading = math.radians(before.rotation.yaw)
    travelled = (after.location.x - before.location.x) * math.cos(heading) + \
        (after.location.y - before.location.y) * math.sin(heading)
    assert travelled > 1.0
    assert vehicle.get_velocity().length() > 1.0
    assert vehicle.get_control().throttle == pytest.approx(1.0)

    ids = {a.id for a in world.get_actors()}
    assert {vehicle.id, camera.id, lidar.id} <= ids
    camera.stop()
    lidar.stop()
    assert camera.destroy() and lidar.destroy() and vehicle.destroy()
    world.tick()
    assert not {vehicle.id, camera.id, lidar.id} & {a.id for a in world.get_actors()}


def test_batch_spawn_and_destroy(sync_world, client):
    from carla import command

    world = sync_world
    bp = world.get_blueprint_library().find("vehicle.mercedes.sprinter")
    points = world.get_map().get_spawn_points()
    results = client.apply_batch_sync([command.SpawnActor(bp, points[3]), command.SpawnActor(bp, points[3]),
                                       command.SpawnActor(bp, points[40])], True)
    assert not results[0].error and not results[2].error
    assert "collision" in results[1].error
    spawned = [results[0].actor_id, results[2].actor_id]
    assert set(spawned) <= {a.id for a in world.get_actors()}
    results = client.apply_batch_sync([command.DestroyActor(a) for a in spawned] + [command.DestroyActor(999_999)],
                                      True)
    assert [r.error for r in results[:2]] == ["", ""] and "999999" in results[2].error
    assert not set(spawned) & {a.id for a in world.get_actors()}


def test_unsupported_calls_raise_and_server_keeps_serving(sync_world, client):
    with pytest.raises(RuntimeError, match="start_recorder"):
        client.start_recorder("recording.log")
    settings = sync_world.get_settings()
    settings.fixed_delta_seconds = 2.0
    with pytest.raises(RuntimeError, match="fixed_delta_seconds=2"):
        sync_world.apply_settings(settings)
    assert client.get_server_version() == "0.9.16"
    frame = sync_world.get_snapshot().frame
    assert sync_world.tick() == frame + 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_traffic_manager_drives_autopilot_vehicles_along_lanes(sync_world, client):
    """The client library's own Traffic Manager runs in this process. Its synchronous step can lose a wake-up
    and hang ``world.tick()`` inside C++ (carla-simulator/carla#9172; a CI run hung here), so the ticks run
    under the CARLA backend's :class:`TickWatchdog`, as ``CarlaWorld.tick`` does."""
    from carla import command

    from sim.carla_backend.tm_watchdog import TickWatchdog

    world = sync_world
    tm_port = _free_port()
    tm = client.get_trafficmanager(tm_port)
    watchdog = TickWatchdog(tm_port, lambda: world.get_snapshot().frame)
    try:
        tm.set_synchronous_mode(True)
        tm.set_random_device_seed(0)
        bp = world.get_blueprint_library().find("vehicle.lincoln.mkz_2020")
        carla_map = world.get_map()
        points = carla_map.get_spawn_points()
        batch = [command.SpawnActor(bp, points[k]).then(command.SetAutopilot(command.FutureActor, True, tm_port))
                 for k in (0, 20, 40, 60, 80, 100)]
        ids = [r.actor_id for r in client.apply_batch_sync(batch, True) if not r.error]
        single = world.spawn_actor(bp, points[120])
        single.set_autopilot(True, tm_port)
        ids.append(single.id)
        assert len(ids) == 7
        actors = list(world.get_actors(ids))
        start = {a.id: a.get_location() for a in actors}
        for _ in range(60):
            watchdog.tick(world.get_snapshot().frame, world.tick)
        moved = [a.get_location().distance(start[a.id]) for a in actors]
        assert sum(m > 1.0 for m in moved) >= 5, moved
        for actor in actors:  # driven along lanes: near a lane centre, heading along it
            location = actor.get_location()
            waypoint = carla_map.get_waypoint(location)
            assert location.distance(waypoint.transform.location) < 2.0
            assert math.cos(math.radians(actor.get_transform().rotation.yaw - waypoint.transform.rotation.yaw)) > 0.7
            assert 30.0 - 1e-3 <= actor.get_speed_limit() <= 90.0 + 1e-3  # the lane's limit [km/h]; 0 would stop TM
        assert any(a.get_control().throttle > 0.0 for a in actors)  # controls come from the TM's batches
    finally:
        watchdog.close()
        tm.set_synchronous_mode(False)
        tm.shut_down()


def test_traffic_lights_are_actors_that_can_be_set_and_frozen(sync_world):
    world = sync_world
    lights = list(world.get_actors().filter("traffic.traffic_light"))
    assert len(lights) > 10
    ids = {light.get_opendrive_id() for light in lights}
    assert len(ids) == len(lights) and all(i.isdigit() for i in ids)
    light = lights[0]
    assert light.get_green_time() == pytest.approx(10.0) and light.get_yellow_time() == pytest.approx(3.0)
    light.set_state(carla.TrafficLightState.Green)
    light.freeze(True)
    for _ in range(3):
        world.tick()
    assert light.get_state() == carla.TrafficLightState.Green and light.is_frozen()
    light.set_state(carla.TrafficLightState.Red)
    world.tick()
    assert light.get_state() == carla.TrafficLightState.Red
    light.freeze(False)
    world.tick()
    assert not light.is_frozen()
    assert light.destroy() is False  # the client logs the server's error and answers False
    assert light.id in {a.id for a in world.get_actors()}


def test_collision_sensor_reports_the_other_vehicle(sync_world):
    world = sync_world
    library = world.get_blueprint_library()
    spawn = world.get_map().get_spawn_points()[0]
    ego = world.spawn_actor(library.find("vehicle.lincoln.mkz_2020"), spawn)
    forward = spawn.get_forward_vector()
    ahead = carla.Transform(spawn.location + forward * 12.0, spawn.rotation)
    other = world.spawn_actor(library.find("vehicle.mercedes.sprinter"), ahead)
    sensor = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=ego)
    events = []
    sensor.listen(events.append)
    ego.apply_control(carla.VehicleControl(throttle=1.0))
    for _ in range(60):
        world.tick()
        if events:
            break
    deadline = time.monotonic() + 2.0
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events, "no collision reported"
    event = events[0]
    assert event.actor.id == ego.id and event.other_actor.id == other.id
    assert event.other_actor.type_id == "vehicle.mercedes.sprinter" and event.normal_impulse.length() > 0.0
    sensor.stop()


def test_walkers_spawn_and_take_walker_control(sync_world):
    world = sync_world
    library = world.get_blueprint_library()
    pedestrians = library.filter("walker.pedestrian.*")
    assert len(pedestrians) >= 40
    # generate_traffic.py keeps generation 2 by default: there must be some.
    assert {bp.get_attribute("generation").as_int() for bp in pedestrians} == {1, 2}
    spawn = world.get_map().get_spawn_points()[0]
    walker = world.spawn_actor(library.find("walker.pedestrian.0003"), spawn)
    controller = world.spawn_actor(library.find("controller.ai.walker"), carla.Transform(), attach_to=walker)
    assert controller.parent.id == walker.id and walker.type_id == "walker.pedestrian.0003"
    world.tick()
    start = walker.get_location()
    walker.apply_control(carla.WalkerControl(carla.Vector3D(1.0, 0.0, 0.0), 2.0))
    for _ in range(20):
        world.tick()
    end = walker.get_location()
    assert end.x - start.x == pytest.approx(2.0, abs=0.3) and abs(end.y - start.y) < 0.1
    assert walker.get_velocity().x == pytest.approx(2.0, abs=0.05)


def test_walker_ai_controllers_walk_the_navigation_mesh(sync_world, client):
    """generate_traffic.py's pedestrians: random navigation points, batch spawns, AI controllers, a cross factor."""
    world = sync_world
    world.set_pedestrians_seed(0)
    points = [world.get_random_location_from_navigation() for _ in range(8)]
    assert all(p is not None for p in points)
    library = world.get_blueprint_library()
    blueprints = library.filter("walker.pedestrian.*")
    spawned = client.apply_batch_sync([carla.command.SpawnActor(blueprints[k], carla.Transform(p + carla.Location(z=1.0)))
                                       for k, p in enumerate(points)], True)
    walkers = [r.actor_id for r in spawned if not r.error]
    assert len(walkers) == 8, [r.error for r in spawned]
    controller_bp = library.find("controller.ai.walker")
    made = client.apply_batch_sync([carla.command.SpawnActor(controller_bp, carla.Transform(), w) for w in walkers],
                                   True)
    controllers = list(world.get_actors([r.actor_id for r in made if not r.error]))
    assert len(controllers) == 8
    world.set_pedestrians_cross_factor(0.0)
    for controller in controllers:
        controller.start()
        controller.go_to_location(world.get_random_location_from_navigation())
        controller.set_max_speed(1.4)
    start = {w: world.get_actor(w).get_location() for w in walkers}
    for _ in range(60):  # 3 s
        world.tick()
    try:
        moved = [world.get_actor(w).get_location().distance(start[w]) for w in walkers]
        heights = [world.get_actor(w).get_location().z - start[w].z for w in walkers]
        # The crowd walks them at their 1.4 m/s (a little less while they turn or make room for each other).
        assert min(moved) > 2.0 and max(moved) < 1.4 * 3.0 + 0.5, moved
        assert max(abs(h) for h in heights) < 0.5  # still on the ground: box centre half a walker above the mesh
    finally:
        for controller in controllers:
            controller.stop()
        client.apply_batch([carla.command.DestroyActor(a) for a in [*[c.id for c in controllers], *walkers]])


def test_sigterm_stops_the_server_cleanly():
    proc, port = start_server_process()
    carla.Client("127.0.0.1", port).get_server_version()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
