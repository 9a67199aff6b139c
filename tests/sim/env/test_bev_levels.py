"""The BEV and the top-down render show the ego's level: on a bridge, not the cars on the road below."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import Pose
from sim.embedded.world import EmbeddedWorld
from sim.env.bev import BevRenderer
from sim.render import DEFAULT_PALETTE, TopDownRenderer
from sim.transforms import world_to_ego
from tests.overpass_map import BRIDGE_HEIGHT_M, overpass_source


@pytest.fixture(scope="module")
def world():
    w = EmbeddedWorld(source=overpass_source(), seed=0)
    yield w
    w.close()


def _ahead(lanes, road_id: int, lane_id: int, metres: float) -> tuple[np.ndarray, float]:
    """Point and heading of a lane's sample ``metres`` past its sample nearest to the crossing (the origin)."""
    lane = lanes.index[(road_id, 0, lane_id)]
    points = lanes.lane_points(lane)
    row = int(np.argmin(np.hypot(points[:, 0], points[:, 1]))) + int(metres)
    return points[row], float(lanes.yaw_rad[lanes.offset[lane] + row])


@pytest.fixture(scope="module")
def scene(world):
    """An ego on the bridge 6 m before the crossing, a car 12 m ahead of it on the bridge and two cars on the
    road below, in plan right in front of the ego."""
    lanes = world.lanes
    ego_at, ego_yaw = _ahead(lanes, 2, -1, -6.0)
    ahead_at, ahead_yaw = _ahead(lanes, 2, -1, 6.0)
    ego = world.spawn_vehicle(pose=Pose(ego_at[0], ego_at[1], ego_at[2] + 0.5, ego_yaw), role_name="hero")
    same_level = world.spawn_vehicle(pose=Pose(ahead_at[0], ahead_at[1], ahead_at[2] + 0.5, ahead_yaw))
    below = []
    for metres in (-3.0, 4.0):
        at, yaw = _ahead(lanes, 1, -2, metres)
        below.append(world.spawn_vehicle(pose=Pose(at[0], at[1], at[2] + 0.5, yaw)))
    snapshot = world.tick()
    z = dict(zip(snapshot.actor_id.tolist(), snapshot.location_m[:, 2].tolist()))
    assert z[ego] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.05) and z[below[0]] == pytest.approx(0.0, abs=0.05)
    return snapshot, ego, same_level, below


def test_bev_draws_only_actors_on_the_ego_level(world, scene):
    snapshot, ego, same_level, below = scene
    bev = BevRenderer(world.lanes, world.geometry, world.signals)
    image = bev.render(snapshot, ego)
    vehicles = image[bev.channel_names.index("vehicles_t0")] > 0
    # Pixel area of one car: the bridge car is drawn, the two below are not.
    car_px = 4.8 * 2.1 * bev.config.pixels_per_m ** 2
    assert 0.6 * car_px < vehicles.sum() < 1.4 * car_px
    # Seen from a car below, the bridge car and the ego are the ones left out.
    image = bev.render(snapshot, below[0])
    vehicles = image[bev.channel_names.index("vehicles_t0")] > 0
    assert 0.6 * car_px < vehicles.sum() < 1.4 * car_px


def test_render_with_a_hero_draws_only_its_level(world, scene):
    snapshot, ego, same_level, below = scene
    renderer = TopDownRenderer(world.geometry, pixels_per_m=4.0, view_size_px=(240, 240))

    def colour_at(image, actor):
        row = snapshot.index_of(actor)
        col, pix_row = renderer.pixel_of(snapshot.location_m[row:row + 1, :2], renderer_centre)[0]
        return tuple(int(v) for v in image[pix_row, col])

    renderer_centre = tuple(float(v) for v in snapshot.location_m[snapshot.index_of(ego), :2])
    image = renderer.render(snapshot, hero_id=ego)
    assert colour_at(image, ego) == DEFAULT_PALETTE.hero
    assert colour_at(image, same_level) == DEFAULT_PALETTE.vehicle
    assert colour_at(image, below[1]) != DEFAULT_PALETTE.vehicle
    # Without a hero there is no level to choose: everyone is drawn.
    image = renderer.render(snapshot, center_xy=renderer_centre)
    assert colour_at(image, below[1]) == DEFAULT_PALETTE.vehicle


def test_bev_road_layers_show_only_the_ego_level(world, scene):
    """Given the map's area raster, the road channel from the bridge leaves out the road below (beside the
    bridge) and keeps the bridge deck; without it (or from the road below) both levels are road."""
    snapshot, ego, same_level, below = scene
    spec_bev = BevRenderer(world.lanes, world.geometry, world.signals, area=world.area_raster)
    plain = BevRenderer(world.lanes, world.geometry, world.signals)
    road = spec_bev.channel_names.index("road")
    row = snapshot.index_of(ego)
    ex, ey = snapshot.location_m[row, :2]
    yaw = float(snapshot.rotation_rad[row, 1])

    def pixel(xy):
        local = world_to_ego(np.array([xy]), (ex, ey), yaw)[0]
        c = spec_bev.config
        return int(round(c.size_px - 1 - c.ego_from_bottom_px - local[0] * c.pixels_per_m)), \
            int(round(c.size_px // 2 + local[1] * c.pixels_per_m))

    lower_beside, _ = _ahead(world.lanes, 1, -2, 12.0)  # the road below, 12 m from the crossing: no bridge
    bridge_ahead, _ = _ahead(world.lanes, 2, -1, 2.0)
    r_low, c_low = pixel(lower_beside[:2])
    r_up, c_up = pixel(bridge_ahead[:2])
    assert 0 <= r_low < 192 and 0 <= c_low < 192, "the staged point should be in view"
    levelled, merged = spec_bev.render(snapshot, ego)[road], plain.render(snapshot, ego)[road]
    assert merged[r_low, c_low] == 255 and levelled[r_low, c_low] == 0
    assert levelled[r_up, c_up] == 255 and levelled[spec_bev.config.size_px - 1 - 40, 96] == 255
    from_below = spec_bev.render(snapshot, below[0])[road]
    assert from_below.sum() > 0
