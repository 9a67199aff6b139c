"""The expert: speed planning for curves and stops, centre-line tracking, red lights, kerb recovery, a full route."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.control.lateral import PurePursuit
from av_stack.bridge import expert_agent
from av_stack.planning.expert import ExpertPlanner
from av_stack.planning import PLANNING
from av_stack.registry import StageConfigError
from av_stack.planning.speed import SpeedPlanner, path_curvature
from sim.api import CollisionEvent, Pose, TrafficLightState
from sim.env.driving import DrivingEnv

EMPTY_TOWN01 = dict(world={"map": "Town01"}, traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                    action={"mode": "vehicle_control"},
                    routes={"source": "file", "file": "configs/routes/town01.yaml"},
                    episode={"terminate_on": ["route_deviation", "blocked"]})


def arc(radius_m: float, length_m: float, step_m: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, headings and arc length of a left-to-right circular arc of ``radius_m``."""
    s = np.arange(0.0, length_m, step_m)
    theta = s / radius_m
    xy = np.stack([radius_m * np.sin(theta), radius_m * (1.0 - np.cos(theta))], axis=1)
    return xy, theta, s


def test_curvature_of_a_circle_is_one_over_its_radius():
    _, yaw, s = arc(12.0, 40.0)
    np.testing.assert_allclose(path_curvature(yaw, s), 1.0 / 12.0, rtol=1e-6)
    with pytest.raises(ValueError, match="yaw_rad and s_m must be 1-D of one length"):
        path_curvature(yaw, s[:-1])


@pytest.mark.parametrize("radius_m", [8.0, 20.0])
def test_speed_planner_slows_for_a_curve_to_the_lateral_acceleration_limit(radius_m):
    planner = SpeedPlanner(lateral_accel_mps2=2.0, decel_mps2=2.5)
    limit = math.sqrt(2.0 * radius_m)
    # in the curve: the lateral-acceleration limit
    assert planner.target_speed(np.zeros(10), np.full(10, 1.0 / radius_m), cruise_mps=12.0) == pytest.approx(limit)
    # 15 m before it: what braking at decel_mps2 still meets
    ahead = np.arange(15.0, 40.0)
    curvature = np.full(ahead.shape, 1.0 / radius_m)
    assert planner.target_speed(ahead, curvature, 12.0) == pytest.approx(math.sqrt(limit ** 2 + 2 * 2.5 * 15.0))
    # a straight road: the cruise speed
    assert planner.target_speed(ahead, np.zeros(ahead.shape), 12.0) == pytest.approx(12.0)


def test_speed_planner_stops_at_a_stop_point_and_rejects_bad_limits():
    planner = SpeedPlanner(stop_decel_mps2=4.0)
    assert planner.target_speed(np.arange(30.0), np.zeros(30), 10.0, stop_m=8.0) == pytest.approx(8.0)
    assert planner.target_speed(np.arange(30.0), np.zeros(30), 10.0, stop_m=-1.0) == 0.0
    with pytest.raises(ValueError, match="lateral_accel_mps2 must be a positive number"):
        SpeedPlanner(lateral_accel_mps2=0.0)


def test_pure_pursuit_converges_onto_a_straight_lane_from_an_offset():
    """A kinematic bicycle (reference 1.4 m ahead of the rear axle) 2 m off the lane and 15 degrees askew."""
    controller = PurePursuit()
    lane = np.stack([np.arange(-10.0, 200.0), np.zeros(210)], axis=1)  # along +x, y = 0
    x, y, yaw, speed, dt = 0.0, 2.0, math.radians(15.0), 5.0, 0.05
    delta, lateral = 0.0, []
    for _ in range(240):  # 12 s
        ahead = lane[lane[:, 0] > x - 1.0]
        wanted = controller.steer(x, y, yaw, speed, ahead) * controller.max_steer_rad
        delta += float(np.clip(wanted - delta, -1.2 * dt, 1.2 * dt))  # the steering rate limit
        rx, ry = x - 1.4 * math.cos(yaw), y - 1.4 * math.sin(yaw)
        yaw += speed * math.tan(delta) / controller.wheelbase_m * dt
        rx, ry = rx + speed * math.cos(yaw) * dt, ry + speed * math.sin(yaw) * dt
        x, y = rx + 1.4 * math.cos(yaw), ry + 1.4 * math.sin(yaw)
        lateral.append(y)
    assert abs(lateral[-1]) < 0.05 and abs(yaw) < 0.01
    assert min(lateral) > -0.3  # converges without swinging far across the centre line
    with pytest.raises(ValueError, match="path_xy must be a non-empty"):
        controller.steer(0.0, 0.0, 0.0, 5.0, np.zeros((0, 2)))


def _ego(env):
    snapshot = env.world.snapshot()
    row = snapshot.index_of(env.ego_id)
    return snapshot, row, float(np.hypot(*snapshot.velocity_mps[row, :2]))


