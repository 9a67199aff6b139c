"""Degenerate geometry (junction lanes under a millimetre, lane sections of 0.5 mm, missing lane marks) is handled.

Some real towns join roads through junction connecting roads of 0.0005 m; the
old lane graph made them one-point polylines and ``junction_conflicts`` died
in GEOS. The maps here are generated (tests/sim/maps/xodr_builder.py), so the
cases stay covered without shipping more towns.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import carla
import numpy as np
import pytest

from sim.api import VehicleControl
from sim.embedded.world import EmbeddedWorld
from sim.env.bev import BevRenderer
from sim.maps.lanes import MIN_LANE_LENGTH_M, build_lane_graph
from sim.maps.loader import MapLoadError, MapSource, validate_in_child
from sim.maps.procedural import ProceduralTownConfig, generate_town
from sim.render import TopDownRenderer

sys.path.insert(0, str(Path(__file__).parent))
from xodr_builder import Road, document, one_section, ring, shrink_straight_connector, stadium, two_way  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


@functools.lru_cache(maxsize=None)
def _town_with_tiny_connector() -> tuple[str, int]:
    """A 2x2 procedural town whose first straight junction connecting road is 0.0005 m long."""
    return shrink_straight_connector(generate_town(ProceduralTownConfig(grid_rows=2, grid_cols=2)), 0.0005)


def _graph(text: str, name: str = "test"):
    carla_map = carla.Map(name, text)
    return carla_map, build_lane_graph(carla_map, text)


def _successor_keys(lanes, key) -> set:
    lane = lanes.index[key]
    return {lanes.keys[b] for b in lanes.successors[lane, : lanes.num_successors[lane]]}


def _assert_sound_polylines(lanes) -> None:
    assert (lanes.count >= 2).all()
    assert (lanes.length_m >= MIN_LANE_LENGTH_M).all()
    for lane in range(lanes.num_lanes):
        s = lanes.s_m[lanes.offset[lane]: lanes.offset[lane] + lanes.count[lane]]
        assert (np.diff(s) > 0).all(), lanes.keys[lane]
        assert np.isfinite(lanes.lane_points(lane)).all()


def test_ring_with_half_millimetre_junction_lanes_links_through_them():
    _, lanes = _graph(ring(0.0005))
    # The connecting roads 3 and 4 are dropped; the lanes before them lead straight to the lanes after them.
    assert sorted(lanes.keys) == [(1, 0, -1), (1, 0, 1), (2, 0, -1), (2, 0, 1)]
    assert _successor_keys(lanes, (1, 0, -1)) == {(2, 0, -1)}
    assert _successor_keys(lanes, (2, 0, -1)) == {(1, 0, -1)}
    assert _successor_keys(lanes, (1, 0, 1)) == {(2, 0, 1)}
    _assert_sound_polylines(lanes)
    assert lanes.junction_conflicts.shape == (4, 4) and not lanes.junction_conflicts.any()
    # Each direction is a loop: traffic can use it, the main component is one of them.
    assert lanes.in_main_component.sum() == 2


def test_short_but_real_junction_lanes_stay_as_two_point_polylines():
    _, lanes = _graph(ring(0.05))
    junction = np.flatnonzero(lanes.is_junction)
    assert junction.size == 4
    assert (lanes.count[junction] == 2).all()
    np.testing.assert_allclose(lanes.length_m[junction], 0.05, atol=2e-3)
    assert lanes.junction_conflicts.shape == (lanes.num_lanes, lanes.num_lanes)
    xyz, _ = lanes.interpolate(junction, lanes.length_m[junction] / 2)
    assert np.isfinite(xyz).all()


def test_tiny_connector_inside_a_real_junction():
    text, road = _town_with_tiny_connector()
    carla_map, lanes = _graph(text)
    assert not any(key[0] == road for key in lanes.keys)
    _assert_sound_polylines(lanes)
    # The dropped lane's predecessor now leads to the dropped lane's successor, as CARLA's own links say.
    topology = [((a.road_id, a.section_id, a.lane_id), (b.road_id, b.section_id, b.lane_id))
                for a, b in carla_map.get_topology()]
    into = {a for a, b in topology if b[0] == road}
    out_of = {b for a, b in topology if a[0] == road}
    assert into and out_of
    for before in into:
        assert out_of & _successor_keys(lanes, before)
    conflicts = lanes.junction_conflicts
    assert conflicts.any() and (conflicts == conflicts.T).all() and not conflicts.diagonal().any()
    assert lanes.in_main_component.mean() == 1.0


def test_half_millimetre_lane_section_inside_a_road():
    for reverse in (frozenset(), frozenset({4})):
        _, lanes = _graph(stadium(short_section_m=0.0005, reverse=reverse))
        assert not any(key[:2] == (4, 1) for key in lanes.keys)
        along = 1 if 4 in reverse else -1
        # Section 0 continues into section 2 along the loop, passing over the 0.5 mm section.
        first, last = ((4, 2, along), (4, 0, along)) if 4 in reverse else ((4, 0, along), (4, 2, along))
        assert _successor_keys(lanes, first) == {last}
        _assert_sound_polylines(lanes)
        gap = np.linalg.norm(lanes.lane_points(lanes.index[first])[-1] - lanes.lane_points(lanes.index[last])[0])
        assert gap < 0.01


def test_duplicate_points_are_dropped():
    # A curve this tight on the inner lane squeezes samples together; every sample row must still advance.
    _, lanes = _graph(stadium(radius_m=4.0, straight_m=10.0))
    _assert_sound_polylines(lanes)


def test_missing_lane_marks_read_as_none():
    # No <roadMark> anywhere: CARLA gives no marking (None) where the old builder read a ".type" and died.
    text = stadium().replace('<roadMark sOffset="0" type="solid" weight="standard" color="standard" width="0.12"/>', "")
    text = text.replace('<roadMark sOffset="0" type="broken" weight="standard" color="standard" width="0.12"/>', "")
    assert "roadMark" not in text
    _, lanes = _graph(text)
    assert lanes.num_lanes == 8 and (lanes.left_marking == 0).all() and (lanes.right_marking == 0).all()


@pytest.mark.parametrize("maker", [lambda: ring(0.0005), lambda: _town_with_tiny_connector()[0]],
                         ids=["ring", "town"])
def test_embedded_world_runs_traffic_on_maps_with_tiny_junction_lanes(maker):
    world = EmbeddedWorld(source=MapSource("degenerate", maker(), None, trusted=False), seed=3)
    hero = world.spawn_vehicle(role_name="hero")
    npcs = world.spawn_traffic(12)
    walkers = world.spawn_walkers(4)
    assert len(npcs) == 12 and len(walkers) == 4
    world.apply_control(hero, VehicleControl(throttle=0.3))
    lane_changes = 0
    for _ in range(300):
        before = dict(zip(world.traffic.actor_id.tolist(), world.traffic.lane.tolist()))
        snapshot = world.tick()
        after = dict(zip(world.traffic.actor_id.tolist(), world.traffic.lane.tolist()))
        lane_changes += sum(after[a] != lane for a, lane in before.items() if a in after)
    assert snapshot.frame == world.frame and np.isfinite(snapshot.location_m).all()
    assert lane_changes > 0  # NPCs drove on from lane to lane, through where the tiny lanes were
    assert TopDownRenderer(world.geometry).render(snapshot, hero_id=hero).ndim == 3
    assert BevRenderer(world.lanes, world.geometry, world.signals).render(snapshot, hero).ndim == 3
    assert world.area_raster is not None


def _avsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_cli_map_check_and_info_accept_a_map_with_tiny_junction_lanes(tmp_path):
    path = tmp_path / "tiny_junction.xodr"
    path.write_text(_town_with_tiny_connector()[0])
    check = _avsim("map", "check", str(path))
    assert check.returncode == 0, check.stderr
    assert "ok" in check.stderr and "driving lanes" in check.stderr
    info = _avsim("map", "info", str(path), "--json")
    assert info.returncode == 0, info.stderr
    assert '"lanes": ' in info.stdout.strip().splitlines()[-1]


def test_cli_refuses_a_map_without_a_lane_loop_with_one_error_everywhere(tmp_path):
    path = tmp_path / "open_road.xodr"
    path.write_text(document([Road(1, 0.0, 0.0, 0.0, 100.0, one_section(100.0, two_way()))]))
    messages = set()
    for args in (("map", "check", str(path)), ("map", "info", str(path)),
                 ("run", "--map", str(path), "--seconds", "1", "--no-video")):
        result = _avsim(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "dead ends" in result.stderr
        messages.add(" ".join(result.stderr.split()))
    assert len(messages) == 1


def test_map_check_in_child_gives_the_lane_graph_error():
    text = document([Road(1, 0.0, 0.0, 0.0, 100.0, one_section(100.0, two_way()))])
    with pytest.raises(MapLoadError) as in_child:
        validate_in_child(text, "open.xodr", name="open")
    with pytest.raises(MapLoadError) as here:
        build_lane_graph(carla.Map("open", text), text)
    assert str(in_child.value) == str(here.value)
