"""The traffic-light locator and window (av_stack/perception/learned/light.py) on a synthetic straight route:
the right light at the right route distance (also from a noisy GNSS), a known point to its known pixel, the
crop, and a reader that gets no fix or no camera."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.messages import EgoSignals, Mission, SensorCalibration, SensorFrame, VehicleGeometry
from av_stack.perception.classical import METRES_PER_DEGREE
from av_stack.perception.learned.light import (
    LightConfig,
    LightNet,
    LightReader,
    RouteLightLocator,
    crop_patch,
    head_box,
    light_window,
    project,
    world_to_ego,
)
from sim.api import Pose
from sim.maps.signals import SignalLayout
from sim.scenarios.routes import Route

# lanes along +x: 0 [0, 50) road, 1 [50, 60) junction, 2 [60, 120) road, 3 [120, 130) junction, 4 [130, 200]
LANE_ENDS = (50, 60, 120, 130, 201)
LIGHT_XYZ = np.array([[49.0, 5.0, 0.0], [119.0, 5.0, 0.0]])  # CARLA: +y is to the right of +x
CAMERA = SensorCalibration("front_rgb", "sensor.camera.rgb", Pose(x_m=1.5, z_m=2.4),
                           np.array([[200.0, 0.0, 200.0], [0.0, 200.0, 150.0], [0.0, 0.0, 1.0]]), (400, 300))


class _Lanes:
    """The one lane-graph method the locator uses: each lane's points (flat road, z = 0)."""

    def lane_points(self, lane: int) -> np.ndarray:
        start = 0 if lane == 0 else LANE_ENDS[lane - 1]
        x = np.arange(start, LANE_ENDS[lane], dtype=float)
        return np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])


def mission(lane_light: tuple[int, ...] = (0, -1, 1, -1, -1)) -> Mission:
    """A 200 m straight route through two junctions, each entered from a lane with a light (by default)."""
    x = np.arange(0.0, 201.0)
    lane = np.searchsorted(np.array(LANE_ENDS), x, side="right")
    route = Route("straight", tuple(range(5)), np.column_stack([x, np.zeros_like(x)]), np.zeros_like(x), x.copy(),
                  lane, np.isin(lane, (1, 3)), np.full(len(x), 4, np.int8), np.array([[0.0, 0.0], [200.0, 0.0]]))
    signals = SignalLayout(np.arange(2), np.arange(2), LIGHT_XYZ, np.zeros(2, np.int64), np.array(lane_light),
                           np.zeros(0, np.int64), np.zeros((0, 3)), np.full(5, -1), False)
    return Mission(route, _Lanes(), signals, VehicleGeometry("vehicle.test", (2.45, 1.06, 0.76)))


def frame_at(x: float, y: float = 0.0, yaw: float = 0.0, t: float = 0.0, speed: float = 10.0,
             image: np.ndarray | None = None) -> SensorFrame:
    """A frame with a GNSS fix and compass at world (x, y, yaw) and, optionally, the camera's image."""
    gnss = np.array([y / METRES_PER_DEGREE, x / METRES_PER_DEGREE, 0.0])
    ego = EgoSignals(speed, compass_rad=yaw + math.pi / 2, gnss=gnss)
    data = {} if image is None else {"front_rgb": image}
    return SensorFrame(int(t * 20), t, ego, data, {"front_rgb": CAMERA})


def test_the_next_light_along_the_route_and_its_distance():
    locator = RouteLightLocator()
    locator.reset(mission())
    target = locator.update((10.0, 0.3, 0.0), 0.0, 0.0)
    assert target.light == 0 and target.entry == 50 and target.distance_m == pytest.approx(40.0, abs=0.05)
    for t, x in enumerate(np.arange(11.0, 56.0)):  # drive on at 10 m/s into the first junction
        target = locator.update((x, 0.0, 0.0), 0.1 * (t + 1), 10.0)
    assert target.light == 1 and target.distance_m == pytest.approx(65.0, abs=0.05)  # in the junction: the next
    for t, x in enumerate(np.arange(56.0, 126.0)):
        target = locator.update((x, 0.0, 0.0), 4.6 + 0.1 * t, 10.0)
    assert target is None  # past the last light


def test_a_lane_without_a_light_is_skipped_like_the_ground_truth_does():
    locator = RouteLightLocator()
    locator.reset(mission((-1, -1, 1, -1, -1)))
    target = locator.update((10.0, 0.0, 0.0), 0.0, 0.0)
    assert target.light == 1 and target.distance_m == pytest.approx(110.0, abs=0.05)


def test_two_metre_gnss_noise_moves_the_distance_by_well_under_a_metre():
    rng = np.random.default_rng(0)
    locator = RouteLightLocator()
    locator.reset(mission())
    errors = []
    for k in range(400):  # 40 m at 1 m/s, 10 Hz
        x = 5.0 + 0.1 * k
        target = locator.update((x + rng.normal(0, 2.0), rng.normal(0, 2.0), 0.0), 0.1 * k, 1.0)
        if k > 30:
            errors.append(target.distance_m - (50.0 - x))
    errors = np.array(errors)
    assert np.sqrt(np.mean(errors ** 2)) < 0.7 and np.abs(errors).max() < 2.0
    assert abs(locator.lateral_m) < 1.0  # the smoothed offset from the route, not the raw 2 m noise