@pytest.mark.parametrize("light_margin_m", [None, 8.0])
def test_expert_stops_before_the_stop_line_of_a_red_light(light_margin_m):
    """By default the front stops within 4 m of the line; with ``light_stop_margin_m: 8`` (a camera that must
    keep the light in view) it waits 8 m before it, and drives on at green either way."""
    env = DrivingEnv(**EMPTY_TOWN01)
    agent = expert_agent() if light_margin_m is None else expert_agent(light_stop_margin_m=light_margin_m)
    obs, _ = env.reset(seed=0, options={"route_id": "town01_short_00"})
    agent.reset(env)
    light, distance = env.route_light(env.progress)
    assert light >= 0 and distance < 150.0, "the staged route needs a light ahead"
    env.world.lights.force_state(light, TrafficLightState.RED)
    events = []
    for _ in range(int((distance / 4.0 + 10.0) / env.world.dt_s)):
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        events += info["infractions"]
        assert not (terminated or truncated)
    snapshot, row, speed = _ego(env)
    _, left_m = env.route_light(env.progress)
    assert speed < 0.05
    front = float(snapshot.extent_m[row, 0])
    if light_margin_m is None:
        assert front < left_m < front + 4.0  # front before the line
    else:
        assert front + light_margin_m - 1.0 < left_m < front + light_margin_m + 2.0
    assert "red_light" not in events and "collision" not in events
    assert agent.outputs.perception.light.state == TrafficLightState.RED  # what the planner was told
    env.world.lights.force_state(light, None)
    for _ in range(200):  # green again: it drives on
        obs, *_ = env.step(agent(obs, env))
    assert _ego(env)[2] > 2.0


@pytest.mark.parametrize("front_to_line_m, speed_mps, holds", [
    (1.5, 0.0, True),   # its waiting point is 2 m before the line: it overshot by 0.5 m
    (0.6, 1.0, True),   # crept on further, still short of the line
    (0.6, 6.0, False),  # too fast to stop short of the line: it clears the junction
    (-0.5, 0.0, False),  # the front is over the line: it drives on
])
def test_expert_holds_for_a_red_light_short_of_the_line_even_past_its_waiting_point(front_to_line_m, speed_mps,
                                                                                    holds):
    """A learner driving in DAgger can overshoot the expert's waiting point; the expert's label there is to
    hold for the red, not to drive over the line."""
    from av_stack.bridge import mission_of
    from av_stack.messages import Detections, LightObservation, PerceptionOutput, PoseEstimate

    env = DrivingEnv(**EMPTY_TOWN01)
    env.reset(seed=0, options={"route_id": "town01_short_00"})
    mission = mission_of(env)
    planner = ExpertPlanner()
    planner.reset(mission)
    route = mission.route
    front = float(mission.vehicle.extent_m[0])
    yaw = float(route.yaw_rad[5])
    pose = PoseEstimate(0, 0.0, Pose(float(route.points_xy[5, 0]), float(route.points_xy[5, 1]), 0.0, yaw),
                        np.array([speed_mps * math.cos(yaw), speed_mps * math.sin(yaw), 0.0]))
    light = LightObservation(TrafficLightState.RED, front + front_to_line_m)
    plan = planner.step(PerceptionOutput(0, 0.0, Detections.empty(), light), pose)
    assert planner.why.startswith("light") == holds, planner.why
    assert (plan.target_speed_mps[:3].max() < 0.05) == holds
    env.close()


def test_expert_stands_at_a_stop_sign_then_crosses():
    """Town10HD, a random route (seed 19) whose junction is guarded by a stop sign: the ego stands still before
    the line for at least the planner's stop_sign_s, then crosses; no stop-sign infraction."""
    env = DrivingEnv(map="Town10HD", traffic={"vehicles": 0, "walkers": 0}, observation={"mode": "state"},
                     action={"mode": "vehicle_control"}, episode={"terminate_on": ["route_deviation"]})
    obs, _ = env.reset(seed=19)
    route, stops = env.route, env.world.signals.lane_stop
    entry = next(int(i) for i in route.junction_entries if i > 0 and stops[int(route.lane[i - 1])] >= 0)
    agent = expert_agent()
    agent.reset(env)
    stood_s, events = 0.0, []
    for _ in range(2400):
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        events += info["infractions"]
        _, _, speed = _ego(env)
        to_line = float(route.s_m[entry]) - env.progress.s_m
        if 0.0 < to_line < 8.0 and speed < 0.05:
            stood_s += env.world.dt_s
        if env.progress.s_m > float(route.s_m[entry]) + 15.0 or terminated or truncated:
            break
    assert env.progress.s_m > float(route.s_m[entry]) + 15.0, "the ego should cross the junction after stopping"
    assert stood_s >= 1.0
    assert "stop_sign" not in events


