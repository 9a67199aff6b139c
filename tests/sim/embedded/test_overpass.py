"""Height in the embedded world: a bridge over a road (tests/overpass_map.py) is two levels, not one."""

from __future__ import annotations

import numpy as np
import pytest

from sim.api import ActorKind, CollisionEvent, OffRoadEvent, Pose, SpawnError, VehicleControl
from sim.embedded.collision import VerletPairs, candidate_pairs, find_contacts, overlap_vertically
from sim.embedded.world import EmbeddedWorld
from tests.overpass_map import BRIDGE_HEIGHT_M, overpass_source


@pytest.fixture(scope="module")
def world():
    w = EmbeddedWorld(source=overpass_source(), seed=3)
    yield w
    w.close()


def _lane_point_near_origin(lanes, road_id: int, lane_id: int) -> tuple[np.ndarray, float, int]:
    """(x, y, z), yaw and lane index of the sample of that lane nearest to the crossing (the origin)."""
    lane = lanes.index[(road_id, 0, lane_id)]
    start = int(lanes.offset[lane])
    points = lanes.lane_points(lane)
    row = int(np.argmin(np.hypot(points[:, 0], points[:, 1])))
    return points[row], float(lanes.yaw_rad[start + row]), lane


# ---------------------------------------------------------------- boxes with heights
def test_boxes_apart_in_height_never_collide_but_level_boxes_still_do():
    center = np.array([[0.0, 0.0], [0.5, 0.2], [0.2, -0.3]])
    yaw = np.array([0.0, 1.5, 0.3])
    half = np.array([[2.4, 1.0], [2.4, 1.0], [2.4, 1.0]])
    z_range = np.array([[0.0, 1.5], [7.0, 8.5], [0.2, 1.7]])  # box 1 is on a bridge above boxes 0 and 2
    contacts = find_contacts(center, yaw, half, z_range_m=z_range)
    np.testing.assert_array_equal(contacts.pairs, [[0, 2]])
    assert len(find_contacts(center, yaw, half)) == 3  # in plan all three overlap
    np.testing.assert_array_equal(candidate_pairs(center, np.full(3, 2.6), z_range), [[0, 2]])
    np.testing.assert_array_equal(VerletPairs().pairs(center, np.full(3, 2.6), z_range), [[0, 2]])
    # Given pairs are filtered too; intervals that only touch do not overlap.
    assert len(find_contacts(center, yaw, half, np.array([[0, 1]]), z_range)) == 0
    touching = np.array([[0.0, 1.5], [1.5, 3.0], [0.0, 1.0]])
    np.testing.assert_array_equal(overlap_vertically(np.array([[0, 1], [0, 2]]), touching), [False, True])


@pytest.mark.parametrize("z_range, message", [
    (np.zeros((3, 3)), r"z_range_m must have shape \(2, 2\)"),
    (np.array([[0.0, 1.0], [2.0, 1.0]]), "bottom <= top"),
    (np.array([[0.0, np.nan], [0.0, 1.0]]), "finite"),
])
def test_bad_height_intervals_are_named(z_range, message):
    center, yaw, half = np.zeros((2, 2)), np.zeros(2), np.ones((2, 2))
    with pytest.raises(ValueError, match=message):
        find_contacts(center, yaw, half, z_range_m=z_range)


# ---------------------------------------------------------------- lane projection
def test_projection_picks_the_level_of_the_given_height(world):
    lanes = world.lanes
    assert lanes.multilevel
    below, yaw_below, lane_below = _lane_point_near_origin(lanes, 1, -1)
    above, yaw_above, lane_above = _lane_point_near_origin(lanes, 2, -1)
    assert below[2] == pytest.approx(0.0, abs=0.01) and above[2] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.01)
    # A point of the lower lane right under the bridge: its height decides which road it is on.
    xy = np.array([below[:2], below[:2]])
    lane, s_m, dist = lanes.project(xy, np.array([yaw_below, yaw_above]), z_m=np.array([0.0, BRIDGE_HEIGHT_M]))
    assert lane[0] == lane_below and dist[0] < 0.1
    assert lanes.keys[lane[1]][0] == 2  # on the bridge: a bridge lane, however near the lane below is
    # The same for a point of the bridge lane.
    lane, _, _ = lanes.project(np.array([above[:2]] * 2), np.array([yaw_above, yaw_below]),
                               z_m=np.array([BRIDGE_HEIGHT_M, 0.2]))
    assert lane[0] == lane_above and lanes.keys[lane[1]][0] == 1
    # Without heights the 2-D answer of old: the nearest lane facing the same way.
    lane, _, _ = lanes.project(xy[:1], np.array([yaw_below]))
    assert lane[0] == lane_below
    with pytest.raises(ValueError, match=r"z_m must have shape \(2,\)"):
        lanes.project(xy, np.zeros(2), z_m=np.zeros(3))


