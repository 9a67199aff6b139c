"""``sensor.other.collision`` and ``sensor.other.lane_invasion`` on the embedded world."""

from __future__ import annotations

import math

import carla
import numpy as np
import pytest

from sim.api import CollisionEvent, LaneInvasionEvent, Pose, VehicleControl
from sim.transforms import sensor_world_pose
from sim.embedded.sensors.events import (
    CollisionData,
    CollisionSensor,
    LaneInvasionSensor,
)
from sim.embedded.world import EmbeddedWorld

BLUEPRINT = "vehicle.lincoln.mkz_2020"


@pytest.fixture()
def world():
    return EmbeddedWorld(map="Town01", seed=0)


def _straight_lane(world, min_length_m: float = 80.0) -> int:
    lanes = world.lanes
    for k in np.argsort(-lanes.length_m).tolist():
        yaw = lanes.yaw_rad[lanes.offset[k]:lanes.offset[k] + lanes.count[k]]
        if not lanes.is_junction[k] and lanes.length_m[k] >= min_length_m and np.ptp(np.unwrap(yaw)) < 0.05:
            return k
    raise AssertionError("no straight lane")


def _pose_on(world, lane: int, s_m: float) -> Pose:
    xyz, yaw = world.lanes.interpolate(np.array([lane]), np.array([s_m]))
    return Pose(float(xyz[0, 0]), float(xyz[0, 1]), 0.0, float(yaw[0]))


def test_collision_sensor_reports_the_other_vehicle_and_impulse(world):
    lane = _straight_lane(world)
    ego = world.spawn_vehicle(BLUEPRINT, _pose_on(world, lane, 10.0), speed_mps=10.0)
    parked = world.spawn_vehicle(BLUEPRINT, _pose_on(world, lane, 30.0))
    bystander = world.spawn_vehicle(BLUEPRINT, _pose_on(world, lane, 70.0))
    world.apply_control(parked, VehicleControl(brake=1.0))
    mount = Pose(x_m=0.5, z_m=0.8)
    on_ego, on_parked = CollisionSensor(ego, mount, name="ego_collision"), CollisionSensor(parked)
    on_bystander = CollisionSensor(bystander)
    quiet_ticks = 0
    for _ in range(60):
        snapshot = world.tick()
        ego_hit, parked_hit = on_ego.measure(world, snapshot), on_parked.measure(world, snapshot)
        assert on_bystander.measure(world, snapshot) is None
        if ego_hit is not None:
            break
        assert parked_hit is None
        quiet_ticks += 1
    assert ego_hit is not None and quiet_ticks > 5, "the moving car must reach the parked one after a while"
    assert ego_hit.frame == snapshot.frame and ego_hit.timestamp_s == snapshot.timestamp_s
    assert ego_hit.blueprint_id == "sensor.other.collision" and ego_hit.sensor_name == "ego_collision"
    row = snapshot.index_of(ego)
    expected_location, _ = sensor_world_pose(snapshot.location_m[row], snapshot.rotation_rad[row], mount)
    np.testing.assert_allclose(ego_hit.location_m, expected_location)
    (hit,) = ego_hit.data
    assert isinstance(hit, CollisionData)
    assert hit.other_actor_id == parked and hit.other_kind == "vehicle"
    assert hit.normal_impulse_ns.shape == (3,) and np.linalg.norm(hit.normal_impulse_ns) > 1000.0
    # Same impulse as the world's event; the impulse pushes the ego back (against its heading).
    event = next(e for e in snapshot.events if isinstance(e, CollisionEvent) and e.actor_id == ego)
    np.testing.assert_allclose(hit.normal_impulse_ns, event.impulse_ns)
    heading = np.array([math.cos(snapshot.rotation_rad[row, 1]), math.sin(snapshot.rotation_rad[row, 1]), 0.0])
    assert np.dot(hit.normal_impulse_ns, heading) < 0.0
    assert parked_hit is not None and parked_hit.data[0].other_actor_id == ego
    np.testing.assert_allclose(parked_hit.data[0].normal_impulse_ns, -hit.normal_impulse_ns)


def test_collision_with_the_static_layout_has_no_other_actor(world):
    lane = _straight_lane(world)
    ego = world.spawn_vehicle(BLUEPRINT, _pose_on(world, lane, 20.0))
    world.apply_control(ego, VehicleControl(throttle=1.0, steer=1.0))  # off the road, into the kerb
    sensor = CollisionSensor(ego)
    hits = []
    for _ in range(200):
        snapshot = world.tick()
        if (m := sensor.measure(world, snapshot)) is not None:
            hits.extend(m.data)
    assert hits and hits[0].other_actor_id == -1 and hits[0].other_kind == "static"


def test_lane_invasion_sensor_names_the_crossed_marking(world):
    lane = _straight_lane(world)
    start = _pose_on(world, lane, 10.0)
    ego = world.spawn_vehicle(BLUEPRINT, start, speed_mps=6.0)
    world.apply_control(ego, VehicleControl(throttle=0.3, steer=-0.08))  # drift left across the centre line
    sensor = LaneInvasionSensor(ego)
    measurements, events = [], []
    for _ in range(60):
        snapshot = world.tick()
        events += [e for e in snapshot.events if isinstance(e, LaneInvasionEvent) and e.actor_id == ego]
        m = sensor.measure(world, snapshot)
        assert (m is None) == (not any(e.frame == snapshot.frame for e in events))
        if m is not None:
            measurements.append(m)
    assert measurements, "steering left across the centre line must raise a lane invasion"
    first = measurements[0]
    assert first.blueprint_id == "sensor.other.lane_invasion" and first.frame == events[0].frame
    assert first.data == events[0].marking_types
    assert set(first.data) <= set(carla.LaneMarkingType.names)
    # The first marking crossed is the lane's left marking as CARLA's map has it.
    waypoint = world.carla_map.get_waypoint(carla.Location(start.x_m, start.y_m, 0.0))
    assert first.data[0] == waypoint.left_lane_marking.type.name


def test_event_sensors_stay_quiet_without_events(world):
    ego = world.spawn_vehicle(BLUEPRINT)
    sensors = [CollisionSensor(ego), LaneInvasionSensor(ego)]
    for _ in range(10):
        snapshot = world.tick()
        assert all(s.measure(world, snapshot) is None for s in sensors)


def test_event_sensors_bad_arguments():
    with pytest.raises(ValueError, match="parent_id"):
        CollisionSensor(None)
    with pytest.raises(ValueError, match="transform"):
        LaneInvasionSensor(3, transform=[0.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="sensor_tick"):
        CollisionSensor(3, sensor_tick=0.5)  # CARLA's event sensors have no sensor_tick attribute
