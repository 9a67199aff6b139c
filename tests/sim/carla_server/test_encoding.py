"""CARLA 0.9.16 wire encodings, checked against the layouts of the client library (hand-computed bytes)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sim.carla_backend.decode import decode_depth, decode_lidar, decode_rgb, decode_semantic, decode_semantic_lidar
from sim.carla_server import encoding as enc


def test_token_layout():
    token = enc.make_token(7, 2001, "127.0.0.1")
    assert len(token) == 24
    assert token[:8] == struct.pack("<IHBB", 7, 2001, 1, 1)
    assert token[8:12] == bytes([127, 0, 0, 1]) and token[12:] == bytes(12)
    assert enc.token_stream_id(token) == 7


def test_responses_and_optional():
    assert enc.ok(3) == [[1, 3]] and enc.ok_void() == [[False]] and enc.error("x") == [[0, ["x"]]]
    assert enc.optional(None) == [False] and enc.optional(0.05) == [True, 0.05]
    assert enc.from_optional([True, 2]) == 2 and enc.from_optional([False]) is None


def test_episode_settings_round_trip_and_bad_input():
    settings = enc.EpisodeSettings(synchronous_mode=True, fixed_delta_seconds=0.05)
    message = settings.to_msg()
    assert len(message) == 11 and message[0] is True and message[2] == [True, 0.05]
    assert enc.EpisodeSettings.from_msg(message) == settings
    with pytest.raises(ValueError, match="11 fields"):
        enc.EpisodeSettings.from_msg(message[:10])


def test_transform_and_control_parsing():
    t = enc.Transform.from_msg([[1, 2, 3], [10, 20, 30]])
    assert t.as_tuple() == (1.0, 2.0, 3.0, 10.0, 20.0, 30.0) and t.to_msg() == [[1, 2, 3], [10, 20, 30]]
    with pytest.raises(ValueError, match="transform"):
        enc.Transform.from_msg([[1, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match="finite"):
        enc.Transform(float("nan"))
    control = enc.VehicleControlMsg.from_msg([0.5, -0.25, 0.0, False, True, False, 0])
    assert control.throttle == 0.5 and control.steer == -0.25 and control.reverse
    with pytest.raises(ValueError, match="7 fields"):
        enc.VehicleControlMsg.from_msg([0.5])


def test_actor_description_parsing():
    d = enc.ActorDescription.from_msg([3, "vehicle.lincoln.mkz_2020", [["role_name", 4, "hero"], ["color", 5, "1,2,3"]]])
    assert d.id == "vehicle.lincoln.mkz_2020" and d.attributes == {"role_name": "hero", "color": "1,2,3"}
    assert d.to_msg() == [3, "vehicle.lincoln.mkz_2020", [["role_name", 4, "hero"], ["color", 5, "1,2,3"]]]
    with pytest.raises(ValueError, match="ActorDescription"):
        enc.ActorDescription.from_msg([3, "x"])


def test_definitions_declare_carla_attributes():
    defs = {d.id: d for d in enc.all_definitions()}
    car = {a.id: a for a in defs["vehicle.lincoln.mkz_2020"].attributes}
    assert car["number_of_wheels"].to_msg() == ["number_of_wheels", 2, "4", [], False, False]
    assert car["role_name"].type == enc.AttributeType.STRING and car["color"].type == enc.AttributeType.RGB_COLOR
    assert {a.id: a.value for a in defs["vehicle.yamaha.yzf"].attributes}["number_of_wheels"] == "2"
    cam = {a.id: a for a in defs["sensor.camera.rgb"].attributes}
    assert cam["image_size_x"].value == "800" and cam["fov"].value == "90.000000"
    assert cam["exposure_mode"].restrict_to_recommended and cam["exposure_mode"].recommended == ("histogram", "manual")
    lidar = {a.id: a.value for a in defs["sensor.lidar.ray_cast"].attributes}
    assert {k: lidar[k] for k in ("channels", "points_per_second")} == {"channels": "32", "points_per_second": "56000"}


def test_episode_state_record_layout():
    records = np.zeros(2, dtype=enc.ACTOR_STATE_DTYPE)
    records["id"] = [5, 9]
    records["state"] = 1
    records["transform"][0] = (1, 2, 3, 4, 5, 6)
    records["velocity"][0] = (7, 8, 9)
    records["throttle"][0] = 0.5
    records["gear"][0] = 3
    payload = enc.episode_state_payload(42, 2.1, 77, 0.05, records, 1.5)
    assert len(payload) == 48 + 36 + 2 * 119
    assert struct.unpack_from("<QQd", payload) == (17, 42, 2.1)
    assert struct.unpack_from("<Qdf3iI", payload, 48) == (77, 1.5, pytest.approx(0.05), 0, 0, 0, 0)
    first = 48 + 36
    assert struct.unpack_from("<IB6f3f", payload, first) == (5, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert struct.unpack_from("<f", payload, first + 65)[0] == 0.5  # throttle at the union's start
    assert struct.unpack_from("<i", payload, first + 80)[0] == 3  # gear after 3 floats and 3 bools
    assert struct.unpack_from("<I", payload, first + 119)[0] == 9
    with pytest.raises(ValueError, match="ACTOR_STATE_DTYPE"):
        enc.episode_state_payload(1, 0.0, 1, 0.05, np.zeros(2, dtype=np.float32))


def test_image_payload_decodes_back():
    rgb = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(3, 4, 3)
    payload = enc.image_payload(8, 0.4, enc.Transform(1, 2, 3), rgb, 90.0)
    header = struct.unpack_from("<QQd6f", payload)
    assert header[:3] == (13, 8, 0.4) and header[3:6] == (1.0, 2.0, 3.0)
    assert struct.unpack_from("<IIf", payload, 48) == (4, 3, 90.0)
    np.testing.assert_array_equal(decode_rgb(payload[60:], 4, 3), rgb)
    with pytest.raises(ValueError, match="uint8"):
        enc.image_payload(8, 0.4, enc.Transform(), rgb.astype(np.float32), 90.0)


def test_lidar_payload_layout():
    points = np.array([[1, 0, 0.5, 0.9], [2, 0, 0.1, 0.8], [3, 0, -1, 0.7]], dtype=np.float32)
    payload = enc.lidar_payload(3, 0.15, enc.Transform(), points, np.array([0, 0, 2]), 3, 0.25)
    assert struct.unpack_from("<Q", payload)[0] == 11
    assert struct.unpack_from("<fIIII", payload, 48) == (0.25, 3, 2, 0, 1)
    np.testing.assert_array_equal(decode_lidar(payload[48 + 20:]), points)
    with pytest.raises(ValueError, match="channels"):
        enc.lidar_payload(3, 0.15, enc.Transform(), points, np.array([0, 0, 5]), 3, 0.0)


def test_state_union_branches_at_offset_65():
    records = np.zeros(3, dtype=enc.ACTOR_STATE_DTYPE)
    light = np.zeros(1, dtype=enc.TRAFFIC_LIGHT_DATA_DTYPE)
    light["sign_id"], light["green_time"], light["pole_index"], light["frozen"], light["state"] = b"393", 10.0, 2, 1, 2
    enc.set_union(records, np.array([1]), light)
    raw = records.tobytes()[119:238]
    assert raw[65:68] == b"393" and raw[68:97] == bytes(29)
    assert struct.unpack_from("<f", raw, 97)[0] == 10.0 and struct.unpack_from("<I", raw, 113)[0] == 2
    assert raw[117] == 1 and raw[118] == 2
    walker = np.zeros(1, dtype=enc.WALKER_DATA_DTYPE)
    walker["direction"], walker["speed"] = (0.6, 0.8, 0.0), 1.5
    enc.set_union(records, np.array([2]), walker)
    assert struct.unpack_from("<4f", records.tobytes(), 238 + 65) == pytest.approx((0.6, 0.8, 0.0, 1.5))
    assert records.tobytes()[:119] == bytes(119)  # the other rows are untouched
    with pytest.raises(ValueError, match="54-byte"):
        enc.set_union(records, np.array([0, 1]), light)


def test_collision_payload_and_walker_control():
    import msgpack

    description = enc.ActorDescription(1, "vehicle.a", {}, ())
    me = enc.actor_msg(3, 0, description, (0.0, 0.0, 0.7), (2.0, 1.0, 0.7), b"\x0e")
    other = enc.actor_msg(0, 0, enc.ActorDescription(0, "static.building", {}, ()), (0, 0, 0), (0, 0, 0), b"\x03")
    payload = enc.collision_payload(9, 0.45, enc.Transform(1.0, 2.0), me, other, (100.0, 0.0, 0.0))
    assert struct.unpack_from("<QQd", payload) == (0, 9, 0.45)
    body = msgpack.unpackb(payload[48:], raw=False)
    assert body[0][0] == 3 and body[1][2][1] == "static.building" and body[2] == [100.0, 0.0, 0.0]
    control = enc.WalkerControlMsg.from_msg([[1, 0, 0], 1.4, False])
    assert control.direction == (1.0, 0.0, 0.0) and control.speed == 1.4 and not control.jump
    with pytest.raises(ValueError, match="WalkerControl"):
        enc.WalkerControlMsg.from_msg([1.4])


def test_depth_encoding_hand_computed():
    # 1000 m * 65793 / (2^24 - 1) is code 65793 = 0x010101: R = G = B = 1.
    metres = 1000.0 * 65793 / (256**3 - 1)
    depth = np.array([[0.0, metres, 1000.0, 2000.0]], dtype=np.float32)
    bgra = enc.depth_to_bgra(depth)
    assert bgra[0, 0].tolist() == [0, 0, 0, 255] and bgra[0, 1].tolist() == [1, 1, 1, 255]
    assert bgra[0, 2].tolist() == [255, 255, 255, 255] and bgra[0, 3].tolist() == [255, 255, 255, 255]  # clipped
    payload = enc.camera_payload("sensor.camera.depth", 4, 0.2, enc.Transform(), depth, 60.0)
    assert struct.unpack_from("<Q", payload)[0] == 1 and struct.unpack_from("<IIf", payload, 48) == (4, 1, 60.0)
    decoded = decode_depth(payload[60:], 4, 1)
    np.testing.assert_allclose(decoded, [[0.0, metres, 1000.0, 1000.0]], atol=1e-4)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        enc.depth_to_bgra(np.zeros((2, 2, 1), np.float32))


def test_semantic_and_instance_images():
    tags = np.array([[1, 14], [11, 0]], dtype=np.uint8)
    payload = enc.camera_payload("sensor.camera.semantic_segmentation", 1, 0.05, enc.Transform(), tags, 90.0)
    assert struct.unpack_from("<Q", payload)[0] == 14
    assert payload[60:68] == bytes([0, 0, 1, 255, 0, 0, 14, 255])
    np.testing.assert_array_equal(decode_semantic(payload[60:], 2, 2), tags)
    instance = np.array([[[14, 0x34, 0x12]]], dtype=np.uint8)  # tag 14, id 0x1234
    payload = enc.camera_payload("sensor.camera.instance_segmentation", 1, 0.05, enc.Transform(), instance, 90.0)
    assert struct.unpack_from("<Q", payload)[0] == 15 and payload[60:] == bytes([0x12, 0x34, 14, 255])
    with pytest.raises(ValueError, match="not a camera"):
        enc.camera_payload("sensor.other.radar", 1, 0.0, enc.Transform(), tags, 90.0)
    with pytest.raises(ValueError, match="uint8"):
        enc.semantic_to_bgra(tags.astype(np.int32))


def test_semantic_lidar_payload_layout():
    from sim.sensors.measurements import SEMANTIC_POINT_DTYPE

    points = np.zeros(2, dtype=SEMANTIC_POINT_DTYPE)
    points["x"], points["CosAngle"], points["ObjIdx"], points["ObjTag"] = (1.0, 2.0), (0.5, 0.25), (0, 7), (1, 14)
    payload = enc.lidar_payload(3, 0.15, enc.Transform(), points, np.array([1, 1]), 2, 0.5)
    assert struct.unpack_from("<Q", payload)[0] == 10
    assert struct.unpack_from("<fIII", payload, 48) == (0.5, 2, 0, 2)
    body = payload[48 + 16:]
    assert len(body) == 48 and struct.unpack_from("<4fII", body, 24) == (2.0, 0.0, 0.0, 0.25, 7, 14)
    np.testing.assert_array_equal(decode_semantic_lidar(body), points)
    with pytest.raises(ValueError, match="24-byte"):
        enc.lidar_payload(3, 0.15, enc.Transform(), np.zeros(2, dtype=[("x", "<f4")]), np.array([0, 0]), 1, 0.0)


def test_radar_gnss_and_imu_payloads():
    import msgpack

    detections = np.array([[-1.5, 0.1, -0.2, 12.0]], dtype=np.float32)
    payload = enc.radar_payload(2, 0.1, enc.Transform(), detections)
    assert struct.unpack_from("<Q", payload)[0] == 9 and struct.unpack_from("<4f", payload, 48) == tuple(
        float(v) for v in detections[0]) and len(payload) == 64
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        enc.radar_payload(2, 0.1, enc.Transform(), detections[:, :3])
    payload = enc.gnss_payload(2, 0.1, enc.Transform(), np.array([49.0, 8.25, 2.5]))
    assert struct.unpack_from("<Q", payload)[0] == 4
    assert payload[48:] == b"\x93" + b"".join(b"\xcb" + struct.pack(">d", v) for v in (49.0, 8.25, 2.5))
    with pytest.raises(ValueError, match="latitude"):
        enc.gnss_payload(2, 0.1, enc.Transform(), np.zeros(2))
    payload = enc.imu_payload(2, 0.1, enc.Transform(), np.array([0.5, 0.0, 9.81]), np.array([0.0, 0.0, 0.25]), 1.5)
    assert struct.unpack_from("<Q", payload)[0] == 5
    # [[ax, ay, az], [gx, gy, gz], compass] with float32 values (0xca), as CARLA packs floats.
    assert payload[48:50] == b"\x93\x93" and payload[50:51] == b"\xca"
    body = msgpack.unpackb(payload[48:])
    assert body[0] == [0.5, 0.0, pytest.approx(9.81, abs=1e-6)] and body[1] == [0.0, 0.0, 0.25] and body[2] == 1.5
    with pytest.raises(ValueError, match="3 components"):
        enc.imu_payload(2, 0.1, enc.Transform(), np.zeros(2), np.zeros(3), 0.0)
