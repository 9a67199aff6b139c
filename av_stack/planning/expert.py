"""The privileged expert: tracks the route's centre line at a planned speed, yields to hazards, stops for lights.

It reads the environment's privileged state rather than the observation: the
route (``DrivingEnv.route``, whose points lie on the centre lines of the lanes
it follows), ``progress``, ``next_light`` and every actor of
``world.snapshot()``. It is the reference a learned policy is compared with,
a check that routes are drivable, and the demonstrator for imitation.

Each step:

- *lateral*: pure pursuit on the route ahead from the rear axle, look-ahead
  growing with speed (:class:`~av_stack.control.lateral.PurePursuit`);
- *speed*: the cruise speed (the lane's limit, at most ``cruise_mps``), lowered
  for the route's curvature ahead (lateral-acceleration limit) and to stop
  before a red or yellow light's stop line, at a stop sign's line (standing
  still there for ``stop_sign_s``), behind obstacles, and at a
  junction's entry while a slow vehicle leaves no room behind its exit
  (:class:`~av_stack.planning.speed.SpeedPlanner`);
- *obstacles*: every vehicle and pedestrian whose box, now or predicted ahead
  along its velocity for up to ``predict_s``, comes within the ego's corridor
  of the route ahead (inside a junction, traffic only where it is now: the ego
  clears the junction rather than stop in the way of traffic that yields to
  it; scripted actors and pedestrians are still predicted); a moving lead
  vehicle's own braking distance is credited;
- *a parked car in the lane* (standing, not driven by the traffic logic, not
  queueing at a light) for ``overtake_after_s``: the path is shifted one lane
  to the left around it, outside junction lanes (what stands or comes on the shifted path is an
  obstacle like any other); likewise around a traffic vehicle that stays put
  for ``overtake_stuck_traffic_s`` although its light is green (stuck);
- *recovery*: when the ego makes no headway although nothing is in the way
  (stuck on a kerb), it reverses with the wheels turned away from the route
  for ``reverse_s`` (through ``DrivingEnv.reverse_gear``) and drives on.
"""

from __future__ import annotations

import math

import numpy as np

from av_stack.control.lateral import PurePursuit
from av_stack.planning.speed import SpeedPlanner, path_curvature
from sim.api import ActorKind, CollisionEvent, TrafficLightState

EGO_HALF_WIDTH_M = 1.06
"""Half width of the ego's box (the default Lincoln MKZ); the corridor is this plus ``corridor_margin_m``."""
MAX_THROTTLE_ACCEL_MPS2 = 4.0
"""Acceleration of full throttle at low speed; maps a wanted acceleration onto the action."""
MAX_BRAKE_DECEL_MPS2 = 8.0
"""Deceleration of full brake."""


