"""Tiny hand-written OpenDRIVE documents for map tests: just enough XML to describe one linking case.

Roads are straight lines or arcs with any number of lane sections; lanes have
a type, a (linear) width and lane links; roads link to roads (with a contact
point) or to junctions; junctions list connections with lane links. Nothing
here is clever: each test spells out the case it covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lane:
    """One lane of a lane section; ``width_m`` at the section start, ``width_end_m`` at its end (linear)."""

    id: int
    type: str = "driving"
    width_m: float = 3.5
    width_end_m: float | None = None
    predecessor: int | None = None
    successor: int | None = None


@dataclass(frozen=True)
class Section:
    """A lane section starting at ``s_m``, of length ``length_m`` (used for the width slope)."""

    s_m: float
    length_m: float
    lanes: tuple[Lane, ...]


@dataclass(frozen=True)
class Link:
    """A road's predecessor or successor: ``("road", id, "start"|"end")`` or ``("junction", id)``."""

    element_type: str
    element_id: int
    contact_point: str | None = None


@dataclass(frozen=True)
class Road:
    """A road along one line (``curvature`` 0) or arc from ``(x, y)`` heading ``hdg``."""

    id: int
    x: float
    y: float
    hdg: float
    length_m: float
    sections: tuple[Section, ...]
    curvature: float = 0.0
    junction: int = -1
    predecessor: Link | None = None
    successor: Link | None = None
    elevation_m: float = 0.0
    centre_mark: bool = True

    def end(self) -> tuple[float, float, float]:
        """(x, y, hdg) at the road's end."""
        return arc_end(self.x, self.y, self.hdg, self.curvature, self.length_m)


@dataclass(frozen=True)
class Connection:
    """A junction connection: ``incoming`` road, ``connecting`` road, contact point, lane links (from, to)."""

    id: int
    incoming: int
    connecting: int
    contact_point: str
    lane_links: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Junction:
    """A junction and its connections."""

    id: int
    connections: tuple[Connection, ...] = field(default_factory=tuple)


def arc_end(x: float, y: float, hdg: float, curvature: float, length_m: float) -> tuple[float, float, float]:
    """End point and heading of a line (curvature 0) or arc."""
    if abs(curvature) < 1e-12:
        return x + length_m * math.cos(hdg), y + length_m * math.sin(hdg), hdg
    end_hdg = hdg + curvature * length_m
    return (x + (math.sin(end_hdg) - math.sin(hdg)) / curvature,
            y - (math.cos(end_hdg) - math.cos(hdg)) / curvature, end_hdg)


def two_way(right: int = 1, left: int = 1, width_m: float = 3.5, sidewalk_m: float = 0.0,
            linked: bool = True) -> tuple[Lane, ...]:
    """Lanes of a plain two-way road: ``right`` lanes -1.., ``left`` lanes 1.., optional outer sidewalks.

    ``linked`` gives every lane a predecessor and successor of the same id.
    """
    def lane(i: int, kind: str = "driving", w: float = width_m) -> Lane:
        return Lane(i, kind, w, None, i if linked else None, i if linked else None)

    lanes = [lane(-i) for i in range(1, right + 1)] + [lane(i) for i in range(1, left + 1)]
    if sidewalk_m > 0:
        lanes += [lane(-(right + 1), "sidewalk", sidewalk_m), lane(left + 1, "sidewalk", sidewalk_m)]
    return tuple(lanes)


def _lane_xml(lane: Lane, section_length_m: float) -> str:
    links = ""
    if lane.predecessor is not None:
        links += f'<predecessor id="{lane.predecessor}"/>'
    if lane.successor is not None:
        links += f'<successor id="{lane.successor}"/>'
    slope = 0.0
    if lane.width_end_m is not None and section_length_m > 0:
        slope = (lane.width_end_m - lane.width_m) / section_length_m
    mark = '<roadMark sOffset="0" type="broken" weight="standard" color="standard" width="0.12"/>'
    return (f'<lane id="{lane.id}" type="{lane.type}" level="false"><link>{links}</link>'
            f'<width sOffset="0" a="{lane.width_m}" b="{slope}" c="0" d="0"/>{mark}</lane>')


