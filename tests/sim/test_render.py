"""Tests of the top-down renderer, the MP4 writer and the PNG helper."""

from __future__ import annotations

import math

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.maps.geometry import AreaClass, rasterize_areas
from sim.render import DEFAULT_PALETTE as PAL
from sim.render import TopDownRenderer, VideoWriter, save_png
from sim.embedded.world import EmbeddedWorld

PPM = 4.0


def make_snapshot(actors: list[tuple[int, ActorKind, float, float, float]] = (),
                  lights: list[tuple[float, float, TrafficLightState]] = ()) -> WorldSnapshot:
    """A snapshot of actors (id, kind, x, y, yaw) with car / walker extents, and lights (x, y, state)."""
    n, nl = len(actors), len(lights)
    location = np.zeros((n, 3))
    rotation = np.zeros((n, 3))
    extent = np.zeros((n, 3))
    for row, (_, kind, x, y, yaw) in enumerate(actors):
        location[row, :2] = (x, y)
        rotation[row, 1] = yaw
        extent[row] = (2.4, 1.0, 0.8) if kind == ActorKind.VEHICLE else (0.25, 0.25, 0.9)
    kinds = np.array([int(a[1]) for a in actors], dtype=np.int8)
    light_xyz = np.array([(x, y, 0.0) for x, y, _ in lights], dtype=float).reshape(-1, 3)
    return WorldSnapshot(
        frame=0, timestamp_s=0.0, dt_s=0.05, actor_id=np.array([a[0] for a in actors], dtype=np.int64),
        kind=kinds, type_id=tuple("vehicle.x" for _ in actors), semantic_tag=np.zeros(n, np.uint8),
        location_m=location, rotation_rad=rotation, velocity_mps=np.zeros((n, 3)),
        acceleration_mps2=np.zeros((n, 3)), angular_velocity_rad_s=np.zeros((n, 3)), extent_m=extent,
        autopilot=np.zeros(n, bool), light_id=np.arange(nl, dtype=np.int64),
        light_state=np.array([int(s) for _, _, s in lights], dtype=np.int8),
        light_location_m=light_xyz, light_junction_id=np.zeros(nl, np.int64),
    )


@pytest.fixture(scope="module")
def world() -> EmbeddedWorld:
    return EmbeddedWorld(map="Town01", seed=0)


@pytest.fixture(scope="module")
def full(world: EmbeddedWorld) -> TopDownRenderer:
    return TopDownRenderer(world.geometry, PPM)


@pytest.fixture(scope="module")
def lane_point(world: EmbeddedWorld) -> tuple[float, float]:
    """Centre of a driving lane outside junctions, well inside the lane, near the map's centre."""
    raster = rasterize_areas(world.geometry, 0.2)
    xmin, ymin, xmax, ymax = world.geometry.bounds_xy
    center = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
    by_distance = sorted(world.spawn_points, key=lambda p: np.hypot(p.pose.x_m - center[0], p.pose.y_m - center[1]))
    for point in by_distance:
        xy = np.array([[point.pose.x_m, point.pose.y_m]])
        around = xy + np.array([[0, 0], [0.6, 0], [-0.6, 0], [0, 0.6], [0, -0.6]])
        if (raster.lookup(around) == AreaClass.DRIVING).all():
            return (point.pose.x_m, point.pose.y_m)
    raise AssertionError("no plain driving-lane spawn point on Town01")


def pixel(image: np.ndarray, renderer: TopDownRenderer, xy: tuple[float, float],
          center_xy: tuple[float, float] | None = None) -> tuple[int, ...]:
    col, row = renderer.pixel_of(np.array([xy]), center_xy)[0]
    return tuple(int(v) for v in image[row, col])


def test_empty_snapshot_shows_road_and_background(full: TopDownRenderer, lane_point, world) -> None:
    image = full.render(make_snapshot())
    xmin, ymin, xmax, ymax = world.geometry.bounds_xy
    assert image.dtype == np.uint8
    assert image.shape == (math.ceil((ymax - ymin) * PPM), math.ceil((xmax - xmin) * PPM), 3)
    assert pixel(image, full, lane_point) == PAL.road
    assert tuple(image[0, 0]) == PAL.background  # the margin around the map is off-road
    assert tuple(image[-1, -1]) == PAL.background
    # Markings are drawn: Town01 has yellow centre lines.
    assert (np.abs(image.astype(int) - PAL.marking_yellow).sum(axis=2) < 60).sum() > 300
    assert not np.shares_memory(image, full.map_image)