def test_expert_waits_for_a_pedestrian_crossing_ahead():
    """A pedestrian steps onto the road 25 m ahead and walks across: the ego stops short of it, lets it pass,
    then drives on without touching it."""
    env = DrivingEnv(**EMPTY_TOWN01)
    obs, _ = env.reset(seed=0, options={"route_id": "town01_short_01"})
    agent = expert_agent()
    agent.reset(env)
    for _ in range(60):  # get going
        obs, *_ = env.step(agent(obs, env))
    route, s = env.route, env.progress.s_m + 25.0
    i = int(np.searchsorted(route.s_m, s))
    yaw = float(route.yaw_rad[i])
    right = np.array([-math.sin(yaw), math.cos(yaw)])  # right of the heading in CARLA's frame
    start = route.points_xy[i] + 4.5 * right
    walker = env.world.spawn_walker_at(Pose(float(start[0]), float(start[1]), 1.0, yaw - math.pi / 2))
    events, slowest_near = [], math.inf
    for _ in range(400):  # 20 s
        env.world.apply_walker_control(walker, (float(-right[0]), float(-right[1])), 1.2)
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        events += info["infractions"]
        snapshot, row, speed = _ego(env)
        w = snapshot.index_of(walker)
        if np.hypot(*(snapshot.location_m[w, :2] - snapshot.location_m[row, :2])) < 15.0:
            slowest_near = min(slowest_near, speed)
    assert "collision" not in events and "collision_pedestrian" not in events, events
    assert slowest_near < 1.0  # it yielded
    assert env.progress.s_m > s + 10.0  # and drove on past the crossing point


def test_expert_reverses_off_a_kerb_contact_and_drives_on():
    """Staged: the ego stands across the road facing the right kerb and is driven into it."""
    env = DrivingEnv(**EMPTY_TOWN01)
    agent = expert_agent()
    obs, _ = env.reset(seed=0, options={"route_id": "town01_short_01"})
    agent.reset(env)
    route = env.route
    i = 20
    yaw = float(route.yaw_rad[i])
    facing_kerb = yaw + math.pi / 2  # CARLA's frame: +90 degrees turns towards the right
    x = float(route.points_xy[i, 0]) + 1.5 * math.sin(yaw)  # 1.5 m left of the route
    y = float(route.points_xy[i, 1]) - 1.5 * math.cos(yaw)
    env.world.teleport(env.ego_id, Pose(x, y, 0.3, facing_kerb), speed_mps=0.0)
    kerb = False
    for _ in range(100):  # staged: drive straight at the kerb until the contact
        obs, _, _, _, info = env.step(np.array([0.4, 0.0, 0.0, 0.0], dtype=np.float32))
        kerb = any(isinstance(e, CollisionEvent) and e.other_kind == "static"
                   for e in env.world.snapshot().events_of(env.ego_id))
        if kerb:
            break
    assert kerb, "the staging should bring the ego into contact with the kerb"
    start_s = env.progress.s_m
    reversed_gear, backwards = False, False
    for _ in range(600):  # 30 s
        action = agent(obs, env)
        reversed_gear |= bool(action[3] >= 0.5)
        obs, _, terminated, truncated, info = env.step(action)
        snapshot, row, _ = _ego(env)
        heading = float(snapshot.rotation_rad[row, 1])
        forward = snapshot.velocity_mps[row, 0] * math.cos(heading) + snapshot.velocity_mps[row, 1] * math.sin(heading)
        backwards |= forward < -0.3
        if terminated or truncated or env.progress.s_m > start_s + 30.0:
            break
    assert reversed_gear and backwards
    assert env.progress.s_m > start_s + 30.0
    assert abs(env.progress.heading_error_rad) < 0.3


def test_expert_completes_a_short_shipped_route_with_driving_score_100():
    """town01_short_01 with the Leaderboard config's traffic and scenarios."""
    env = DrivingEnv(config="configs/env/leaderboard_town01.yaml", observation={"mode": "state"},
                     action={"mode": "vehicle_control"},
                     routes={"source": "file", "file": "configs/routes/town01.yaml", "ids": ["town01_short_01"]})
    agent = expert_agent()
    obs, _ = env.reset(seed=1)
    agent.reset(env)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(agent(obs, env))
        done = terminated or truncated
    assert info["termination_reason"] == "completed"
    score = info["route_score"]
    # No infraction; the Leaderboard's minimum-speed test may find it a little slower than the traffic on a
    # quarter of the route (the only penalty allowed, and only a small one).
    assert {k: v for k, v in score["infractions"].items() if v and k != "min_speed_infractions"} == {}
    assert score["driving_score"] > 97.0


