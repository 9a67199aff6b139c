"""Tests of the privileged BEV renderer (sim/env/bev.py) on Town01."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim.api import Pose, TrafficLightState, WorldSnapshot
from sim.maps.geometry import AreaClass, LaneMarking, MapGeometry
from sim.maps.lanes import SpawnPoint
from sim.embedded.world import EmbeddedWorld
from sim.env.bev import BEV_CHANNELS, BevConfig, BevRenderer, bev_channel_names

PPM = 5.0
SIZE = 192
CX, CY = 96, 151  # the ego's pixel with the default config: col size // 2, row size - 1 - 40
CAR = "vehicle.lincoln.mkz_2020"


@pytest.fixture(scope="module")
def world() -> EmbeddedWorld:
    return EmbeddedWorld(map="Town01", seed=0)


@pytest.fixture(scope="module")
def bev(world: EmbeddedWorld) -> BevRenderer:
    return BevRenderer(world.lanes, world.geometry, world.signals)


@pytest.fixture
def clean(world: EmbeddedWorld, bev: BevRenderer):
    """Every test starts and ends with no actors, no history and no route."""
    bev.reset()
    bev.set_route(np.zeros((0, 2)))
    yield world
    world.destroy(list(world.actors))
    bev.reset()
    bev.set_route(np.zeros((0, 2)))


@pytest.fixture(scope="module")
def straight(world: EmbeddedWorld) -> SpawnPoint:
    """A spawn point whose lane runs straight from 10 m behind to 30 m ahead of it."""
    lanes = world.lanes
    for point in world.spawn_points:
        lane = point.lane
        if point.s_m < 10 or point.s_m + 30 > lanes.length_m[lane]:
            continue
        rows = lanes.offset[lane] + np.arange(int(point.s_m) - 10, int(point.s_m) + 30)
        if np.ptp(np.unwrap(lanes.yaw_rad[rows])) < 1e-3:
            return point
    raise AssertionError("Town01 has no straight 40 m stretch")


def channel(bev: BevRenderer, image: np.ndarray, name: str) -> np.ndarray:
    return image[bev.channel_names.index(name)]


def ego_to_world(pose: Pose, x: float, y: float) -> tuple[float, float]:
    """World point at ego-frame (x forward, y right) of an ego at ``pose``."""
    c, s = math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)
    return pose.x_m + c * x - s * y, pose.y_m + s * x + c * y


def pixel_of(pose: Pose, x: float, y: float) -> tuple[int, int]:
    """(row, col) of the world point (x, y) in the BEV of an ego at ``pose`` (the expected mapping)."""
    dx, dy = x - pose.x_m, y - pose.y_m
    c, s = math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)
    forward, right = c * dx + s * dy, -s * dx + c * dy
    return round(CY - forward * PPM), round(CX + right * PPM)


def ego_pose(snapshot: WorldSnapshot, ego: int) -> Pose:
    row = snapshot.index_of(ego)
    return Pose(float(snapshot.location_m[row, 0]), float(snapshot.location_m[row, 1]), 0.0,
                float(snapshot.rotation_rad[row, 1]))


def spawn_ego(world: EmbeddedWorld, pose: Pose) -> int:
    return world.spawn_vehicle(CAR, Pose(pose.x_m, pose.y_m, 0.0, pose.yaw_rad))


# ---------------------------------------------------------------------- config and format
def test_channel_names_follow_the_config() -> None:
    assert BEV_CHANNELS == (
        "road", "route", "lane_solid", "lane_broken", "vehicles_t0", "vehicles_t5", "vehicles_t10",
        "pedestrians_t0", "pedestrians_t5", "pedestrians_t10", "light_red", "light_yellow", "light_green",
        "stop_sign")
    names = bev_channel_names(BevConfig(history_steps=(0,)))
    assert names == ("road", "route", "lane_solid", "lane_broken", "vehicles_t0", "pedestrians_t0", "light_red",
                     "light_yellow", "light_green", "stop_sign")
    assert bev_channel_names(BevConfig(history_steps=[0, 2]))[4:8] == (
        "vehicles_t0", "vehicles_t2", "pedestrians_t0", "pedestrians_t2")


@pytest.mark.parametrize(("field", "value"), [
    ("size_px", 15), ("size_px", 64.0), ("pixels_per_m", 0.0), ("pixels_per_m", -1.0), ("pixels_per_m", math.nan),
    ("ego_from_bottom_px", -1), ("ego_from_bottom_px", 192), ("history_steps", ()), ("history_steps", (1, 5)),
    ("history_steps", (0, 5, 5)), ("history_steps", (0, 10, 5)), ("history_steps", (0, -1)),
    ("history_steps", (0, 2.5)),
])
def test_bad_config_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        BevConfig(**{field: value})


def test_shape_dtype_values_and_fresh_arrays(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    world = clean
    ego = spawn_ego(world, straight.pose)
    world.spawn_vehicle(CAR, Pose(*ego_to_world(straight.pose, 10.0, 0.0), 0.0, straight.pose.yaw_rad))
    first = bev.render(world.snapshot(), ego)
    assert first.shape == (14, SIZE, SIZE) and first.dtype == np.uint8
    assert set(np.unique(first).tolist()) == {0, 255}
    kept = first.copy()
    small = BevRenderer(world.lanes, world.geometry, world.signals, BevConfig(size_px=64, history_steps=(0,)))
    assert small.render(world.snapshot(), ego).shape == (10, 64, 64)
    world.teleport(ego, Pose(*ego_to_world(straight.pose, -3.0, 0.0), 0.0, straight.pose.yaw_rad))
    second = bev.render(world.tick(), ego)
    assert second is not first and not np.array_equal(second, first)
    np.testing.assert_array_equal(first, kept)  # an earlier observation is never overwritten


# ---------------------------------------------------------------------- geometry
def test_vehicles_land_where_the_ego_frame_says(clean: EmbeddedWorld, bev: BevRenderer,
                                               straight: SpawnPoint) -> None:
    world, pose = clean, straight.pose
    ego = spawn_ego(world, pose)
    # 10 m ahead, turned 90 degrees: its long axis runs across the image.
    ahead = world.spawn_vehicle(CAR, Pose(*ego_to_world(pose, 10.0, 0.0), 0.0, pose.yaw_rad + math.pi / 2))
    world.spawn_vehicle(CAR, Pose(*ego_to_world(pose, 0.0, 8.0), 0.0, pose.yaw_rad))  # 8 m to the ego's right
    snapshot = world.snapshot()
    half_l, half_w = snapshot.extent_m[snapshot.index_of(ahead), :2]
    cars = channel(bev, bev.render(snapshot, ego), "vehicles_t0")

    row, col = CY - 50, CX  # 10 m ahead
    assert cars[row, col] == 255
    inside_l, outside_l = round((half_l - 0.3) * PPM), round((half_l + 1.0) * PPM)
    inside_w, outside_w = round((half_w - 0.3) * PPM), round((half_w + 1.0) * PPM)
    assert cars[row, col - inside_l] == 255 and cars[row, col + inside_l] == 255
    assert cars[row - inside_w, col] == 255 and cars[row + inside_w, col] == 255
    assert cars[row, col - outside_l] == 0 and cars[row, col + outside_l] == 0
    assert cars[row - outside_w, col] == 0 and cars[row + outside_w, col] == 0
    # Its box is (2 half_w) x (2 half_l) m: count the pixels of its connected blob (rows 80..125).
    blob = cars[row - 20:row + 21, col - 20:col + 21] > 0
    assert abs(blob.sum() - 4 * half_l * half_w * PPM**2) < 0.15 * 4 * half_l * half_w * PPM**2

    assert cars[CY, CX + 40] == 255  # the vehicle on the right is to the right of the centre column
    assert cars[CY, CX - 40] == 0
    assert cars[CY, CX] == 0 and cars[CY - 10, CX] == 0  # the ego itself is never drawn


def test_pedestrians_get_their_own_channel(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    world, pose = clean, straight.pose
    ego = spawn_ego(world, pose)
    walker = world.spawn_walker_at(Pose(*ego_to_world(pose, 8.0, 6.0)))
    snapshot = world.snapshot()
    image = bev.render(snapshot, ego)
    row, col = pixel_of(pose, *snapshot.location_m[snapshot.index_of(walker), :2])
    assert 0 <= row < SIZE and 0 <= col < SIZE
    assert channel(bev, image, "pedestrians_t0")[row, col] == 255
    assert channel(bev, image, "vehicles_t0")[row, col] == 0
    assert channel(bev, image, "pedestrians_t0").sum() // 255 < 20  # a 0.5 m square: about 2.5 x 2.5 px


def test_road_matches_the_area_raster_and_is_not_mirrored(clean: EmbeddedWorld, bev: BevRenderer) -> None:
    """At a junction, seen at an odd angle, the road channel agrees with the map's area raster."""
    world = clean
    lanes = world.lanes
    lane = int(np.flatnonzero(lanes.is_junction & (lanes.length_m > 10))[0])
    points = lanes.lane_points(lane)
    middle = points[len(points) // 2]
    pose = Pose(float(middle[0]), float(middle[1]), 0.0, 0.5)
    ego = spawn_ego(world, pose)
    road = channel(bev, bev.render(world.snapshot(), ego), "road") > 0

    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    forward, right = (CY - rows) / PPM, (cols - CX) / PPM
    c, s = math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)
    xy = np.stack([pose.x_m + c * forward - s * right, pose.y_m + s * forward + c * right], axis=-1)
    classes = world.area_raster.lookup(xy.reshape(-1, 2)).reshape(SIZE, SIZE)
    expected = np.isin(classes, (AreaClass.DRIVING, AreaClass.JUNCTION, AreaClass.CROSSWALK))
    assert road[CY, CX]
    assert 0.2 < expected.mean() < 0.8
    assert (road == expected).mean() > 0.97
    assert (road[:, ::-1] == expected).mean() < 0.9  # a mirrored view would not match


