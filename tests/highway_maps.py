"""Generated maps for highway-town tests: a ring road, a town without sidewalks, a tiny town (OpenDRIVE text).

No CARLA town is needed: a ring road has no junctions and no sidewalks (like a
highway-only map), the sidewalk-free town has junctions but no pedestrian
network, and the tiny town has one junction and half a kilometre of lanes.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from scenariogeneration import xodr

from sim.maps.lanes import LaneGraph, build_lane_graph
from sim.maps.loader import MapSource, load_carla_map
from sim.maps.procedural import ProceduralTownConfig, generate_town


def ring_road_xodr(radius_m: float = 120.0, lanes_per_direction: int = 2, lane_width_m: float = 3.5) -> str:
    """A closed ring of two half-circle roads linked end to end: driving lanes only, no junction, no sidewalk."""
    odr = xodr.OpenDrive("ring")
    first, second = (xodr.create_road(xodr.Arc(1.0 / radius_m, angle=math.pi), road_id,
                                      left_lanes=lanes_per_direction, right_lanes=lanes_per_direction,
                                      lane_width=lane_width_m) for road_id in (1, 2))
    first.add_successor(xodr.ElementType.road, 2, xodr.ContactPoint.start)
    second.add_predecessor(xodr.ElementType.road, 1, xodr.ContactPoint.end)
    second.add_successor(xodr.ElementType.road, 1, xodr.ContactPoint.start)
    first.add_predecessor(xodr.ElementType.road, 2, xodr.ContactPoint.end)
    odr.add_road(first)
    odr.add_road(second)
    odr.adjust_roads_and_lanes()
    return ET.tostring(odr.get_element(), encoding="unicode")


NO_SIDEWALK_TOWN = ProceduralTownConfig(grid_rows=2, grid_cols=2, sidewalk_width_m=0.0, highway=True)
"""A 2x2 grid with a ring highway and no sidewalks anywhere: no pedestrian network."""

TINY_TOWN = ProceduralTownConfig(grid_rows=1, grid_cols=1, block_length_m=40.0)
"""One junction and its border loops: about 0.5 km of driving lanes."""


def town_xodr(config: ProceduralTownConfig) -> str:
    """The OpenDRIVE text of a procedural town."""
    return generate_town(config)


def lane_graph(name: str, text: str) -> LaneGraph:
    """The lane graph of a generated map's OpenDRIVE text."""
    source = MapSource(name, text, None, trusted=True)
    return build_lane_graph(load_carla_map(source), text)
