"""Spectator, level boxes, environment objects, light states, physics control and moving vehicles over the wire."""

from __future__ import annotations

import math

import pytest

carla = pytest.importorskip("carla")

from sim.carla_server.process import start_server_process, stop_server_process


@pytest.fixture(scope="module")
def world():
    proc, port = start_server_process()
    try:
        client = carla.Client("127.0.0.1", port)
        client.set_timeout(10.0)
        world = client.get_world()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = 0.05
        world.apply_settings(settings)
        yield world
    finally:
        stop_server_process(proc)


@pytest.fixture()
def vehicle(world):
    spawn = world.get_map().get_spawn_points()[0]
    actor = world.spawn_actor(world.get_blueprint_library().find("vehicle.lincoln.mkz_2020"), spawn)
    world.tick()
    yield actor
    actor.destroy()
    world.tick()


def test_spectator_transform_can_be_read_and_set(world):
    spectator = world.get_spectator()
    assert spectator.type_id == "spectator"
    world.tick()
    start = world.get_map().get_spawn_points()[0]
    assert spectator.get_transform().location.z == pytest.approx(start.location.z + 50.0, abs=1e-3)
    target = carla.Transform(carla.Location(x=10.0, y=-20.0, z=30.0), carla.Rotation(pitch=-45.0, yaw=90.0))
    spectator.set_transform(target)
    world.tick()
    got = world.get_spectator().get_transform()
    assert (got.location.x, got.location.y, got.location.z) == pytest.approx((10.0, -20.0, 30.0), abs=1e-4)
    assert (got.rotation.pitch, got.rotation.yaw) == pytest.approx((-45.0, 90.0), abs=1e-4)
    assert spectator.id in {a.id for a in world.get_actors()}
    assert spectator.destroy() is False  # CARLA's spectator cannot be destroyed either


def test_level_bbs_and_environment_objects_are_buildings_lights_and_actors(world, vehicle):
    lights = world.get_actors().filter("traffic.traffic_light")
    poles = world.get_level_bbs(carla.CityObjectLabel.TrafficLight)
    assert len(poles) == len(lights) > 10
    assert all(b.extent.z == pytest.approx(2.5) for b in poles)
    cars = world.get_level_bbs(carla.CityObjectLabel.Car)
    assert len(cars) == 1 and cars[0].extent.x == pytest.approx(2.45)
    where = vehicle.get_location()
    assert cars[0].location.x == pytest.approx(where.x, abs=1e-3)
    assert cars[0].location.z == pytest.approx(where.z + 0.76, abs=1e-3)  # box centre above the ground point
    buildings = world.get_level_bbs(carla.CityObjectLabel.Buildings)  # the sensors' static scene
    assert len(buildings) > 50
    carla_map = world.get_map()
    for box in buildings[::10]:
        assert min(box.extent.x, box.extent.y) > 1.0 and box.extent.z > 1.5
        lane = carla_map.get_waypoint(box.location, project_to_road=True).transform.location
        assert math.hypot(lane.x - box.location.x, lane.y - box.location.y) > 4.0  # off the road
    assert len({round(b.rotation.yaw) for b in buildings}) > 3  # turned to face their streets
    assert len(world.get_level_bbs()) == len(buildings) + len(poles) + 1  # Any
    objects = world.get_environment_objects(carla.CityObjectLabel.TrafficLight)
    assert len(objects) == len(poles) and objects[0].type == carla.CityObjectLabel.TrafficLight
    assert objects[0].name == "TrafficLight_0" and objects[0].id == 1
    houses = world.get_environment_objects(carla.CityObjectLabel.Buildings)
    assert len(houses) == len(buildings) and houses[0].type == carla.CityObjectLabel.Buildings
    assert houses[0].bounding_box.location.x == pytest.approx(buildings[0].location.x, abs=1e-3)
    assert houses[0].transform.location.z == pytest.approx(buildings[0].location.z - buildings[0].extent.z, abs=1e-3)
    assert world.get_environment_objects(carla.CityObjectLabel.Vegetation) == []


def test_light_states_and_physics_control(world, vehicle):
    states = world.get_vehicles_light_states()
    assert states[vehicle.id] == carla.VehicleLightState.NONE
    physics = vehicle.get_physics_control()
    assert physics.mass == pytest.approx(1800.0)
    assert len(physics.wheels) == 4 and len(physics.forward_gears) == 5
    front, rear = physics.wheels[0], physics.wheels[2]
    assert front.max_steer_angle == pytest.approx(math.degrees(0.61), abs=1e-3) and rear.max_steer_angle == 0.0
    assert front.position.x - rear.position.x == pytest.approx(285.0, abs=1e-2)  # wheelbase 2.85 m, in cm
    assert physics.max_rpm > 0 and len(physics.torque_curve) == 3
    other = world.spawn_actor(world.get_blueprint_library().find("vehicle.mercedes.sprinter"),
                              world.get_map().get_spawn_points()[40])
    assert other.get_physics_control().mass == pytest.approx(2500.0)
    other.destroy()
    with pytest.raises(RuntimeError, match="destroyed"):  # the client itself refuses
        other.get_physics_control()


def test_set_transform_target_velocity_and_simulate_physics(world, vehicle):
    start = vehicle.get_transform()
    target = carla.Transform(start.location + start.get_forward_vector() * 10.0, start.rotation)
    vehicle.set_transform(target)
    world.tick()
    got = vehicle.get_location()
    assert got.distance(target.location) < 0.05
    heading = math.radians(start.rotation.yaw)
    vehicle.set_target_velocity(carla.Vector3D(8.0 * math.cos(heading), 8.0 * math.sin(heading), 0.0))
    world.tick()
    assert vehicle.get_velocity().length() == pytest.approx(8.0, abs=0.5)
    vehicle.set_simulate_physics(False)
    vehicle.apply_control(carla.VehicleControl(throttle=1.0))
    held = vehicle.get_location()
    for _ in range(5):
        world.tick()
    assert vehicle.get_location().distance(held) < 0.5 and vehicle.get_velocity().length() < 0.5
    moved = carla.Transform(held + start.get_forward_vector() * 3.0, start.rotation)
    vehicle.set_transform(moved)  # a held vehicle can still be placed
    for _ in range(3):
        world.tick()
    assert vehicle.get_location().distance(moved.location) < 0.3
    vehicle.set_simulate_physics(True)  # it drives on with its throttle
    for _ in range(20):
        world.tick()
    assert vehicle.get_location().distance(moved.location) > 1.0


def test_moving_non_vehicles_and_bad_values_are_refused(world, vehicle):
    # set_transform and set_target_velocity are fire-and-forget calls: the server's error is not seen by the
    # client, so check that nothing moved and that the server keeps serving.
    light = world.get_actors().filter("traffic.traffic_light")[0]
    before = light.get_location()
    light.set_target_velocity(carla.Vector3D(1.0, 0.0, 0.0))
    light.set_transform(carla.Transform(carla.Location(x=before.x + 5.0, y=before.y, z=before.z)))
    where = vehicle.get_location()
    vehicle.set_transform(carla.Transform(carla.Location(x=float("nan"))))
    frame = world.get_snapshot().frame
    assert world.tick() == frame + 1
    assert light.get_location().distance(before) < 1e-6 and vehicle.get_location().distance(where) < 0.1
