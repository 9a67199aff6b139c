"""The level's objects over RPC: ``get_level_bbs``, ``get_environment_objects`` and ``project_point`` (downwards).

They know the buildings (of the map's static town layout,
:class:`~sim.embedded.sensors.town.TownLayout`, built on first use: the same
buildings the sensors see, without Open3D) and the traffic-light poles (and,
for level boxes, the vehicles and walkers), not smaller props.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sim.api import ActorKind
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import Transform
from sim.carla_server.state import BUILDING_LABEL, TRAFFIC_LIGHT_LABEL, ServerState, UnsupportedError
from sim.maps.geometry import AreaClass

ROADS_LABEL, SIDEWALKS_LABEL, TERRAIN_LABEL = 1, 2, 10
"""``carla.CityObjectLabel`` Roads, Sidewalks and Terrain."""

__all__ = ["LevelHandlers"]


class LevelHandlers:
    """The level-object RPCs of one server."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        return {
            "get_all_level_BBs": lambda tag=enc.ANY_LABEL: enc.ok([box for box, _ in self.level_boxes(int(tag))]),
            "get_environment_objects": self.environment_objects,
            "project_point": self.project_point,
        }

    def project_point(self, location: list, direction: list, search_distance: float) -> list:
        """``World.ground_projection`` (``project_point`` straight down): the ground under ``location``.

        The ground is the map's surface (its nearest lane, any lane type, gives the height), labelled Roads on the
        driving area, Sidewalks on a sidewalk and Terrain elsewhere; ``(false, ...)`` when it lies more than
        ``search_distance`` below (or above) the point. Level objects (buildings, poles) are not hit. Other
        directions are not supported (CARLA casts them against the rendered scene).
        """
        import carla  # the offline map's own types

        x, y, z = (float(v) for v in location)
        dx, dy, dz = (float(v) for v in direction)
        norm = math.sqrt(dx * dx + dy * dy + dz * dz)
        if norm == 0.0 or dz / norm > -0.999:
            raise UnsupportedError("project_point: only straight down (World.ground_projection) is supported, "
                                   f"got direction {[dx, dy, dz]}")
        world = self.state.world
        waypoint = world.carla_map.get_waypoint(carla.Location(x, y, z), project_to_road=True,
                                                lane_type=carla.LaneType.Any)
        ground_z = waypoint.transform.location.z if waypoint is not None else 0.0
        area = int(world.area_raster.lookup(np.array([[x, y]]), np.array([ground_z]))[0])
        label = {AreaClass.DRIVING: ROADS_LABEL, AreaClass.JUNCTION: ROADS_LABEL, AreaClass.CROSSWALK: ROADS_LABEL,
                 AreaClass.SIDEWALK: SIDEWALKS_LABEL}.get(AreaClass(area), TERRAIN_LABEL)
        hit = 0.0 <= z - ground_z <= float(search_distance)
        return enc.ok([hit, [[x, y, ground_z], label]])

    def building_boxes(self) -> list[tuple[list, Transform]]:
        """The map's buildings as (BoundingBox message, transform at the foot of the box) pairs."""
        out = []
        for x, y, z, hx, hy, hz, yaw in self.state.town_layout().building_boxes.tolist():
            transform = Transform(x, y, z - hz, 0.0, math.degrees(yaw), 0.0)
            out.append((enc.bounding_box_msg((x, y, z), (hx, hy, hz), rotation=(0.0, math.degrees(yaw), 0.0)),
                        transform))
        return out

    def level_boxes(self, label: int) -> list[tuple[list, Transform]]:
        """Boxes of the level: buildings (label 3), traffic-light poles (label 7), and the vehicles and walkers.

        ``label`` 255 (Any) gives all; props (poles, benches, trees) are not included.
        """
        world = self.state.world
        out = []
        if label in (enc.ANY_LABEL, BUILDING_LABEL):
            out += self.building_boxes()
        if label in (enc.ANY_LABEL, TRAFFIC_LIGHT_LABEL):
            for xyz in world.signals.location_xyz.tolist():
                centre = (xyz[0], xyz[1], xyz[2] + 2.5)
                out.append((enc.bounding_box_msg(centre, (0.3, 0.3, 2.5)), Transform(*xyz)))
        snapshot = world.snapshot()
        for row, actor_id in enumerate(snapshot.actor_id.tolist()):
            info = world.actors[int(actor_id)]
            if label not in (enc.ANY_LABEL, info.semantic_tag):
                continue
            where = Transform.from_arrays(snapshot.location_m[row], snapshot.rotation_rad[row])
            half = tuple(float(v) for v in info.extent_m)
            centre_z = where.z + (half[2] if info.kind == ActorKind.VEHICLE else 0.0)
            box = [[where.x, where.y, centre_z], list(half), [where.pitch, where.yaw, where.roll], int(actor_id)]
            out.append((box, where))
        return out

    def environment_objects(self, label: int = enc.ANY_LABEL) -> list:
        """The map's buildings and traffic-light poles as environment objects (props are not modelled as objects)."""
        objects = []
        if int(label) in (enc.ANY_LABEL, BUILDING_LABEL):
            for k, (box, transform) in enumerate(self.building_boxes()):
                objects.append(enc.environment_object_msg(transform, tuple(box[0]), tuple(box[1]), 100_000 + k,
                                                          f"Building_{k}", BUILDING_LABEL))
        if int(label) in (enc.ANY_LABEL, TRAFFIC_LIGHT_LABEL):
            for k, xyz in enumerate(self.state.world.signals.location_xyz.tolist()):
                objects.append(enc.environment_object_msg(Transform(*xyz), (xyz[0], xyz[1], xyz[2] + 2.5),
                                                          (0.3, 0.3, 2.5), k + 1, f"TrafficLight_{k}",
                                                          TRAFFIC_LIGHT_LABEL))
        return enc.ok(objects)
