"""Scenario events placed along the ego's route, in the spirit of CARLA's Leaderboard scenarios.

Scenarios are spread evenly along the route (from 40 m after the start to
40 m before the goal) and triggered by the ego's distance to them along the
route. Their actors use only backend operations CARLA also has (spawning,
``VehicleControl``, ``WalkerControl``, traffic-light states), and carry the
role name ``scenario`` so the embedded gridlock relief never moves them.

- ``leading_vehicle_brake``: a vehicle waits ahead of the ego, drives off at
  4 m/s when the ego is 25 m behind it (or other traffic queues behind it), brakes to a stop for 3 s when the
  ego has closed to 15 m, then drives on.
- ``pedestrian_crossing_occluded``: a van parked at the right kerb hides a
  pedestrian who steps out and crosses the road at 2 m/s when the ego is
  18 m away (waiting while a car stands right in its way), and stops once off
  the road on the far side.
- ``red_light_runner``: at the next signalised junction on the route, a
  vehicle on a crossing approach runs its red light at 9 m/s as the ego
  arrives on green (the two lights are forced until the ego is through the
  junction, at most 20 s: lights held for ever deadlock the junction). A runner
  that stands for 5 s after it set off (it ran into a car turning in the
  junction, which then waits for it) is removed: its run has failed.
- ``parked_car_blocking``: a car parked in the ego's lane.
- ``dense_junction``: the next junction on the route gets a queue of NPC
  vehicles on every approach.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sim.api import ActorKind, Pose, SpawnError, TrafficLightState, VehicleControl, World, WorldSnapshot
from sim.config import ConfigError
from sim.rules.traffic import off_road
from sim.scenarios.routes import Route

ROLE = "scenario"
CAR = "vehicle.lincoln.mkz_2020"
VAN = "vehicle.mercedes.sprinter"
YELLOW_S = 3.0
"""How long a light a scenario forced green shows yellow when released before the ego is through (the
default ``lights.yellow_s``)."""
RUNNER_BLOCKED_S = 5.0
"""A red-light runner that stands this long after it set off has failed its run and is removed."""


@dataclass
class ScenarioContext:
    """What a scenario may use: the world, the ego, its route and where along it the scenario sits."""

    world: World
    ego_id: int
    route: Route
    anchor_s_m: float
    rng: np.random.Generator


def route_pose(route: Route, s_m: float, lateral_m: float = 0.0, z_m: float = 0.3) -> Pose:
    """The pose at arc length ``s_m`` on the route, ``lateral_m`` to its right (CARLA's +y side)."""
    i = int(np.clip(np.searchsorted(route.s_m, s_m), 0, route.s_m.shape[0] - 1))
    yaw = float(route.yaw_rad[i])
    x = float(route.points_xy[i, 0]) - lateral_m * math.sin(yaw)
    y = float(route.points_xy[i, 1]) + lateral_m * math.cos(yaw)
    return Pose(x, y, z_m, yaw)


def clear_of_junctions(route: Route, s_m: float, margin_m: float = 12.0, straight_m: float = 10.0,
                       max_turn_rad: float = 0.2) -> float:
    """The first arc length from ``s_m`` on whose both sides the route stays ``margin_m`` out of junctions and
    turns by less than ``max_turn_rad`` within ``straight_m``.

    Vehicles a scenario parks or stops there block one lane, never a junction
    that cross traffic needs (which would gridlock it), and a car parked beside
    the lane on a straight stays beside it (on a bend it would stick into the
    lane). Without such a place: the first one out of junctions, else ``s_m``.
    """
    inside = route.s_m[route.in_junction]
    candidates = route.s_m[(route.s_m >= s_m) & (route.s_m < route.length_m - margin_m)]
    if inside.size and candidates.size:
        gap = np.min(np.abs(candidates[:, None] - inside[None, :]), axis=1)
        candidates = candidates[gap > margin_m]
    if not candidates.size:
        return s_m if inside.size else float(s_m)
    yaw = np.unwrap(route.yaw_rad)
    for candidate in candidates.tolist():
        window = (route.s_m >= candidate - straight_m) & (route.s_m <= candidate + straight_m)
        if np.ptp(yaw[window]) < max_turn_rad:
            return float(candidate)
    return float(candidates[0])


def pursue(snapshot: WorldSnapshot, actor_id: int, path_xy: np.ndarray, speed_mps: float,
           lookahead_m: float | None = None, ego_id: int = -1, gap_along_path: bool = True) -> VehicleControl:
    """Pure-pursuit control that follows ``path_xy`` (points at most about 1 m apart) at ``speed_mps``,
    keeping a gap to whatever is in its way (:func:`gap_ahead` along the path, or along its heading with
    ``gap_along_path=False``; :data:`MIN_GAP_M`, :data:`HEADWAY_S`): scenario cars do not drive into a car
    that stands in their way.

    The target is ``lookahead_m`` along the path from the nearest point (by
    default 3 m + 0.3 s of travel): a short lookahead keeps a slow scenario car
    on its lane through tight town corners instead of cutting them into the kerb.
    """
    row = snapshot.index_of(actor_id)
    x, y = snapshot.location_m[row, :2]
    yaw = float(snapshot.rotation_rad[row, 1])
    speed = float(np.hypot(*snapshot.velocity_mps[row, :2]))
    ahead = 3.0 + 0.3 * speed if lookahead_m is None else lookahead_m
    nearest = int(np.argmin(np.hypot(path_xy[:, 0] - x, path_xy[:, 1] - y)))
    along = np.cumsum(np.hypot(*np.diff(path_xy[nearest:], axis=0).T))
    if along.size == 0 or along[-1] < 1.0:  # at the end of its path: stop there, do not circle back to it
        return VehicleControl(brake=1.0)
    target = path_xy[min(nearest + int(np.searchsorted(along, ahead)) + 1, path_xy.shape[0] - 1)]
    # Slow down for the bend of the next 12 m (radius ~ arc / turn), to 3 m/s^2 of lateral acceleration.
    bend_end = nearest + int(np.searchsorted(along, 12.0))
    chord = np.diff(path_xy[nearest: min(bend_end, path_xy.shape[0] - 1) + 1], axis=0)
    if chord.shape[0] >= 2:
        heading = np.unwrap(np.arctan2(chord[:, 1], chord[:, 0]))
        turn = float(np.ptp(heading))
        if turn > 0.1:
            speed_mps = min(speed_mps, math.sqrt(3.0 * float(np.hypot(*chord.T).sum()) / turn))
    gap = gap_ahead(snapshot, row, ego_id, path_xy=path_xy if gap_along_path else None)
    if gap < MIN_GAP_M:
        return VehicleControl(brake=1.0, steer=steer_towards(x, y, yaw, target))
    speed_mps = min(speed_mps, (gap - MIN_GAP_M) / HEADWAY_S)
    accel = float(np.clip(0.6 * (speed_mps - speed), -1.0, 1.0))
    return VehicleControl(throttle=max(accel, 0.0), brake=max(-accel, 0.0), steer=steer_towards(x, y, yaw, target))


MIN_GAP_M = 3.0
"""A scenario car stops this far (bumper to bumper) behind whatever stands in its way."""
HEADWAY_S = 1.5
"""... and keeps this time gap to it when moving."""


def gap_ahead(snapshot: WorldSnapshot, row: int, ego_id: int = -1, corridor_m: float = 1.2,
              range_m: float = 40.0, path_xy: np.ndarray | None = None) -> float:
    """Bumper-to-bumper distance from the actor at ``row`` to the nearest actor in its way: whose box comes
    within ``corridor_m`` of its centre line (of ``path_xy`` ahead of it when given: on a bend the heading
    line points off the road), that heads the same way within 45 degrees or is the ego ``ego_id``; inf when
    none within ``range_m``."""
    yaw = float(snapshot.rotation_rad[row, 1])
    rel = snapshot.location_m[:, :2] - snapshot.location_m[row, :2]
    along = rel[:, 0] * math.cos(yaw) + rel[:, 1] * math.sin(yaw)
    across = -rel[:, 0] * math.sin(yaw) + rel[:, 1] * math.cos(yaw)
    turn = snapshot.rotation_rad[:, 1] - yaw  # each box's half extents along and across this actor's heading
    ex, ey = snapshot.extent_m[:, 0], snapshot.extent_m[:, 1]
    half_length = np.abs(ex * np.cos(turn)) + np.abs(ey * np.sin(turn))
    half_width = np.abs(ex * np.sin(turn)) + np.abs(ey * np.cos(turn))
    near = (along > -half_length) & (np.hypot(rel[:, 0], rel[:, 1]) < range_m)
    near &= np.abs(snapshot.location_m[:, 2] - snapshot.location_m[row, 2]) < 3.0  # not on another level
    # what it follows (heading within 45 degrees) and the ego: two scenario cars that meet at an angle
    # must not each wait for the other
    following = np.abs(np.angle(np.exp(1j * turn))) < math.pi / 4
    near &= following | (snapshot.actor_id == ego_id)
    near[row] = False
    if path_xy is None:
        ahead = near & (along > 0.0) & (np.abs(across) < corridor_m + half_width)
        if not ahead.any():
            return math.inf
        return float((along[ahead] - half_length[ahead]).min() - snapshot.extent_m[row, 0])
    here = snapshot.location_m[row, :2]
    start = int(np.argmin(np.hypot(path_xy[:, 0] - here[0], path_xy[:, 1] - here[1])))
    path = path_xy[start: start + int(range_m) + 2]
    s_m = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(path, axis=0).T))])
    best = math.inf
    for k in np.flatnonzero(near).tolist():
        cos_k, sin_k = math.cos(float(snapshot.rotation_rad[k, 1])), math.sin(float(snapshot.rotation_rad[k, 1]))
        d = path - snapshot.location_m[k, :2]
        box_along = np.abs(d[:, 0] * cos_k + d[:, 1] * sin_k) - ex[k]
        box_across = np.abs(-d[:, 0] * sin_k + d[:, 1] * cos_k) - ey[k]
        hit = np.flatnonzero(np.hypot(np.maximum(box_along, 0.0), np.maximum(box_across, 0.0)) < corridor_m)
        if hit.size:
            best = min(best, float(s_m[hit[0]]) - float(snapshot.extent_m[row, 0]))
    return best


