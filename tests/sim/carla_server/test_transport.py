"""RPC framing, stream subscriptions and the server's request handling, with raw sockets (no carla client)."""

from __future__ import annotations

import math
import socket
import struct
import threading
import time

import msgpack
import pytest

from sim.carla_server import encoding as enc
from sim.carla_server.rpc import RpcServer
from sim.carla_server.server import CarlaServer
from sim.carla_server.streams import StreamServer


def _call(sock: socket.socket, unpacker: msgpack.Unpacker, msgid: int, method: str, *params) -> list:
    sock.sendall(msgpack.packb([0, msgid, method, [[False], *params]], use_bin_type=True))
    while True:
        for message in unpacker:
            return message
        unpacker.feed(sock.recv(1 << 16))


def test_rpc_answers_in_order_and_survives_a_failing_handler():
    def handler(method, params):
        if method == "boom":
            raise RuntimeError("kaput")
        return [[1, [method, params[1:]]]]

    server = RpcServer("127.0.0.1", 0, handler)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            unpacker = msgpack.Unpacker(raw=False)
            assert _call(sock, unpacker, 1, "echo", 4, b"\x01") == [1, 1, None, [[1, ["echo", [4, b"\x01"]]]]]
            assert _call(sock, unpacker, 2, "boom") == [1, 2, None, [[0, ["boom: RuntimeError: kaput"]]]]
            assert _call(sock, unpacker, 3, "echo")[3] == [[1, ["echo", []]]]
    finally:
        server.close()


def test_streams_frame_payloads_per_subscription():
    streams = StreamServer("127.0.0.1", 0)
    streams.start()
    try:
        assert streams.publish(5, b"nobody") == 0
        with socket.create_connection(("127.0.0.1", streams.port), timeout=5) as sock:
            sock.sendall(struct.pack("<I", 5))
            assert streams.wait_for_subscriber(5, 5.0)
            assert streams.publish(5, b"hello") == 1 and streams.publish(6, b"other") == 0
            data = b""
            while len(data) < 9:
                data += sock.recv(64)
            assert data == struct.pack("<I", 5) + b"hello"
        for _ in range(200):  # the server notices the close
            if streams.subscriber_count(5) == 0:
                break
            streams.wait_for_subscriber(999, 0.01)
        assert streams.subscriber_count(5) == 0
    finally:
        streams.close()


@pytest.fixture(scope="module")
def server():
    srv = CarlaServer("Town01", "127.0.0.1", 0)  # not started: handle() is called directly
    yield srv
    srv.stop()


def _description(blueprint_id: str, **attributes: str) -> list:
    return [1, blueprint_id, [[k, 4, v] for k, v in attributes.items()]]


def test_handle_spawn_and_errors(server):
    spawn = server.world.spawn_points[2].pose
    transform = [[spawn.x_m, spawn.y_m, 0.5], [0.0, 0.0, 0.0]]
    result = server.handle("spawn_actor", [[False], _description("vehicle.lincoln.mkz_2020", role_name="hero"),
                                           transform])
    actor = result[0][1]
    assert result[0][0] == 1 and actor[2][1] == "vehicle.lincoln.mkz_2020" and actor[3][1] == [2.45, 1.06, 0.76]
    again = server.handle("spawn_actor", [[False], _description("vehicle.lincoln.mkz_2020"), transform])
    assert again[0][0] == 0 and "collision" in again[0][1][0]
    unknown = server.handle("spawn_actor", [[False], _description("vehicle.tesla.roadster"), transform])
    assert "unknown blueprint 'vehicle.tesla.roadster'" in unknown[0][1][0]
    loose = server.handle("spawn_actor", [[False], _description("sensor.other.collision"), transform])
    assert "attach it to a vehicle" in loose[0][1][0]
    bad_fov = server.handle("spawn_actor_with_parent", [[False], [1, "sensor.camera.rgb", [["fov", 3, "0"]]],
                                                        [[0, 0, 2], [0, 0, 0]], actor[0], 0, ""])
    assert "fov" in bad_fov[0][1][0]
    assert server.handle("destroy_actor", [[False], actor[0]]) == [[1, True]]
    assert "not found" in server.handle("destroy_actor", [[False], actor[0]])[0][1][0]
    assert "bad arguments" in server.handle("get_map_info", [[False], 1, 2])[0][1][0]
    assert server.handle("no_such_method", [[False]])[0][1][0].startswith("no_such_method: not supported")