class RouteFollower:
    """The privileged expert (see the module docstring); only for the ``acc_steer`` action space."""

    def __init__(self, cruise_mps: float = 8.0, planner: SpeedPlanner | None = None,
                 controller: PurePursuit | None = None, horizon_m: float = 45.0, predict_s: float = 2.0,
                 corridor_margin_m: float = 0.35, min_gap_m: float = 3.0, stop_line_margin_m: float = 1.0,
                 speed_gain: float = 1.5, overtake_after_s: float = 4.0, overtake_stuck_traffic_s: float = 20.0,
                 stuck_after_s: float = 2.0, stop_sign_s: float = 1.0,
                 reverse_s: float = 1.5) -> None:
        if not (math.isfinite(cruise_mps) and cruise_mps > 0):
            raise ValueError(f"cruise_mps must be a positive number, got {cruise_mps!r}")
        self.cruise_mps = cruise_mps
        self.planner = planner or SpeedPlanner()
        self.controller = controller or PurePursuit()
        self.horizon_m = horizon_m
        self.predict_s = predict_s
        self.corridor_margin_m = corridor_margin_m
        self.min_gap_m = min_gap_m
        self.stop_line_margin_m = stop_line_margin_m
        self.speed_gain = speed_gain
        self.overtake_after_s = overtake_after_s
        self.overtake_stuck_traffic_s = overtake_stuck_traffic_s
        self.stuck_after_s = stuck_after_s
        self.stop_sign_s = stop_sign_s
        self.reverse_s = reverse_s
        self._route: object = None  # the route whose curvature is cached
        self.reset(None)

    def reset(self, env) -> None:
        """Forget the previous episode (the route's curvature is recomputed on the next call)."""
        self._route = None
        self._curvature = np.zeros(0)
        self._stopped_behind_s = 0.0
        self._overtake: tuple[float, float] | None = None  # route s span with the shifted path
        self._stuck_s = 0.0
        self._stopped_at: set[int] = set()  # junction entries (route indices) whose stop sign the ego obeyed
        self._stop_sign_held_s = 0.0
        self._reverse_left_s = 0.0
        self._reverse_steer = 0.0
        if env is not None:
            env.reverse_gear = False

    # ------------------------------------------------------------------ the step
    def __call__(self, obs, env) -> np.ndarray:
        route, progress = env.route, env.progress
        if self._route is not route:
            self._route = route
            self._curvature = path_curvature(route.yaw_rad, route.s_m)
        snapshot = env.world.snapshot()
        row = snapshot.index_of(env.ego_id)
        x, y = (float(v) for v in snapshot.location_m[row, :2])
        yaw = float(snapshot.rotation_rad[row, 1])
        speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
        forward = float(snapshot.velocity_mps[row, 0] * math.cos(yaw) + snapshot.velocity_mps[row, 1] * math.sin(yaw))
        dt = float(snapshot.dt_s)

        lo = progress.index
        ahead = np.flatnonzero(route.s_m[lo:] - route.s_m[lo] <= self.horizon_m) + lo
        path = self._path(route, ahead)
        ahead_m = route.s_m[ahead] - progress.s_m

        if self._reverse_left_s > 0.0:
            self._reverse_left_s -= dt
            reversing = self._reverse_left_s > 0.0
            env.reverse_gear = reversing
            if reversing:
                return np.array([0.5 if forward > -1.5 else 0.0, self._reverse_steer], dtype=np.float32)
            return np.array([-1.0, 0.0], dtype=np.float32)  # stop backing up, then drive on
        env.reverse_gear = False

        steer = self.controller.steer(x, y, yaw, forward, path)
        cruise = min(self.cruise_mps, float(env.lanes.speed_limit_mps[route.lane[progress.index]]))
        in_junction = bool(route.in_junction[progress.index])
        obstacle_m, lead_mps, standing = self._obstacle(snapshot, row, ahead_m, path, predict=not in_junction)
        stop_m = obstacle_m - self.min_gap_m + lead_mps ** 2 / (2.0 * self.planner.stop_decel_mps2)
        light, light_m = env.next_light(snapshot, progress)
        front = float(snapshot.extent_m[row, 0])
        if not in_junction and lead_mps < 1.0:
            stop_m = min(stop_m, self._blocked_junction_stop(route, progress, obstacle_m, front))
        stop_m = min(stop_m, self._stop_sign(env, route, progress, front, speed, dt))
        if light in (TrafficLightState.RED, TrafficLightState.YELLOW):
            line_m = light_m - front - self.stop_line_margin_m
            can_stop = speed ** 2 / (2.0 * self.planner.stop_decel_mps2) <= line_m + 1.0
            if line_m > -1.0 and (light == TrafficLightState.RED or can_stop):
                stop_m = min(stop_m, line_m)
        wanted = self.planner.target_speed(ahead_m, self._curvature[ahead], cruise, stop_m)

        light_clear = light_m > obstacle_m + 25.0 or light not in (TrafficLightState.RED, TrafficLightState.YELLOW)
        if self._update_overtake(standing, obstacle_m, speed, light_clear, progress.s_m, dt):
            # pull out only when the oncoming lane is clear for the whole pass (moving traffic predicted)
            clear_m, _, _ = self._obstacle(snapshot, row, ahead_m, self._path(route, ahead), predict=True)
            if clear_m < self._overtake[1] - progress.s_m + 15.0:
                self._overtake = None
        self._update_stuck(snapshot, env.ego_id, wanted, speed, dt, steer)

        accel = self.speed_gain * (wanted - speed)
        if stop_m < math.inf and speed > 0.5:
            # feed-forward: the deceleration that stops exactly at the stop point, once it is needed
            needed = speed ** 2 / (2.0 * max(stop_m, 0.1))
            if needed > 0.5 * self.planner.stop_decel_mps2:
                accel = min(accel, -needed)
        if wanted < 0.3:
            accel = -MAX_BRAKE_DECEL_MPS2 if speed < 1.0 or stop_m < 1.0 else min(accel, -2.0)
        action = accel / MAX_THROTTLE_ACCEL_MPS2 if accel > 0 else accel / MAX_BRAKE_DECEL_MPS2
        return np.array([np.clip(action, -1.0, 1.0), steer], dtype=np.float32)

    # ------------------------------------------------------------------ pieces
    def _path(self, route, ahead: np.ndarray) -> np.ndarray:
        """The route ahead, shifted one lane to the left over an overtaking span."""
        path = route.points_xy[ahead].astype(float)
        if self._overtake is not None:
            start, end = self._overtake
            s = route.s_m[ahead]
            ramp = np.clip(np.minimum(s - (start - 8.0), (end + 8.0) - s) / 8.0, 0.0, 1.0)
            shift = 3.5 * ramp * ~route.in_junction[ahead]  # junction lanes turn: no shifted copy of them
            yaw = route.yaw_rad[ahead]
            # left of the heading in CARLA's frame (y to the right): (sin yaw, -cos yaw)
            path[:, 0] += shift * np.sin(yaw)
            path[:, 1] -= shift * np.cos(yaw)
        return path

    def _obstacle(self, snapshot, row: int, ahead_m: np.ndarray, path: np.ndarray,
                  predict: bool = True) -> tuple[float, float, str]:
        """(distance from the ego's front to the first obstacle on the path ahead, its speed along the path,
        "parked" / "traffic" when it is a standing vehicle that nobody / the traffic logic drives, else "");
        (inf, 0, "") when the path is clear."""
        ego_xy = snapshot.location_m[row, :2]
        yaw = float(snapshot.rotation_rad[row, 1])
        heading = np.array([math.cos(yaw), math.sin(yaw)])
        rel = snapshot.location_m[:, :2] - ego_xy
        near = np.flatnonzero((np.hypot(rel[:, 0], rel[:, 1]) < self.horizon_m + 10.0) & (rel @ heading > -1.0))
        near = near[near != row]
        if near.size == 0 or path.shape[0] == 0:
            return math.inf, 0.0, ""
        front = float(snapshot.extent_m[row, 0])
        reach = EGO_HALF_WIDTH_M + self.corridor_margin_m
        best, lead, standing = math.inf, 0.0, ""
        times = np.arange(0.0, self.predict_s + 1e-9, 0.5)
        for i in near.tolist():
            cos_a, sin_a = math.cos(float(snapshot.rotation_rad[i, 1])), math.sin(float(snapshot.rotation_rad[i, 1]))
            ex, ey = float(snapshot.extent_m[i, 0]), float(snapshot.extent_m[i, 1])
            velocity = snapshot.velocity_mps[i, :2]
            moving = float(np.hypot(*velocity)) > 0.3
            walker = int(snapshot.kind[i]) == ActorKind.WALKER
            yields = bool(snapshot.autopilot[i])  # traffic yields to a car already in the junction
            for t in (times if moving and (predict or walker or not yields) else times[:1]):
                centre = snapshot.location_m[i, :2] + velocity * t
                d = path - centre
                along = np.abs(d[:, 0] * cos_a + d[:, 1] * sin_a) - ex
                across = np.abs(-d[:, 0] * sin_a + d[:, 1] * cos_a) - ey
                gap = np.hypot(np.maximum(along, 0.0), np.maximum(across, 0.0))
                hit = np.flatnonzero(gap < reach)
                if not hit.size:
                    continue
                k = int(hit[0])
                distance = float(ahead_m[k]) - front
                if t > 0.0:
                    # a predicted conflict matters only if the ego could be there by then
                    if distance > max(float(np.hypot(*snapshot.velocity_mps[row, :2])), 3.0) * t + 8.0:
                        continue
                if distance < best:
                    best = distance
                    lead = max(float(velocity @ heading), 0.0) if t == 0.0 else 0.0
                    standing = "" if t > 0.0 or moving or int(snapshot.kind[i]) != ActorKind.VEHICLE else \
                        "traffic" if bool(snapshot.autopilot[i]) else "parked"
                break
        return max(best, 0.0), lead, standing

    def _stop_sign(self, env, route, progress, front_m: float, speed: float, dt: float) -> float:
        """Distance to the stop line of the next junction when a stop sign guards it and the ego has not yet
        stood still there for ``stop_sign_s``; else inf."""
        entries = route.junction_entries[route.junction_entries > progress.index]
        if not entries.size or int(entries[0]) in self._stopped_at:
            return math.inf
        entry = int(entries[0])
        if int(env.world.signals.lane_stop[int(route.lane[entry - 1])]) < 0:
            return math.inf
        line_m = float(route.s_m[entry]) - progress.s_m - front_m - self.stop_line_margin_m
        if speed < 0.05 and line_m < 4.0:
            self._stop_sign_held_s += dt
            if self._stop_sign_held_s >= self.stop_sign_s:
                self._stopped_at.add(entry)
                self._stop_sign_held_s = 0.0
                return math.inf
        return line_m

    def _blocked_junction_stop(self, route, progress, obstacle_m: float, front_m: float) -> float:
        """Distance to the next junction's entry line when a slow vehicle ahead leaves no room behind the
        junction's exit (the ego would wait inside the junction, in crossing traffic's way); else inf."""
        if obstacle_m == math.inf:
            return math.inf
        entries = route.junction_entries[route.junction_entries > progress.index]
        if not entries.size:
            return math.inf
        entry = int(entries[0])
        outside = np.flatnonzero(~route.in_junction[entry:])
        exit_s = float(route.s_m[entry + int(outside[0])]) if outside.size else route.length_m
        line_m = float(route.s_m[entry]) - progress.s_m - front_m - self.stop_line_margin_m
        obstacle_s = progress.s_m + front_m + obstacle_m
        if line_m > -1.0 and obstacle_s < exit_s + 7.0:
            return line_m
        return math.inf

    def _update_overtake(self, standing: str, obstacle_m: float, speed: float, light_clear: bool,
                         s_m: float, dt: float) -> bool:
        """Start passing a vehicle that stands in the lane (not a queue at a red light) after a wait.

        A parked car after ``overtake_after_s``; a traffic vehicle that stays put
        although its way is clear (stuck) after ``overtake_stuck_traffic_s``.
        Returns whether a pass starts now.
        """
        if self._overtake is not None and s_m > self._overtake[1] + 8.0:
            self._overtake = None
        waiting = bool(standing) and speed < 0.3 and obstacle_m < 12.0
        self._stopped_behind_s = self._stopped_behind_s + dt if waiting else 0.0
        wait_s = self.overtake_after_s if standing == "parked" else self.overtake_stuck_traffic_s
        if self._overtake is None and waiting and light_clear and self._stopped_behind_s >= wait_s:
            start = s_m + obstacle_m
            self._overtake = (start, start + 12.0)
            return True
        return False

    def _update_stuck(self, snapshot, ego_id: int, wanted: float, speed: float, dt: float, steer: float) -> None:
        """Back off a kerb: a static contact, or no headway for ``stuck_after_s`` while the way is clear."""
        kerb = any(isinstance(e, CollisionEvent) and e.other_kind == "static" for e in snapshot.events_of(ego_id))
        self._stuck_s = self._stuck_s + dt if (wanted > 1.0 and speed < 0.2) else 0.0
        if kerb or self._stuck_s >= self.stuck_after_s:
            self._stuck_s = 0.0
            self._reverse_left_s = self.reverse_s
            self._reverse_steer = float(-np.sign(steer)) * 0.6 if abs(steer) > 0.05 else 0.0