def steer_towards(x: float, y: float, yaw: float, target_xy, gain: float = 1.5) -> float:
    """Steering in [-1, 1] proportional to the heading error towards ``target_xy`` (pure pursuit's core)."""
    angle = math.atan2(target_xy[1] - y, target_xy[0] - x) - yaw
    angle = math.atan2(math.sin(angle), math.cos(angle))
    return float(np.clip(gain * angle, -1.0, 1.0))


def _near_path_end(snapshot: WorldSnapshot, actor_id: int, path_xy: np.ndarray, within_m: float = 15.0) -> bool:
    """Whether the actor is less than ``within_m`` along ``path_xy`` from its end."""
    here = snapshot.location_m[snapshot.index_of(actor_id), :2]
    nearest = int(np.argmin(np.hypot(*(path_xy - here).T)))
    return float(np.hypot(*np.diff(path_xy[nearest:], axis=0).T).sum()) < within_m


def _queued_behind(snapshot: WorldSnapshot, actor_id: int, within_m: float = 15.0) -> bool:
    """Whether a vehicle (the ego too: where the route passes the same place twice, the ego can stand behind
    the car long before its turn) stands up to ``within_m`` behind the actor, in its lane."""
    row = snapshot.index_of(actor_id)
    yaw = float(snapshot.rotation_rad[row, 1])
    rel = snapshot.location_m[:, :2] - snapshot.location_m[row, :2]
    along = rel[:, 0] * math.cos(yaw) + rel[:, 1] * math.sin(yaw)
    across = -rel[:, 0] * math.sin(yaw) + rel[:, 1] * math.cos(yaw)
    same_way = np.abs(np.angle(np.exp(1j * (snapshot.rotation_rad[:, 1] - yaw)))) < math.pi / 3
    # across up to 3 m: on a bend the queue's cars are not on the lead's centre line
    behind = (along < -1.0) & (along > -within_m) & (np.abs(across) < 3.0) & (snapshot.speed_mps() < 0.5) & same_way
    behind &= (snapshot.actor_id != actor_id) & (snapshot.kind == ActorKind.VEHICLE)
    return bool(behind.any())