def test_route_and_road_under_the_ego(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    world, pose = clean, straight.pose
    ego = spawn_ego(world, pose)
    lane_points = world.lanes.lane_points(straight.lane)
    bev.set_route(lane_points[int(straight.s_m):, :2])
    image = bev.render(world.snapshot(), ego)
    route, road = channel(bev, image, "route"), channel(bev, image, "road")
    assert road[CY, CX] == 255
    assert route[CY - 10, CX] == 255 and route[CY - 100, CX] == 255  # 2 m and 20 m ahead
    assert route[CY - 50, CX - 4] == 255 and route[CY - 50, CX + 4] == 255  # 2 m wide
    assert route[CY - 50, CX - 10] == 0 and route[CY - 50, CX + 10] == 0
    assert route[CY + 20, CX] == 0  # the route starts at the ego
    # Replacing the route erases the old one; an empty route clears it.
    bev.set_route(lane_points[int(straight.s_m) - 10:int(straight.s_m) - 5])
    route = channel(bev, bev.render(world.snapshot(), ego), "route")
    assert route[CY - 50, CX] == 0 and route[CY + 35, CX] == 255
    bev.set_route(np.zeros((0, 2)))
    assert not channel(bev, bev.render(world.snapshot(), ego), "route").any()


def test_lane_markings_are_sorted_by_kind(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    """Town01 has only broken markings (and curbs, which are not markings)."""
    world = clean
    ego = spawn_ego(world, straight.pose)
    image = bev.render(world.snapshot(), ego)
    assert channel(bev, image, "lane_broken").any()
    assert not channel(bev, image, "lane_solid").any()


def test_marking_types_map_to_solid_and_broken(clean: EmbeddedWorld, straight: SpawnPoint) -> None:
    """Synthetic markings beside the ego: each type lands in its channel(s); curbs are not markings."""
    world, pose = clean, straight.pose

    def line(y: float) -> np.ndarray:
        return np.array([ego_to_world(pose, x, y) for x in (-20.0, 0.0, 20.0)])

    markings = [LaneMarking(line(3.0), "SolidBroken", "White"), LaneMarking(line(-3.0), "BottsDots", "White"),
                LaneMarking(line(6.0), "Curb", "Other"), LaneMarking(line(-6.0), "SolidSolid", "Yellow")]
    road = np.array([ego_to_world(pose, x, y) for x, y in ((-20, -8), (20, -8), (20, 8), (-20, 8))])
    geometry = MapGeometry(world.geometry.bounds_xy, [road], [], [], [], [], markings)
    renderer = BevRenderer(world.lanes, geometry, world.signals, BevConfig(history_steps=(0,)))
    ego = spawn_ego(world, pose)
    image = renderer.render(world.snapshot(), ego)
    solid, broken = channel(renderer, image, "lane_solid"), channel(renderer, image, "lane_broken")
    row = CY - 25
    assert solid[row, CX + 15] == 255 and broken[row, CX + 15] == 255
    assert solid[row, CX - 15] == 0 and broken[row, CX - 15] == 255
    assert solid[row, CX - 30] == 255 and broken[row, CX - 30] == 0
    assert not solid[:, CX + 25:].any() and not broken[:, CX + 25:].any()
    assert solid[row, CX] == 0 and broken[row, CX] == 0
    assert channel(renderer, image, "road")[row, CX + 35] == 255 and channel(renderer, image, "road")[row, CX + 45] == 0


# ---------------------------------------------------------------------- history
def test_history_channels_show_older_positions(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    world, pose = clean, straight.pose
    ego = spawn_ego(world, pose)
    npc = world.spawn_vehicle(CAR, Pose(*ego_to_world(pose, 8.0, 0.0), 0.0, pose.yaw_rad), autopilot=True,
                              speed_mps=8.0)
    snapshots: list[WorldSnapshot] = [world.snapshot()]
    image = bev.render(snapshots[0], ego)
    for name in ("vehicles_t5", "vehicles_t10"):  # no history yet: the oldest frame, i.e. now
        np.testing.assert_array_equal(channel(bev, image, name), channel(bev, image, "vehicles_t0"))
    for _ in range(7):
        snapshots.append(world.tick())
        image = bev.render(snapshots[-1], ego)
    for _ in range(5):  # rendering a frame again does not age the history
        image = bev.render(snapshots[-1], ego)
    now, then, first = snapshots[-1], snapshots[-6], snapshots[0]

    def along(snapshot: WorldSnapshot, offset_m: float) -> tuple[int, int]:
        row = snapshot.index_of(npc)
        x, y = snapshot.location_m[row, :2]
        yaw = snapshot.rotation_rad[row, 1]
        return pixel_of(ego_pose(now, ego), x + offset_m * math.cos(yaw),
                        y + offset_m * math.sin(yaw))

    half_l = now.extent_m[now.index_of(npc), 0]
    moved = np.hypot(*(now.location_m[now.index_of(npc), :2] - then.location_m[then.index_of(npc), :2]))
    assert moved > 1.5  # it drove off at ~8 m/s
    t0, t5, t10 = (channel(bev, image, f"vehicles_t{k}") for k in (0, 5, 10))
    old_rear = along(then, -(half_l - 0.4))  # inside its box 5 ticks ago, behind it now
    new_front = along(now, half_l - 0.4)
    assert t5[old_rear] == 255 and t0[old_rear] == 0
    assert t0[new_front] == 255 and t5[new_front] == 0
    assert t10[along(first, -(half_l - 0.4))] == 255  # only 7 ticks kept: t10 shows the oldest (frame 0)
    assert t10[along(now, half_l - 0.4)] == 0

    bev.reset()
    image = bev.render(now, ego)
    np.testing.assert_array_equal(channel(bev, image, "vehicles_t5"), channel(bev, image, "vehicles_t0"))
    bev.render(world.tick(), ego)
    image = bev.render(first, ego)  # an older frame (a new episode) starts a new history
    np.testing.assert_array_equal(channel(bev, image, "vehicles_t5"), channel(bev, image, "vehicles_t0"))


# ---------------------------------------------------------------------- lights and stop signs
def _before_stop_line(world: EmbeddedWorld, lane: int, distance_m: float) -> Pose:
    """The pose on ``lane``'s centre line ``distance_m`` before its end (its stop line)."""
    lanes = world.lanes
    xyz, yaw = lanes.interpolate(np.array([lane]), np.array([lanes.length_m[lane] - distance_m]))
    return Pose(float(xyz[0, 0]), float(xyz[0, 1]), 0.0, float(yaw[0]))


def test_stop_lines_follow_the_light_state(clean: EmbeddedWorld, bev: BevRenderer) -> None:
    world = clean
    lanes, signals = world.lanes, world.signals
    lane = int(next(k for k in np.flatnonzero(signals.lane_light >= 0) if lanes.length_m[k] > 30))
    ego = spawn_ego(world, _before_stop_line(world, lane, 10.0))
    snapshot = world.snapshot()
    light = int(signals.lane_light[lane])
    line, past, before = (CY - round(9.6 * PPM), CX), (CY - round(10.6 * PPM), CX), (CY - round(8.5 * PPM), CX)
    names = ("light_red", "light_yellow", "light_green")
    for state, lit in ((TrafficLightState.RED, "light_red"), (TrafficLightState.YELLOW, "light_yellow"),
                       (TrafficLightState.GREEN, "light_green"), (TrafficLightState.OFF, None)):
        states = np.full(snapshot.light_state.shape, int(TrafficLightState.OFF), dtype=np.int8)
        states[light] = int(state)
        image = bev.render(dataclasses.replace(snapshot, light_state=states), ego)
        for name in names:
            assert channel(bev, image, name)[line] == (255 if name == lit else 0), (state, name)
            assert channel(bev, image, name)[past] == 0 and channel(bev, image, name)[before] == 0
        assert not channel(bev, image, "stop_sign").any()
        stripe = channel(bev, image, lit)[line[0], :] if lit else None
        if stripe is not None:  # across the whole lane (~4 m wide), not beyond the neighbouring lane
            width_m = lanes.width_m[lanes.offset[lane] + lanes.count[lane] - 1]
            assert abs(stripe[CX - 15:CX + 16].sum() / 255 - width_m * PPM) <= 2
    # All lights red: the ego's stop line turns red, nothing is green.
    image = bev.render(dataclasses.replace(snapshot, light_state=np.zeros_like(snapshot.light_state)), ego)
    assert channel(bev, image, "light_red")[line] == 255 and not channel(bev, image, "light_green").any()


def test_stop_sign_lines(clean: EmbeddedWorld) -> None:
    """Town01 has no stop signs: give one lane a stop sign in a copy of its signal layout."""
    world = clean
    lanes = world.lanes
    lane = int(next(k for k in np.flatnonzero(world.signals.lane_light >= 0) if lanes.length_m[k] > 30))
    lane_stop = np.full(lanes.num_lanes, -1, dtype=np.int64)
    lane_stop[lane] = 0
    lane_light = np.full(lanes.num_lanes, -1, dtype=np.int64)
    signals = dataclasses.replace(world.signals, lane_light=lane_light, lane_stop=lane_stop,
                                  stop_id=np.array([7]), stop_location_xyz=np.zeros((1, 3)))
    renderer = BevRenderer(lanes, world.geometry, signals, BevConfig(history_steps=(0,)))
    ego = spawn_ego(world, _before_stop_line(world, lane, 10.0))
    image = renderer.render(world.snapshot(), ego)
    stop = channel(renderer, image, "stop_sign")
    assert stop[CY - 48, CX] == 255 and stop[CY - 53, CX] == 0 and stop[CY - 42, CX] == 0
    for name in ("light_red", "light_yellow", "light_green"):
        assert not channel(renderer, image, name).any()


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_rejected(clean: EmbeddedWorld, bev: BevRenderer, straight: SpawnPoint) -> None:
    world = clean
    ego = spawn_ego(world, straight.pose)
    snapshot = world.snapshot()
    with pytest.raises(KeyError, match="12345"):
        bev.render(snapshot, 12345)
    with pytest.raises(ValueError, match="traffic lights"):
        bev.render(dataclasses.replace(snapshot, light_state=snapshot.light_state[:-1]), ego)
    for bad in (np.zeros(5), np.zeros((5, 4)), np.zeros((2, 5, 2))):
        with pytest.raises(ValueError, match="route_xy"):
            bev.set_route(bad)
    with pytest.raises(ValueError, match="finite"):
        bev.set_route(np.array([[0.0, 0.0], [np.nan, 1.0]]))
