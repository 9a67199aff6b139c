"""CARLA's semantics where client scripts rely on them (issue 20), with the unmodified client against ``avsim serve``.

``reload_world`` (an empty map name), the default light state, ``load_world`` resetting weather and time, sensors
outliving their vehicle (``synchronous_mode.py`` destroys the vehicle first), spring-arm attachments (the chase
camera of ``automatic_control.py``), sensors without a parent, any ``fixed_delta_seconds`` and asynchronous mode's
variable step.
"""

from __future__ import annotations

import math
import queue
import time

import numpy as np
import pytest

carla = pytest.importorskip("carla")


@pytest.fixture()
def world(client):
    """The world in synchronous mode at ``fixed_delta_seconds`` 0.05; afterwards no actors and asynchronous mode."""
    world = client.get_world()
    _apply(world, True, 0.05)
    try:
        yield world
    finally:
        for actor in world.get_actors():
            if not actor.type_id.startswith(("traffic.", "spectator")):
                actor.destroy()
        _apply(world, False, None)


def _apply(world, synchronous: bool, delta: float | None) -> None:
    settings = world.get_settings()
    settings.synchronous_mode = synchronous
    settings.fixed_delta_seconds = delta
    world.apply_settings(settings)


def _vehicle(world, index: int = 0, blueprint: str = "vehicle.lincoln.mkz_2020"):
    return world.spawn_actor(world.get_blueprint_library().find(blueprint), world.get_map().get_spawn_points()[index])


def _listen(sensor) -> queue.Queue:
    received: queue.Queue = queue.Queue()
    sensor.listen(received.put)
    return received


def _next(received: queue.Queue, frame: int):
    """The sensor's data of ``frame`` (earlier frames are dropped)."""
    while True:
        data = received.get(timeout=10.0)
        if data.frame >= frame:
            assert data.frame == frame
            return data


def test_reload_world_and_load_world_reset_weather_and_time(client, world):
    for _ in range(40):
        world.tick()
    assert world.get_snapshot().timestamp.elapsed_seconds > 1.9
    weather = world.get_weather()
    weather.cloudiness, weather.precipitation = 90.0, 50.0
    world.set_weather(weather)
    assert world.get_weather().cloudiness == pytest.approx(90.0)
    name = world.get_map().name
    frame = world.get_snapshot().frame
    reloaded = client.reload_world()  # load_new_episode with an empty map name: the current map again
    assert reloaded.id != world.id and reloaded.get_map().name == name
    assert reloaded.get_weather().cloudiness == pytest.approx(5.0)  # back to the default (ClearNoon)
    snapshot = reloaded.wait_for_tick(5.0)
    assert snapshot.frame > frame  # frames go on, the episode's time starts again
    assert snapshot.timestamp.elapsed_seconds < 1.0


def test_traffic_light_state_is_green_when_no_light_applies(world):
    vehicle = _vehicle(world)
    world.tick()
    world.tick()
    assert not vehicle.is_at_traffic_light() and vehicle.get_traffic_light() is None
    assert vehicle.get_traffic_light_state() == carla.TrafficLightState.Green


def test_sensors_outlive_their_vehicle_and_can_be_destroyed_after_it(world):
    """As synchronous_mode.py: destroy the vehicle, then its cameras; they stayed where they were."""
    vehicle = _vehicle(world)
    library = world.get_blueprint_library()
    camera_bp = library.find("sensor.camera.rgb")
    camera_bp.set_attribute("image_size_x", "96")
    camera_bp.set_attribute("image_size_y", "64")
    mount = carla.Transform(carla.Location(x=-5.5, z=2.8), carla.Rotation(pitch=-15))
    camera = world.spawn_actor(camera_bp, mount, attach_to=vehicle)
    collision = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=vehicle)
    images = _listen(camera)
    frame = world.tick()
    before = _next(images, frame).transform
    assert vehicle.destroy()
    frame = world.tick()
    image = _next(images, frame)  # still streaming, from where it was
    assert image.transform.location.distance(before.location) < 0.05
    assert {camera.id, collision.id} <= {a.id for a in world.get_actors()}
    camera.stop()
    time.sleep(0.1)
    assert camera.destroy() and collision.destroy()