def _vehicle_in_step(snapshot: WorldSnapshot, walker_id: int, direction_xy: tuple[float, float],
                     step_m: float = 0.8) -> bool:
    """Whether the walker's next ``step_m`` along ``direction_xy`` would take it into a vehicle's box."""
    row = snapshot.index_of(walker_id)
    probe = snapshot.location_m[row, :2] + step_m * np.asarray(direction_xy, dtype=float)
    vehicles = np.flatnonzero(snapshot.kind == ActorKind.VEHICLE)
    if vehicles.size == 0:
        return False
    d = probe - snapshot.location_m[vehicles, :2]
    yaw = snapshot.rotation_rad[vehicles, 1]
    along = np.abs(d[:, 0] * np.cos(yaw) + d[:, 1] * np.sin(yaw))
    across = np.abs(-d[:, 0] * np.sin(yaw) + d[:, 1] * np.cos(yaw))
    inside = (along < snapshot.extent_m[vehicles, 0] + 0.3) & (across < snapshot.extent_m[vehicles, 1] + 0.3)
    return bool(inside.any())


def _hand_to_traffic(world: World, actor_id: int) -> bool:
    """Put a scenario vehicle on autopilot (False if it is not on a lane: it stays under scenario control)."""
    try:
        world.set_autopilot(actor_id, True)
    except SpawnError:
        return False
    return True