def test_handle_settings_and_tick(server):
    frame = server.world.frame
    # asynchronous mode: no step on tick_cue, which answers the next frame (the ticker makes it), as CARLA
    assert server.handle("tick_cue", [[False]]) == [[1, frame + 1]]
    assert server.world.frame == frame
    sync = [True, False, [True, 0.05], True, 0.01, 10, 0.0, True, 3000.0, 2000.0, True]
    assert server.handle("set_episode_settings", [[False], sync]) == [[1, frame]]
    assert server.handle("tick_cue", [[False]]) == [[1, frame + 1]]
    wrong = server.handle("set_episode_settings", [[False], [True, False, [True, 2.0], *sync[3:]]])
    assert "fixed_delta_seconds=2" in wrong[0][1][0]
    assert server.handle("get_episode_settings", [[False]])[0][1][2] == [True, 0.05]
    info = server.handle("get_map_info", [[False]])[0][1]
    assert info[0] == "Town01" and len(info[1]) == len(server.world.spawn_points)


def test_handle_traffic_manager_registry(server):
    assert server.handle("is_traffic_manager_running", [[False], 8123]) == [[1, False]]
    assert server.handle("add_traffic_manager_running", [[False], ["10.0.0.5", 8123]]) == [[1, True]]
    assert server.handle("add_traffic_manager_running", [[False], ["10.0.0.6", 8123]]) == [[1, False]]  # taken
    assert server.handle("is_traffic_manager_running", [[False], 8123]) == [[1, True]]
    assert server.handle("get_traffic_manager_running", [[False], 8123]) == [[1, ["10.0.0.5", 8123]]]
    assert server.handle("destroy_traffic_manager", [[False], 8123]) == [[1, True]]
    assert "no Traffic Manager runs on port 8123" in server.handle("get_traffic_manager_running",
                                                                  [[False], 8123])[0][1][0]


def test_handle_lights_weather_walkers_and_bad_input(server):
    first_light = 1 << 23
    num_lights = server.world.signals.num_lights
    ids = [first_light + k for k in range(num_lights)]
    actors = server.handle("get_actors_by_id", [[False], ids])[0][1]
    assert len(actors) == num_lights and {a[2][1] for a in actors} == {"traffic.traffic_light"}
    assert server.handle("set_traffic_light_state", [[False], first_light + 1, 2]) == [[False]]
    assert server.world.light_state[1] == 2 and server.world.lights.forced_state[1] == 2
    assert server.handle("freeze_traffic_light", [[False], first_light + 1, False]) == [[False]]
    assert server.world.lights.forced_state[1] == -1
    assert "is not a traffic light" in server.handle("set_traffic_light_state", [[False], 5, 2])[0][1][0]
    assert "7" in server.handle("set_traffic_light_state", [[False], first_light, 7])[0][1][0]
    assert "cannot be destroyed" in server.handle("destroy_actor", [[False], first_light])[0][1][0]
    weather = server.handle("get_weather_parameters", [[False]])[0][1]
    assert len(weather) == 14
    assert server.handle("set_weather_parameters", [[False], [50.0] * 14]) == [[False]]
    assert server.handle("get_weather_parameters", [[False]])[0][1] == [50.0] * 14
    assert "14 fields" in server.handle("set_weather_parameters", [[False], [1.0] * 13])[0][1][0]
    spawn = server.world.spawn_points[5].pose
    walker = server.handle("spawn_actor", [[False], _description("walker.pedestrian.0002"),
                                           [[spawn.x_m, spawn.y_m, 1.0], [0.0, 0.0, 0.0]]])[0][1]
    assert walker[2][1] == "walker.pedestrian.0002"
    loose = server.handle("spawn_actor", [[False], _description("controller.ai.walker"), [[0, 0, 0], [0, 0, 0]]])
    assert "must be attached to a walker" in loose[0][1][0]
    assert server.handle("apply_control_to_walker", [[False], walker[0], [[1.0, 0.0, 0.0], 1.5, False]]) == [[False]]
    assert "WalkerControl" in server.handle("apply_control_to_walker", [[False], walker[0], [1.0, 1.5]])[0][1][0]
    assert server.handle("destroy_actor", [[False], walker[0]]) == [[1, True]]