@pytest.mark.parametrize("attachment", ["SpringArm", "SpringArmGhost"])
def test_spring_arm_attachments_are_rigid_mounts(world, attachment):
    vehicle = _vehicle(world)
    bp = world.get_blueprint_library().find("sensor.camera.rgb")
    bp.set_attribute("image_size_x", "64")
    bp.set_attribute("image_size_y", "48")
    mount = carla.Transform(carla.Location(x=-5.5, z=2.5), carla.Rotation(pitch=8.0))
    camera = world.spawn_actor(bp, mount, attach_to=vehicle, attachment_type=getattr(carla.AttachmentType, attachment))
    images = _listen(camera)
    vehicle.apply_control(carla.VehicleControl(throttle=0.8))
    for _ in range(20):
        frame = world.tick()
    image = _next(images, frame)
    car = world.get_snapshot().find(vehicle.id).get_transform()
    expected = car.transform(carla.Location(x=-5.5, z=2.5))
    assert car.location.distance(world.get_map().get_spawn_points()[0].location) > 1.0  # it drove
    assert image.transform.location.distance(expected) < 0.05
    assert image.transform.rotation.yaw == pytest.approx(car.rotation.yaw, abs=0.1)
    camera.stop()
    time.sleep(0.1)
    camera.destroy()


RAYCAST_SENSORS = ("sensor.camera.rgb", "sensor.camera.depth", "sensor.camera.semantic_segmentation",
                   "sensor.camera.instance_segmentation", "sensor.lidar.ray_cast", "sensor.lidar.ray_cast_semantic",
                   "sensor.other.radar")


def test_every_raycasting_sensor_can_be_fixed_in_the_world(world):
    spawn = world.get_map().get_spawn_points()[3]
    behind = spawn.location - 10.0 * spawn.get_forward_vector() + carla.Location(z=6.0)  # looking at the car
    where = carla.Transform(behind, carla.Rotation(pitch=-30.0, yaw=spawn.rotation.yaw))
    library = world.get_blueprint_library()
    sensors, queues = [], []
    for blueprint_id in RAYCAST_SENSORS:
        bp = library.find(blueprint_id)
        for key, value in (("image_size_x", "80"), ("image_size_y", "60"), ("channels", "16"),
                           ("points_per_second", "20000")):
            if bp.has_attribute(key):
                bp.set_attribute(key, value)
        sensor = world.spawn_actor(bp, where)  # no parent
        assert sensor.parent is None
        sensors.append(sensor)
        queues.append(_listen(sensor))
    vehicle = _vehicle(world, 3)  # under the sensors: it shows in their data
    for _ in range(2):
        frame = world.tick()
    for blueprint_id, sensor, received in zip(RAYCAST_SENSORS, sensors, queues):
        data = _next(received, frame)
        assert data.transform.location.distance(where.location) < 0.01, blueprint_id
        assert data.transform.rotation.pitch == pytest.approx(-30.0, abs=0.01)
        assert sensor.get_transform().location.distance(where.location) < 0.01
        if blueprint_id.startswith("sensor.camera"):
            assert (data.width, data.height) == (80, 60)
        else:
            assert len(data) > 0, blueprint_id
    semantic = _next(queues[2], world.tick())
    tags = set(np.frombuffer(semantic.raw_data, dtype=np.uint8).reshape(60, 80, 4)[:, :, 2].ravel().tolist())
    assert 14 in tags  # the car (CityObjectLabel.Car) below the camera
    radar = _next(queues[6], world.tick())
    assert all(abs(d.velocity) < 0.5 for d in radar)  # a radar at rest, and nothing moves
    for sensor in sensors:
        sensor.stop()
    time.sleep(0.1)
    for sensor in sensors:
        sensor.destroy()
    vehicle.destroy()


def test_collision_sensors_need_a_parent(world):
    with pytest.raises(RuntimeError, match="attach it to a vehicle"):
        world.spawn_actor(world.get_blueprint_library().find("sensor.other.collision"), carla.Transform())