class Scenario:
    """A scenario: ``setup`` spawns its actors, ``tick`` drives them once per step."""

    name: ClassVar[str]

    def __init__(self, context: ScenarioContext) -> None:
        self.ctx = context
        self.actors: list[int] = []

    def setup(self) -> None:
        """Spawn the scenario's actors (before the first tick)."""

    def tick(self, snapshot: WorldSnapshot, ego_s_m: float) -> None:
        """Drive the scenario's actors for this step; ``ego_s_m`` is the ego's progress along the route."""

    def cleanup(self) -> None:
        """Undo anything that outlives the episode's actors (forced lights)."""

    def _spawn(self, blueprint: str, pose: Pose, **kwargs) -> int | None:
        try:
            actor = self.ctx.world.spawn_vehicle(blueprint, pose, role_name=ROLE, **kwargs)
        except SpawnError:
            return None
        self.actors.append(actor)
        return actor

    def _remove(self, actor_id: int) -> None:
        """Take one of the scenario's actors out of the world (the scene is over for it)."""
        self.ctx.world.destroy([actor_id])
        self.actors.remove(actor_id)


class LeadingVehicleBrake(Scenario):
    """A leading vehicle brakes hard in front of the ego."""

    name = "leading_vehicle_brake"

    def setup(self) -> None:
        self.lead = self._spawn(CAR, route_pose(self.ctx.route, clear_of_junctions(self.ctx.route,
                                                                                   self.ctx.anchor_s_m)))
        self.started = False
        self.brake_until = None
        self.done = False

    def tick(self, snapshot: WorldSnapshot, ego_s_m: float) -> None:
        if self.lead is None:
            return
        route = self.ctx.route
        row = snapshot.index_of(self.lead)
        lead_s = float(route.s_m[int(np.argmin(np.hypot(*(route.points_xy - snapshot.location_m[row, :2]).T)))])
        gap = lead_s - ego_s_m - 5.0  # about one car length between the two reference points
        # it waits for the ego, or drives off as soon as other traffic queues behind it (no deadlock)
        self.started = self.started or gap < 25.0 or _queued_behind(snapshot, self.lead)
        if self.started and not self.done and self.brake_until is None and 0.0 < gap < 15.0:
            self.brake_until = snapshot.timestamp_s + 3.0
        if not self.started or (self.brake_until is not None and snapshot.timestamp_s < self.brake_until):
            control = VehicleControl(brake=1.0)
        else:
            if self.brake_until is not None:
                self.done, self.brake_until = True, None
            # Near the ego's goal: traffic takes it on instead of parking it there.
            if route.length_m - lead_s < 15.0 and _hand_to_traffic(self.ctx.world, self.lead):
                self.lead = None
                return
            control = pursue(snapshot, self.lead, route.points_xy, 4.0, ego_id=self.ctx.ego_id)
        self.ctx.world.apply_control(self.lead, control)