def _link_xml(tag: str, link: Link | None) -> str:
    if link is None:
        return ""
    contact = f' contactPoint="{link.contact_point}"' if link.contact_point else ""
    return f'<{tag} elementType="{link.element_type}" elementId="{link.element_id}"{contact}/>'


def road_xml(road: Road) -> str:
    """One ``<road>`` element."""
    centre_mark = '<roadMark sOffset="0" type="solid" weight="standard" color="standard" width="0.12"/>'
    shape = "<line/>" if road.curvature == 0 else f'<arc curvature="{road.curvature!r}"/>'
    sections = []
    for section in road.sections:
        left = "".join(_lane_xml(lane, section.length_m)
                       for lane in sorted((ln for ln in section.lanes if ln.id > 0), key=lambda ln: ln.id))
        right = "".join(_lane_xml(lane, section.length_m)
                        for lane in sorted((ln for ln in section.lanes if ln.id < 0), key=lambda ln: -ln.id))
        sections.append(
            f'<laneSection s="{section.s_m!r}">' + (f"<left>{left}</left>" if left else "")
            + '<center><lane id="0" type="none" level="false">' + (centre_mark if road.centre_mark else "")
            + "</lane></center>"
            + (f"<right>{right}</right>" if right else "") + "</laneSection>")
    return (f'<road name="r{road.id}" length="{road.length_m!r}" id="{road.id}" junction="{road.junction}">'
            f'<link>{_link_xml("predecessor", road.predecessor)}{_link_xml("successor", road.successor)}</link>'
            '<type s="0" type="town"><speed max="50" unit="km/h"/></type>'
            f'<planView><geometry s="0" x="{road.x!r}" y="{road.y!r}" hdg="{road.hdg!r}" '
            f'length="{road.length_m!r}">{shape}</geometry></planView>'
            f'<elevationProfile><elevation s="0" a="{road.elevation_m}" b="0" c="0" d="0"/></elevationProfile>'
            f'<lanes>{"".join(sections)}</lanes></road>')


def junction_xml(junction: Junction) -> str:
    """One ``<junction>`` element."""
    body = "".join(
        f'<connection id="{c.id}" incomingRoad="{c.incoming}" connectingRoad="{c.connecting}" '
        f'contactPoint="{c.contact_point}">' + "".join(f'<laneLink from="{a}" to="{b}"/>' for a, b in c.lane_links)
        + "</connection>" for c in junction.connections)
    return f'<junction id="{junction.id}" name="j{junction.id}">{body}</junction>'


