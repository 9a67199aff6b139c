"""Seeded procedural town generator that writes OpenDRIVE (.xodr) text.

Layout, in the OpenDRIVE frame (x east, y north; ``carla.Map`` negates y):

- ``grid_rows x grid_cols`` junctions; row 0 lies at y = 0 and rows go south,
  columns go east. Neighbouring junctions are joined by straight two-way
  roads whose lengths can be jittered (the gap between whole rows / columns
  is jittered, so every road stays straight and every junction square).
- Every grid junction is a 4-way junction. The outward arms of the border
  junctions are joined in pairs, going clockwise around the border: two
  neighbouring arms on one side by a U-shaped loop road, the two arms of a
  corner junction by a 270-degree loop (two roads joined directly in the
  middle: CARLA mislinks a road whose two ends meet the same junction). So
  every road ends in a junction and every lane can continue: no dead ends.
- Junction movements: straight on keeps the lane, left turns leave from the
  innermost lane, right turns from the others; turns may end in any lane. The
  topology alone (no lane changes) is strongly connected. ``turn_lanes="nearest"``
  joins left turns innermost to innermost and right turns outermost to
  outermost instead, as most real towns do: the middle lanes of a multi-lane
  road, and some lanes of the ring highway, are then reached by lane changes.
- ``highway=True`` adds a ring road (2 lanes per direction, no sidewalks)
  around the whole town. One pair of neighbouring arms on the south border is
  used for a one-way on-ramp (grid to ring) and a one-way off-ramp (ring to
  grid) instead of a loop. Each ramp meets the ring at an at-grade T-junction
  (the ramp approach has a stop sign; ring traffic has priority), where it
  can turn onto either carriageway. These two ring junctions come on top of
  the ``rows * cols`` grid junctions.
- Junctions get traffic lights (type ``1000001``, one per approach, each with
  its own controller so CARLA cycles them) or stop signs (type ``206``);
  every direction of every road gets a speed-limit sign (type ``274``).
- Roads carry sidewalk lanes on their outer edges, joined around junction
  corners by sidewalk connecting roads; signalised junctions get a crosswalk
  (``<object type="crosswalk">`` with an outline) on every arm.

All geometry (lines and arcs) is computed here and placed with fixed start
points; scenariogeneration builds the XML elements.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scenariogeneration import xodr

__all__ = ["ProceduralTownConfig", "generate_town", "write_town"]

KERB_RADIUS_M = 4.0  # extra distance from the road edge to the junction arm ends
MIN_ROAD_LENGTH_M = 10.0  # shortest straight road allowed between two junctions
LOOP_LEAD_M = 5.0  # straight lead-out of the border loop roads
U_LOOP_RADIUS_M = 15.0  # preferred radius of the U-shaped border loops
RING_MARGIN_M = 5.0  # clearance between the ring road and the border loops
MIN_RAMP_LENGTH_M = 30.0
HIGHWAY_LANES = 2
STOP_OFFSET_M = 4.5  # stop line / signal distance from the junction end of a road
CROSSWALK_DEPTH_M = 3.0
CROSSWALK_OFFSET_M = 2.0  # crosswalk centre distance from the junction end
SIGN_SIDE_CLEARANCE_M = 0.3
FIXED_DATE = "2024-01-01T00:00:00"
GEO_REFERENCE = "+proj=tmerc +lat_0=0 +lon_0=0 +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
TRAFFIC_LIGHT_TYPE = "1000001"
STOP_SIGN_TYPE = "206"
SPEED_LIMIT_TYPE = "274"


class ProceduralTownConfig(BaseModel):
    """Parameters of a procedural town; the same config always gives the same bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: int = 0
    grid_rows: int = Field(3, ge=1, le=20, description="junction rows")
    grid_cols: int = Field(3, ge=1, le=20, description="junction columns")
    block_length_m: float = Field(80.0, ge=30.0, le=1000.0, description="distance between junction centres")
    block_length_jitter: float = Field(0.0, ge=0.0, le=0.3, description="seeded relative jitter of the gaps")
    lanes_per_direction: int = Field(1, ge=1, le=3)
    lane_width_m: float = Field(3.5, ge=2.5, le=5.0)
    sidewalk_width_m: float = Field(2.5, ge=0.0, le=6.0, description="0 disables sidewalks")
    traffic_light_share: float = Field(1.0, ge=0.0, le=1.0, description="share of signalised junctions")
    highway: bool = False
    speed_limit_kph: float = Field(50.0, gt=0.0, le=200.0)
    highway_speed_limit_kph: float = Field(100.0, gt=0.0, le=200.0)
    turn_lanes: Literal["any", "nearest"] = Field(
        "any", description="'any': turns may end in any lane of the target road (the lane graph is strongly "
                           "connected without lane changes); 'nearest': left turns join innermost lanes and right "
                           "turns outermost ones, as in most real towns (other lanes are reached by lane changes)")

    @model_validator(mode="after")
    def _check_fits(self) -> "ProceduralTownConfig":
        dims = _Dims.from_config(self)
        shortest_gap_m = self.block_length_m * (1.0 - self.block_length_jitter)
        needed_m = 2.0 * dims.arm_m + MIN_ROAD_LENGTH_M
        if self.highway:
            needed_m = max(needed_m, 2.0 * dims.highway_arm_m + MIN_ROAD_LENGTH_M)
            if self.grid_cols < 2:
                raise ValueError(f"highway=True needs grid_cols >= 2 (got grid_cols={self.grid_cols})")
        if shortest_gap_m < needed_m - 1e-9:
            raise ValueError(
                f"block_length_m * (1 - block_length_jitter) = {shortest_gap_m:.1f} m is too short: "
                f"with {self.lanes_per_direction} lane(s) of {self.lane_width_m} m and "
                f"{self.sidewalk_width_m} m sidewalks it must be >= {needed_m:.1f} m "
                "(raise block_length_m or lower block_length_jitter / lanes_per_direction)"
            )
        return self


