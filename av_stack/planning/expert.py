"""The expert planner: follows the route's centre line at a planned speed, yields to hazards, stops for lights.

It reads only messages and the map: the :class:`~av_stack.messages.Mission`
(the route, whose points lie on the centre lines of the lanes it follows, the
lane graph's speed limits, where stop signs are), the
:class:`~av_stack.messages.PerceptionOutput` (detections with track ids and
velocities, the light that governs the ego) and the
:class:`~av_stack.messages.PoseEstimate`. With oracle perception and
localization upstream it is the privileged expert: the upper bound a learned
stack is compared with, a check that routes are drivable, and the
demonstrator for imitation. It emits a :class:`~av_stack.messages.Plan`
(the path ahead with a speed per point) that a controller tracks.

Each step:

- *progress*: where the ego is along the route (its own route tracker);
- *speed*: the cruise speed (the lane's limit, at most ``cruise_mps``), lowered
  for the route's curvature ahead (lateral-acceleration limit) and to stop
  before a red or yellow light's stop line, at a stop sign's line (standing
  still there for ``stop_sign_s``), behind obstacles, and at a junction's
  entry while a slow vehicle leaves no room behind its exit
  (:class:`~av_stack.planning.speed.SpeedPlanner`); the plan's speed profile
  is what these limits allow at each point ahead;
- *obstacles*: every detected vehicle and pedestrian whose box, now or
  predicted ahead for up to ``predict_s`` (along the arc its tracked speed and
  turn rate describe: a car turning at a junction), comes within the
  ego's corridor of the path ahead. Inside a junction the ego clears the
  junction rather than stop in the way of traffic that yields to it: a vehicle
  there that brakes (tracked deceleration above ``yield_decel_mps2``) is
  predicted braking on at that rate, so it counts only if it would still reach
  the ego's path. A moving lead vehicle's own braking distance is credited;
- *crossing traffic that will not stop*: before a junction, a vehicle on a
  crossing approach that comes fast within 35 m of its line and speeds up or
  can no longer stop there at ``runner_decel_mps2``, and one of whose junction
  lanes crosses the ego's (the lane graph's conflicts), holds the ego at its
  line while the ego can still stop there;
- *a vehicle standing in the lane*: one that has stood since it was first
  seen and has no standing vehicle just ahead of it (parked, not queueing) is
  passed after ``overtake_after_s``; any other standing vehicle (traffic that
  is stuck) after ``overtake_stuck_traffic_s`` with the light ahead clear: the
  path is shifted one lane to the left around it, outside junction lanes, when
  the shifted path is clear for the whole pass and the pass ends at least
  ``overtake_junction_clearance_m`` before the next junction;
- *recovery*: when the ego makes no headway along the route, or creeps askew
  of it, although nothing is in the way (against a kerb, or grinding along
  one), it backs off for ``reverse_s`` with the wheels turned away
  from the route (a plan with a direct reversing control) and drives on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from av_stack.messages import (ActorKind, Mission, PerceptionOutput, Plan, PoseEstimate, TrafficLightState,
                               VehicleControl)
from av_stack.planning.speed import SpeedPlanner, path_curvature
from av_stack.registry import StageParams
from sim.scenarios.routes import RoadOption, RouteTracker

STANDING_MPS = 0.3
"""A detection slower than this stands."""


@dataclass
class _Track:
    """What the planner remembers of one tracked object."""

    speed_mps: float
    yaw_rad: float = 0.0
    decel_mps2: float = 0.0  # smoothed deceleration (positive: braking)
    yaw_rate_rad_s: float = 0.0  # smoothed turn rate
    standing_s: float = 0.0
    ever_moved: bool = False
    seen_at: int = 0


def _next_entry(route, progress) -> int | None:
    """Route index where the route next enters a junction ahead of ``progress`` (None: no junction ahead)."""
    entries = route.junction_entries[route.junction_entries > progress.index]
    return int(entries[0]) if entries.size else None


def _junction_lanes_ahead(lanes, lane: int, s_m: float, within_m: float) -> tuple[float, np.ndarray]:
    """(distance to the junction, the junction lanes it may take) for a vehicle at ``s_m`` on non-junction lane
    ``lane``, following successors up to ``within_m`` (lanes split into sections on the way); (inf, none) when
    no junction is that close."""
    distance, current = float(lanes.length_m[lane]) - s_m, lane
    while distance <= within_m:
        following = lanes.successors[current, : lanes.num_successors[current]]
        if not following.size:
            break
        junction = following[lanes.is_junction[following]]
        if junction.size:
            return distance, junction
        current = int(following[0])
        distance += float(lanes.length_m[current])
    return math.inf, np.zeros(0, dtype=np.int64)


def _along_arc(xy: np.ndarray, yaw: float, curvature: float, distance: float) -> tuple[np.ndarray, float]:
    """Where a point heading ``yaw`` gets to after ``distance`` on a circle of ``curvature`` (a straight line
    when it is about 0), and its heading there."""
    if abs(curvature) < 1e-3:
        return xy + distance * np.array([math.cos(yaw), math.sin(yaw)]), yaw
    turned = yaw + curvature * distance
    step = np.array([math.sin(turned) - math.sin(yaw), math.cos(yaw) - math.cos(turned)]) / curvature
    return xy + step, turned


class ExpertPlanner:
    """The expert (see the module docstring)."""

    class Config(StageParams):
        """Tunables of the expert; distances in metres, times in seconds, speeds in m/s."""

        cruise_mps: float = Field(8.0, gt=0.0)
        lateral_accel_mps2: float = Field(1.5, gt=0.0)
        decel_mps2: float = Field(2.5, gt=0.0)
        stop_decel_mps2: float = Field(4.0, gt=0.0)
        horizon_m: float = Field(45.0, gt=5.0)
        predict_s: float = Field(2.0, ge=0.0)
        corridor_margin_m: float = Field(0.35, ge=0.0)
        min_gap_m: float = Field(3.0, ge=0.0)
        stop_line_margin_m: float = Field(2.0, ge=0.0)
        light_stop_margin_m: float | None = Field(None, ge=0.0, description=(
            "where to wait for a red light, before its line (None: stop_line_margin_m); a camera that must keep "
            "the light in view to see it turn green needs more than the default; once past that point it "
            "stops at stop_line_margin_m"))
        overtake_after_s: float = Field(4.0, gt=0.0)
        overtake_stuck_traffic_s: float = Field(20.0, gt=0.0)
        yield_decel_mps2: float = Field(1.0, gt=0.0)
        stuck_after_s: float = Field(2.0, gt=0.0)
        stop_sign_s: float = Field(1.0, ge=0.0)
        reverse_s: float = Field(1.5, gt=0.0)
        lane_shift_m: float = Field(3.5, gt=0.0)
        overtake_junction_clearance_m: float = Field(15.0, ge=0.0)
        runner_decel_mps2: float = Field(3.0, gt=0.0)

    def __init__(self, config: Config | None = None) -> None:
        self.config = c = config or self.Config()
        self.speed = SpeedPlanner(lateral_accel_mps2=c.lateral_accel_mps2, decel_mps2=c.decel_mps2,
                                  stop_decel_mps2=c.stop_decel_mps2)
        self._mission: Mission | None = None
        self.why = ""
        """Why the plan's speed is what it is (``"light in 3.2 m"``, ``"clear"``): for logs and videos."""

    def reset(self, mission: Mission) -> None:
        """Take the new route; forget tracks, overtakes and recovery."""
        self._mission = mission
        route = mission.route
        self._tracker = RouteTracker(route)
        self._curvature = path_curvature(route.yaw_rad, route.s_m)
        self._half_width = float(mission.vehicle.extent_m[1])
        self._front = float(mission.vehicle.extent_m[0])
        self._tracks: dict[int, _Track] = {}
        self._last_time: float | None = None
        self._stopped_behind_s = 0.0
        self._overtake: tuple[float, float] | None = None  # route s span with the shifted path
        self._stuck_s = 0.0
        self._anchor_s = 0.0  # route progress when the ego last made headway
        self._stopped_at: set[int] = set()  # junction entries (route indices) whose stop sign the ego obeyed
        self._stop_sign_held_s = 0.0
        self._reverse_left_s = 0.0
        self._reverse_steer = 0.0
        self._blocker = -1  # track id of the latest obstacle found
        self._blocker_speed = 0.0  # and its speed (any direction: a car turning out of the way moves)

    # ------------------------------------------------------------------ the step
    def step(self, perception: PerceptionOutput, pose: PoseEstimate) -> Plan:
        """This tick's plan: the path ahead with a speed per point, or a reversing control while backing off."""
        if self._mission is None:
            raise RuntimeError("ExpertPlanner.step before reset(mission)")
        c, route = self.config, self._mission.route
        dt = 0.05 if self._last_time is None else max(perception.timestamp_s - self._last_time, 1e-3)
        self._last_time = perception.timestamp_s
        x, y, yaw = float(pose.pose.x_m), float(pose.pose.y_m), pose.yaw_rad
        speed = float(np.hypot(*pose.velocity_mps[:2]))
        progress = self._tracker.update(x, y, yaw)
        lo = progress.index
        ahead = np.flatnonzero(route.s_m[lo:] - route.s_m[lo] <= c.horizon_m) + lo
        path = self._path(ahead)
        ahead_m = route.s_m[ahead] - progress.s_m
        command = RoadOption(int(progress.command))

        if self._reverse_left_s > 0.0:
            self._reverse_left_s -= dt
            if self._reverse_left_s > 0.0:
                throttle = 0.5 if pose.forward_speed_mps > -1.5 else 0.0
                control = VehicleControl(throttle=throttle, steer=self._reverse_steer, reverse=True)
            else:
                control = VehicleControl(brake=1.0)  # stop backing up, then drive on
            return Plan(perception.frame, perception.timestamp_s, path, np.zeros(len(path)), command, control)

        actors = self._actors(perception, pose, dt)
        lanes, signals = self._mission.lanes, self._mission.signals
        cruise = min(c.cruise_mps, float(lanes.speed_limit_mps[route.lane[progress.index]]))
        in_junction = bool(route.in_junction[progress.index])
        obstacle_m, lead_mps, standing, vehicle = self._obstacle(actors, (x, y, yaw), speed, ahead_m, path,
                                                                 in_junction)
        stops = {"obstacle": obstacle_m - c.min_gap_m + lead_mps ** 2 / (2.0 * c.stop_decel_mps2)}
        light = perception.light
        if not in_junction and self._blocker_speed < 1.0 and vehicle:  # pedestrians cross: they do not block it
            stops["junction_blocked"] = self._blocked_junction_stop(progress, obstacle_m)
        stops["stop_sign"] = self._stop_sign(signals, progress, speed, dt)
        stops["crossing_traffic"] = self._crossing_hazard(actors, progress, speed)
        if light.must_stop:
            line_m = light.distance_m - self._front - c.stop_line_margin_m
            if c.light_stop_margin_m is not None:
                wait_m = light.distance_m - self._front - c.light_stop_margin_m
                line_m = wait_m if wait_m > -1.0 else line_m
            can_stop = speed ** 2 / (2.0 * c.stop_decel_mps2) <= line_m + 1.0
            # past its waiting point but still short of the line, slow (a learner that overshot): hold, too
            short_of_line = speed < 2.0 and light.distance_m - self._front > 0.0
            if (line_m > -1.0 or short_of_line) and (light.state == TrafficLightState.RED or can_stop):
                stops["light"] = line_m
        reason = min(stops, key=stops.get)
        stop_m = stops[reason]
        self.why = f"{reason} in {stop_m:.1f} m" if stop_m < math.inf else "clear"
        if reason in ("obstacle", "junction_blocked", "crossing_traffic"):
            self.why += f" (track {self._blocker})"
        profile = self._profile(ahead_m, self._curvature[ahead], cruise, stop_m)
        wanted = float(profile[0]) if profile.size else 0.0

        light_clear = light.distance_m > obstacle_m + 25.0 or not light.must_stop
        # never pull into the oncoming lane where the pass would end near a junction (turning traffic)
        room = progress.junction_distance_m > obstacle_m + 12.0 + 8.0 + c.overtake_junction_clearance_m
        if self._update_overtake(standing, obstacle_m, speed, light_clear and room, progress.s_m, dt):
            # pull out only when the oncoming lane is clear for the whole pass (moving traffic predicted)
            clear_m, *_ = self._obstacle(actors, (x, y, yaw), speed, ahead_m, self._path(ahead), False)
            if clear_m < self._overtake[1] - progress.s_m + 15.0:
                self._overtake = None
        askew = abs(progress.heading_error_rad) > 0.5 and speed < 1.5
        if self._update_stuck(wanted, progress.s_m, askew, dt, path, (x, y, yaw)):
            return Plan(perception.frame, perception.timestamp_s, path, np.zeros(len(path)), command,
                        VehicleControl(brake=1.0))
        return Plan(perception.frame, perception.timestamp_s, path, profile, command)

    # ------------------------------------------------------------------ pieces
    def _profile(self, ahead_m: np.ndarray, curvature: np.ndarray, cruise: float, stop_m: float) -> np.ndarray:
        """The speed allowed at each path point: what every curve and the stop point further on still allow."""
        s = np.maximum(ahead_m, 0.0)
        curve = self.speed.curve_speed(curvature, cruise)
        # min over j >= i of sqrt(curve_j^2 + 2 a (s_j - s_i)): a backward pass in squared speeds
        squared = curve ** 2 + 2.0 * self.speed.decel_mps2 * s
        limit = np.minimum.accumulate(squared[::-1])[::-1] - 2.0 * self.speed.decel_mps2 * s
        profile = np.minimum(np.sqrt(np.maximum(limit, 0.0)), cruise)
        if stop_m < math.inf:
            profile = np.minimum(profile, np.sqrt(2.0 * self.speed.stop_decel_mps2 * np.maximum(stop_m - s, 0.0)))
        return profile

    def _path(self, ahead: np.ndarray) -> np.ndarray:
        """The route ahead, shifted one lane to the left over an overtaking span."""
        route = self._mission.route
        path = route.points_xy[ahead].astype(float)
        if self._overtake is not None:
            start, end = self._overtake
            s = route.s_m[ahead]
            ramp = np.clip(np.minimum(s - (start - 8.0), (end + 8.0) - s) / 8.0, 0.0, 1.0)
            shift = self.config.lane_shift_m * ramp * ~route.in_junction[ahead]  # no shifted copy of junction lanes
            yaw = route.yaw_rad[ahead]
            # left of the heading in CARLA's frame (y to the right): (sin yaw, -cos yaw)
            path[:, 0] += shift * np.sin(yaw)
            path[:, 1] -= shift * np.cos(yaw)
        return path

    def _actors(self, perception: PerceptionOutput, pose: PoseEstimate, dt: float) -> dict[str, np.ndarray]:
        """Detections in the world frame, with what the tracks say (braking, standing, parked)."""
        d = perception.detections
        yaw = pose.yaw_rad
        cos_y, sin_y = math.cos(yaw), math.sin(yaw)
        rot = np.array([[cos_y, -sin_y], [sin_y, cos_y]])
        xy = d.center_m[:, :2] @ rot.T + np.array([pose.pose.x_m, pose.pose.y_m])
        velocity = d.velocity_mps @ rot.T
        speed = np.hypot(velocity[:, 0], velocity[:, 1])
        braking = np.zeros(len(d), dtype=bool)
        deceleration = np.zeros(len(d))
        curvature = np.zeros(len(d))
        parked = np.zeros(len(d), dtype=bool)
        heading = yaw + d.yaw_rad
        frame = perception.frame
        for k, track_id in enumerate(d.track_id.tolist()):
            if track_id < 0:
                continue
            track = self._tracks.get(track_id)
            v = float(speed[k])
            if track is None:
                track = self._tracks[track_id] = _Track(v, float(heading[k]))
            else:
                decel = (track.speed_mps - v) / dt
                track.decel_mps2 += 0.3 * (decel - track.decel_mps2)
                turn = math.remainder(float(heading[k]) - track.yaw_rad, math.tau) / dt
                track.yaw_rate_rad_s += 0.3 * (turn - track.yaw_rate_rad_s)
                track.speed_mps, track.yaw_rad = v, float(heading[k])
            standing = v < STANDING_MPS
            track.standing_s = track.standing_s + dt if standing else 0.0
            track.ever_moved |= not standing
            track.seen_at = frame
            braking[k] = track.decel_mps2 > self.config.yield_decel_mps2
            deceleration[k] = track.decel_mps2
            if v > STANDING_MPS:  # the path's curvature the track is on (turning at a junction)
                curvature[k] = float(np.clip(track.yaw_rate_rad_s / v, -0.25, 0.25))
            parked[k] = standing and not track.ever_moved
        self._tracks = {t: track for t, track in self._tracks.items() if frame - track.seen_at < 100}
        # a standing vehicle with another standing one just ahead of it queues: not parked
        vehicle = d.kind == ActorKind.VEHICLE
        for k in np.flatnonzero(parked & vehicle).tolist():
            rel = xy - xy[k]
            along = rel[:, 0] * math.cos(heading[k]) + rel[:, 1] * math.sin(heading[k])
            across = -rel[:, 0] * math.sin(heading[k]) + rel[:, 1] * math.cos(heading[k])
            queue = vehicle & (speed < STANDING_MPS) & (along > 0.5) & (along < 12.0) & (np.abs(across) < 1.5)
            queue[k] = False
            parked[k] = not queue.any()
        return {"track_id": d.track_id, "xy": xy, "yaw": heading, "extent": d.extent_m[:, :2], "velocity": velocity, "speed": speed,
                "kind": d.kind, "braking": braking, "decel": deceleration, "curvature": curvature, "parked": parked}

    def _obstacle(self, actors: dict[str, np.ndarray], ego: tuple[float, float, float], ego_speed: float,
                  ahead_m: np.ndarray, path: np.ndarray, in_junction: bool) -> tuple[float, float, str, bool]:
        """(distance from the ego's front to the first obstacle on the path ahead, its speed along the path,
        "parked" / "traffic" when it is a standing vehicle, else "", whether it is a vehicle);
        (inf, 0, "", False) when the path is clear."""
        c = self.config
        x, y, yaw = ego
        heading = np.array([math.cos(yaw), math.sin(yaw)])
        rel = actors["xy"] - np.array([x, y])
        near = np.flatnonzero((np.hypot(rel[:, 0], rel[:, 1]) < c.horizon_m + 10.0) & (rel @ heading > -1.0))
        if near.size == 0 or path.shape[0] == 0:
            return math.inf, 0.0, "", False
        reach = self._half_width + c.corridor_margin_m
        best, lead, standing, vehicle = math.inf, 0.0, "", False
        times = np.arange(0.0, c.predict_s + 1e-9, 0.5)
        for i in near.tolist():
            cos_a, sin_a = math.cos(float(actors["yaw"][i])), math.sin(float(actors["yaw"][i]))
            ex, ey = (float(v) for v in actors["extent"][i])
            velocity = actors["velocity"][i]
            moving = float(actors["speed"][i]) > STANDING_MPS
            walker = int(actors["kind"][i]) == ActorKind.WALKER
            # inside a junction a braking vehicle is predicted braking on (it yields if it stops short of the
            # ego's path, it does not if it still reaches it); elsewhere at its speed
            slowing = in_junction and not walker and bool(actors["braking"][i])
            speed_i, decel_i = float(actors["speed"][i]), float(actors["decel"][i])
            yaw_i, kappa = float(actors["yaw"][i]), float(actors["curvature"][i])
            for t in (times if moving else times[:1]):
                if slowing:
                    stop_t = min(t, speed_i / decel_i)
                    travel = speed_i * stop_t - 0.5 * decel_i * stop_t ** 2
                else:
                    travel = speed_i * t
                centre, turned = _along_arc(actors["xy"][i], yaw_i, kappa, travel)
                cos_a, sin_a = math.cos(turned), math.sin(turned)
                d = path - centre
                along = np.abs(d[:, 0] * cos_a + d[:, 1] * sin_a) - ex
                across = np.abs(-d[:, 0] * sin_a + d[:, 1] * cos_a) - ey
                gap = np.hypot(np.maximum(along, 0.0), np.maximum(across, 0.0))
                hit = np.flatnonzero(gap < reach)
                if not hit.size:
                    continue
                k = int(hit[0])
                distance = float(ahead_m[k]) - self._front
                if t > 0.0 and distance > max(ego_speed, 3.0) * t + 8.0:
                    continue  # a predicted conflict matters only if the ego could be there by then
                if distance < best:
                    best, self._blocker = distance, int(actors["track_id"][i])
                    self._blocker_speed = float(actors["speed"][i])
                    lead = max(float(velocity @ heading), 0.0) if t == 0.0 else 0.0
                    standing = "" if t > 0.0 or moving or walker else \
                        "parked" if bool(actors["parked"][i]) else "traffic"
                    vehicle = not walker
                break
        return max(best, 0.0), lead, standing, vehicle

    def _crossing_hazard(self, actors: dict[str, np.ndarray], progress, speed: float) -> float:
        """Distance to the next junction's entry line while a vehicle on a crossing approach (more than 45
        degrees off the ego's) will enter the junction where its path meets the ego's: within 35 m of its line
        it comes fast and speeds up, or can no longer stop there at ``runner_decel_mps2`` (a red-light runner);
        and the ego can still stop. Else inf. The lane graph says which of its junction lanes cross the
        ego's."""
        c, route, lanes = self.config, self._mission.route, self._mission.lanes
        entry = _next_entry(route, progress)
        if entry is None:
            return math.inf
        line_m = float(route.s_m[entry]) - progress.s_m - self._front - c.stop_line_margin_m
        if not -0.5 < line_m < c.horizon_m or speed ** 2 / (2.0 * c.stop_decel_mps2) > line_m + 1.0:
            return math.inf  # far off, already past the line, or too late to stop: clear the junction
        fast = np.flatnonzero((actors["kind"] == ActorKind.VEHICLE) & (actors["speed"] > 2.0) & ~actors["braking"])
        if not fast.size:
            return math.inf
        conflicts = lanes.junction_conflicts[int(route.lane[entry])]
        approach_yaw = float(route.yaw_rad[entry - 1])
        lane, s_m, dist = lanes.project(actors["xy"][fast], actors["yaw"][fast])
        for k, i in enumerate(fast.tolist()):
            if lane[k] < 0 or dist[k] > 2.0:
                continue
            lane_k, v = int(lane[k]), float(actors["speed"][i])
            if lanes.is_junction[lane_k]:
                paths = np.array([lane_k])
            else:
                remaining, paths = _junction_lanes_ahead(lanes, lane_k, float(s_m[k]), 35.0)
                crossing = abs(math.remainder(float(actors["yaw"][i]) - approach_yaw, math.pi)) > math.pi / 4
                speeding_up = float(actors["decel"][i]) < -0.5
                late = v ** 2 / (2.0 * c.runner_decel_mps2) > remaining - 2.0
                if not crossing or not paths.size or not (speeding_up or late):
                    continue  # oncoming or same-way traffic, far from a junction, or slowing in time
            if paths.size and conflicts[paths].any():
                self._blocker = int(actors["track_id"][i])
                return line_m
        return math.inf

    def _stop_sign(self, signals, progress, speed: float, dt: float) -> float:
        """Distance to the stop line of the next junction when a stop sign guards it and the ego has not yet
        stood still there for ``stop_sign_s``; else inf."""
        route = self._mission.route
        entry = _next_entry(route, progress)
        if entry is None or entry in self._stopped_at:
            return math.inf
        if int(signals.lane_stop[int(route.lane[entry - 1])]) < 0:
            return math.inf
        line_m = float(route.s_m[entry]) - progress.s_m - self._front - self.config.stop_line_margin_m
        if speed < 0.05 and line_m < 4.0:
            self._stop_sign_held_s += dt
            if self._stop_sign_held_s >= self.config.stop_sign_s:
                self._stopped_at.add(entry)
                self._stop_sign_held_s = 0.0
                return math.inf
        return line_m

    def _blocked_junction_stop(self, progress, obstacle_m: float) -> float:
        """Distance to the next junction's entry line when a slow vehicle ahead leaves no room behind the
        junction's exit (the ego would wait inside the junction, in crossing traffic's way); else inf."""
        if obstacle_m == math.inf:
            return math.inf
        route = self._mission.route
        entry = _next_entry(route, progress)
        if entry is None:
            return math.inf
        outside = np.flatnonzero(~route.in_junction[entry:])
        exit_s = float(route.s_m[entry + int(outside[0])]) if outside.size else route.length_m
        line_m = float(route.s_m[entry]) - progress.s_m - self._front - self.config.stop_line_margin_m
        obstacle_s = progress.s_m + self._front + obstacle_m
        if line_m > -1.0 and obstacle_s < exit_s + 7.0:
            return line_m
        return math.inf

    def _update_overtake(self, standing: str, obstacle_m: float, speed: float, light_clear: bool,
                         s_m: float, dt: float) -> bool:
        """Start passing a vehicle that stands in the lane (not a queue at a red light) after a wait; returns
        whether a pass starts now."""
        c = self.config
        if self._overtake is not None and s_m > self._overtake[1] + 8.0:
            self._overtake = None
        waiting = bool(standing) and speed < STANDING_MPS and obstacle_m < 12.0
        self._stopped_behind_s = self._stopped_behind_s + dt if waiting else 0.0
        wait_s = c.overtake_after_s if standing == "parked" else c.overtake_stuck_traffic_s
        if self._overtake is None and waiting and light_clear and self._stopped_behind_s >= wait_s:
            start = s_m + obstacle_m
            self._overtake = (start, start + 12.0)
            return True
        return False

    def _update_stuck(self, wanted: float, s_m: float, askew: bool, dt: float, path: np.ndarray,
                      ego: tuple[float, float, float]) -> bool:
        """Start backing off when, for ``stuck_after_s`` although the way is clear, the ego makes no headway
        along the route (under 0.5 m: against a kerb) or creeps askew of it (grinding along a kerb); returns
        whether it starts now."""
        if wanted > 1.0 and (s_m - self._anchor_s < 0.5 or askew):
            self._stuck_s += dt
        else:
            self._stuck_s, self._anchor_s = 0.0, s_m
        if self._stuck_s < self.config.stuck_after_s:
            return False
        self._stuck_s, self._anchor_s = 0.0, s_m
        self._reverse_left_s = self.config.reverse_s
        x, y, yaw = ego
        # which side the route lies on, a few metres ahead: back off with the wheels turned the other way
        k = min(5, path.shape[0] - 1)
        side = -(path[k, 0] - x) * math.sin(yaw) + (path[k, 1] - y) * math.cos(yaw) if k >= 0 else 0.0
        self._reverse_steer = float(-np.sign(side)) * 0.6 if abs(side) > 0.3 else 0.0
        return True
