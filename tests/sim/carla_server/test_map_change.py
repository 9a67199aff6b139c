"""Map changes over the wire: ``load_world``, ``generate_opendrive_world``, ``get_available_maps``."""

from __future__ import annotations

import pytest

carla = pytest.importorskip("carla")

from sim.maps.loader import resolve_map
from tests.sim.carla_server.serve_proc import run_client

SLOW_TICK_CALLBACK_CLIENT = """
import sys, time, carla
client = carla.Client("127.0.0.1", int(sys.argv[1]))
client.set_timeout(20.0)
for town in ("Town02", "Town01"):
    world = client.get_world()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = 0.05
    world.apply_settings(settings)
    world.tick()
    world.on_tick(lambda snapshot: time.sleep(0.3))  # any state reaching this episode now keeps it alive 0.3 s
    new = client.load_world(town)  # back to asynchronous mode: the server ticks on its own
    print(new.get_map().name, new.wait_for_tick(5.0).frame, flush=True)
"""


def _sync(world: carla.World) -> None:
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = 0.05
    world.apply_settings(settings)


def test_available_maps(client):
    maps = client.get_available_maps()
    assert {"/Game/Carla/Maps/Town01", "/Game/Carla/Maps/Town02", "/Game/Carla/Maps/Town10HD"} <= set(maps)


def test_load_world_starts_a_new_episode_and_resets_settings(client):
    world = client.get_world()
    _sync(world)
    vehicle = world.spawn_actor(world.get_blueprint_library().find("vehicle.lincoln.mkz_2020"),
                                world.get_map().get_spawn_points()[0])
    world.tick()
    frame = world.get_snapshot().frame
    new = client.load_world("Town02")  # reset_settings=True (CARLA's default): back to asynchronous mode
    assert new.id != world.id
    assert new.get_map().name == "Town02" and client.get_world().get_map().name == "Town02"
    assert new.get_settings().synchronous_mode is False
    assert new.wait_for_tick(5.0).frame > frame  # frames go on across episodes
    assert vehicle.id not in {a.id for a in new.get_actors()}
    assert not new.get_actors().filter("vehicle.*")
    spawn = new.get_map().get_spawn_points()[0]
    car = new.spawn_actor(new.get_blueprint_library().find("vehicle.lincoln.mkz_2020"), spawn)
    new.wait_for_tick(5.0)
    where = car.get_location()
    assert abs(where.x - spawn.location.x) < 0.3 and abs(where.y - spawn.location.y) < 0.3  # z: on the ground
    waypoint = new.get_map().get_waypoint(spawn.location)
    assert waypoint.transform.location.distance(spawn.location) < 2.0


def test_load_world_survives_a_slow_tick_callback_of_the_old_episode(server_port):
    """carla 0.9.16's load_world drops its Episode and subscribes a new one to the same stream when the server
    answers; were the old one still alive in a stream callback (an episode state sent to it meanwhile), the
    client's streaming table (keyed by stream id, no lock) loses or frees the new subscription: a segfault or a
    timeout. The server sends nothing on the episode stream from the map change until the client re-subscribed."""
    out = run_client(SLOW_TICK_CALLBACK_CLIENT, server_port, timeout_s=90.0).split()
    assert out[0::2] == ["Town02", "Town01"]
    assert int(out[3]) > int(out[1])


def test_load_world_keeps_settings_when_asked(client):
    world = client.get_world()
    _sync(world)
    new = client.load_world("/Game/Carla/Maps/Town01", reset_settings=False)
    assert new.get_map().name == "Town01"
    settings = new.get_settings()
    assert settings.synchronous_mode is True and settings.fixed_delta_seconds == pytest.approx(0.05)
    frame = new.tick()  # (the client's snapshot may lag a frame behind under load: compare two ticks)
    assert new.tick() == frame + 1
    settings.synchronous_mode = False
    settings.fixed_delta_seconds = None
    new.apply_settings(settings)


def test_generate_opendrive_world(client):
    xodr = resolve_map("Town02").xodr_text
    world = client.generate_opendrive_world(xodr)
    assert world.get_map().name == "OpenDriveMap"
    assert len(world.get_map().get_spawn_points()) > 50
    assert world.get_map().to_opendrive() == xodr


def test_bad_maps_raise_and_the_old_map_stays(client):
    name = client.get_world().get_map().name
    with pytest.raises(RuntimeError, match="Town99.*not found"):
        client.load_world("Town99")
    with pytest.raises(RuntimeError, match="OpenDRIVE"):
        client.generate_opendrive_world("<xml>not a map</xml>")
    assert client.get_world().get_map().name == name
