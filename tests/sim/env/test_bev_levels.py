"""The BEV and the top-down render show the ego's level: on a bridge, not the cars on the road below."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import Pose
from sim.embedded.world import EmbeddedWorld
from sim.env.bev import BevRenderer
from sim.render import DEFAULT_PALETTE, TopDownRenderer
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