def test_pixel_convention_is_x_right_y_down(full: TopDownRenderer) -> None:
    x0, y0 = full.origin_xy
    cols_rows = full.pixel_of(np.array([[x0 + 10.1, y0 + 20.1], [x0 + 0.01, y0 + 0.01]]))
    assert cols_rows.tolist() == [[40, 80], [0, 0]]


def test_vehicle_colours_its_centre_and_shows_heading(full: TopDownRenderer, lane_point) -> None:
    x, y = lane_point
    yaw = math.pi / 2  # facing +y: the front is lower in the image
    image = full.render(make_snapshot([(7, ActorKind.VEHICLE, x, y, yaw)]))
    assert pixel(image, full, (x, y)) == PAL.vehicle
    assert pixel(image, full, (x, y - 1.8)) == PAL.vehicle  # rear
    assert pixel(image, full, (x, y + 1.8)) == PAL.heading  # front marker
    front_row = full.pixel_of(np.array([[x, y + 1.8]]))[0, 1]
    assert front_row > full.pixel_of(np.array([[x, y]]))[0, 1]


def test_walkers_and_hero_colours(full: TopDownRenderer, lane_point) -> None:
    x, y = lane_point
    snap = make_snapshot([(1, ActorKind.VEHICLE, x, y, 0.0), (2, ActorKind.VEHICLE, x + 20, y, 0.0),
                          (3, ActorKind.WALKER, x, y + 30, 0.0)])
    image = full.render(snap, hero_id=1)
    assert pixel(image, full, (x, y)) == PAL.hero
    assert pixel(image, full, (x + 20, y)) == PAL.vehicle
    assert pixel(image, full, (x, y + 30)) == PAL.walker
    with pytest.raises(KeyError):
        full.render(snap, hero_id=99)


def test_lights_drawn_in_state_colours(full: TopDownRenderer, lane_point) -> None:
    x, y = lane_point
    states = [TrafficLightState.RED, TrafficLightState.YELLOW, TrafficLightState.GREEN, TrafficLightState.OFF]
    image = full.render(make_snapshot(lights=[(x + 10 * k, y + 5, s) for k, s in enumerate(states)]))
    expected = [PAL.light_red, PAL.light_yellow, PAL.light_green, PAL.light_off]
    assert [pixel(image, full, (x + 10 * k, y + 5)) for k in range(4)] == expected


def test_route_and_trail(full: TopDownRenderer, lane_point) -> None:
    x, y = lane_point
    y = full.origin_xy[1] + (math.floor((y - full.origin_xy[1]) * PPM) + 0.5) / PPM  # on a pixel row's centre
    route = np.array([[x - 10, y + 40, 0.0], [x + 10, y + 40, 0.0]])
    trail = np.array([[x - 10, y - 40], [x + 10, y - 40]])
    image = full.render(make_snapshot(), route_xy=route, trail_xy=trail)
    assert pixel(image, full, (x, y + 40)) == PAL.route
    assert pixel(image, full, (x, y - 40)) == PAL.trail
    with pytest.raises(ValueError, match="route_xy"):
        full.render(make_snapshot(), route_xy=np.zeros((3, 4)))


def test_follow_window_is_centred_on_hero(world: EmbeddedWorld, lane_point) -> None:
    x, y = lane_point
    follow = TopDownRenderer(world.geometry, 5.0, view_size_px=(200, 150))
    snap = make_snapshot([(1, ActorKind.VEHICLE, x + 0.37, y - 0.21, 0.0), (2, ActorKind.VEHICLE, x + 12, y, 0.0)])
    image = follow.render(snap, hero_id=1)
    assert image.shape == (150, 200, 3)
    col, row = follow.pixel_of(np.array([[x + 0.37, y - 0.21]]), (x + 0.37, y - 0.21))[0]
    assert abs(col - 100) <= 1 and abs(row - 75) <= 1
    assert tuple(image[75, 100]) == PAL.hero
    assert pixel(image, follow, (x + 12, y), (x + 0.37, y - 0.21)) == PAL.vehicle
    # An explicit centre wins over the hero's position.
    other = follow.render(snap, hero_id=1, center_xy=(x + 12, y))
    assert tuple(other[75, 100]) == PAL.vehicle


def test_follow_window_padded_beyond_the_map(world: EmbeddedWorld) -> None:
    follow = TopDownRenderer(world.geometry, PPM, view_size_px=(64, 64))
    xmin, ymin, xmax, ymax = world.geometry.bounds_xy
    image = follow.render(make_snapshot(), center_xy=(xmin - 100.0, ymin))
    assert (image == PAL.background).all()
    image = follow.render(make_snapshot(), center_xy=(xmax, ymax))
    assert image.shape == (64, 64, 3) and (image[40:, 40:] == PAL.background).all()