class OccludedPedestrian(Scenario):
    """A pedestrian steps out from behind a parked van."""

    name = "pedestrian_crossing_occluded"

    def setup(self) -> None:
        route = self.ctx.route
        s = self.anchor_s = clear_of_junctions(route, self.ctx.anchor_s_m)
        self._spawn(VAN, route_pose(route, s, lateral_m=3.0))
        self.walker = None
        behind = route_pose(route, s + 4.0, lateral_m=4.5)
        try:
            self.walker = self.ctx.world.spawn_walker_at(behind)
            self.actors.append(self.walker)
        except (SpawnError, ValueError):
            return
        i = int(np.clip(np.searchsorted(route.s_m, s), 0, route.s_m.shape[0] - 1))
        yaw = float(route.yaw_rad[i])
        self.across = (math.sin(yaw), -math.cos(yaw))  # towards the route's left: across the ego's lane
        self.started_at = None
        self.across_done = False

    def tick(self, snapshot: WorldSnapshot, ego_s_m: float) -> None:
        if self.walker is None or self.across_done:
            return
        if self.started_at is None and self.anchor_s - ego_s_m < 18.0:
            self.started_at = snapshot.timestamp_s
            self.ctx.world.apply_walker_control(self.walker, self.across, 2.0)
        elif self.started_at is not None:
            # it runs out in front of the ego, but does not walk into the side of a car standing in its way
            blocked = _vehicle_in_step(snapshot, self.walker, self.across)
            self.ctx.world.apply_walker_control(self.walker, self.across, 0.0 if blocked else 2.0)
        if self.started_at is not None and snapshot.timestamp_s - self.started_at > 3.0:
            # Stand still only once across, off the driving area: one standing on the road would block traffic
            # for ever (drivers yield to pedestrians on the road); one still on it after 20 s leaves the scene.
            world = self.ctx.world
            row = snapshot.index_of(self.walker)
            xy = snapshot.location_m[row, :2][None, :]
            ground = snapshot.location_m[row, 2:3] - snapshot.extent_m[row, 2]  # the level it walks on
            if bool(off_road(world.area_raster.lookup(xy, ground))[0]):
                world.apply_walker_control(self.walker, self.across, 0.0)
                self.across_done = True
            elif snapshot.timestamp_s - self.started_at > 20.0:
                self._remove(self.walker)
                self.walker = None


class ParkedCarBlocking(Scenario):
    """A car parked in the ego's lane."""

    name = "parked_car_blocking"

    def setup(self) -> None:
        self._spawn(CAR, route_pose(self.ctx.route, clear_of_junctions(self.ctx.route, self.ctx.anchor_s_m)))


def _next_junction_entry(route: Route, from_s_m: float, signals=None) -> int | None:
    """Route index of the next junction entry from ``from_s_m`` on; with ``signals``, of the next one whose
    approach lane has a traffic light."""
    entries = route.junction_entries
    entries = entries[(route.s_m[entries] >= from_s_m) & (entries > 0)]
    if signals is not None:
        entries = entries[signals.lane_light[route.lane[entries - 1]] >= 0]
    return int(entries[0]) if entries.size else None