def generate_town(config: ProceduralTownConfig) -> str:
    """Build the town described by ``config`` and return its OpenDRIVE text."""
    return _TownBuilder(config).build()


def write_town(config: ProceduralTownConfig, path: Path) -> Path:
    """Write the town described by ``config`` to ``path`` (.xodr) and return the path."""
    path = Path(path)
    path.write_text(generate_town(config), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Dimensions and plane geometry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Dims:
    """Derived cross-section and junction sizes of a town."""

    lanes: int
    lane_width_m: float
    sidewalk_m: float
    half_width_m: float  # centre line to the outer edge of the sidewalk
    arm_m: float  # junction centre to the end of each grid arm
    highway_half_width_m: float
    highway_arm_m: float

    @staticmethod
    def from_config(cfg: ProceduralTownConfig) -> "_Dims":
        half_width_m = cfg.lanes_per_direction * cfg.lane_width_m + cfg.sidewalk_width_m
        highway_half_width_m = HIGHWAY_LANES * cfg.lane_width_m
        return _Dims(
            lanes=cfg.lanes_per_direction,
            lane_width_m=cfg.lane_width_m,
            sidewalk_m=cfg.sidewalk_width_m,
            half_width_m=half_width_m,
            arm_m=half_width_m + KERB_RADIUS_M,
            highway_half_width_m=highway_half_width_m,
            highway_arm_m=highway_half_width_m + KERB_RADIUS_M,
        )


# A path primitive: ("line", length_m) or ("arc", curvature_1pm, length_m).
_Prim = tuple


def _wrap(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


def _unit(heading_rad: float) -> np.ndarray:
    return np.array([math.cos(heading_rad), math.sin(heading_rad)])


def _right(heading_rad: float) -> np.ndarray:
    """Unit vector pointing to the right of ``heading_rad`` (OpenDRIVE frame, y up)."""
    return np.array([math.sin(heading_rad), -math.cos(heading_rad)])


def _connect(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> list[_Prim]:
    """Line-arc-line path from pose (p0, h0) to pose (p1, h1)."""
    turn = _wrap(h1 - h0)
    delta = p1 - p0
    d0 = _unit(h0)
    if abs(turn) < 1e-9:
        lateral = d0[0] * delta[1] - d0[1] * delta[0]
        if abs(lateral) > 1e-6:
            raise AssertionError(f"straight connection with a lateral offset of {lateral} m")
        return [("line", float(d0 @ delta))]
    t0, t1 = np.linalg.solve(np.column_stack([d0, _unit(h1)]), delta)
    if t0 < -1e-9 or t1 < -1e-9:
        raise AssertionError("connection poses do not face each other")
    tangent = min(t0, t1)
    radius = tangent / math.tan(abs(turn) / 2.0)
    prims: list[_Prim] = []
    if t0 - tangent > 1e-6:
        prims.append(("line", float(t0 - tangent)))
    prims.append(("arc", math.copysign(1.0 / radius, turn), radius * abs(turn)))
    if t1 - tangent > 1e-6:
        prims.append(("line", float(t1 - tangent)))
    return prims


# ---------------------------------------------------------------------------
# Road cross-sections
# ---------------------------------------------------------------------------


def _lane_pairs(turn_rad: float, n_in: int, n_out: int, nearest: bool = False) -> list[tuple[int, int]]:
    """(inbound, outbound) lane indices (0 = next to the centre line) joined for one movement.

    Straight on keeps the lane. Left turns leave from the innermost lane, right turns from
    every lane but the innermost (or the only one), and a single-lane target (the off-ramp)
    can be reached from every lane; turns may end in any lane of the target road. That way
    every lane of a multi-lane road can be entered from and left to another lane index
    through junctions alone, so the lane graph is strongly connected without lane changes.
    With ``nearest``, a left turn joins the innermost lanes and a right turn the outermost
    ones only, so the middle lanes of a road are reached by lane changes.
    """
    if abs(turn_rad) < math.pi / 6:
        return [(k, k) for k in range(min(n_in, n_out))]
    if nearest:
        return [(0, 0)] if turn_rad > 0 else [(n_in - 1, n_out - 1)]
    if n_out == 1:
        sources = list(range(n_in))
    elif turn_rad > 0:
        sources = [0]
    else:
        sources = list(range(1, n_in)) if n_in > 1 else [0]
    return [(k_in, k_out) for k_in in sources for k_out in range(n_out)]


def _mark(kind: xodr.RoadMarkType, color: xodr.RoadMarkColor, change: xodr.LaneChange) -> xodr.RoadMark:
    width = 0.3 if kind == xodr.RoadMarkType.solid_solid else 0.15
    if kind == xodr.RoadMarkType.none:
        width = None
    return xodr.RoadMark(kind, width=width, color=color, laneChange=change)


def _no_mark() -> xodr.RoadMark:
    return _mark(xodr.RoadMarkType.none, xodr.RoadMarkColor.standard, xodr.LaneChange.none)


def _side_lanes(count: int, width_m: float, sidewalk_m: float) -> list[xodr.Lane]:
    """Driving lanes from the centre outward (broken between them, solid edge), then a sidewalk."""
    lanes = []
    for index in range(count):
        lane = xodr.Lane(xodr.LaneType.driving, a=width_m)
        if index < count - 1:
            lane.add_roadmark(_mark(xodr.RoadMarkType.broken, xodr.RoadMarkColor.white, xodr.LaneChange.both))
        else:
            lane.add_roadmark(_mark(xodr.RoadMarkType.solid, xodr.RoadMarkColor.white, xodr.LaneChange.none))
        lanes.append(lane)
    if count and sidewalk_m > 0.0:
        sidewalk = xodr.Lane(xodr.LaneType.sidewalk, a=sidewalk_m)
        sidewalk.add_roadmark(_no_mark())
        lanes.append(sidewalk)
    return lanes


def _road_lanes(n_right: int, n_left: int, width_m: float, sidewalk_m: float) -> xodr.Lanes:
    """Lanes of a normal road: yellow double centre line on two-way roads, white edge on one-way."""
    centre = xodr.Lane()
    if n_right and n_left:
        centre.add_roadmark(_mark(xodr.RoadMarkType.solid_solid, xodr.RoadMarkColor.yellow, xodr.LaneChange.none))
    else:
        centre.add_roadmark(_mark(xodr.RoadMarkType.solid, xodr.RoadMarkColor.white, xodr.LaneChange.none))
    section = xodr.LaneSection(0, centre)
    for lane in _side_lanes(n_right, width_m, sidewalk_m):
        section.add_right_lane(lane)
    for lane in _side_lanes(n_left, width_m, sidewalk_m):
        section.add_left_lane(lane)
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    return lanes


def _connecting_lanes(lane_type: xodr.LaneType, width_m: float, pred_id: int, succ_id: int) -> xodr.Lanes:
    """Lanes of a junction connecting road: one unmarked lane (-1) linked at both ends."""
    centre = xodr.Lane()
    centre.add_roadmark(_no_mark())
    section = xodr.LaneSection(0, centre)
    lane = xodr.Lane(lane_type, a=width_m)
    lane.add_roadmark(_no_mark())
    lane.add_link("predecessor", pred_id)
    lane.add_link("successor", succ_id)
    section.add_right_lane(lane)
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    return lanes


def _facing_offset(positive: bool) -> float:
    """Signal heading offset so the sign faces the drivers it is valid for.

    CARLA takes a landmark's yaw from the road heading plus ``hOffset`` and ignores the
    orientation; its own towns turn signs valid for +s traffic by pi, so they face the
    approaching drivers (yaw opposite to their travel direction). Same here.
    """
    return math.pi if positive else 0.0


def _link_roads(first: xodr.Road, second: xodr.Road) -> None:
    """Join the end of ``first`` directly to the start of ``second`` (same cross-section)."""
    first.add_successor(xodr.ElementType.road, second.id, xodr.ContactPoint.start)
    second.add_predecessor(xodr.ElementType.road, first.id, xodr.ContactPoint.end)
    first_section, second_section = first.lanes.lanesections[-1], second.lanes.lanesections[0]
    for side in ("rightlanes", "leftlanes"):
        for lane_a, lane_b in zip(getattr(first_section, side), getattr(second_section, side), strict=True):
            lane_a.add_link("successor", lane_b.lane_id)
            lane_b.add_link("predecessor", lane_a.lane_id)


class _CrosswalkObject(xodr.Object):
    """Crosswalk object whose ``<outline>`` is a direct child, where CARLA's parser looks for it."""

    def get_element(self) -> ET.Element:
        element = super().get_element()
        outlines = element.find("outlines")
        if outlines is not None:
            element.remove(outlines)
            for outline in list(outlines):
                element.append(outline)
        return element


# ---------------------------------------------------------------------------
# Town builder
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Arm:
    """One road end at a junction."""

    road: xodr.Road
    at_end: bool  # the road's end (s = length) touches the junction
    point: np.ndarray  # reference-line point at the junction side
    out_heading_rad: float  # heading pointing away from the junction along the road
    n_right: int
    n_left: int
    lane_width_m: float
    sidewalk_m: float

    @property
    def n_in(self) -> int:
        """Driving lanes flowing into the junction."""
        return self.n_right if self.at_end else self.n_left

    @property
    def n_out(self) -> int:
        """Driving lanes flowing out of the junction."""
        return self.n_left if self.at_end else self.n_right

    @property
    def in_heading_rad(self) -> float:
        return self.out_heading_rad + math.pi

    @property
    def length_m(self) -> float:
        return float(self.road.planview.get_total_length())

    def in_lane_id(self, index: int) -> int:
        """OpenDRIVE id of the ``index``-th inbound lane (0 = next to the centre line)."""
        return -(index + 1) if self.at_end else index + 1

    def out_lane_id(self, index: int) -> int:
        """OpenDRIVE id of the ``index``-th outbound lane (0 = next to the centre line)."""
        return index + 1 if self.at_end else -(index + 1)

    def has_sidewalk(self, inbound: bool) -> bool:
        """Whether the side on the right of inbound (or outbound) traffic has a sidewalk."""
        lanes = self.n_in if inbound else self.n_out
        return self.sidewalk_m > 0.0 and lanes > 0

    def contact(self) -> xodr.ContactPoint:
        return xodr.ContactPoint.end if self.at_end else xodr.ContactPoint.start


@dataclass
class _JunctionSpec:
    """A junction to build: its arms and its traffic control."""

    junction_id: int
    name: str
    control: str  # "lights", "stop", or "ramp_stop" (stop sign on one-way ramp approaches only)
    arms: list[_Arm]


class _TownBuilder:
    """Builds one town; single use."""

    def __init__(self, cfg: ProceduralTownConfig) -> None:
        self.cfg = cfg
        self.dims = _Dims.from_config(cfg)
        self.odr = xodr.OpenDrive("procedural_town", revMajor="1", revMinor="4", geo_reference=GEO_REFERENCE)
        self.junctions: dict[int, _JunctionSpec] = {}
        # CARLA tells junction links from road links by checking whether a road with that id
        # exists, so road ids start after the last junction id.
        self._next_road_id = cfg.grid_rows * cfg.grid_cols + (2 if cfg.highway else 0) + 1
        self._next_signal_id = 1
        self._next_object_id = 1
        self._controllers: list[tuple[int, str, int, int]] = []  # (controller, signal, junction, sequence)
        self._bounds = [math.inf, math.inf, -math.inf, -math.inf]  # west, south, east, north
        self._rng = np.random.default_rng(cfg.seed)

    # -- entry point ---------------------------------------------------------

    def build(self) -> str:
        cfg = self.cfg
        jitter = cfg.block_length_jitter
        col_gaps = cfg.block_length_m * (1.0 + jitter * self._rng.uniform(-1.0, 1.0, cfg.grid_cols - 1))
        row_gaps = cfg.block_length_m * (1.0 + jitter * self._rng.uniform(-1.0, 1.0, cfg.grid_rows - 1))
        self.xs = np.concatenate([[0.0], np.cumsum(col_gaps)])
        self.ys = -np.concatenate([[0.0], np.cumsum(row_gaps)])

        n_grid = cfg.grid_rows * cfg.grid_cols
        n_lights = int(math.floor(cfg.traffic_light_share * n_grid + 0.5))
        lit = set(int(i) for i in self._rng.permutation(n_grid)[:n_lights])
        for r in range(cfg.grid_rows):
            for c in range(cfg.grid_cols):
                jid = self._grid_jid(r, c)
                control = "lights" if jid - 1 in lit else "stop"
                self.junctions[jid] = _JunctionSpec(jid, f"junction_r{r}_c{c}", control, [])

        self._build_streets()
        ramp_pair = self._build_border_loops()
        if cfg.highway:
            self._build_highway(*ramp_pair)
        for spec in self.junctions.values():
            self._build_junction(spec)
            self._add_traffic_control(spec)
        return self._to_text()

    # -- grid ----------------------------------------------------------------

    def _grid_jid(self, r: int, c: int) -> int:
        return r * self.cfg.grid_cols + c + 1

    def _centre(self, r: int, c: int) -> np.ndarray:
        return np.array([self.xs[c], self.ys[r]])

    def _build_streets(self) -> None:
        """Straight two-way roads between neighbouring grid junctions."""
        cfg, a = self.cfg, self.dims.arm_m
        for r in range(cfg.grid_rows):
            for c in range(cfg.grid_cols - 1):
                start = self._centre(r, c) + [a, 0.0]
                length = self.xs[c + 1] - self.xs[c] - 2.0 * a
                self._add_street(
                    f"street_r{r}_c{c}-c{c + 1}", start, 0.0, [("line", length)], (r, c), (r, c + 1)
                )
        for r in range(cfg.grid_rows - 1):
            for c in range(cfg.grid_cols):
                start = self._centre(r, c) + [0.0, -a]
                length = self.ys[r] - self.ys[r + 1] - 2.0 * a
                self._add_street(
                    f"street_c{c}_r{r}-r{r + 1}", start, -math.pi / 2, [("line", length)], (r, c), (r + 1, c)
                )

    def _add_street(
        self, name: str, start: np.ndarray, heading: float, prims: list[_Prim],
        from_rc: tuple | None, to_rc: tuple | None,
    ) -> xodr.Road:
        """Add a standard two-way town road; ``None`` ends are left for a direct road link."""
        d = self.dims
        start_jid = None if from_rc is None else self._grid_jid(*from_rc)
        end_jid = None if to_rc is None else self._grid_jid(*to_rc)
        road = self._add_road(
            name, start, heading, prims, d.lanes, d.lanes, d.lane_width_m, d.sidewalk_m,
            xodr.RoadType.town, self.cfg.speed_limit_kph, start_jid, end_jid,
        )
        return road

    def _build_border_loops(self) -> tuple:
        """Join the outward arms of border junctions in clockwise pairs by loop roads.

        Returns the pair left free for the highway ramps (or None)."""
        cfg, d = self.cfg, self.dims
        rows, cols = cfg.grid_rows, cfg.grid_cols
        headings = {"N": math.pi / 2, "E": 0.0, "S": -math.pi / 2, "W": math.pi}
        cycle = (
            [(0, c, "N") for c in range(cols)]
            + [(r, cols - 1, "E") for r in range(rows)]
            + [(rows - 1, c, "S") for c in reversed(range(cols))]
            + [(r, 0, "W") for r in reversed(range(rows))]
        )
        offset, ramp_index = 0, None
        if cfg.highway:
            k = (cols - 2) // 2  # the ramps use the south arms of columns k + 1 (first) and k
            ramp_index = cols + rows + (cols - 1 - (k + 1))
            offset = ramp_index % 2
        ramp_pair = None
        for m in range(len(cycle) // 2):
            i = offset + 2 * m
            p, q = cycle[i % len(cycle)], cycle[(i + 1) % len(cycle)]
            if i == ramp_index:
                ramp_pair = (p, q)
                continue
            hp, hq = headings[p[2]], headings[q[2]]
            start = self._centre(p[0], p[1]) + d.arm_m * _unit(hp)
            if (p[0], p[1]) == (q[0], q[1]):
                # CARLA mislinks a road whose two ends meet the same junction, so the
                # 270-degree corner loop is two roads joined directly in its middle.
                radius = d.arm_m + LOOP_LEAD_M
                half_arc = ("arc", -1.0 / radius, radius * 0.75 * math.pi)
                name = f"corner_loop_r{p[0]}_c{p[1]}"
                first = self._add_street(name + "_a", start, hp, [("line", LOOP_LEAD_M), half_arc], p[:2], None)
                x_mid, y_mid, h_mid = first.planview.get_end_point()
                road = self._add_street(
                    name + "_b", np.array([x_mid, y_mid]), h_mid, [half_arc, ("line", LOOP_LEAD_M)], None, q[:2]
                )
                _link_roads(first, road)
            else:
                gap = float(np.linalg.norm(self._centre(q[0], q[1]) - self._centre(p[0], p[1])))
                radius = self._u_loop_radius(gap)
                prims = [("line", LOOP_LEAD_M), ("arc", -1.0 / radius, radius * math.pi / 2)]
                if gap - 2.0 * radius > 1e-6:
                    prims.append(("line", gap - 2.0 * radius))
                prims += [("arc", -1.0 / radius, radius * math.pi / 2), ("line", LOOP_LEAD_M)]
                name = f"border_loop_r{p[0]}_c{p[1]}-r{q[0]}_c{q[1]}"
                road = self._add_street(name, start, hp, prims, p[:2], q[:2])
            self._check_end(road, self._centre(q[0], q[1]) + d.arm_m * _unit(hq), hq + math.pi)
        return ramp_pair

    def _u_loop_radius(self, gap_m: float) -> float:
        return min(gap_m / 2.0, max(U_LOOP_RADIUS_M, self.dims.half_width_m + KERB_RADIUS_M))

    # -- highway ---------------------------------------------------------------

    def _build_highway(self, first: tuple, second: tuple) -> None:
        """Ring road around the town, joined by an on-ramp and an off-ramp at two T-junctions."""
        cfg, d = self.cfg, self.dims
        w = d.lane_width_m
        a, ah = d.arm_m, d.highway_arm_m
        # "first" is the south arm of column k + 1 (off-ramp), "second" of column k (on-ramp).
        r_on, c_on = second[0], second[1]
        r_off, c_off = first[0], first[1]
        x_on, x_off = float(self.xs[c_on]), float(self.xs[c_off])
        y_grid_south = float(self.ys[-1])

        u_radius_max = max(U_LOOP_RADIUS_M, d.half_width_m + KERB_RADIUS_M)
        loop_extent = d.half_width_m + max(a + LOOP_LEAD_M + u_radius_max, 2.0 * (a + LOOP_LEAD_M))
        offset = max(loop_extent + RING_MARGIN_M + d.highway_half_width_m, a + ah + MIN_RAMP_LENGTH_M)
        corner_loop_radius = d.arm_m + LOOP_LEAD_M
        ring_radius = min(offset - corner_loop_radius, offset - ah - RING_MARGIN_M)
        x0, x1 = float(self.xs[0]) - offset, float(self.xs[-1]) + offset
        y0, y1 = y_grid_south - offset, float(self.ys[0]) + offset

        j_on = len(self.junctions) + 1
        j_off = j_on + 1
        self.junctions[j_on] = _JunctionSpec(j_on, "highway_on_ramp", "ramp_stop", [])
        self.junctions[j_off] = _JunctionSpec(j_off, "highway_off_ramp", "ramp_stop", [])

        quarter = ("arc", 1.0 / ring_radius, ring_radius * math.pi / 2)
        long_prims = [
            ("line", x1 - ring_radius - (x_off + ah)), quarter,
            ("line", y1 - y0 - 2 * ring_radius), quarter,
            ("line", x1 - x0 - 2 * ring_radius), quarter,
            ("line", y1 - y0 - 2 * ring_radius), quarter,
            ("line", (x_on - ah) - (x0 + ring_radius)),
        ]
        speed = cfg.highway_speed_limit_kph
        lanes = (HIGHWAY_LANES, HIGHWAY_LANES, w, 0.0)
        self._add_road("highway_ring", np.array([x_off + ah, y0]), 0.0, long_prims, *lanes,
                       xodr.RoadType.motorway, speed, j_off, j_on)
        self._add_road("highway_between_ramps", np.array([x_on + ah, y0]), 0.0,
                       [("line", x_off - x_on - 2 * ah)], *lanes, xodr.RoadType.motorway, speed, j_on, j_off)
        ramp_length = (y_grid_south - a) - (y0 + ah)
        self._add_road("on_ramp", np.array([x_on, y_grid_south - a]), -math.pi / 2, [("line", ramp_length)],
                       1, 0, w, 0.0, xodr.RoadType.town, cfg.speed_limit_kph, self._grid_jid(r_on, c_on), j_on)
        self._add_road("off_ramp", np.array([x_off, y0 + ah]), math.pi / 2, [("line", ramp_length)],
                       1, 0, w, 0.0, xodr.RoadType.town, cfg.speed_limit_kph, j_off, self._grid_jid(r_off, c_off))

    # -- roads ----------------------------------------------------------------

    def _add_road(
        self,
        name: str,
        start: np.ndarray,
        heading: float,
        prims: list[_Prim],
        n_right: int,
        n_left: int,
        lane_width_m: float,
        sidewalk_m: float,
        road_type: xodr.RoadType,
        speed_kph: float,
        start_jid: int | None,
        end_jid: int | None,
    ) -> xodr.Road:
        """Add a normal road from junction ``start_jid`` to junction ``end_jid`` and register its arms.

        A ``None`` end is left open for a direct road-to-road link (see ``_link_roads``)."""
        road = xodr.Road(self._take_road_id(), self._planview(start, heading, prims),
                         _road_lanes(n_right, n_left, lane_width_m, sidewalk_m), name=name)
        road.add_type(road_type, speed=float(speed_kph), speed_unit="km/h")
        self.odr.add_road(road)

        x_end, y_end, h_end = road.planview.get_end_point()
        common = dict(road=road, n_right=n_right, n_left=n_left, lane_width_m=lane_width_m, sidewalk_m=sidewalk_m)
        if start_jid is not None:
            road.add_predecessor(xodr.ElementType.junction, start_jid)
            self.junctions[start_jid].arms.append(
                _Arm(at_end=False, point=np.asarray(start, float), out_heading_rad=heading, **common)
            )
        if end_jid is not None:
            road.add_successor(xodr.ElementType.junction, end_jid)
            self.junctions[end_jid].arms.append(
                _Arm(at_end=True, point=np.array([x_end, y_end]), out_heading_rad=h_end + math.pi, **common)
            )
        # Speed-limit signs where traffic enters the road from a junction.
        self._add_speed_signs(
            road, n_right if start_jid is not None else 0, n_left if end_jid is not None else 0,
            lane_width_m, sidewalk_m, speed_kph,
        )
        return road

    def _planview(self, start: np.ndarray, heading: float, prims: list[_Prim]) -> xodr.PlanView:
        planview = xodr.PlanView(float(start[0]), float(start[1]), float(heading))
        for prim in prims:
            if prim[0] == "line":
                if prim[1] <= 1e-6:
                    raise AssertionError(f"non-positive line length {prim[1]}")
                planview.add_geometry(xodr.Line(float(prim[1])))
            else:
                planview.add_geometry(xodr.Arc(float(prim[1]), length=float(prim[2])))
        planview.adjust_geometries()
        for geom in planview._adjusted_geometries:
            self._grow_bounds(geom.x, geom.y)
        self._grow_bounds(planview.x_end, planview.y_end)
        return planview

    def _grow_bounds(self, x: float, y: float) -> None:
        b = self._bounds
        b[0], b[1], b[2], b[3] = min(b[0], x), min(b[1], y), max(b[2], x), max(b[3], y)

    def _take_road_id(self) -> int:
        road_id = self._next_road_id
        self._next_road_id += 1
        return road_id

    @staticmethod
    def _check_end(road: xodr.Road, point: np.ndarray, heading: float) -> None:
        x, y, h = road.planview.get_end_point()
        if np.hypot(x - point[0], y - point[1]) > 1e-6 or abs(_wrap(h - heading)) > 1e-6:
            raise AssertionError(f"road {road.id} ends at ({x}, {y}, {h}), expected ({point}, {heading})")

    # -- junctions -------------------------------------------------------------

    def _build_junction(self, spec: _JunctionSpec) -> None:
        """Connecting roads for every allowed movement, plus sidewalk corners."""
        junction = xodr.Junction(spec.name, spec.junction_id)
        for arm_in in spec.arms:
            if arm_in.n_in == 0:
                continue
            for arm_out in spec.arms:
                if arm_out is arm_in or arm_out.n_out == 0:
                    continue
                turn = _wrap(arm_out.out_heading_rad - arm_in.in_heading_rad)
                if abs(turn) > 0.75 * math.pi:
                    continue  # no U-turns
                pairs = _lane_pairs(turn, arm_in.n_in, arm_out.n_out, self.cfg.turn_lanes == "nearest")
                for k_in, k_out in pairs:
                    self._add_connecting_road(
                        junction, spec, arm_in, arm_out,
                        arm_in.point + _right(arm_in.in_heading_rad) * k_in * arm_in.lane_width_m,
                        arm_out.point + _right(arm_out.out_heading_rad) * k_out * arm_out.lane_width_m,
                        arm_in.in_lane_id(k_in), arm_out.out_lane_id(k_out),
                        xodr.LaneType.driving, arm_in.lane_width_m,
                    )
        self._add_sidewalk_corners(junction, spec)
        self.odr.add_junction(junction)

    def _add_sidewalk_corners(self, junction: xodr.Junction, spec: _JunctionSpec) -> None:
        """Join each arm's right-hand sidewalk to the next arm counter-clockwise."""
        arms = spec.arms
        for arm_in in arms:
            if not arm_in.has_sidewalk(inbound=True):
                continue
            others = [arm for arm in arms if arm is not arm_in]
            if not others:
                continue
            arm_out = min(others, key=lambda arm: (arm.out_heading_rad - arm_in.out_heading_rad) % (2 * math.pi))
            if not arm_out.has_sidewalk(inbound=False):
                continue
            in_id = -(arm_in.n_in + 1) if arm_in.at_end else arm_in.n_in + 1
            out_id = arm_out.n_out + 1 if arm_out.at_end else -(arm_out.n_out + 1)
            self._add_connecting_road(
                junction, spec, arm_in, arm_out,
                arm_in.point + _right(arm_in.in_heading_rad) * arm_in.n_in * arm_in.lane_width_m,
                arm_out.point + _right(arm_out.out_heading_rad) * arm_out.n_out * arm_out.lane_width_m,
                in_id, out_id, xodr.LaneType.sidewalk, arm_in.sidewalk_m,
            )

    def _add_connecting_road(
        self,
        junction: xodr.Junction,
        spec: _JunctionSpec,
        arm_in: _Arm,
        arm_out: _Arm,
        p0: np.ndarray,
        p1: np.ndarray,
        in_lane: int,
        out_lane: int,
        lane_type: xodr.LaneType,
        width_m: float,
    ) -> None:
        prims = _connect(p0, arm_in.in_heading_rad, p1, arm_out.out_heading_rad)
        road = xodr.Road(
            self._take_road_id(),
            self._planview(p0, arm_in.in_heading_rad, prims),
            _connecting_lanes(lane_type, width_m, in_lane, out_lane),
            road_type=spec.junction_id,
            name=f"{spec.name}_{arm_in.road.id}:{in_lane}_to_{arm_out.road.id}:{out_lane}",
        )
        self._check_end(road, p1, arm_out.out_heading_rad)
        road.add_predecessor(xodr.ElementType.road, arm_in.road.id, arm_in.contact())
        road.add_successor(xodr.ElementType.road, arm_out.road.id, arm_out.contact())
        self.odr.add_road(road)
        connection = xodr.Connection(arm_in.road.id, road.id, xodr.ContactPoint.start)
        connection.add_lanelink(in_lane, -1)
        junction.add_connection(connection)

    # -- signals and objects ---------------------------------------------------

    def _take_signal_id(self) -> str:
        signal_id = str(self._next_signal_id)
        self._next_signal_id += 1
        return signal_id

    def _add_traffic_control(self, spec: _JunctionSpec) -> None:
        """Traffic lights or stop signs on the approaches, crosswalks at signalised junctions."""
        sequence = 0
        for arm in spec.arms:
            if arm.n_in == 0:
                continue
            if spec.control == "ramp_stop" and arm.n_out > 0:
                continue  # through roads at ramp junctions have priority
            length = arm.length_m
            s = length - STOP_OFFSET_M if arm.at_end else STOP_OFFSET_M
            side = arm.n_in * arm.lane_width_m + arm.sidewalk_m + SIGN_SIDE_CLEARANCE_M
            lights = spec.control == "lights"
            signal = xodr.Signal(
                s=s,
                t=-side if arm.at_end else side,
                country="OpenDRIVE",
                Type=TRAFFIC_LIGHT_TYPE if lights else STOP_SIGN_TYPE,
                subtype="-1",
                id=self._take_signal_id(),
                name=f"{'TrafficLight' if lights else 'Stop'}_j{spec.junction_id}_road{arm.road.id}",
                dynamic=xodr.Dynamic.yes if lights else xodr.Dynamic.no,
                zOffset=0.0,
                orientation=xodr.Orientation.positive if arm.at_end else xodr.Orientation.negative,
                hOffset=_facing_offset(arm.at_end),
                height=3.0 if lights else 2.0,
                width=0.5 if lights else 0.75,
            )
            lane_ids = sorted(arm.in_lane_id(k) for k in range(arm.n_in))
            signal.add_validity(lane_ids[0], lane_ids[-1])
            arm.road.signals.append(signal)  # not add_signal: it keeps process-global id state
            if lights:
                self._controllers.append((len(self._controllers) + 1, signal.id, spec.junction_id, sequence))
                sequence += 1
        if spec.control == "lights":
            for arm in spec.arms:
                if arm.sidewalk_m > 0.0 and arm.n_in > 0 and arm.n_out > 0:
                    self._add_crosswalk(arm)

    def _add_crosswalk(self, arm: _Arm) -> None:
        s = arm.length_m - CROSSWALK_OFFSET_M if arm.at_end else CROSSWALK_OFFSET_M
        right_m, left_m = arm.n_right * arm.lane_width_m, arm.n_left * arm.lane_width_m
        half_depth = CROSSWALK_DEPTH_M / 2.0
        crosswalk = _CrosswalkObject(
            s=s, t=0.0, Type=xodr.ObjectType.crosswalk, subtype="-1", id=str(self._next_object_id),
            name=f"Crosswalk_road{arm.road.id}", zOffset=0.0, hdg=0.0,
            width=right_m + left_m, length=CROSSWALK_DEPTH_M, height=0.0,
        )
        self._next_object_id += 1
        outline = xodr.Outline(closed=True)
        # Closed like CARLA's own towns: the first corner is repeated at the end.
        corners = ((-half_depth, -right_m), (half_depth, -right_m), (half_depth, left_m), (-half_depth, left_m))
        for u, v in corners + corners[:1]:
            outline.add_corner(xodr.CornerLocal(u, v, 0.0, 0.0))
        crosswalk.add_outline(outline)
        arm.road.objects.append(crosswalk)

    def _add_speed_signs(
        self, road: xodr.Road, n_right: int, n_left: int, lane_width_m: float, sidewalk_m: float, speed_kph: float
    ) -> None:
        """One speed-limit sign per driving direction, just after the road is entered."""
        length = float(road.planview.get_total_length())
        offset = min(STOP_OFFSET_M, length / 4.0)
        for lanes, positive in ((n_right, True), (n_left, False)):
            if lanes == 0:
                continue
            side = lanes * lane_width_m + sidewalk_m + SIGN_SIDE_CLEARANCE_M
            signal = xodr.Signal(
                s=offset if positive else length - offset,
                t=-side if positive else side,
                country="OpenDRIVE", Type=SPEED_LIMIT_TYPE, subtype="-1", id=self._take_signal_id(),
                name=f"SpeedLimit_{int(round(speed_kph))}_road{road.id}", dynamic=xodr.Dynamic.no,
                value=float(speed_kph), unit="km/h", zOffset=0.0,
                orientation=xodr.Orientation.positive if positive else xodr.Orientation.negative,
                hOffset=_facing_offset(positive), height=2.0, width=0.6,
            )
            ids = [-(k + 1) for k in range(lanes)] if positive else [k + 1 for k in range(lanes)]
            signal.add_validity(min(ids), max(ids))
            road.signals.append(signal)

    # -- output ----------------------------------------------------------------

    def _to_text(self) -> str:
        root = self.odr.get_element()
        header = root.find("header")
        west, south, east, north = self._bounds
        header.set("date", FIXED_DATE)
        header.set("north", repr(float(north)))
        header.set("south", repr(float(south)))
        header.set("east", repr(float(east)))
        header.set("west", repr(float(west)))
        header.set("vendor", "avsim")

        junction_elements = {int(el.get("id")): el for el in root.findall("junction")}
        first_junction_index = list(root).index(next(iter(junction_elements.values())))
        for offset, (controller_id, signal_id, junction_id, sequence) in enumerate(self._controllers):
            controller = ET.Element(
                "controller", {"name": f"ctrl{controller_id}", "id": str(controller_id), "sequence": str(sequence)}
            )
            ET.SubElement(controller, "control", {"signalId": signal_id, "type": "0"})
            root.insert(first_junction_index + offset, controller)
            ET.SubElement(
                junction_elements[junction_id],
                "controller",
                {"id": str(controller_id), "type": "0", "sequence": str(sequence)},
            )
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