def document(roads: list[Road], junctions: list[Junction] = ()) -> str:
    """A complete OpenDRIVE 1.4 document."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<OpenDRIVE><header revMajor="1" revMinor="4" name="test" '
            'version="1" north="0" south="0" east="0" west="0">'
            '<geoReference><![CDATA[+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m]]>'
            '</geoReference></header>'
            + "".join(road_xml(r) for r in roads) + "".join(junction_xml(j) for j in junctions) + "</OpenDRIVE>")


def one_section(length_m: float, lanes: tuple[Lane, ...]) -> tuple[Section, ...]:
    """A single lane section covering the whole road."""
    return (Section(0.0, length_m, lanes),)


def ring(connector_m: float, radius_m: float = 40.0, sidewalk_m: float = 2.0) -> str:
    """A two-way ring of two half-circle roads joined by two junctions of one straight connecting road each.

    ``connector_m`` is the connecting roads' length: 0.0005 m gives the degenerate
    junction lanes (one-point polylines) some real towns contain.
    """
    half = math.pi * radius_m
    lanes = two_way(sidewalk_m=sidewalk_m, linked=False)
    road1 = Road(1, radius_m, 0.0, math.pi / 2, half, one_section(half, lanes), curvature=1 / radius_m,
                 predecessor=Link("junction", 200), successor=Link("junction", 100))
    x, y, hdg = road1.end()
    conn3 = Road(3, x, y, hdg, connector_m, one_section(connector_m, two_way(sidewalk_m=sidewalk_m)), junction=100,
                 predecessor=Link("road", 1, "end"), successor=Link("road", 2, "start"))
    x, y, hdg = conn3.end()
    road2 = Road(2, x, y, hdg, half, one_section(half, lanes), curvature=1 / radius_m,
                 predecessor=Link("junction", 100), successor=Link("junction", 200))
    x, y, hdg = road2.end()
    conn4 = Road(4, x, y, hdg, connector_m, one_section(connector_m, two_way(sidewalk_m=sidewalk_m)), junction=200,
                 predecessor=Link("road", 2, "end"), successor=Link("road", 1, "start"))
    side = sidewalk_m > 0
    forward = ((-1, -1), (-2, -2)) if side else ((-1, -1),)
    backward = ((1, 1), (2, 2)) if side else ((1, 1),)
    junctions = [
        Junction(100, (Connection(0, 1, 3, "start", forward), Connection(1, 2, 3, "end", backward))),
        Junction(200, (Connection(0, 2, 4, "start", forward), Connection(1, 1, 4, "end", backward))),
    ]
    return document([road1, road2, conn3, conn4], junctions)


def stadium(reverse: frozenset[int] = frozenset(), split: frozenset[int] = frozenset(), merge: bool = False,
            taper: bool = False, short_section_m: float | None = None, extra_lane_type: str | None = None,
            radius_m: float = 40.0, straight_m: float = 40.0) -> str:
    """A two-way stadium loop of four roads (half circle, straight, half circle, straight) linked end to end.

    No junctions: each road names its neighbours as predecessor and successor
    with a contact point. ``reverse`` lists roads (1-4) whose reference line
    runs against the loop, so their links use contact point ``end`` and their
    lane ids flip sign along the loop. ``split`` lists roads cut into two lane
    sections half-way. ``merge`` gives road 2 two lanes along the loop in its
    first section (the previous road's lane splits into both) that merge into
    one in its second section. ``taper`` gives road 2 (not reversed) a second
    section with an extra lane -2 that widens from nothing and ends with the
    road, linked to nothing (entered and left only by lane changes).
    ``short_section_m`` puts a lane section that long (say 0.0005 m) in the middle of road 4.
    ``extra_lane_type`` adds lane -2 of that type (e.g. ``"bidirectional"``) to road 4.
    """
    pieces = []  # (x, y, hdg, curvature, length) along the loop
    x, y, hdg = radius_m, 0.0, math.pi / 2
    for k in range(4):
        curvature, length = (1 / radius_m, math.pi * radius_m) if k % 2 == 0 else (0.0, straight_m)
        pieces.append((x, y, hdg, curvature, length))
        x, y, hdg = arc_end(x, y, hdg, curvature, length)

    def along(k: int) -> int:  # lane id that drives along the loop on road k
        return 1 if k in reverse else -1

    def contact(k: int, at_start_of_piece: bool) -> str:
        return "start" if at_start_of_piece != (k in reverse) else "end"

    roads = []
    for k in range(1, 5):
        x, y, hdg, curvature, length = pieces[k - 1]
        prev_k, next_k = (k + 2) % 4 + 1, k % 4 + 1
        # The piece's own start touches the previous piece's end, its end the next piece's start.
        link_at_start = Link("road", prev_k, contact(prev_k, at_start_of_piece=False))
        link_at_end = Link("road", next_k, contact(next_k, at_start_of_piece=True))
        if k in reverse:
            x, y, hdg = arc_end(x, y, hdg, curvature, length)
            hdg, curvature = hdg + math.pi, -curvature
            link_at_start, link_at_end = link_at_end, link_at_start
        # Road-s neighbours of each lane: along-loop lanes come from prev_k and go to next_k.
        own_along, own_against = along(k), -along(k)
        before_k, after_k = (next_k, prev_k) if k in reverse else (prev_k, next_k)

        def lane(i: int, pred: int | None, succ: int | None, width: float = 3.5,
                 width_end: float | None = None) -> Lane:
            return Lane(i, "driving", width, width_end, pred, succ)

        def neighbour_lane(other: int, own: int) -> int:
            return own * (1 if (other in reverse) == (k in reverse) else -1)

        plain = (lane(own_along, neighbour_lane(before_k, own_along), neighbour_lane(after_k, own_along)),
                 lane(own_against, neighbour_lane(before_k, own_against), neighbour_lane(after_k, own_against)))
        if merge and k == 2 and k not in reverse:
            half = length / 2
            first = (lane(-1, neighbour_lane(prev_k, -1), -1), lane(-2, neighbour_lane(prev_k, -1), -1, 3.5, 0.0),
                     lane(1, neighbour_lane(prev_k, 1), 1))
            second = (lane(-1, -1, neighbour_lane(next_k, -1)), lane(1, 1, neighbour_lane(next_k, 1)))
            sections = (Section(0.0, half, first), Section(half, length - half, second))
        elif taper and k == 2 and k not in reverse:
            half = length / 2
            first = tuple(Lane(ln.id, ln.type, ln.width_m, None, ln.predecessor, ln.id) for ln in plain)
            second = tuple(Lane(ln.id, ln.type, ln.width_m, None, ln.id, ln.successor) for ln in plain)
            second += (Lane(-2, "driving", 0.0, 3.5, None, None),)
            sections = (Section(0.0, half, first), Section(half, length - half, second))
        elif short_section_m is not None and k == 4:
            half = length / 2
            first = tuple(Lane(ln.id, ln.type, ln.width_m, None, ln.predecessor, ln.id) for ln in plain)
            middle = tuple(Lane(ln.id, ln.type, ln.width_m, None, ln.id, ln.id) for ln in plain)
            last = tuple(Lane(ln.id, ln.type, ln.width_m, None, ln.id, ln.successor) for ln in plain)
            sections = (Section(0.0, half, first), Section(half, short_section_m, middle),
                        Section(half + short_section_m, length - half - short_section_m, last))
        elif k in split:
            half = length / 2
            a = tuple(Lane(ln.id, ln.type, ln.width_m, 3.0, ln.predecessor, ln.id) for ln in plain)
            b = tuple(Lane(ln.id, ln.type, 3.0, 3.5, ln.id, ln.successor) for ln in plain)
            sections = (Section(0.0, half, a), Section(half, length - half, b))
        else:
            sections = one_section(length, plain)
        if extra_lane_type and k == 4:
            sections = tuple(Section(sec.s_m, sec.length_m, sec.lanes + (Lane(-2, extra_lane_type, 3.0),))
                             for sec in sections)
        roads.append(Road(k, x, y, hdg, length, sections, curvature=curvature,
                          predecessor=link_at_start, successor=link_at_end))
    return document(roads)


def shrink_straight_connector(xodr_text: str, length_m: float = 0.0005) -> tuple[str, int]:
    """Cut the first straight junction connecting road of a document to ``length_m``; returns (text, road id).

    The road keeps its links, so its lanes become junction lanes of (almost) no
    length between the same incoming and outgoing lanes, as in some real towns.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xodr_text)
    for road in root.findall("road"):
        geometries = road.findall("planView/geometry")
        if road.get("junction", "-1") == "-1" or len(geometries) != 1 or geometries[0].find("line") is None:
            continue
        road.set("length", repr(length_m))
        geometries[0].set("length", repr(length_m))
        for tag in ("objects", "signals"):
            for element in road.findall(tag):
                road.remove(element)
        return ET.tostring(root, encoding="unicode"), int(road.get("id"))
    raise ValueError("the document has no straight junction connecting road")