class RedLightRunner(Scenario):
    """A crossing vehicle runs its red light as the ego enters the junction on green."""

    name = "red_light_runner"

    def setup(self) -> None:
        world, route = self.ctx.world, self.ctx.route
        lanes, signals = world.lanes, world.signals
        self.runner = None
        self.forced: list[int] = []
        self.yellow_until: float | None = None
        self.standing_since: float | None = None
        entry = _next_junction_entry(route, self.ctx.anchor_s_m - 20.0, signals)
        if entry is None or entry == 0:
            return
        ego_lane = int(route.lane[entry])
        self.entry_s = float(route.s_m[entry])
        self.ego_light = int(signals.lane_light[int(route.lane[entry - 1])])
        conflicts = np.flatnonzero(lanes.junction_conflicts[ego_lane])
        for lane in self.ctx.rng.permutation(conflicts).tolist():
            approach = [p for p in lanes.predecessors[lane] if not lanes.is_junction[p]]
            if not approach:
                continue
            before = approach[0]
            points = [lanes.lane_points(before)[:, :2], lanes.lane_points(lane)[:, :2]]
            succ = lanes.successors[lane, : lanes.num_successors[lane]]
            if succ.size:
                points.append(lanes.lane_points(int(succ[0]))[:, :2])
            path = np.concatenate(points)
            start = max(0, lanes.lane_points(before).shape[0] - 30)
            pose = Pose(float(path[start, 0]), float(path[start, 1]), 0.3,
                        float(lanes.yaw_rad[int(lanes.offset[before]) + start]))
            earlier = route.points_xy[:entry]
            if np.hypot(earlier[:, 0] - pose.x_m, earlier[:, 1] - pose.y_m).min() < 6.0:
                continue  # it would wait on the ego's way to the junction (routes may pass its approach first)
            runner = self._spawn(CAR, pose)
            if runner is not None:
                self.runner, self.path = runner, path[start:]
                self.runner_light = int(signals.lane_light[before])
                break
        self.go = False

    def tick(self, snapshot: WorldSnapshot, ego_s_m: float) -> None:
        if self.yellow_until is not None and snapshot.timestamp_s >= self.yellow_until:
            self.cleanup()
        if self.forced and self.yellow_until is None and (ego_s_m > self.entry_s + 10.0
                                                          or snapshot.timestamp_s - self.go_at > 20.0):
            # the ego is through (or never came): lights back to their cycle, nobody waits for ever (also once
            # the runner has been handed to traffic: lights forced for good held routes that came back there).
            # The ego's forced green ends through yellow, as a light does: back in its cycle it may be red, and
            # a green that turns red at once leaves an ego close to its line no way to stop.
            if ego_s_m > self.entry_s + 10.0:
                self.cleanup()
            else:
                self._to_yellow(snapshot.timestamp_s)
        if self.runner is None:
            return
        lights = getattr(self.ctx.world, "lights", None)
        if not self.go and self.entry_s - ego_s_m < 30.0:
            self.go, self.go_at = True, snapshot.timestamp_s
            if lights is not None:
                for light, state in ((self.ego_light, TrafficLightState.GREEN),
                                     (self.runner_light, TrafficLightState.RED)):
                    if light >= 0:
                        lights.force_state(light, state)
                        self.forced.append(light)
        if self.go and _near_path_end(snapshot, self.runner, self.path) and _hand_to_traffic(self.ctx.world,
                                                                                         self.runner):
            self.runner = None  # its run is over: traffic takes it on instead of parking it in someone's lane
            return
        if self.go and self._blocked_for_good(snapshot):
            # Its run has failed (a car turning in the junction stands in its way, and that car now waits
            # for it): gone, as CARLA's scenarios remove their actors when they end, not a lasting deadlock.
            self._remove(self.runner)
            self.runner = None
            return
        # the runner crosses the junction: what is in its way lies along its heading (along its curved path
        # it would also wait for cars crossing it at an angle, which wait for it)
        control = pursue(snapshot, self.runner, self.path, 9.0, ego_id=self.ctx.ego_id,
                         gap_along_path=False) if self.go else \
            VehicleControl(brake=1.0)
        self.ctx.world.apply_control(self.runner, control)

    def _blocked_for_good(self, snapshot: WorldSnapshot) -> bool:
        """Whether the running car has stood for :data:`RUNNER_BLOCKED_S` since it set off."""
        if float(snapshot.speed_mps()[snapshot.index_of(self.runner)]) >= 0.3:
            self.standing_since = None
        elif self.standing_since is None:
            self.standing_since = snapshot.timestamp_s
        return self.standing_since is not None and snapshot.timestamp_s - self.standing_since >= RUNNER_BLOCKED_S

    def _to_yellow(self, now_s: float) -> None:
        """Release every forced light but the ego's green, which turns yellow for :data:`YELLOW_S` first."""
        lights = getattr(self.ctx.world, "lights", None)
        for light in [light for light in self.forced if light != self.ego_light]:
            lights.force_state(light, None)
        self.forced = [light for light in self.forced if light == self.ego_light]
        for light in self.forced:
            lights.force_state(light, TrafficLightState.YELLOW)
        self.yellow_until = now_s + YELLOW_S

    def cleanup(self) -> None:
        lights = getattr(self.ctx.world, "lights", None)
        for light in self.forced:
            lights.force_state(light, None)
        self.forced = []
        self.yellow_until = None