def test_expert_config_is_typed_and_needs_a_mission():
    with pytest.raises(StageConfigError, match=r"planning \(expert\): cruise_mps: Input should be greater than 0"):
        PLANNING.build({"name": "expert", "cruise_mps": -1.0})
    with pytest.raises(StageConfigError, match="cruise_mph: unknown key"):
        PLANNING.build({"name": "expert", "cruise_mph": 5.0})
    assert isinstance(PLANNING.build({"name": "expert", "cruise_mps": 6.0}), ExpertPlanner)
    with pytest.raises(RuntimeError, match="before reset"):
        ExpertPlanner().step(None, None)


def test_expert_benchmark_refuses_bad_options():
    from benchmarks.expert_eval import main

    with pytest.raises(SystemExit):
        main(["--seed", "-1"])
    with pytest.raises(SystemExit):
        main(["--town", "Town99"])
    with pytest.raises(SystemExit):
        main(["--procedural-routes", "0"])


def _runner_case():
    """A Town01 route through a junction, and a crossing approach lane whose junction lanes cross the route's."""
    from av_stack.bridge import mission_of

    env = DrivingEnv(**EMPTY_TOWN01)
    env.reset(seed=0, options={"route_id": "town01_short_00"})
    mission, route, lanes = mission_of(env), env.route, env.lanes
    for entry in route.junction_entries.tolist():
        ego_lane, approach_yaw = int(route.lane[entry]), float(route.yaw_rad[entry - 1])
        for crossing in np.flatnonzero(lanes.junction_conflicts[ego_lane]).tolist():
            for before in lanes.predecessors[crossing]:
                yaw = lanes.yaw_rad[int(lanes.offset[before]) + lanes.count[before] - 1]
                if not lanes.is_junction[before] and abs(math.remainder(yaw - approach_yaw, math.pi)) > 1.2 \
                        and lanes.length_m[before] > 25.0:
                    return mission, route, lanes, entry, int(before)
    raise AssertionError("no junction with a crossing approach on the route")


def _frame(mission, planner, route, s_m, speed, other_xy, other_yaw, other_speed, t):
    """Step ``planner`` with the ego on the route at ``s_m`` and one tracked car at ``other_xy``."""
    from av_stack.messages import Detections, LightObservation, PerceptionOutput, PoseEstimate
    from sim.transforms import world_to_ego

    i = int(np.searchsorted(route.s_m, s_m))
    x, y, yaw = float(route.points_xy[i, 0]), float(route.points_xy[i, 1]), float(route.yaw_rad[i])
    pose = PoseEstimate(int(t / 0.05), t, Pose(x, y, 0.0, yaw), np.array([speed * math.cos(yaw),
                                                                          speed * math.sin(yaw), 0.0]))
    centre = world_to_ego(np.array([other_xy]), (x, y), yaw)[0]
    velocity = world_to_ego(np.array([[other_speed * math.cos(other_yaw), other_speed * math.sin(other_yaw)]]),
                            (0.0, 0.0), yaw)[0]
    detections = Detections(np.zeros(1), [[centre[0], centre[1], 0.7]], [[2.45, 1.06, 0.76]],
                            [other_yaw - yaw], [velocity], np.ones(1), [7])
    perception = PerceptionOutput(pose.frame, t, detections, LightObservation(TrafficLightState.GREEN, 30.0))
    return planner.step(perception, pose)


@pytest.mark.parametrize("speeding_up, holds", [(True, True), (False, False)])
def test_expert_holds_at_the_line_for_crossing_traffic_that_will_not_stop(speeding_up, holds):
    """Messages only: the ego 25 m before a green junction at 8 m/s; a car on a crossing approach 20 m before
    its own line. Speeding up towards it (a red-light runner), it holds the ego at the line; slowing down (it
    will stop at its red), it does not."""
    mission, route, lanes, entry, before = _runner_case()
    points = lanes.lane_points(before)[:, :2]
    ahead = np.cumsum(np.hypot(*np.diff(points[::-1], axis=0).T))
    k = points.shape[0] - 1 - int(np.searchsorted(ahead, 20.0))  # 20 m before the lane's end
    yaw = float(lanes.yaw_rad[int(lanes.offset[before]) + k])
    planner = ExpertPlanner()
    planner.reset(mission)
    s0 = float(route.s_m[entry]) - 25.0
    for step, speed in enumerate((6.0, 6.2, 6.4) if speeding_up else (6.0, 5.8, 5.6)):
        t = 0.05 * step
        plan = _frame(mission, planner, route, s0 + 8.0 * t, 8.0, points[k] + speed * t * np.array(
            [math.cos(yaw), math.sin(yaw)]), yaw, speed, t)
    assert planner.why.startswith("crossing_traffic") == holds, planner.why
    if holds:  # the plan's speeds fall to zero before the junction's entry
        assert plan.arc_length_m[np.argmax(plan.target_speed_mps < 0.05)] < 25.0
