"""The embedded world: map, actors, traffic logic, collisions and events, one fixed step at a time.

Actors live in three vectorised groups:

- NPC / autopilot vehicles (:class:`~sim.embedded.traffic.vehicles.TrafficVehicles`),
  moved along lane centre lines by the traffic logic;
- free vehicles (:class:`~sim.embedded.dynamics.BicycleFleet`), driven by
  ``VehicleControl`` through a kinematic or dynamic bicycle model: the ego;
- pedestrians (:class:`~sim.embedded.traffic.walkers.Walkers`).

``set_autopilot`` moves a vehicle between the first two groups, keeping its
pose and speed. Every tick: lights, pedestrians, NPCs and free vehicles
advance, then oriented-box collisions are found among all actors and events
(collision, lane invasion, off-road, red light, stop sign) are raised for
free vehicles. Everything random flows from the config's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sim.api import (ActorKind, CollisionEvent, Event, LaneInvasionEvent, Pose, SpawnError,
                     VehicleControl, WorldSnapshot)
from sim.embedded.collision import VerletPairs, find_contacts
from sim.config import WorldConfig
from sim.embedded.dynamics import BicycleFleet, ControlArrays
from sim.maps.lanes import MARKING_NAMES, LaneGraph, SpawnPoint, build_lane_graph
from sim.maps.loader import PROCEDURAL, MapSource, load_carla_map, procedural_source, resolve_map
from sim.embedded.traffic.lights import TrafficLights
from sim.maps.signals import build_signal_layout
from sim.transforms import box_corners
from sim.rules.traffic import (LaneRuleState, junction_events, off_road, off_road_events, on_static,
                               project_to_lanes, touches_static)
from sim.embedded.traffic.vehicles import DriverParams, Obstacles, TrafficVehicles
from sim.embedded.vehicle_types import VEHICLE_TYPES, VehicleType, get_vehicle_type

WALKER_BLUEPRINT = "walker.pedestrian.0001"
WALKER_MASS_KG = 80.0
PEDESTRIAN_TAG = 12
_SPAWN_HEIGHT_M = 2.0  # height of the box a spawn checks for other actors, above the pose
# Buses are left out of the default mix: at 12 m they cut into the oncoming lane on tight town corners.
_TRAFFIC_MIX = (("car", 0.74), ("van", 0.08), ("truck", 0.06), ("motorcycle", 0.12))
STATIC_RELEASE_S = 0.5
"""A kerb contact episode ends after this long free of the static layout; the next contact is a new collision."""
KERB_FRICTION = 0.5
"""Friction coefficient along a kerb or wall: the speed lost along it per unit of speed lost into it."""
_SWEEP_STEP_M = 0.3  # most corner travel between two checked poses of a tick's move (raster cells are 0.2 m)
_MAX_SWEEP_STEPS = 64
_PUSH_REACH_M = 1.5  # how far from a touching corner the nearest ground of the road network is looked for


@dataclass(frozen=True)
class ActorInfo:
    """What does not change during an actor's life."""

    actor_id: int
    kind: ActorKind
    type_id: str
    semantic_tag: int
    extent_m: tuple[float, float, float]
    role_name: str
    vehicle_type: VehicleType | None