class DenseJunction(Scenario):
    """Queues of NPC traffic on every approach of the next junction on the route."""

    name = "dense_junction"

    def setup(self) -> None:
        world, route = self.ctx.world, self.ctx.route
        lanes = world.lanes
        entry = _next_junction_entry(route, self.ctx.anchor_s_m - 20.0)
        if entry is None:
            return
        junction = int(lanes.junction_id[int(route.lane[entry])])
        approaches = {p for lane in np.flatnonzero(lanes.junction_id == junction).tolist()
                      for p in lanes.predecessors[lane] if not lanes.is_junction[p]}
        ego_approach = int(route.lane[entry - 1]) if entry > 0 else -1
        for lane in sorted(approaches - {ego_approach}):
            for back in (8.0, 16.0, 24.0):
                s = float(lanes.length_m[lane]) - back
                if s < 4.0:
                    break
                xyz, yaw = lanes.interpolate(np.array([lane]), np.array([s]))
                pose = Pose(float(xyz[0, 0]), float(xyz[0, 1]), float(xyz[0, 2]) + 0.3, float(yaw[0]))
                try:
                    self.actors.append(world.spawn_vehicle(CAR, pose, autopilot=True))
                except SpawnError:
                    continue


SCENARIOS: dict[str, type[Scenario]] = {cls.name: cls for cls in (
    LeadingVehicleBrake, OccludedPedestrian, RedLightRunner, ParkedCarBlocking, DenseJunction)}
"""Registry of scenarios by name (the env config's ``scenarios`` list)."""


def check_scenario_names(names: tuple[str, ...]) -> None:
    """``ConfigError`` naming any unknown scenario."""
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown scenarios {unknown}; valid: {', '.join(sorted(SCENARIOS))}")


def place_scenarios(names: tuple[str, ...], world: World, ego_id: int, route: Route,
                    rng: np.random.Generator) -> list[Scenario]:
    """Build and set up the named scenarios, spread evenly along the route."""
    check_scenario_names(names)
    if not names:
        return []
    start, end = 40.0, max(route.length_m - 40.0, 41.0)
    anchors = np.linspace(start, end, len(names) + 2)[1:-1] if len(names) > 1 else [0.5 * (start + end)]
    scenarios = []
    for name, anchor in zip(names, anchors):
        scenario = SCENARIOS[name](ScenarioContext(world, ego_id, route, float(anchor), rng))
        scenario.setup()
        scenarios.append(scenario)
    return scenarios