def test_navigation_file_is_offered_under_nav_and_served_by_name(server):
    assert server.handle("get_required_files", [[False], ""]) == [[1, []]]  # the map itself travels by RPC
    (ok, names), = server.handle("get_required_files", [[False], "Nav"])
    assert ok == 1 and len(names) == 1 and names[0].startswith("avsim/Nav/Town01_") and names[0].endswith(".bin")
    (ok, data), = server.handle("request_file", [[False], names[0]])
    assert ok == 1 and data[:4] == b"TESM" and data == server.navigation_file()[1]  # 'MSET', little-endian
    assert server.handle("get_navigation_mesh", [[False]]) == [[1, data]]
    missing = server.handle("request_file", [[False], "Carla/Maps/Nav/Town01.bin"])
    assert "no file 'Carla/Maps/Nav/Town01.bin'" in str(missing) and names[0] in str(missing)


def test_walker_state_commands_move_walkers_and_reject_other_actors(server):
    walker = server.handle("spawn_actor", [[False], _description("walker.pedestrian.0001"),
                                           [[150.0, 55.0, 1.0], [0.0, 0.0, 0.0]]])[0][1][0]
    state = [[7, [walker, [[160.0, 60.0, 0.0], [0.0, 90.0, 0.0]], 1.5]]]
    assert server.handle("apply_batch", [[False], [state], False]) == [[[1, walker]]]
    server.world.tick()
    snap = server.world.snapshot()
    row = snap.index_of(walker)
    assert snap.location_m[row].tolist() == pytest.approx([160.0, 60.0 + 1.5 * server.world.dt_s, 0.9])
    vehicle = server.handle("spawn_actor", [[False], _description("vehicle.lincoln.mkz_2020"),
                                            [[150.0, 55.0, 0.5], [0.0, 0.0, 0.0]]])
    vehicle_id = vehicle[0][1][0]
    (answer,), = server.handle("apply_batch", [[False], [[[7, [vehicle_id, [[0, 0, 0], [0, 0, 0]], 1.0]]]], False])
    assert answer[0] == 0 and "is not a walker" in str(answer)
    assert server.handle("set_actor_collisions", [[False], walker, False]) == enc.ok_void()
    assert "not found" in str(server.handle("set_actor_collisions", [[False], 999_999, False]))
    assert "is not a walker" in str(server.handle("set_actor_dead", [[False], vehicle_id]))
    assert server.handle("set_actor_dead", [[False], walker]) == enc.ok_void()
    snap = server.world.tick()
    assert snap.velocity_mps[snap.index_of(walker)].tolist() == [0.0, 0.0, 0.0]  # it stops where it is
    assert "is not a vehicle" in str(server.handle("set_vehicle_light_state", [[False], walker, 1]))
    assert "is not a vehicle" in str(server.handle("get_vehicle_light_state", [[False], walker]))
    server.handle("destroy_actor", [[False], walker])
    server.handle("destroy_actor", [[False], vehicle_id])