# ---------------------------------------------------------------- the world
def test_traffic_crosses_over_and_under_for_a_minute_without_collisions(world):
    world.reset(5)
    ids = world.spawn_traffic(30)
    assert len(ids) >= 25
    start = world.snapshot().location_m[: len(ids)].copy()
    travelled = np.zeros(len(ids))
    previous = start[:, :2]
    collisions = crossings = 0
    for _ in range(int(60.0 / world.dt_s)):
        snap = world.tick()
        collisions += sum(isinstance(e, CollisionEvent) for e in snap.events)
        loc = snap.location_m[: len(ids)]
        travelled += np.hypot(*(loc[:, :2] - previous).T)
        previous = loc[:, :2].copy()
        gap = np.hypot(loc[:, None, 0] - loc[None, :, 0], loc[:, None, 1] - loc[None, :, 1])
        crossings += int(((gap < 3.0) & (np.abs(loc[:, None, 2] - loc[None, :, 2]) > 5.0)).any())
    assert crossings > 0  # cars did pass right above others
    assert collisions == 0
    assert world.relocations == 0  # nobody got stuck long enough for gridlock relief
    assert travelled.min() > 150.0  # every car kept driving (30 km/h limit: about 8 m/s)


def test_free_vehicles_take_the_height_of_their_level_and_pass_over_each_other(world):
    world.reset(1)
    below, yaw_below, _ = _lane_point_near_origin(world.lanes, 1, -1)
    above, yaw_above, _ = _lane_point_near_origin(world.lanes, 2, -1)
    # Back each car up along its lane so that both reach the crossing together.
    back = 25.0
    low = world.spawn_vehicle(pose=Pose(below[0] - back * np.cos(yaw_below), below[1] - back * np.sin(yaw_below),
                                        0.5, yaw_below), speed_mps=8.0)
    high = world.spawn_vehicle(pose=Pose(above[0] - back * np.cos(yaw_above), above[1] - back * np.sin(yaw_above),
                                         BRIDGE_HEIGHT_M + 0.5, yaw_above), speed_mps=8.0)
    # A spawn right under the bridge car is not "occupied"; one on top of the lower car is.
    world.destroy([world.spawn_vehicle(pose=Pose(above[0] - back * np.cos(yaw_above),
                                                 above[1] - back * np.sin(yaw_above), 0.5, yaw_above))])
    with pytest.raises(SpawnError, match="occupied"):
        world.spawn_vehicle(pose=Pose(below[0] - back * np.cos(yaw_below), below[1] - back * np.sin(yaw_below),
                                      0.5, yaw_below))
    snap = world.snapshot()
    z = dict(zip(snap.actor_id.tolist(), snap.location_m[:, 2].tolist()))
    assert z[low] == pytest.approx(0.0, abs=0.05) and z[high] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.05)
    for actor in (low, high):
        world.apply_control(actor, VehicleControl(throttle=0.3))
    closest = np.inf
    for _ in range(100):
        snap = world.tick()
        # No car hit the other, a kerb, or left the road: under the bridge the road below is road.
        assert not [e for e in snap.events if isinstance(e, (CollisionEvent, OffRoadEvent))]
        loc = dict(zip(snap.actor_id.tolist(), snap.location_m.tolist()))
        closest = min(closest, float(np.hypot(loc[low][0] - loc[high][0], loc[low][1] - loc[high][1])))
    assert closest < 3.0  # one drove right over the other: 4.8 x 2 m boxes at right angles overlap in plan
    assert loc[high][2] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.05) and loc[low][2] == pytest.approx(0.0, abs=0.05)
    speeds = dict(zip(snap.actor_id.tolist(), np.hypot(*snap.velocity_mps[:, :2].T).tolist()))
    assert speeds[low] > 5.0 and speeds[high] > 5.0