def test_renders_a_live_world(world: EmbeddedWorld) -> None:
    ids = world.spawn_traffic(15)
    snap = world.tick()
    follow = TopDownRenderer(world.geometry, PPM, view_size_px=(128, 128))
    image = follow.render(snap, hero_id=ids[0])
    assert (np.abs(image[62:66, 62:66].astype(int) - PAL.hero).sum(axis=2) == 0).any()
    whole = TopDownRenderer(world.geometry, 1.0).render(snap)
    assert (whole == PAL.vehicle).all(axis=2).sum() > 10


@pytest.mark.parametrize("ppm", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_raises(world: EmbeddedWorld, ppm: float) -> None:
    with pytest.raises(ValueError, match="pixels_per_m"):
        TopDownRenderer(world.geometry, ppm)


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (10,), (10.5, 10), (-4, 4)])
def test_bad_view_size_raises(world: EmbeddedWorld, size) -> None:
    with pytest.raises(ValueError, match="view_size_px"):
        TopDownRenderer(world.geometry, PPM, view_size_px=size)


def test_huge_map_image_refused(world: EmbeddedWorld) -> None:
    with pytest.raises(ValueError, match="lower pixels_per_m"):
        TopDownRenderer(world.geometry, 1000.0)


def _read_video(path) -> tuple[dict, list[np.ndarray]]:
    """The metadata and the RGB frames of a video, decoded by imageio-ffmpeg's ffmpeg."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]


def test_video_is_h264_and_round_trips(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "run.mp4"
    rng = np.random.default_rng(0)
    # Smooth frames (a moving gradient plus colour blocks) so lossy H.264 keeps them close.
    yy, xx = np.mgrid[0:48, 0:64]
    frames = []
    for k in range(7):
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[:, :, 0] = (xx * 4 + k * 10) % 256
        frame[:, :, 1] = yy * 5
        frame[:16, :16, 2] = rng.integers(60, 200)
        frames.append(frame)
    with VideoWriter(path, fps=10) as video:
        for frame in frames:
            video.write(frame)
        with pytest.raises(ValueError, match="differs"):
            video.write(np.zeros((48, 66, 3), dtype=np.uint8))
        assert video.frames_written == 7 and video.size == (64, 48)
    with pytest.raises(ValueError, match="closed"):
        video.write(frames[0])
    meta, back = _read_video(path)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (64, 48) and meta["fps"] == 10.0
    assert len(back) == 7
    for original, decoded in zip(frames, back):
        error = np.abs(original.astype(np.int16) - decoded.astype(np.int16))
        assert error.mean() < 4.0, error.mean()


def test_video_colours_keep_rgb_order(tmp_path) -> None:
    path = tmp_path / "red.mp4"
    frame = np.zeros((32, 32, 3), dtype=np.uint8)
    frame[:, :, 0] = 200  # red in RGB
    with VideoWriter(path, fps=20, size=(32, 32)) as video:
        for _ in range(3):
            video.write(frame)
    _, back = _read_video(path)
    mean = back[1].reshape(-1, 3).mean(axis=0)
    assert mean[0] > 180 and mean[1] < 20 and mean[2] < 20


def test_video_odd_frame_size_is_padded_to_even(tmp_path) -> None:
    path = tmp_path / "odd.mp4"
    frame = np.full((47, 65, 3), 120, dtype=np.uint8)
    with VideoWriter(path, fps=10) as video:
        video.write(frame)
        video.write(frame)
        assert video.size == (65, 47)
    meta, back = _read_video(path)
    assert meta["codec"] == "h264" and meta["size"] == (66, 48) and len(back) == 2
    assert abs(float(back[0].mean()) - 120) < 3


def test_video_bad_inputs(tmp_path) -> None:
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with pytest.raises(ValueError, match="size"):
        VideoWriter(tmp_path / "x.mp4", size=(0, 10))
    with VideoWriter(tmp_path / "x.mp4") as video:
        for bad in (np.zeros((8, 8, 3), dtype=np.float32), np.zeros((8, 8), dtype=np.uint8),
                    np.zeros((8, 8, 4), dtype=np.uint8), np.zeros((0, 8, 3), dtype=np.uint8)):
            with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
                video.write(bad)
        assert video.frames_written == 0
    with pytest.raises(RuntimeError, match="cannot open"):
        VideoWriter(tmp_path, size=(16, 16))  # a directory is not a writable file


def test_save_png_round_trip(tmp_path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = save_png(tmp_path / "sub" / "img.png", image)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(back, image)
    with pytest.raises(ValueError):
        save_png(tmp_path / "bad.png", image.astype(np.float32))