def test_the_first_tick_after_listen_waits_for_the_stream_to_connect():
    """listen() asks for the token and connects in the background; the next tick must not run ahead of it."""
    with CarlaServer("Town01", "127.0.0.1", 0) as srv:
        srv.handle("set_episode_settings", [[False], [True, False, [True, 0.05], True, 0.01, 10, 0.0, True, 3000.0,
                                                      2000.0, True]])
        vehicle = srv.handle("spawn_actor", [[False], _description("vehicle.lincoln.mkz_2020"),
                                             [[150.0, 55.0, 0.5], [0.0, 0.0, 0.0]]])[0][1][0]
        gnss = srv.handle("spawn_actor_with_parent", [[False], [1, "sensor.other.gnss", []],
                                                      [[0.0, 0.0, 2.0], [0.0, 0.0, 0.0]], vehicle, 0, ""])[0][1]
        stream_id = enc.token_stream_id(gnss[5])  # the Actor message's stream token
        srv.handle("get_sensor_token", [[False], stream_id])
        frames = []

        def subscribe_late():
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", srv.stream_port), timeout=5) as sock:
                sock.sendall(struct.pack("<I", stream_id))
                size = struct.unpack("<I", sock.recv(4, socket.MSG_WAITALL))[0]
                frames.append(sock.recv(size, socket.MSG_WAITALL))

        thread = threading.Thread(target=subscribe_late)
        thread.start()
        (ok, frame), = srv.handle("tick_cue", [[False]])
        thread.join(timeout=10)
        assert ok == 1 and len(frames) == 1
        assert struct.unpack_from("<QQ", frames[0], 0)[1] == frame  # header: sensor type, then the frame


def test_batch_commands_move_hold_and_light_vehicles_and_move_walkers(server):
    vehicle = server.handle("spawn_actor", [[False], _description("vehicle.lincoln.mkz_2020"),
                                            [[150.0, 55.0, 0.5], [0.0, 0.0, 0.0]]])[0][1][0]
    walker = server.handle("spawn_actor", [[False], _description("walker.pedestrian.0001"),
                                           [[150.0, 60.0, 1.0], [0.0, 0.0, 0.0]]])[0][1][0]
    batch = [[[6, [vehicle, [[160.0, 55.0, 0.0], [0.0, 90.0, 0.0]]]]],  # ApplyTransform
             [[8, [vehicle, [0.0, 5.0, 0.0]]]],  # ApplyTargetVelocity: 5 m/s along +y, its new heading
             [[18, [vehicle, 0b11]]],  # SetVehicleLightState: position | low beam
             [[6, [walker, [[151.0, 61.0, 0.9], [0.0, 180.0, 0.0]]]]],
             [[9, [vehicle, [0.0, 0.0, 1.0]]]]]  # ApplyTargetAngularVelocity: not modelled
    answers = server.handle("apply_batch", [[False], batch, False])
    assert [a[0][0] for a in answers] == [1, 1, 1, 1, 0] and "#9 is not supported" in str(answers[4])
    snap = server.world.tick()
    car = snap.index_of(vehicle)
    assert snap.location_m[car, :2].tolist() == pytest.approx([160.0, 55.0 + 5.0 * server.world.dt_s], abs=0.05)
    assert snap.rotation_rad[car, 1] == pytest.approx(math.pi / 2, abs=1e-3)
    assert snap.location_m[snap.index_of(walker)].tolist() == pytest.approx([151.0, 61.0, 0.9])
    assert server.handle("get_vehicle_light_state", [[False], vehicle]) == [[1, [0b11]]]  # rpc::VehicleLightState: a one-field struct
    assert [vehicle, 0b11] in server.handle("get_vehicle_light_states", [[False]])[0][1]
    held = server.handle("apply_batch", [[False], [[[14, [vehicle, False]]], [[19, [vehicle, [165.0, 55.0, 0.0]]]]],
                                         False])
    assert [a[0][0] for a in held] == [1, 1]
    for _ in range(5):
        snap = server.step()  # the server's step: held vehicles stay where they are held
    car = snap.index_of(vehicle)
    assert snap.location_m[car, :2].tolist() == pytest.approx([165.0, 55.0], abs=1e-3)  # held where it was put
    assert snap.speed_mps()[car] == pytest.approx(0.0, abs=1e-6)
    assert server.handle("apply_batch", [[False], [[[14, [vehicle, True]]]], False]) == [[[1, vehicle]]]
    server.handle("destroy_actor", [[False], walker])
    server.handle("destroy_actor", [[False], vehicle])