def test_cars_at_the_same_height_still_collide(world):
    world.reset(2)
    above, yaw_above, _ = _lane_point_near_origin(world.lanes, 2, -1)
    first = world.spawn_vehicle(pose=Pose(above[0], above[1], BRIDGE_HEIGHT_M, yaw_above))
    second = world.spawn_vehicle(pose=Pose(above[0] - 12.0 * np.cos(yaw_above), above[1] - 12.0 * np.sin(yaw_above),
                                           BRIDGE_HEIGHT_M, yaw_above), speed_mps=10.0)
    hits = []
    for _ in range(60):
        hits += [e for e in world.tick().events if isinstance(e, CollisionEvent) and e.other_id >= 0]
    assert {(e.actor_id, e.other_id) for e in hits} >= {(first, second), (second, first)}
    assert hits[0].location_m[2] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.05)


def test_walkers_walk_at_the_height_of_their_sidewalk(world):
    world.reset(4)
    world.spawn_walkers(40)
    snap = world.tick()
    walkers = snap.kind == ActorKind.WALKER
    assert walkers.sum() == 40
    # A walker's location is its box centre: its sidewalk's height plus half its height.
    ground = snap.location_m[walkers, 2] - snap.extent_m[walkers, 2]
    levels = np.minimum(np.abs(ground), np.abs(ground - BRIDGE_HEIGHT_M))
    ramps = (ground > 0.3) & (ground < BRIDGE_HEIGHT_M - 0.3)
    assert ((levels < 0.3) | ramps).all()
    assert (ground > BRIDGE_HEIGHT_M - 0.3).any() and (ground < 0.3).any()


def test_npcs_drive_under_a_car_stopped_on_the_bridge_and_spawn_on_the_level_of_the_pose(world):
    world.reset(6)
    below, yaw_below, lane_below = _lane_point_near_origin(world.lanes, 1, -1)
    above, yaw_above, lane_above = _lane_point_near_origin(world.lanes, 2, -1)
    # An autopilot spawn right at the crossing lands on the level of its pose.
    on_bridge = world.spawn_vehicle(pose=Pose(above[0], above[1], BRIDGE_HEIGHT_M + 0.5, yaw_above), autopilot=True)
    under = world.spawn_vehicle(pose=Pose(above[0], above[1], 0.5, yaw_below), autopilot=True)
    snap = world.tick()
    z = dict(zip(snap.actor_id.tolist(), snap.location_m[:, 2].tolist()))
    assert z[on_bridge] == pytest.approx(BRIDGE_HEIGHT_M, abs=0.05) and z[under] == pytest.approx(0.0, abs=0.05)
    world.destroy([on_bridge, under])
    # A car standing on the bridge right above the lower lane, across it: in plan it blocks the lane.
    world.spawn_vehicle(pose=Pose(below[0], below[1], BRIDGE_HEIGHT_M + 0.5, yaw_above))
    npc = world.spawn_vehicle(pose=Pose(below[0] - 40.0 * np.cos(yaw_below), below[1] - 40.0 * np.sin(yaw_below),
                                        0.5, yaw_below), autopilot=True, speed_mps=8.0)
    slowest = np.inf
    for _ in range(int(8.0 / world.dt_s)):
        snap = world.tick()
        row = snap.index_of(npc)
        slowest = min(slowest, float(np.hypot(*snap.velocity_mps[row, :2])))
        assert not [e for e in snap.events if isinstance(e, CollisionEvent)]
    assert slowest > 5.0  # it never braked for the car above
    gone = np.asarray(snap.location_m[snap.index_of(npc), :2]) - below[:2]
    assert float(np.dot(gone, [np.cos(yaw_below), np.sin(yaw_below)])) > 10.0  # and is past the crossing


def test_walkers_never_jump_between_levels(world):
    world.reset(7)
    world.spawn_walkers(40)
    previous = None
    for _ in range(int(20.0 / world.dt_s)):
        snap = world.tick()
        z = snap.location_m[snap.kind == ActorKind.WALKER, 2]
        if previous is not None:
            assert np.abs(z - previous).max() < 0.1  # where sidewalks cross in plan, walkers stay on their own
        previous = z
