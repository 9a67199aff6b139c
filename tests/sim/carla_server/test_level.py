"""Level boxes and environment objects come from the map's town layout, without Open3D (no carla client)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from sim.carla_server.server import BUILDING_LABEL, CarlaServer
from sim.embedded.sensors.town import TownLayout


@pytest.fixture(scope="module")
def server():
    srv = CarlaServer("Town02", "127.0.0.1", 0)  # not started: handle() is called directly
    yield srv
    srv.stop()


def _ok(answer: list):
    assert answer[0][0] == 1, answer
    return answer[0][1]


def test_serving_level_boxes_does_not_import_open3d():
    code = ("import sys\n"
            "from sim.carla_server.server import CarlaServer\n"
            "server = CarlaServer('Town01', '127.0.0.1', 0)\n"
            "boxes = server.handle('get_all_level_BBs', [[False], 255])[0][1]\n"
            "objects = server.handle('get_environment_objects', [[False], 3])[0][1]\n"
            "server.stop()\n"
            "print(len(boxes), len(objects), 'open3d' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    boxes, objects, open3d_loaded = out.stdout.split()
    assert int(boxes) > int(objects) > 50  # every building, plus the traffic-light poles
    assert open3d_loaded == "False"


def test_building_boxes_are_the_town_layouts(server):
    layout = TownLayout.build(server.world)  # the props are fixed by the map
    boxes = _ok(server.handle("get_all_level_BBs", [[False], BUILDING_LABEL]))
    assert len(boxes) == layout.num_buildings > 10
    for box, (x, y, z, hx, hy, hz, yaw) in zip(boxes, layout.building_boxes.tolist()):
        assert box[0] == pytest.approx([x, y, z]) and box[1] == pytest.approx([hx, hy, hz])
        assert box[2] == pytest.approx([0.0, math.degrees(yaw), 0.0])
    objects = _ok(server.handle("get_environment_objects", [[False], BUILDING_LABEL]))
    assert [o[3] for o in objects] == [f"Building_{k}" for k in range(len(boxes))]
    assert [o[2] for o in objects] == [100_000 + k for k in range(len(boxes))]
    foot = np.array([o[0][0][2] for o in objects])  # the object's transform stands at the foot of its box
    assert np.allclose(foot, layout.building_boxes[:, 2] - layout.building_boxes[:, 5])


def test_sensors_raycast_the_same_buildings(server):
    pytest.importorskip("open3d")
    before = _ok(server.handle("get_all_level_BBs", [[False], BUILDING_LABEL]))
    spawn = server.world.spawn_points[0].pose
    car = _ok(server.handle("spawn_actor", [[False], [1, "vehicle.lincoln.mkz_2020", []],
                                            [[spawn.x_m, spawn.y_m, 0.5], [0.0, math.degrees(spawn.yaw_rad), 0.0]]]))
    _ok(server.handle("spawn_actor_with_parent", [[False], [1, "sensor.camera.rgb", []], [[0, 0, 2], [0, 0, 0]],
                                                  car[0], 0, ""]))
    state = server.state
    assert state.scene.static.building_boxes is state.town_layout().building_boxes  # one layout, built once
    assert _ok(server.handle("get_all_level_BBs", [[False], BUILDING_LABEL])) == before
    assert _ok(server.handle("destroy_actor", [[False], car[0]])) is True
