"""What CARLA 0.9.16's own scripts needed when run unmodified against ``avsim serve`` (issue 20).

Client code of the project's own, in the style of ``util/config.py --fps N`` (asynchronous mode with a new
``fixed_delta_seconds``: the client's ``apply_settings`` ticks until two snapshots show the new step, and warns
``the settings were not correctly set`` otherwise), of scripts that call ``world.tick()`` in asynchronous mode, and
of scenario_runner's routes, which load the ``_Opt`` variant of a town (``Town10HD_Opt``) and check its name.
"""

from __future__ import annotations

import time

import pytest

carla = pytest.importorskip("carla")


@pytest.fixture()
def world(client):
    return client.get_world()


def _apply(world, synchronous: bool, delta: float | None) -> None:
    settings = world.get_settings()
    settings.synchronous_mode = synchronous
    settings.fixed_delta_seconds = delta
    world.apply_settings(settings)


def test_config_style_fixed_step_in_asynchronous_mode_is_seen_at_once(world, capfd):
    _apply(world, False, None)
    start = time.monotonic()
    _apply(world, False, 0.1)  # config.py --fps 10
    took = time.monotonic() - start
    try:
        # The client waited for snapshots stepped by 0.1 s (not 30 stale ones), so the new step shows at once.
        assert world.get_snapshot().timestamp.delta_seconds == pytest.approx(0.1)
        assert took < 5.0
        assert "not correctly set" not in capfd.readouterr().err
    finally:
        _apply(world, False, None)


def test_world_tick_in_asynchronous_mode_waits_for_the_next_frame(world):
    _apply(world, False, 0.05)
    try:
        for _ in range(3):
            before = world.get_snapshot().frame
            frame = world.tick()
            assert frame > before
            assert world.get_snapshot().frame >= frame
    finally:
        _apply(world, False, None)


def test_opt_variant_of_a_town_loads_under_its_own_name(client):
    assert "/Game/Carla/Maps/Town01_Opt" in client.get_available_maps()
    plain = client.get_world().get_map()
    world = client.load_world("Town01_Opt")
    town = world.get_map()
    # scenario_runner: map_name = get_map().name.split('/')[-1], which must equal the route's town
    assert town.name.split("/")[-1] == "Town01_Opt"
    assert len(town.get_spawn_points()) == len(plain.get_spawn_points())
    assert client.reload_world().get_map().name.split("/")[-1] == "Town01_Opt"
    assert client.load_world("Town01").get_map().name.split("/")[-1] == "Town01"
    with pytest.raises(RuntimeError, match="not found"):
        client.load_world("Town99_Opt")


def test_ground_projection_finds_the_road_under_a_waypoint(world):
    # scenario_runner's ControlLoss: ground_projection(waypoint location + 1 m up, 2 m) places its debris
    waypoint = world.get_map().get_waypoint(world.get_map().get_spawn_points()[0].location)
    above = waypoint.transform.location + carla.Location(z=1.0)
    ground = world.ground_projection(above, 2.0)
    assert ground is not None
    assert ground.location.z == pytest.approx(waypoint.transform.location.z, abs=0.05)
    assert (ground.location.x, ground.location.y) == pytest.approx((above.x, above.y))
    assert ground.label == carla.CityObjectLabel.Roads
    assert world.ground_projection(waypoint.transform.location + carla.Location(z=5.0), 2.0) is None
    with pytest.raises(RuntimeError, match="only straight down"):
        world.project_point(above, carla.Vector3D(1.0, 0.0, 0.0), 5.0)


def test_vehicle_light_state_round_trip(world):
    # scenario_runner's BlockedIntersection: lights = blocker.get_light_state(); lights |= Brake; set_light_state(...)
    vehicle = world.spawn_actor(world.get_blueprint_library().find("vehicle.lincoln.mkz_2020"),
                                world.get_map().get_spawn_points()[1])
    try:
        assert vehicle.get_light_state() == carla.VehicleLightState.NONE
        lights = vehicle.get_light_state()
        lights |= carla.VehicleLightState.Brake
        vehicle.set_light_state(carla.VehicleLightState(lights))
        deadline = time.monotonic() + 5.0  # set_light_state does not wait for the server
        while vehicle.get_light_state() != carla.VehicleLightState.Brake and time.monotonic() < deadline:
            time.sleep(0.05)
        assert vehicle.get_light_state() == carla.VehicleLightState.Brake
    finally:
        vehicle.destroy()
