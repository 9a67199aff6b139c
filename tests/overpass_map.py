"""A generated map with an overpass: a one-way figure-eight whose two straights cross 7 m apart in height.

The loop is two roads, each a straight then a 270-degree arc, joined through two tiny junctions.
Road 1's straight lies on the ground (z = 0) and its arc ramps up to the
bridge height; road 2's straight is the bridge (z = ``height_m``) crossing
road 1's straight at right angles over the origin, and its arc ramps back
down. There is no junction: the crossing is a bridge. Two driving lanes
(one direction) and a sidewalk on each side, so traffic spawns on one
connected loop and every lap passes both over and under the crossing.
"""

from __future__ import annotations

import math

from sim.maps.lanes import LaneGraph, build_lane_graph
from sim.maps.loader import MapSource, load_carla_map

BRIDGE_HEIGHT_M = 7.0
LANE_WIDTH_M = 3.5
SIDEWALK_WIDTH_M = 2.0
JOIN_M = 2.0
"""Length of the short junction roads that join the two loop roads."""


def _lanes_xml() -> str:
    def lane(lane_id: int, kind: str, width: float, mark: str) -> str:
        return (f'<lane id="{lane_id}" type="{kind}" level="false"><link><predecessor id="{lane_id}"/>'
                f'<successor id="{lane_id}"/></link>'
                f'<width sOffset="0" a="{width}" b="0" c="0" d="0"/>'
                f'<roadMark sOffset="0" type="{mark}" weight="standard" color="standard" width="0.15"/></lane>')

    return ('<lanes><laneSection s="0">'
            f'<left>{lane(1, "sidewalk", SIDEWALK_WIDTH_M, "none")}</left>'
            '<center><lane id="0" type="none" level="false"><roadMark sOffset="0" type="solid" weight="standard"'
            ' color="standard" width="0.15"/></lane></center>'
            f'<right>{lane(-1, "driving", LANE_WIDTH_M, "broken")}{lane(-2, "driving", LANE_WIDTH_M, "solid")}'
            f'{lane(-3, "sidewalk", SIDEWALK_WIDTH_M, "none")}</right>'
            '</laneSection></lanes>')


def _road_xml(road_id: int, links: str, x: float, y: float, hdg: float, straight_m: float, radius_m: float,
              turn: float, z0: float, z1: float, junction: int = -1) -> str:
    """A straight of ``straight_m`` at height ``z0``, then (if ``radius_m``) an arc (``turn`` = +1 left, -1 right)
    of 270 degrees ramping to ``z1``."""
    arc_m = 1.5 * math.pi * radius_m if radius_m else 0.0
    x1, y1 = x + straight_m * math.cos(hdg), y + straight_m * math.sin(hdg)
    geometry = f'<geometry s="0" x="{x:.9f}" y="{y:.9f}" hdg="{hdg:.12f}" length="{straight_m:.9f}"><line/></geometry>'
    elevation = f'<elevation s="0" a="{z0}" b="0" c="0" d="0"/>'
    if arc_m:
        geometry += (f'<geometry s="{straight_m:.9f}" x="{x1:.9f}" y="{y1:.9f}" hdg="{hdg:.12f}" length="{arc_m:.9f}">'
                     f'<arc curvature="{turn / radius_m:.12f}"/></geometry>')
        # Smooth ramp z0 -> z1 along the arc: a cubic with zero slope at both ends.
        rise = z1 - z0
        elevation += (f'<elevation s="{straight_m:.9f}" a="{z0}" b="0" c="{3.0 * rise / arc_m**2:.12e}" '
                      f'd="{-2.0 * rise / arc_m**3:.12e}"/>')
    return (f'<road name="road{road_id}" length="{straight_m + arc_m:.9f}" id="{road_id}" junction="{junction}">'
            f'<link>{links}</link><type s="0" type="town"><speed max="40" unit="km/h"/></type>'
            f'<planView>{geometry}</planView><elevationProfile>{elevation}</elevationProfile>'
            f'<lateralProfile/>{_lanes_xml()}</road>')


def _link(kind: str, element: str, element_id: int, contact: str | None = None) -> str:
    contact_xml = f' contactPoint="{contact}"' if contact else ""
    return f'<{kind} elementType="{element}" elementId="{element_id}"{contact_xml}/>'


def _junction_xml(junction_id: int, incoming: int, connecting: int) -> str:
    links = "".join(f'<laneLink from="{k}" to="{k}"/>' for k in (-1, -2, -3))
    return (f'<junction id="{junction_id}" name="join{junction_id}"><connection id="0" incomingRoad="{incoming}" '
            f'connectingRoad="{connecting}" contactPoint="start">{links}</connection></junction>')


def overpass_xodr(radius_m: float = 60.0, height_m: float = BRIDGE_HEIGHT_M) -> str:
    """The figure-eight's OpenDRIVE text (OpenDRIVE's frame: y to the left).

    Roads 1 and 2 are joined through one-connection junctions (roads 3 and 4,
    ``JOIN_M`` straights) at the ends of their arcs.
    """
    # Straights cross at the origin at right angles; each 270-degree arc closes the loop.
    a = radius_m / math.sqrt(2.0)
    straight = 2.0 * radius_m - JOIN_M
    step = JOIN_M / math.sqrt(2.0)
    roads = (
        _road_xml(1, _link("predecessor", "junction", 101) + _link("successor", "junction", 100),
                  -a + step, -a + step, math.pi / 4, straight, radius_m, +1.0, 0.0, height_m)
        + _road_xml(3, _link("predecessor", "road", 1, "end") + _link("successor", "road", 2, "start"),
                    -a, a, -math.pi / 4, JOIN_M, 0.0, 0.0, height_m, height_m, junction=100)
        + _road_xml(2, _link("predecessor", "junction", 100) + _link("successor", "junction", 101),
                    -a + step, a - step, -math.pi / 4, straight, radius_m, -1.0, height_m, 0.0)
        + _road_xml(4, _link("predecessor", "road", 2, "end") + _link("successor", "road", 1, "start"),
                    -a, -a, math.pi / 4, JOIN_M, 0.0, 0.0, 0.0, 0.0, junction=101)
    )
    return ('<?xml version="1.0" encoding="UTF-8"?><OpenDRIVE>'
            '<header revMajor="1" revMinor="4" name="overpass" version="1.00" north="0" south="0" east="0"'
            ' west="0"/>' + roads + _junction_xml(100, 1, 3) + _junction_xml(101, 2, 4) + '</OpenDRIVE>')


def overpass_source() -> MapSource:
    """The overpass map as a trusted map source."""
    return MapSource("overpass", overpass_xodr(), None, trusted=True)


def overpass_lanes() -> LaneGraph:
    """The overpass map's lane graph."""
    source = overpass_source()
    return build_lane_graph(load_carla_map(source), source.xodr_text)
