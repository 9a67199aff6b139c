"""The lane graph derived from carla.Map: sampling, connectivity, projection, spawn points, conflicts."""

from __future__ import annotations

import numpy as np
import pytest

from sim.maps.lanes import road_speed_limits


def test_lanes_are_sampled_densely_and_in_order(town01):
    _, _, lanes = town01
    assert lanes.num_lanes > 100
    assert (lanes.count >= 2).all()
    steps = np.diff(lanes.s_m)
    inside = np.ones(steps.shape, bool)
    inside[(lanes.offset[1:] - 1)] = False  # skip jumps between lanes
    # Resampled at 1 m of arc length (the last step of a lane may be up to 1 mm longer).
    assert steps[inside].max() <= 1.001 and steps[inside].min() > 0
    np.testing.assert_allclose(lanes.length_m, lanes.s_m[lanes.offset + lanes.count - 1])


def test_successors_connect_end_to_start(town01):
    _, _, lanes = town01
    for lane in range(lanes.num_lanes):
        end = lanes.lane_points(lane)[-1, :2]
        for nxt in lanes.successors[lane, : lanes.num_successors[lane]]:
            assert np.linalg.norm(lanes.lane_points(int(nxt))[0, :2] - end) < 0.5


def test_town01_is_one_strongly_connected_network(town01):
    _, _, lanes = town01
    assert lanes.in_main_component.all()
    route = lanes.shortest_route(0, lanes.num_lanes - 1)
    assert route[0] == 0 and route[-1] == lanes.num_lanes - 1
    assert all(b in lanes.successors[a] for a, b in zip(route, route[1:]))


def test_interpolate_hits_samples(town01):
    _, _, lanes = town01
    lane = np.array([3, 3, 3])
    s = np.array([0.0, 1.0, lanes.length_m[3]])
    xyz, yaw = lanes.interpolate(lane, s)
    np.testing.assert_allclose(xyz[0], lanes.lane_points(3)[0], atol=1e-9)
    np.testing.assert_allclose(xyz[2], lanes.lane_points(3)[-1], atol=1e-6)


def test_project_recovers_lane_and_s(town10):
    _, _, lanes = town10
    rng = np.random.default_rng(0)
    lane = rng.choice(np.flatnonzero(~lanes.is_junction), 30)
    s = lanes.length_m[lane] * rng.uniform(0.2, 0.8, 30)
    xyz, yaw = lanes.interpolate(lane, s)
    found, s_found, dist = lanes.project(xyz[:, :2], yaw)
    assert (found == lane).mean() > 0.9
    ok = found == lane
    np.testing.assert_allclose(s_found[ok], s[ok], atol=0.3)
    assert dist.max() < 0.75


def test_project_rejects_wrong_direction(town01):
    _, _, lanes = town01
    xyz, yaw = lanes.interpolate(np.array([5]), np.array([5.0]))
    found, _, _ = lanes.project(xyz[:, :2], yaw + np.pi)
    assert found[0] != 5


def test_spawn_points_are_on_lanes_outside_junctions(town10):
    _, _, lanes = town10
    points = lanes.spawn_points()
    assert len(points) > 100
    assert not any(lanes.is_junction[p.lane] for p in points)
    assert all(abs(p.pose.z_m - lanes.interpolate(np.array([p.lane]), np.array([p.s_m]))[0][0, 2] - 0.5) < 1e-6
               for p in points[:20])
    with pytest.raises(ValueError, match="spacing_m"):
        lanes.spawn_points(spacing_m=0)


def test_junction_conflicts_are_symmetric_and_exclude_diverging_lanes(town01):
    _, _, lanes = town01
    conflicts = lanes.junction_conflicts
    assert (conflicts == conflicts.T).all()
    assert conflicts.any()
    assert not conflicts[~lanes.is_junction].any()
    for a, b in zip(*np.nonzero(conflicts)):
        assert not set(lanes.predecessors[a]) & set(lanes.predecessors[b])


def test_speed_limits_from_road_records():
    text = ("<OpenDRIVE><road id='7'><type s='0' type='town'><speed max='36' unit='km/h'/></type></road>"
            "<road id='8'><type s='0' type='town'><speed max='10' unit='mph'/></type></road></OpenDRIVE>")
    limits = road_speed_limits(text)
    assert limits[7] == pytest.approx(10.0)
    assert limits[8] == pytest.approx(4.4704)