def test_a_known_point_projects_to_its_known_pixel():
    # 10 m ahead of the camera, 2 m right, 1 m up: u = 200 + 200 * 2 / 10, v = 150 - 200 * 1 / 10
    pixels, depth = project(np.array([[11.5, 2.0, 3.4]]), CAMERA)
    assert np.allclose(pixels, [[240.0, 130.0]]) and depth[0] == pytest.approx(10.0)
    pitched = SensorCalibration("c", "sensor.camera.rgb", Pose(x_m=1.5, z_m=2.4, pitch_rad=math.radians(-5.0)),
                                CAMERA.intrinsics, (400, 300))
    # a camera pitched 5 degrees down sees a point on its own height 5 degrees above the image centre
    pixels, _ = project(np.array([[21.5, 0.0, 2.4]]), pitched)
    assert pixels[0, 0] == pytest.approx(200.0) and pixels[0, 1] == pytest.approx(150 - 200 * math.tan(
        math.radians(5.0)), abs=1e-6)
    assert np.allclose(world_to_ego(np.array([[12.0, 3.0, 1.0]]), (10.0, 1.0, math.pi / 2)), [[2.0, -2.0, 1.0]])


def test_the_window_holds_the_heads_and_says_when_they_are_out_of_view():
    m, window = mission(), LightConfig().window
    locator = RouteLightLocator()
    locator.reset(m)
    target = locator.update((20.0, 0.0, 0.0), 0.0, 0.0)
    corners = world_to_ego(head_box(m, target, window), target.pose)
    found = light_window(corners, CAMERA)
    assert found.visible == pytest.approx(1.0)
    u0, v0, u1, v1 = found.box
    assert u1 - u0 == pytest.approx(2 * (v1 - v0))
    head, _ = project(world_to_ego(np.array([[49.0, 5.0, 4.7], [49.0, 0.0, 4.7]]), target.pose), CAMERA)
    assert ((head[:, 0] > u0) & (head[:, 0] < u1) & (head[:, 1] > v0) & (head[:, 1] < v1)).all()
    close = locator.update((46.0, 0.0, 0.0), 2.6, 10.0)  # 4 m before the line: the heads are above the image
    seen = light_window(world_to_ego(head_box(m, close, window), close.pose), CAMERA)
    assert seen is None or seen.visible < 0.5
    assert light_window(world_to_ego(head_box(m, close, window), (52.0, 0.0, 0.0)), CAMERA) is None  # behind


def test_the_crop_puts_a_known_pixel_where_it_belongs_enlarging_or_shrinking():
    image = np.zeros((300, 400, 3), np.uint8)
    image[100:104, 200:204] = (255, 0, 0)  # a 4 px red lamp, centre (202, 102)
    big = crop_patch(image, (190.0, 96.0, 214.0, 108.0), (96, 48))  # 24x12 px -> 96x48: 4x
    rows, cols = np.nonzero(big[..., 0] > 128)
    assert abs(cols.mean() - 48) < 1.5 and abs(rows.mean() - 24) < 1.5
    small = crop_patch(image, (2.0, 54.0, 386.0, 246.0), (96, 48))  # 384x192 -> 96x48: 1/4
    rows, cols = np.nonzero(small[..., 0] > 40)
    assert abs(cols.mean() - 50) < 1.0 and abs(rows.mean() - 12) < 1.0
    off = crop_patch(image, (-200.0, -100.0, 200.0, 100.0), (96, 48))
    assert off[:24, :48].max() == 0  # off the image: black


def test_no_fix_or_no_camera_gives_none_and_a_light_out_of_view_is_held():
    reader = LightReader(LightNet(8), LightConfig(), range_m=40.0)
    reader.reset(mission())
    image = np.zeros((300, 400, 3), np.uint8)
    out = reader(frame_at(5.0, image=image))
    assert out.state is None and math.isinf(out.distance_m)  # 45 m: out of range
    nan = SensorFrame(1, 0.1, EgoSignals(5.0, gnss=np.full(3, np.nan)), {"front_rgb": image}, {"front_rgb": CAMERA})
    assert reader(nan).state is None
    assert reader(frame_at(20.0, t=1.5)).state is None  # no camera image
    seen = reader(frame_at(25.0, t=2.0, image=image))
    assert seen.state is not None and seen.distance_m == pytest.approx(25.0, abs=0.6)
    reader.min_score = 0.0  # every reading counts: the last one is what a light out of view keeps
    seen = reader(frame_at(26.0, t=2.1, image=image))
    close = reader(frame_at(46.0, t=4.1, image=image))
    assert close.state == seen.state and close.distance_m == pytest.approx(4.0, abs=0.6)
    reader.reset(mission())
    assert reader(frame_at(46.0, t=0.0, image=image)).state is not None  # never read, not in view: red
    assert reader(frame_at(46.0, t=0.0, image=image)).state.name == "RED"