def _drive(world, delta: float, seconds: float) -> tuple[float, float, list[float]]:
    """Full throttle and a little steer from spawn point 0 for ``seconds`` at ``delta``: (distance, speed, steps)."""
    _apply(world, True, delta)
    vehicle = _vehicle(world)
    start = world.get_map().get_spawn_points()[0].location
    vehicle.apply_control(carla.VehicleControl(throttle=1.0, steer=0.05))
    steps = []
    for _ in range(round(seconds / delta)):
        world.tick()
        steps.append(world.get_snapshot().timestamp.delta_seconds)
    velocity = vehicle.get_velocity()
    distance = vehicle.get_location().distance(start)
    vehicle.destroy()
    return distance, math.hypot(velocity.x, velocity.y), steps


def test_any_fixed_delta_seconds_steps_the_world_by_it(world):
    settings = world.get_settings()
    settings.fixed_delta_seconds, settings.max_substep_delta_time, settings.max_substeps = 0.2, 0.02, 10
    world.apply_settings(settings)
    assert world.get_settings().max_substep_delta_time == pytest.approx(0.02)
    assert world.get_settings().max_substeps == 10
    fine = _drive(world, 0.05, 3.0)
    coarse = _drive(world, 0.2, 3.0)
    odd = _drive(world, 0.033, 3.0)
    assert coarse[2] == pytest.approx([0.2] * 15) and odd[2] == pytest.approx([0.033] * 91)
    for distance, speed, _ in (coarse, odd):  # the same motion at any step (dynamics substepped at <= 0.05 s)
        assert distance == pytest.approx(fine[0], rel=0.05)
        assert speed == pytest.approx(fine[1], rel=0.05)
    start = world.get_snapshot().timestamp.elapsed_seconds
    world.tick()
    assert world.get_snapshot().timestamp.elapsed_seconds == pytest.approx(start + 0.033)


def test_a_lidar_scans_as_far_per_second_at_any_step(world):
    """At 0.2 s a tick sweeps 4 times as far as at 0.05 s (CARLA's points per tick: points_per_second * dt)."""
    spawn = world.get_map().get_spawn_points()[0]
    bp = world.get_blueprint_library().find("sensor.lidar.ray_cast")
    for key, value in (("channels", "16"), ("points_per_second", "40000"), ("rotation_frequency", "10"),
                       ("upper_fov", "5"), ("lower_fov", "-30")):
        bp.set_attribute(key, value)
    counts = {}
    for delta, ticks in ((0.05, 4), (0.2, 1)):
        _apply(world, True, delta)
        lidar = world.spawn_actor(bp, carla.Transform(spawn.location + carla.Location(z=2.0)))
        received = _listen(lidar)
        world.tick()  # the first tick after listen
        total = 0
        for _ in range(ticks):
            total += len(_next(received, world.tick()))
        counts[delta] = total
        lidar.stop()
        time.sleep(0.1)
        lidar.destroy()
    assert counts[0.05] > 1000
    assert counts[0.2] == pytest.approx(counts[0.05], rel=0.05)


def test_asynchronous_mode_steps_by_the_wall_clock(world):
    _apply(world, False, None)
    first = world.wait_for_tick(5.0)
    started = time.monotonic()
    deltas = []
    for _ in range(20):
        deltas.append(world.wait_for_tick(5.0).timestamp.delta_seconds)
    last = world.get_snapshot()
    wall = time.monotonic() - started
    simulated = last.timestamp.elapsed_seconds - first.timestamp.elapsed_seconds
    assert simulated == pytest.approx(wall, rel=0.4)  # the world keeps up with real time (a loaded machine: slack)
    assert all(0.001 <= d <= 0.1 for d in deltas) and len({round(d, 6) for d in deltas}) > 1  # a variable step
    _apply(world, False, 0.02)  # asynchronous with a fixed step
    assert {round(world.wait_for_tick(5.0).timestamp.delta_seconds, 6) for _ in range(5)} == {0.02}
