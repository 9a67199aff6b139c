"""CARLA 0.9.16's vehicle blueprint library over the wire: a scenario_runner-style client spawns its actors by the
hard-coded blueprint ids CARLA's scenarios use, and scripts filter by base type, generation and wheels."""

from __future__ import annotations

import random

import pytest

carla = pytest.importorskip("carla")

from sim.carla_server.process import start_server_process, stop_server_process
from sim.sensors.vehicle_blueprints import VEHICLE_BLUEPRINTS

SCENARIO_MODELS = ("vehicle.lincoln.mkz_2017", "vehicle.nissan.patrol", "vehicle.tesla.model3",
                   "vehicle.volkswagen.t2", "vehicle.carlamotors.carlacola", "vehicle.kawasaki.ninja",
                   "vehicle.diamondback.century", "vehicle.audi.tt", "vehicle.carlamotors.firetruck")
"""Models scenario_runner's scenarios and its actor categories ask for by id."""


@pytest.fixture(scope="module")
def world():
    proc, port = start_server_process()
    try:
        client = carla.Client("127.0.0.1", port)
        client.set_timeout(20.0)
        world = client.get_world()
        settings = world.get_settings()
        settings.synchronous_mode, settings.fixed_delta_seconds = True, 0.05
        world.apply_settings(settings)
        yield world
    finally:
        stop_server_process(proc)


def test_the_library_has_every_vehicle_with_carla_attributes(world):
    library = world.get_blueprint_library()
    vehicles = library.filter("vehicle.*")
    assert {bp.id for bp in vehicles} == set(VEHICLE_BLUEPRINTS) and len(vehicles) >= 40
    for bp in vehicles:
        assert bp.has_attribute("color") and bp.has_attribute("role_name") and bp.has_attribute("special_type")
        assert bp.get_attribute("base_type").as_str() in ("car", "van", "truck", "bus", "motorcycle", "bicycle")
        assert bp.get_attribute("number_of_wheels").as_int() in (2, 4)
        assert bp.get_attribute("generation").as_int() in (1, 2)
        assert "ego_vehicle" in bp.get_attribute("role_name").recommended_values
    # generate_traffic.py's filters: --safe keeps cars, --generationv 2 the second generation
    cars = [bp for bp in vehicles if bp.get_attribute("base_type").as_str() == "car"]
    second = [bp for bp in vehicles if bp.get_attribute("generation").as_int() == 2]
    two_wheels = [bp for bp in vehicles if bp.get_attribute("number_of_wheels").as_int() == 2]
    assert len(cars) >= 20 and len(second) >= 10 and len(two_wheels) == 7
    assert library.find("vehicle.ford.ambulance").get_attribute("special_type").as_str() == "emergency"


def test_scenario_runner_models_spawn_by_id_with_carla_sized_boxes(world):
    """As CarlaDataProvider.request_new_actor: find the model, pick a recommended colour, role name, spawn."""
    library = world.get_blueprint_library()
    rng = random.Random(3)
    points = world.get_map().get_spawn_points()
    actors = []
    try:
        for model, point in zip(SCENARIO_MODELS, points[::7]):
            bp = library.filter(model)[0]
            bp.set_attribute("color", rng.choice(bp.get_attribute("color").recommended_values))
            bp.set_attribute("role_name", "scenario")
            actor = world.try_spawn_actor(bp, point)
            assert actor is not None, model
            actors.append(actor)
        world.tick()
        for model, actor in zip(SCENARIO_MODELS, actors):
            assert actor.type_id == model and actor.attributes["role_name"] == "scenario"
            extent = actor.bounding_box.extent
            expected = VEHICLE_BLUEPRINTS[model].extent_m
            assert (extent.x, extent.y, extent.z) == pytest.approx(expected, abs=0.01), model
        patrol, mkz_2017 = actors[1], actors[0]
        assert patrol.bounding_box.extent.z > mkz_2017.bounding_box.extent.z  # an SUV is taller than a sedan
    finally:
        for actor in actors:
            actor.destroy()


def test_follow_leading_vehicle_with_hard_coded_models(world):
    """FollowLeadingVehicle in miniature: a patrol 25 m ahead of the hero on its lane drives off and brakes; the
    hero (an mkz_2017) follows it along the lane and stops behind it without touching it."""
    library = world.get_blueprint_library()
    carla_map = world.get_map()
    start = carla_map.get_waypoint(carla_map.get_spawn_points()[0].location)
    hero_bp = library.find("vehicle.lincoln.mkz_2017")
    hero_bp.set_attribute("role_name", "hero")
    hero = world.spawn_actor(hero_bp, start.transform)
    lead_wp = start.next(25.0)[0]
    lead = world.spawn_actor(library.find("vehicle.nissan.patrol"), lead_wp.transform)
    collisions = []
    sensor = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=hero)
    sensor.listen(collisions.append)
    try:
        for tick in range(200):
            world.tick()
            lead.apply_control(carla.VehicleControl(throttle=0.5) if tick < 60 else carla.VehicleControl(brake=1.0))
            gap = hero.get_location().distance(lead.get_location())
            here = carla_map.get_waypoint(hero.get_location())
            ahead = here.next(6.0)[0].transform.location - hero.get_location()
            right = hero.get_transform().get_right_vector()
            steer = max(-0.5, min(0.5, 0.5 * (ahead.x * right.x + ahead.y * right.y) / max(ahead.length(), 1e-3)))
            speed = hero.get_velocity().length()
            if gap < 12.0:
                control = carla.VehicleControl(brake=1.0, steer=steer)
            else:
                control = carla.VehicleControl(throttle=0.6 if speed < 8.0 else 0.0, steer=steer)
            hero.apply_control(control)
        world.tick()
        assert hero.get_location().distance(start.transform.location) > 20.0  # the hero followed
        assert lead.get_velocity().length() < 0.1 and hero.get_velocity().length() < 0.1
        assert hero.get_location().distance(lead.get_location()) > 4.0 and not collisions
        assert carla_map.get_waypoint(hero.get_location()).lane_id == start.lane_id
    finally:
        sensor.stop()
        sensor.destroy()
        hero.destroy()
        lead.destroy()