class EmbeddedWorld:
    """A deterministic world on one OpenDRIVE map; see the module docstring.

    Build it from a :class:`WorldConfig` (or keywords of one); it loads the map
    (validating untrusted files in a child process) and derives the lane
    graph, signals and pedestrian network.
    """

    def __init__(self, config: WorldConfig | None = None, *, source: MapSource | None = None, **overrides) -> None:
        config = config or WorldConfig()
        if overrides:
            config = WorldConfig.model_validate({**config.model_dump(), **overrides})
        self.config = config
        self.dt_s = config.dt_s
        self.max_substep_s: float | None = None
        """Vehicle dynamics substep limit: a longer tick integrates them in equal substeps no longer than this."""
        if source is None:
            source = procedural_source(config.procedural) if config.map == PROCEDURAL else resolve_map(config.map)
        self.source = source
        self.carla_map = load_carla_map(self.source)
        self.lanes: LaneGraph = build_lane_graph(self.carla_map, self.source.xodr_text)
        self.signals = build_signal_layout(self.carla_map, self.lanes, config.generate_missing_lights)
        self._closed = False
        self.reset(config.seed)

    def close(self) -> None:
        """Stop this world: later ticks raise. Nothing runs outside the process, so there is nothing else to free."""
        self._closed = True

    def __enter__(self) -> EmbeddedWorld:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset(self, seed: int | None = None) -> WorldSnapshot:
        """Remove every actor and restart time, lights and random streams from ``seed`` (default: the config's).

        The map and everything derived from it (lane graph, signals, geometry,
        pedestrian network) are kept, so a reset costs milliseconds; a world
        reset with a seed behaves exactly like a new world built with it.
        """
        seed = self.config.seed if seed is None else int(seed)
        config = self.config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.lights = TrafficLights(self.signals, config.lights, np.random.default_rng([seed, 1]))
        t = config.traffic
        self.traffic = TrafficVehicles(
            self.lanes, self.signals, np.random.default_rng([seed, 2]),
            DriverParams(max_accel_mps2=t.max_accel_mps2, comfort_decel_mps2=t.comfort_decel_mps2,
                         max_decel_mps2=t.max_decel_mps2, time_headway_s=t.time_headway_s, min_gap_m=t.min_gap_m,
                         speed_difference=t.speed_difference, speed_spread=t.speed_spread,
                         lane_changes=t.lane_changes, politeness=t.politeness,
                         change_threshold_mps2=t.change_threshold_mps2))
        self.fleet = BicycleFleet(config.dynamics)
        self._controls = np.zeros((0, 5))  # throttle, steer, brake, hand_brake, reverse per fleet row
        self._fleet_state = _FleetEventState.empty()
        self._free_z: dict[int, float] = {}  # ground height of free vehicles (the lane level they are on)
        self._walkers = None
        self.actors: dict[int, ActorInfo] = {}
        self._next_id = 1
        self.frame = 0
        self.time_s = 0.0
        self._clock_origin = (0, 0.0)  # (frame, time) the clock counts steps of dt_s from
        self.relocations = 0
        self._structure_dirty = True
        self._broad_phase = VerletPairs(skin_m=3.0)
        self._last_state: dict[str, np.ndarray] | None = None  # per-actor arrays of the last tick
        self._lane_state_source: np.ndarray | None = None
        self._lane_state = np.zeros(0, dtype=np.int8)
        self._static: dict[str, object] = {}
        self._last_events: tuple[Event, ...] = ()
        self._projection: tuple[np.ndarray, ...] | None = None
        self.light_state = self.lights.update(0.0)
        self._snapshot = self._build_snapshot(())
        return self._snapshot

    # ------------------------------------------------------------------ lazily built parts
    @cached_property
    def walker_network(self):
        """The pedestrian network (sidewalks, corners, crossings), built on first use."""
        from sim.embedded.traffic.walker_graph import build_walker_network

        return build_walker_network(self.carla_map, self.lanes, self.signals)

    @property
    def walkers(self):
        """Pedestrians of this world (created on first use)."""
        if self._walkers is None:
            from sim.embedded.traffic.walkers import WalkerParams, Walkers

            w = self.config.walkers
            params = WalkerParams(speed_min_mps=w.min_speed_mps, speed_max_mps=w.max_speed_mps,
                                  careless_share=w.careless_share)
            self._walkers = Walkers(self.walker_network, params, np.random.default_rng([self.seed, 3]))
        return self._walkers

    @cached_property
    def area_raster(self):
        """Rasterised area classes (driving, sidewalk, ...) for off-road and kerb checks."""
        from sim.maps.geometry import rasterize_areas

        return rasterize_areas(self.geometry, resolution_m=0.2)

    @cached_property
    def kerb_raster(self):
        """The area raster with each junction's ground filled as CARLA builds it (one paved surface, kerbed
        sidewalk corners): what the kerb response reads, so a car cutting a junction corner climbs the kerb
        instead of meeting a wall where no lane is described. ``area_raster`` keeps the lanes' own ground."""
        from sim.maps.geometry import rasterize_areas

        return rasterize_areas(self.geometry, resolution_m=0.2, fill_junctions=True)

    @cached_property
    def geometry(self):
        """Polygons of drivable area, sidewalks, crosswalks and lane markings (for rendering)."""
        from sim.maps.geometry import build_map_geometry

        return build_map_geometry(self.carla_map)

    @cached_property
    def spawn_points(self) -> list[SpawnPoint]:
        """Derived spawn points (carla.Map has none offline), every 10 m on the main lane component."""
        return self.lanes.spawn_points()

    @cached_property
    def dense_spawn_points(self) -> list[SpawnPoint]:
        """Spawn points every 6.5 m, for filling a map with NPC traffic."""
        return self.lanes.spawn_points(spacing_m=6.5, margin_m=3.5)

    # ------------------------------------------------------------------ spawning
    def _new_id(self) -> int:
        actor_id = self._next_id
        self._next_id += 1
        return actor_id

    def _occupied(self, x: float, y: float, yaw: float, half: tuple[float, float], clearance_m: float = 0.5,
                  z_m: float | None = None) -> bool:
        """Whether a box at ``(x, y)`` (with ``clearance_m`` around it) overlaps an actor; at ground height
        ``z_m`` only actors at that level count (a spawn pose may be lifted by up to a metre)."""
        snap = self._current_boxes()
        if snap[0].shape[0] == 0:
            return False
        center = np.vstack([snap[0], [[x, y]]])
        yaws = np.append(snap[1], yaw)
        halves = np.vstack([snap[2], [[half[0] + clearance_m, half[1] + clearance_m]]])
        z_range = None
        if z_m is not None:
            z_range = np.vstack([snap[3], [[z_m - 1.0 - clearance_m, z_m + _SPAWN_HEIGHT_M + clearance_m]]])
        contacts = find_contacts(center, yaws, halves, z_range_m=z_range)
        last = center.shape[0] - 1
        return bool((contacts.pairs == last).any())

    def spawn_vehicle(self, blueprint_id: str = "vehicle.lincoln.mkz_2020", pose: Pose | SpawnPoint | None = None,
                      *, autopilot: bool = False, role_name: str = "", speed_mps: float = 0.0,
                      clearance_m: float = 0.3) -> int:
        """Spawn a vehicle at ``pose`` (a random free spawn point when None); returns its id.

        Raises :class:`SpawnError` if the spot is occupied or, for autopilot,
        off the lane graph; ``ValueError`` for an unknown blueprint.
        """
        vtype = get_vehicle_type(blueprint_id)
        if pose is None:
            pose = self._free_spawn_point(vtype)
        lane, s_m = (pose.lane, pose.s_m) if isinstance(pose, SpawnPoint) else (None, None)
        pose = pose.pose if isinstance(pose, SpawnPoint) else pose
        if not all(math.isfinite(v) for v in (pose.x_m, pose.y_m, pose.yaw_rad, speed_mps)):
            raise SpawnError(f"spawn pose must be finite, got {pose}")
        if self._occupied(pose.x_m, pose.y_m, pose.yaw_rad, vtype.extent_m[:2], clearance_m, pose.z_m):
            raise SpawnError(f"spawn of {vtype.blueprint_id} at ({pose.x_m:.1f}, {pose.y_m:.1f}) failed: "
                             "the spot is occupied")
        actor_id = self._new_id()
        self.actors[actor_id] = ActorInfo(actor_id, ActorKind.VEHICLE, vtype.blueprint_id, vtype.semantic_tag,
                                          tuple(vtype.extent_m), role_name, vtype)
        try:
            if autopilot:
                self._add_traffic(actor_id, vtype, pose, speed_mps, lane, s_m)
            else:
                self._add_free(actor_id, vtype, pose, speed_mps)
        except SpawnError:
            del self.actors[actor_id]
            raise
        self._invalidate()
        return actor_id

    def _free_spawn_point(self, vtype: VehicleType) -> SpawnPoint:
        points = self.spawn_points
        for index in self.rng.permutation(len(points)):
            point = points[int(index)]
            if not self._occupied(point.pose.x_m, point.pose.y_m, point.pose.yaw_rad, vtype.extent_m[:2], 1.5,
                                  point.pose.z_m):
                return point
        raise SpawnError(f"no free spawn point left on {self.source.name} ({len(points)} in all)")

    def _add_traffic(self, actor_id: int, vtype: VehicleType, pose: Pose, speed_mps: float,
                     lane: int | None = None, s_m: float | None = None) -> None:
        if lane is None:
            found, s, dist = self.lanes.project(np.array([[pose.x_m, pose.y_m]]), np.array([pose.yaw_rad]),
                                                z_m=np.array([pose.z_m]))
            if found[0] < 0 or dist[0] > 3.0:
                raise SpawnError(f"({pose.x_m:.1f}, {pose.y_m:.1f}) is not on a driving lane: autopilot needs one")
            lane, s_m = int(found[0]), float(s[0])
        self.traffic.add(actor_id, lane, s_m, speed_mps, vtype.extent_m[0], vtype.extent_m[1], vtype.wheelbase_m,
                         vtype.max_steer_rad)

    def _add_free(self, actor_id: int, vtype: VehicleType, pose: Pose, speed_mps: float) -> None:
        self.fleet.add(vtype, pose.x_m, pose.y_m, pose.yaw_rad, speed_mps, vehicle_id=actor_id)
        self._controls = np.vstack([self._controls, np.zeros((1, 5))])
        self._fleet_state = self._fleet_state.appended()
        self._free_z[actor_id] = pose.z_m
        self._update_free_z()

    def spawn_traffic(self, count: int, mix: tuple[tuple[str, float], ...] = _TRAFFIC_MIX) -> list[int]:
        """Spawn ``count`` NPC vehicles on autopilot at random free spawn points (a seeded mix of types)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        names = [name for name, _ in mix]
        weights = np.array([w for _, w in mix], dtype=float)
        kinds = self.rng.choice(len(names), size=count, p=weights / weights.sum())
        ids = []
        points = self.dense_spawn_points
        order = self.rng.permutation(len(points))
        cursor = 0
        for kind in kinds:
            vtype = VEHICLE_TYPES[names[int(kind)]]
            while cursor < order.size:
                point = points[int(order[cursor])]
                cursor += 1
                if not self._occupied(point.pose.x_m, point.pose.y_m, point.pose.yaw_rad, vtype.extent_m[:2], 0.3,
                                      point.pose.z_m):
                    ids.append(self.spawn_vehicle(vtype.blueprint_id, point, autopilot=True))
                    break
            else:
                raise SpawnError(f"only {len(ids)} of {count} vehicles fit on {self.source.name}'s spawn points")
        return ids

    def spawn_walkers(self, count: int) -> list[int]:
        """Spawn ``count`` pedestrians at random places on sidewalks.

        :class:`SpawnError` if ``count`` > 0 and the map has no sidewalks to
        walk on (a highway town: no pedestrian network); nothing is spawned then.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return []
        try:
            walkers = self.walkers
        except ValueError as exc:  # the pedestrian network cannot be built: no (connected) sidewalks
            raise SpawnError(f"cannot spawn {count} walkers: {self.source.name} has no sidewalks for pedestrians "
                             f"({exc})") from exc
        ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        walkers.spawn_random(count, ids)
        extent = tuple(float(v) for v in self.walkers.params.extent_m)
        for actor_id in ids.tolist():
            self.actors[actor_id] = ActorInfo(actor_id, ActorKind.WALKER, WALKER_BLUEPRINT, PEDESTRIAN_TAG, extent,
                                              "", None)
        self._invalidate()
        return ids.tolist()

    def spawn_walker_at(self, pose: Pose) -> int:
        """Spawn one pedestrian on the pedestrian network point nearest to ``pose``.

        It stands there until :meth:`apply_walker_control` (or :meth:`teleport`)
        moves it, as a CARLA walker without an AI controller.
        """
        if not all(math.isfinite(v) for v in (pose.x_m, pose.y_m)):
            raise SpawnError(f"walker spawn pose must be finite, got {pose}")
        actor_id = self._new_id()
        self.walkers.spawn_at(np.array([pose.x_m, pose.y_m]), actor_id)
        self.walkers.apply_control(actor_id, (1.0, 0.0), 0.0)
        extent = tuple(float(v) for v in self.walkers.params.extent_m)
        self.actors[actor_id] = ActorInfo(actor_id, ActorKind.WALKER, WALKER_BLUEPRINT, PEDESTRIAN_TAG, extent, "", None)
        self._invalidate()
        return actor_id

    def destroy(self, actor_ids: list[int]) -> None:
        """Remove actors by id; ``KeyError`` names an unknown id (nothing is removed then)."""
        unknown = [a for a in actor_ids if a not in self.actors]
        if unknown:
            raise KeyError(f"unknown actor ids: {unknown}")
        ids = np.asarray(actor_ids, dtype=np.int64)
        self.traffic.remove(ids)
        fleet_rows = np.flatnonzero(np.isin(self.fleet.ids, ids))
        if fleet_rows.size:
            keep = np.ones(self.fleet.n, dtype=bool)
            keep[fleet_rows] = False
            self.fleet.remove(fleet_rows)
            self._controls = self._controls[keep]
            self._fleet_state = self._fleet_state.subset(keep)
        walker_ids = [a for a in actor_ids if self.actors[a].kind == ActorKind.WALKER]
        if walker_ids:
            self.walkers.remove(np.asarray(walker_ids, dtype=np.int64))
        for actor_id in actor_ids:
            del self.actors[actor_id]
        self._invalidate()

    # ------------------------------------------------------------------ control
    def _fleet_row(self, actor_id: int) -> int:
        rows = np.flatnonzero(self.fleet.ids == actor_id)
        return int(rows[0]) if rows.size else -1

    def is_autopilot(self, actor_id: int) -> bool:
        """Whether the traffic logic drives this vehicle."""
        return bool((self.traffic.actor_id == actor_id).any())

    def set_autopilot(self, actor_id: int, enabled: bool = True) -> None:
        """Hand a vehicle to the traffic logic or take it back, keeping pose and speed."""
        info = self._vehicle_info(actor_id)
        if enabled == self.is_autopilot(actor_id):
            return
        if enabled:
            row = self._fleet_row(actor_id)
            pose = Pose(float(self.fleet.x_m[row]), float(self.fleet.y_m[row]), self._free_z.get(actor_id, 0.0),
                        float(self.fleet.yaw_rad[row]))
            speed = max(float(self.fleet.v_long_mps[row]), 0.0)
            self._add_traffic(actor_id, info.vehicle_type, pose, speed)
            keep = self.fleet.ids != actor_id
            self.fleet.remove([row])
            self._controls = self._controls[keep]
            self._fleet_state = self._fleet_state.subset(keep)
        else:
            row = self.traffic.row_of(actor_id)
            x, y, z = self.traffic.location_xyz[row]
            pose = Pose(float(x), float(y), float(z), float(self.traffic.yaw_rad[row]))
            speed = float(self.traffic.speed_mps[row])
            self.traffic.remove([actor_id])
            self._add_free(actor_id, info.vehicle_type, pose, speed)
        self._invalidate()

    def _vehicle_info(self, actor_id: int) -> ActorInfo:
        info = self.actors.get(actor_id)
        if info is None:
            raise KeyError(f"unknown actor id {actor_id}")
        if info.kind != ActorKind.VEHICLE:
            raise ValueError(f"actor {actor_id} is a {info.type_id}, not a vehicle")
        return info

    def apply_control(self, actor_id: int, control: VehicleControl) -> None:
        """Set the control a free vehicle holds from the next tick on (ignored while on autopilot, as CARLA)."""
        self._vehicle_info(actor_id)
        row = self._fleet_row(actor_id)
        if row < 0:
            return
        self._controls[row] = (control.throttle, control.steer, control.brake, float(control.hand_brake),
                               float(control.reverse))

    def apply_walker_control(self, actor_id: int, direction_xy: tuple[float, float], speed_mps: float) -> None:
        """Walk a pedestrian straight along ``direction_xy`` at ``speed_mps`` (CARLA's ``WalkerControl``)."""
        info = self.actors.get(actor_id)
        if info is None or info.kind != ActorKind.WALKER:
            raise ValueError(f"actor {actor_id} is not a walker")
        self.walkers.apply_control(actor_id, direction_xy, speed_mps)

    def route_vehicle(self, actor_id: int, lanes: list[int]) -> None:
        """Make an autopilot vehicle take these lanes at the next junctions (routed turns)."""
        self.traffic.set_route(actor_id, lanes)

    def _invalidate(self) -> None:
        """Actors were added, removed or moved outside a tick: rebuild cached per-actor arrays."""
        self._structure_dirty = True
        self._last_state = None
        self._broad_phase.invalidate()

    def teleport(self, actor_id: int, pose: Pose, speed_mps: float | None = None) -> None:
        """Move a free vehicle or a walker to ``pose`` (``set_transform``), optionally setting its speed.

        A walker's ``pose`` is its box centre (as snapshots report it); it then
        walks straight on along ``pose.yaw_rad`` at ``speed_mps`` (0 if None)
        and no longer follows the pedestrian network.
        """
        info = self.actors.get(actor_id)
        if info is not None and info.kind == ActorKind.WALKER:
            self.walkers.place(actor_id, (pose.x_m, pose.y_m, pose.z_m), pose.yaw_rad, speed_mps or 0.0)
            self._last_state = None
            return
        row = self._fleet_row(actor_id)
        if row < 0:
            raise ValueError(f"actor {actor_id} is not a free (non-autopilot) vehicle or a walker")
        self.fleet.set_state([row], x_m=pose.x_m, y_m=pose.y_m, yaw_rad=pose.yaw_rad, speed_mps=speed_mps)
        self._fleet_state.lane[row] = -1
        self._free_z[actor_id] = pose.z_m
        self._update_free_z()
        self._last_state = None

    # ------------------------------------------------------------------ the tick
    def _current_boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centres (N, 2), yaws, half extents (N, 2) and height intervals (N, 2) of all actors now."""
        parts_xy = [self.traffic.location_xyz[:, :2], np.stack([self.fleet.x_m, self.fleet.y_m], axis=1)]
        parts_yaw = [self.traffic.yaw_rad, self.fleet.yaw_rad]
        parts_half = [np.stack([self.traffic.half_length_m, self.traffic.half_width_m], axis=1),
                      self.fleet.extent_m[:, :2]]
        # Vehicles stand on their location (the ground); a walker's location is its box centre.
        traffic_height = np.array([2.0 * self.actors[int(a)].extent_m[2] for a in self.traffic.actor_id])
        f_z = self._free_z_array()
        parts_z = [np.column_stack([self.traffic.location_xyz[:, 2], self.traffic.location_xyz[:, 2] + traffic_height]),
                   np.column_stack([f_z, f_z + 2.0 * self.fleet.extent_m[:, 2]])]
        if self._walkers is not None:
            parts_xy.append(self._walkers.location_xyz[:, :2])
            parts_yaw.append(self._walkers.yaw_rad)
            parts_half.append(np.broadcast_to(np.asarray(self._walkers.params.extent_m[:2]),
                                              (self._walkers.location_xyz.shape[0], 2)))
            wz, ez = self._walkers.location_xyz[:, 2], float(self._walkers.params.extent_m[2])
            parts_z.append(np.column_stack([wz - ez, wz + ez]))
        return (np.concatenate(parts_xy), np.concatenate(parts_yaw), np.concatenate(parts_half),
                np.concatenate(parts_z).reshape(-1, 2))

    def _free_z_array(self) -> np.ndarray:
        """Ground height of each free vehicle (fleet row order)."""
        return np.array([self._free_z.get(int(a), 0.0) for a in self.fleet.ids], dtype=float)

    def _update_free_z(self) -> None:
        """Free vehicles take the height of the lane level they are on (kept while off the lanes: farther than
        ``LANE_MATCH_M`` from any lane of their level)."""
        fleet = self.fleet
        if fleet.n == 0:
            return
        xy = np.stack([fleet.x_m, fleet.y_m], axis=1)
        z = self._free_z_array()
        lane, s_m = self._project_free(xy, fleet.yaw_rad, z)  # cached: the lane events ask the same on a level map
        near = lane >= 0
        if near.any():
            z[near] = self.lanes.interpolate(lane[near], s_m[near])[0][:, 2]
        for actor_id, height in zip(fleet.ids.tolist(), z.tolist()):
            self._free_z[int(actor_id)] = height

    def set_step(self, dt_s: float) -> None:
        """Step ``dt_s`` seconds per tick from the next tick on; the clock goes on from the current time.

        Vehicle dynamics are integrated in substeps of at most :attr:`max_substep_s` (None: one step per tick).
        """
        if not 0.0 < dt_s <= 1.0 or not math.isfinite(dt_s):
            raise ValueError(f"dt_s must be in (0, 1] seconds, got {dt_s!r}")
        if dt_s != self.dt_s:
            self._clock_origin = (self.frame, self.time_s)
            self.dt_s = float(dt_s)

    def continue_from_frame(self, frame: int) -> None:
        """Number this world's ticks on from ``frame`` (a new episode of a server), with its time still at 0."""
        self.frame = int(frame)
        self._clock_origin = (self.frame, self.time_s)
        self._snapshot = self._build_snapshot(self._last_events)

    def tick(self) -> WorldSnapshot:
        """Advance one fixed step of ``dt_s`` and return the new snapshot."""
        if self._closed:
            raise RuntimeError("this EmbeddedWorld is closed")
        dt = self.dt_s
        self.frame += 1
        origin_frame, origin_s = self._clock_origin
        self.time_s = origin_s + (self.frame - origin_frame) * dt
        light_state = self.lights.update(self.time_s)
        self.light_state = light_state
        traffic, fleet = self.traffic, self.fleet
        nt, nf = traffic.n, fleet.n
        walkers = self._walkers
        nw = 0 if walkers is None else walkers.location_xyz.shape[0]
        static = self._static_arrays()

        # Everyone's state as of the last tick (gathered once per tick, reused here).
        state = self._last_state if self._last_state is not None else self._gather()
        nv = nt + nf
        vehicles_xy = state["location"][:nv, :2]
        vehicles_vel = state["velocity"][:nv, :2]
        vehicles_yaw = state["yaw"][:nv]
        # Free vehicles on the lane graph (for NPCs' car following and for events).
        fxy = vehicles_xy[nt:]
        f_vel = vehicles_vel[nt:]
        f_lane, f_s = self._project_free(fxy, fleet.yaw_rad, state["location"][nt:nv, 2])
        if nt and nf:
            # NPCs follow a free vehicle in their lane only if its body is in the lane (a van parked at the
            # kerb beside it is no leader: their corridor check still sees anything that sticks out)
            f_lane = self._in_lane(f_lane, fxy, fleet.yaw_rad, fleet.extent_m[:, 1], state["location"][nt:nv, 2])
        if nt:
            c_lane, c_s = (self._walkers_on_lanes(walkers.edge[walkers.on_road]) if nw and walkers.on_road.any()
                           else (np.zeros(0, np.int64), np.zeros(0)))
            traffic.step(dt, light_state, Obstacles(f_lane, f_s, np.hypot(f_vel[:, 0], f_vel[:, 1]),
                                                    fleet.extent_m[:, 0], fxy, fleet.yaw_rad, f_vel,
                                                    fleet.extent_m[:, :2], c_lane, c_s, state["location"][nt:nv, 2]))
            self._relieve_gridlock()
        if nw:
            walkers.step(dt, self._lane_light_states(light_state), vehicles_xy, vehicles_vel, vehicles_yaw,
                         static["half_xy"][:nv])
        events: list[Event] = []
        if nf:
            prev_xy = fxy
            prev_yaw = fleet.yaw_rad.copy()
            c = self._controls
            controls = ControlArrays(c[:, 0], c[:, 1], c[:, 2], c[:, 3] > 0.5, c[:, 4] > 0.5)
            substeps = 1 if self.max_substep_s is None else max(1, math.ceil(dt / self.max_substep_s - 1e-9))
            for _ in range(substeps):
                fleet.step(controls, dt / substeps)
            self._static_layout_collisions(prev_xy, prev_yaw, events)
            self._update_free_z()
        state = self._gather()
        if self._actor_collisions(static, state, events):
            state = self._gather()  # collision responses changed velocities
        self._last_state = state
        if nf:
            self._lane_events(f_lane, events)
        self._last_events = tuple(events)
        self._snapshot = self._build_snapshot(self._last_events, state)
        return self._snapshot

    def _lane_light_states(self, light_state: np.ndarray) -> np.ndarray:
        """State of the light at the end of every lane (-1: none); recomputed only when lights change."""
        if self._lane_state_source is not light_state:
            lane_light = self.signals.lane_light
            if light_state.size:
                self._lane_state = np.where(lane_light >= 0, light_state[np.maximum(lane_light, 0)], -1).astype(np.int8)
            else:
                self._lane_state = np.full(lane_light.shape, -1, dtype=np.int8)
            self._lane_state_source = light_state
        return self._lane_state

    @cached_property
    def crossing_obstacles(self) -> tuple[np.ndarray, np.ndarray]:
        """Per walker-network edge (E, C): the lanes a crossing cuts and the arc length where it cuts each."""
        network = self.walker_network
        lanes = self.lanes
        crossed = network.edge_crossed_lanes
        where = np.full(crossed.shape, np.nan)
        for edge, lane_col in zip(*np.nonzero(crossed >= 0)):
            lane = int(crossed[edge, lane_col])
            lane_xy = lanes.lane_points(lane)[:, :2]
            edge_xy = network.edge_points(int(edge))[:, :2]
            gaps = np.linalg.norm(lane_xy[:, None, :] - edge_xy[None, :, :], axis=2)
            where[edge, lane_col] = lanes.s_m[lanes.offset[lane] + np.unravel_index(np.argmin(gaps), gaps.shape)[0]]
        return np.where(np.isnan(where), -1, crossed), where

    def _walkers_on_lanes(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pedestrians on crossings as obstacles in lane coordinates.

        A pedestrian on a crossing (marked or not) stands, for NPC drivers, on
        every lane the crossing cuts, where it cuts it: drivers yield until the
        crossing is clear, on curves and inside junctions as well.
        """
        crossed, where = self.crossing_obstacles
        lanes = crossed[edges]
        ok = lanes >= 0
        return lanes[ok], where[edges][ok]

    def _relieve_gridlock(self) -> None:
        """Move NPCs stuck longer than ``stuck_timeout_s`` to free spawn points.

        Vehicles with a role name (the hero) are never moved, and nothing
        appears within 30 m of them or of a free vehicle.
        """
        timeout = self.config.traffic.stuck_timeout_s
        traffic = self.traffic
        if timeout is None or not (traffic.stuck_s > timeout).any():
            return
        named = np.array([bool(self.actors[int(a)].role_name) for a in traffic.actor_id])
        watched = np.concatenate([np.stack([self.fleet.x_m, self.fleet.y_m], axis=1),
                                  traffic.location_xyz[named, :2]])
        for row in np.flatnonzero((traffic.stuck_s > timeout) & ~named).tolist():
            actor_id = int(traffic.actor_id[row])
            half = (float(traffic.half_length_m[row]), float(traffic.half_width_m[row]))
            for index in self.rng.permutation(len(self.spawn_points))[:50]:
                point = self.spawn_points[int(index)]
                p = point.pose
                far = watched.shape[0] == 0 or np.min(np.hypot(watched[:, 0] - p.x_m, watched[:, 1] - p.y_m)) > 30.0
                if far and not self._occupied(p.x_m, p.y_m, p.yaw_rad, half, 1.5, p.z_m):
                    traffic.relocate(actor_id, point.lane, point.s_m)
                    self.relocations += 1
                    break

    # ------------------------------------------------------------------ collisions and events
    def _static_layout_collisions(self, prev_xy: np.ndarray, prev_yaw: np.ndarray, events: list[Event]) -> None:
        """Kerb response of free vehicles whose box reaches off the road network (kerbs, buildings), read on
        :attr:`kerb_raster`.

        The move of the tick is swept in steps of at most ``_SWEEP_STEP_M`` of
        corner travel, so a fast car cannot pass through a wall between two
        ticks. At the first swept pose that touches (``touches_static``), the
        car is pushed back out along the contact normal (towards the nearest
        ground of the road network) and loses the part of its velocity into
        the kerb plus Coulomb friction along it; if it cannot be pushed out it
        goes back to the last free pose of the sweep and stops. Rotation is
        kept, so steering away and driving on, or reversing, frees the car. A
        :class:`CollisionEvent` (other id -1) opens each contact episode, which
        ends after ``STATIC_RELEASE_S`` free of the static layout.
        """
        fleet = self.fleet
        raster = self.kerb_raster
        n = fleet.n
        new_xy = np.stack([fleet.x_m, fleet.y_m], axis=1)
        new_yaw = fleet.yaw_rad
        half = fleet.extent_m[:, :2]
        turn = (new_yaw - prev_yaw + math.pi) % (2.0 * math.pi) - math.pi
        travel = np.hypot(*(new_xy - prev_xy).T) + np.abs(turn) * np.hypot(half[:, 0], half[:, 1])
        steps = np.clip(np.ceil(travel / _SWEEP_STEP_M), 1, _MAX_SWEEP_STEPS).astype(np.int64)
        # Fractions 0 (the pose the tick started from), ..., 1 (the new pose) per vehicle; padded with 1.
        k = np.arange(int(steps.max()) + 1)
        frac = np.minimum(k[None, :] / steps[:, None], 1.0)
        sweep_xy = prev_xy[:, None, :] + frac[:, :, None] * (new_xy - prev_xy)[:, None, :]
        sweep_yaw = prev_yaw[:, None] + frac * turn[:, None]
        m = frac.shape[1]
        corners = box_corners(sweep_xy.reshape(-1, 2), sweep_yaw.reshape(-1),
                              np.repeat(half, m, axis=0)).reshape(-1, 2)
        z = self._free_z_array()  # the level each car is on (a bridge's edge is a kerb, the road below is not)
        # One lookup: swept corners, then centres.
        classes = raster.lookup(np.concatenate([corners, new_xy]), np.concatenate([np.repeat(z, 4 * m), z]))
        touch = touches_static(classes[: 4 * n * m].reshape(n * m, 4)).reshape(n, m)
        state = self._fleet_state
        start_free = ~touch[:, 0]
        # A vehicle that starts inside the static layout (spawned or teleported there) drives out unhindered.
        hit_rows = np.flatnonzero(start_free & touch[:, 1:].any(axis=1))
        contact = np.zeros(n, dtype=bool)
        contact[hit_rows] = True
        velocity = fleet.velocity_world()
        for row in hit_rows.tolist():
            first = int(np.argmax(touch[row, 1:])) + 1
            pose = (sweep_xy[row, first], float(sweep_yaw[row, first]))
            pushed = self._push_out(pose[0], pose[1], half[row], float(z[row]))
            v = velocity[row]
            if pushed is not None:
                xy, normal = pushed
                into = float(np.dot(v, normal))
                v_new = v - min(into, 0.0) * normal
                tangent = v_new - float(np.dot(v_new, normal)) * normal
                speed_t = float(np.hypot(*tangent))
                if speed_t > 1e-9:  # friction along the kerb: at most KERB_FRICTION x the normal impulse
                    v_new = v_new - tangent * min(1.0, KERB_FRICTION * max(-into, 0.0) / speed_t)
            else:
                xy, v_new = sweep_xy[row, first - 1], np.zeros(2)
                pose = (xy, float(sweep_yaw[row, first - 1]))
            heading = np.array([math.cos(pose[1]), math.sin(pose[1])])
            fleet.set_state([row], x_m=float(xy[0]), y_m=float(xy[1]), yaw_rad=pose[1],
                            speed_mps=float(np.dot(v_new, heading)))
            if not state.touching_static[row]:
                info = self.actors[int(fleet.ids[row])]
                mass = info.vehicle_type.mass_kg
                impulse = mass * (v_new - v)  # what the kerb did to the car's momentum
                events.append(CollisionEvent(self.frame, info.actor_id, -1, "static",
                                             (float(impulse[0]), float(impulse[1]), 0.0),
                                             (float(xy[0]), float(xy[1]), 0.0)))
        state.static_free_s[:] = np.where(contact, 0.0, state.static_free_s + self.dt_s)
        state.touching_static[:] = contact | (state.touching_static & (state.static_free_s < STATIC_RELEASE_S))
        centre = np.stack([fleet.x_m, fleet.y_m], axis=1)
        off = off_road(raster.lookup(centre, z) if hit_rows.size else classes[4 * n * m:])
        events += off_road_events(self.frame, fleet.ids, centre, off, state.off_road)
        state.off_road[:] = off

    def _push_out(self, xy: np.ndarray, yaw: float, half: np.ndarray, z_m: float
                  ) -> tuple[np.ndarray, np.ndarray] | None:
        """A box at ``xy``/``yaw`` (on the level at height ``z_m``) touching the static layout, translated out of it.

        Returns the new centre and the unit contact normal (pointing out of the
        static layout), or None if a few pushes towards the nearest ground of
        the road network do not free every corner (a gap narrower than the car).
        """
        raster = self.kerb_raster
        res = raster.resolution_m
        reach = int(math.ceil(_PUSH_REACH_M / res))
        offsets = np.stack(np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1)), -1).reshape(-1, 2)
        centre = np.asarray(xy, dtype=float).copy()
        total = np.zeros(2)
        for _ in range(4):
            corners = box_corners(centre[None, :], np.array([yaw]), half[None, :]).reshape(4, 2)
            inside = on_static(raster.lookup(corners, np.full(4, z_m)))
            if not inside.any():
                norm = float(np.hypot(*total))
                return (centre, total / norm) if norm > 0 else None
            push = np.zeros(2)
            for corner in corners[inside]:
                # Centres of the cells around the corner's cell (col, row), read on the car's level.
                cells = (np.floor((corner - raster.origin_xy) / res) + offsets + 0.5) * res + raster.origin_xy
                cells = cells[~on_static(raster.lookup(cells, np.full(cells.shape[0], z_m)))]
                if cells.shape[0] == 0:
                    return None
                gap = cells - corner
                nearest = gap[int(np.argmin(np.einsum("ij,ij->i", gap, gap)))]
                if float(np.dot(nearest, nearest)) > float(np.dot(push, push)):
                    push = nearest
            centre = centre + push
            total = total + push
        return None

    def _actor_collisions(self, static: dict, state: dict[str, np.ndarray], events: list[Event]) -> bool:
        """Oriented-box contacts among all actors (walker-walker ignored); returns whether any was found."""
        xy = state["location"][:, :2]
        if xy.shape[0] < 2:
            return False
        # Height intervals: vehicles stand on their location, walkers' locations are their box centres.
        bottom = state["location"][:, 2] - static["z_below"]
        z_range = np.column_stack([bottom, bottom + static["height"]])
        pairs = self._broad_phase.pairs(xy, static["radius"], z_range)
        is_walker = static["is_walker"]
        pairs = pairs[~(is_walker[pairs[:, 0]] & is_walker[pairs[:, 1]])]  # pedestrians pass each other
        if pairs.shape[0] == 0:
            return False
        contacts = find_contacts(xy, state["yaw"], static["half_xy"], pairs)  # pairs apart in height are gone
        if len(contacts) == 0:
            return False
        kind = static["kind"]
        ids = static["actor_id"]
        vel = state["velocity"][:, :2]
        nt = self.traffic.n
        nf = self.fleet.n
        for (i, j), normal in zip(contacts.pairs.tolist(), contacts.normal_xy):
            mi, mj = self._mass(int(ids[i])), self._mass(int(ids[j]))
            closing = float(np.dot(vel[i] - vel[j], normal))
            impulse = max(closing, 0.0) * mi * mj / (mi + mj)
            where = (float((xy[i, 0] + xy[j, 0]) / 2), float((xy[i, 1] + xy[j, 1]) / 2),
                     float(max(z_range[i, 0], z_range[j, 0])))
            for a, b, sign in ((i, j, -1.0), (j, i, 1.0)):
                other_kind = "walker" if kind[b] == ActorKind.WALKER else "vehicle"
                events.append(CollisionEvent(self.frame, int(ids[a]), int(ids[b]), other_kind,
                                             (sign * impulse * normal[0], sign * impulse * normal[1], 0.0), where))
            for a, sign, m in ((i, -1.0, mi), (j, 1.0, mj)):
                if a < nt:
                    self.traffic.speed_mps[a] = 0.0
                elif a < nt + nf and impulse > 0:
                    row = a - nt
                    dv = sign * impulse / m * normal
                    v_world = self.fleet.velocity_world()[row] + dv
                    heading = np.array([math.cos(self.fleet.yaw_rad[row]), math.sin(self.fleet.yaw_rad[row])])
                    self.fleet.set_state([row], speed_mps=float(np.dot(v_world, heading)))
        return True

    def _mass(self, actor_id: int) -> float:
        info = self.actors[actor_id]
        return info.vehicle_type.mass_kg if info.vehicle_type is not None else WALKER_MASS_KG

    def _in_lane(self, lane: np.ndarray, xy: np.ndarray, yaw: np.ndarray, half_width: np.ndarray,
                 z: np.ndarray, overlap_m: float = 0.5) -> np.ndarray:
        """``lane`` with -1 where the vehicle's body overlaps its lane by less than ``overlap_m``."""
        on = np.flatnonzero(lane >= 0)
        if on.size == 0:
            return lane
        _, _, dist = self.lanes.project(xy[on], yaw[on], z_m=z[on])
        lane_half = 0.5 * self.lanes.width_m[self.lanes.offset[lane[on]]]
        out = lane.copy()
        out[on[dist - half_width[on] > lane_half - overlap_m]] = -1
        return out

    def _project_free(self, xy: np.ndarray, yaw: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lane (-1: off the lanes) and arc length of free vehicles (at ground heights ``z``: the lane level
        they are on), reusing the last answer for the same poses.

        The end of one tick and the start of the next ask about the same poses.
        """
        cached = self._projection
        if cached is not None and cached[0].shape == xy.shape and np.array_equal(cached[0], xy) \
                and np.array_equal(cached[1], yaw) and np.array_equal(cached[4], z):
            return cached[2], cached[3]
        lane, s_m = project_to_lanes(self.lanes, xy, yaw, z)
        self._projection = (xy.copy(), yaw.copy(), lane, s_m, np.array(z, dtype=float))
        return lane, s_m

    def _lane_events(self, previous_lane: np.ndarray, events: list[Event]) -> None:
        """Lane invasion, red-light and stop-sign events of free vehicles."""
        fleet, lanes, state = self.fleet, self.lanes, self._fleet_state
        xy = np.stack([fleet.x_m, fleet.y_m], axis=1)
        lane, s_m = self._project_free(xy, fleet.yaw_rad, self._free_z_array())
        speed = np.hypot(*fleet.velocity_world().T)
        signals = self.signals
        for row in range(fleet.n):
            rule = LaneRuleState(int(state.lane[row]), float(state.s_m[row]), bool(state.stopped[row]))
            events += junction_events(self.frame, int(fleet.ids[row]), rule, int(lane[row]), float(s_m[row]),
                                      float(speed[row]), (float(xy[row, 0]), float(xy[row, 1]), 0.0), lanes, signals,
                                      self.light_state)
            state.lane[row], state.s_m[row], state.stopped[row] = rule.lane, rule.s_m, rule.stopped
        # Lane invasion: a corner's nearest lane sample switches to a laterally adjacent lane.
        corners = box_corners(xy, fleet.yaw_rad, fleet.extent_m[:, :2]).reshape(-1, 2)
        _, rows = lanes.kdtree.query(corners)
        rows = rows.reshape(-1, 4)
        for row in range(fleet.n):
            crossed: list[str] = []
            for c in range(4):
                prev_row = int(state.corner_sample[row, c])
                new_row = int(rows[row, c])
                if prev_row < 0:
                    continue
                a, b = int(lanes.sample_lane[prev_row]), int(lanes.sample_lane[new_row])
                if a == b or lanes.is_junction[a] or lanes.is_junction[b] or b in lanes.successors[a] \
                        or a in lanes.successors[b]:
                    continue
                yaw = lanes.yaw_rad[prev_row]
                offset = corners[row * 4 + c] - lanes.points_xyz[prev_row, :2]
                right = offset[0] * -math.sin(yaw) + offset[1] * math.cos(yaw) > 0
                marking = lanes.right_marking[prev_row] if right else lanes.left_marking[prev_row]
                name = MARKING_NAMES[int(marking)]
                if name not in crossed:
                    crossed.append(name)
            if crossed:
                events.append(LaneInvasionEvent(self.frame, int(fleet.ids[row]), tuple(crossed),
                                                (float(xy[row, 0]), float(xy[row, 1]), 0.0)))
        state.corner_sample[:] = rows

    # ------------------------------------------------------------------ snapshots
    def _static_arrays(self) -> dict:
        if not self._structure_dirty:
            return self._static
        ids = np.concatenate([self.traffic.actor_id, self.fleet.ids,
                              self._walkers.actor_id if self._walkers is not None else np.zeros(0, np.int64)])
        infos = [self.actors[int(a)] for a in ids.tolist()]
        nt = self.traffic.n
        self_row = np.full(ids.shape[0], -1, dtype=np.int64)
        self_row[:nt] = np.arange(nt)
        extent = np.array([i.extent_m for i in infos], dtype=float).reshape(-1, 3)
        kind = np.array([int(i.kind) for i in infos], dtype=np.int8)
        autopilot = np.zeros(ids.shape[0], dtype=bool)
        autopilot[:nt] = True
        self._static = dict(
            actor_id=ids, kind=kind, type_id=tuple(i.type_id for i in infos),
            semantic_tag=np.array([i.semantic_tag for i in infos], dtype=np.uint8), extent=extent,
            half_xy=extent[:, :2].copy(), radius=np.hypot(extent[:, 0], extent[:, 1]),
            is_walker=kind == ActorKind.WALKER, self_row=self_row, autopilot=autopilot,
            z_below=np.where(kind == ActorKind.WALKER, extent[:, 2], 0.0), height=2.0 * extent[:, 2],
        )
        for key in ("actor_id", "kind", "semantic_tag", "extent", "autopilot"):
            self._static[key].flags.writeable = False
        self._structure_dirty = False
        return self._static

    def _gather(self) -> dict[str, np.ndarray]:
        """Per-actor state arrays in snapshot order (NPCs, free vehicles, walkers)."""
        traffic, fleet, walkers = self.traffic, self.fleet, self._walkers
        nf = fleet.n
        f_loc = np.zeros((nf, 3))
        f_loc[:, 0] = fleet.x_m
        f_loc[:, 1] = fleet.y_m
        f_loc[:, 2] = self._free_z_array()
        f_vel = np.zeros((nf, 3))
        f_vel[:, :2] = fleet.velocity_world()
        f_acc = np.zeros((nf, 3))
        f_acc[:, :2] = fleet.acceleration_world()
        loc = [traffic.location_xyz, f_loc]
        yaw = [traffic.yaw_rad, fleet.yaw_rad]
        vel = [traffic.velocity_xyz, f_vel]
        acc = [traffic.acceleration_xyz, f_acc]
        yaw_rate = [traffic.yaw_rate_rad_s, fleet.yaw_rate_rad_s]
        if walkers is not None:
            nw = walkers.location_xyz.shape[0]
            loc.append(walkers.location_xyz)
            yaw.append(walkers.yaw_rad)
            vel.append(walkers.velocity_xyz)
            acc.append(np.zeros((nw, 3)))
            yaw_rate.append(np.zeros(nw))
        yaw_all = np.concatenate(yaw)
        rotation = np.zeros((yaw_all.shape[0], 3))
        rotation[:, 1] = yaw_all
        angular = np.zeros((yaw_all.shape[0], 3))
        angular[:, 2] = np.concatenate(yaw_rate)
        return dict(location=np.concatenate(loc), yaw=yaw_all, rotation=rotation, velocity=np.concatenate(vel),
                    acceleration=np.concatenate(acc), angular=angular)

    def _build_snapshot(self, events: tuple[Event, ...], state: dict[str, np.ndarray] | None = None
                        ) -> WorldSnapshot:
        static = self._static_arrays()
        state = state or self._gather()
        signals = self.signals
        return WorldSnapshot(
            frame=self.frame, timestamp_s=self.time_s, dt_s=self.dt_s, actor_id=static["actor_id"],
            kind=static["kind"], type_id=static["type_id"], semantic_tag=static["semantic_tag"],
            location_m=state["location"], rotation_rad=state["rotation"], velocity_mps=state["velocity"],
            acceleration_mps2=state["acceleration"], angular_velocity_rad_s=state["angular"],
            extent_m=static["extent"], autopilot=static["autopilot"], light_id=signals.light_id,
            light_state=self.light_state.copy(), light_location_m=signals.location_xyz,
            light_junction_id=signals.junction_id, events=events,
        )

    def snapshot(self) -> WorldSnapshot:
        """The latest snapshot (after the last tick or the last change of actors)."""
        if self._structure_dirty:
            self._snapshot = self._build_snapshot(self._last_events)
        return self._snapshot


@dataclass
class _FleetEventState:
    """Per free-vehicle memory for events: lane, corner samples, off-road and stop flags."""

    lane: np.ndarray
    s_m: np.ndarray
    corner_sample: np.ndarray
    off_road: np.ndarray
    touching_static: np.ndarray  # in a contact episode with the static layout (kerb, wall)
    stopped: np.ndarray
    static_free_s: np.ndarray  # time since the last contact with the static layout

    @classmethod
    def empty(cls) -> "_FleetEventState":
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4), np.int64), np.zeros(0, bool),
                   np.zeros(0, bool), np.zeros(0, bool), np.zeros(0))

    def appended(self) -> "_FleetEventState":
        return _FleetEventState(np.append(self.lane, -1), np.append(self.s_m, 0.0),
                                np.vstack([self.corner_sample, np.full((1, 4), -1)]), np.append(self.off_road, False),
                                np.append(self.touching_static, False), np.append(self.stopped, False),
                                np.append(self.static_free_s, np.inf))

    def subset(self, keep: np.ndarray) -> "_FleetEventState":
        return _FleetEventState(self.lane[keep], self.s_m[keep], self.corner_sample[keep], self.off_road[keep],
                                self.touching_static[keep], self.stopped[keep], self.static_free_s[keep])
