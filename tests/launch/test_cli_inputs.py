"""The command line on bad numbers and on highway towns (no sidewalks, few junctions), run as a user would."""

from __future__ import annotations

import json

import pytest

from tests.highway_maps import NO_SIDEWALK_TOWN, TINY_TOWN, lane_graph, ring_road_xodr, town_xodr
from tests.launch.test_cli import avsim


def _error_lines(stderr: str) -> list[str]:
    """The lines of an error: ours (``error: ...``) or Click's usage error (``Invalid value ...`` in its box)."""
    return [line for line in stderr.splitlines() if line.startswith("error:") or "Invalid value" in line]


def _assert_refused(result, option: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and option in lines[0], result.stderr


@pytest.mark.parametrize("args", [
    ("run", "--seed", "-5", "--out", "{tmp}/demo"),
    ("eval", "driving", "--seed", "-3"),
    ("run", "--config", "oracle", "--seed", "-4", "--out", "{tmp}/run"),
    ("bench", "world", "--seed", "-1"),
    ("bench", "sensors", "--seed", "-1"),
    ("bench", "env", "--seed", "-1"),
    ("map", "generate", "{tmp}/town.xodr", "--seed", "-1"),
    ("routes", "generate", "Town01", "{tmp}/routes.yaml", "--seed", "-2"),
    ("serve", "--seed", "-1"),
], ids=lambda args: " ".join(a for a in args if not a.startswith(("{", "-")) or a == "--seed"))
def test_a_negative_seed_is_one_error_naming_seed_and_nothing_is_written(args, tmp_path):
    result = avsim(*(a.format(tmp=tmp_path) for a in args), timeout=60)
    _assert_refused(result, "'--seed'")
    assert "greater than or equal to 0" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, option", [
    (("run", "--seconds", "inf", "--out", "{tmp}/demo"), "'--seconds'"),
    (("run", "--vehicles", "1000000000", "--out", "{tmp}/demo"), "'--vehicles'"),
    (("run", "--walkers", "-1", "--out", "{tmp}/demo"), "'--walkers'"),
    (("bench", "world", "--walkers", "1000000000"), "'--walkers'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--count", "0"), "'--per-class' / '--count'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--lengths", "30-abc"), "'--lengths'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--lengths", "60-30"), "'--lengths'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--lengths", "1-2,2-3,3-4,4-5"), "'--lengths'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--min-turns", "-1"), "'--min-turns'"),
    (("routes", "generate", "Town01", "{tmp}/r.yaml", "--lengths", "30-60", "--min-turns", "0,1"), "--min-turns"),
], ids=lambda value: " ".join(value) if isinstance(value, tuple) else None)
def test_other_bad_numbers_are_one_error_naming_the_option(args, option, tmp_path):
    result = avsim(*(a.format(tmp=tmp_path) for a in args), timeout=60)
    _assert_refused(result, option)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def highway_files(tmp_path_factory):
    """A procedural town without sidewalks, a ring road and a tiny town, as .xodr files."""
    folder = tmp_path_factory.mktemp("highway_maps")
    paths = {"nosidewalks": folder / "nosidewalks.xodr", "ring": folder / "ring.xodr", "tiny": folder / "tiny.xodr"}
    paths["nosidewalks"].write_text(town_xodr(NO_SIDEWALK_TOWN))
    paths["ring"].write_text(ring_road_xodr())
    paths["tiny"].write_text(town_xodr(TINY_TOWN))
    return paths


def test_run_on_a_map_without_sidewalks_defaults_to_no_walkers_and_says_so(highway_files, tmp_path):
    out = tmp_path / "demo"
    result = avsim("run", "--map", str(highway_files["nosidewalks"]), "--vehicles", "2", "--seconds", "0.5",
                   "--no-video", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "walkers" in line]
    assert notes == ["note: nosidewalks has no sidewalks: running with 0 walkers"]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["walkers"] == 0 and summary["ticks"] == 10


def test_run_with_walkers_on_a_map_without_sidewalks_names_walkers_0(highway_files, tmp_path):
    out = tmp_path / "demo"
    result = avsim("run", "--map", str(highway_files["nosidewalks"]), "--walkers", "3", "--seconds", "0.5",
                   "--out", str(out))
    _assert_refused(result, "--walkers 0")
    assert "no sidewalks" in result.stderr and not out.exists()


def test_routes_generate_adapts_to_a_ring_road_and_eval_runs_on_it(highway_files, tmp_path):
    from sim.scenarios.routes import ROUTE_CLASSES, load_route_file, map_route_classes

    routes = tmp_path / "ring_routes.yaml"
    result = avsim("routes", "generate", str(highway_files["ring"]), str(routes), "--count", "1")
    assert result.returncode == 0, result.stderr
    assert [r.route_id for r in load_route_file(routes).routes] == ["ring_short_00", "ring_medium_00", "ring_long_00"]
    header = routes.read_text().splitlines()[0]
    expected = map_route_classes(lane_graph("ring", ring_road_xodr()))  # scaled to the ring, no turns
    assert expected["long"][1] < ROUTE_CLASSES["long"][1]
    assert header == "# Benchmark routes on ring: " + ", ".join(
        f"1 {name} ({low:.0f}-{high:.0f} m, >= 0 turns)" for name, (low, high, _) in expected.items()) + "."
    config = tmp_path / "env.yaml"
    config.write_text("traffic: {vehicles: 2, walkers: 3}\nobservation: {mode: state}\n")
    result = avsim("eval", "driving", "--agent", "expert", "--config", str(config), "--observation", "state",
                   "--map", str(highway_files["ring"]), "--routes", str(routes), "--route", "ring_short_00", "--json")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "traffic.walkers is 3" in warnings[0] and "no sidewalks" in warnings[0]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["episodes"] == 1 and record["routes"][0]["route_id"] == "ring_short_00"


def test_routes_generate_on_a_tiny_town_with_options_and_a_strict_failure(highway_files, tmp_path):
    from sim.scenarios.routes import load_route_file

    routes = tmp_path / "tiny_routes.yaml"
    result = avsim("routes", "generate", str(highway_files["tiny"]), str(routes), "--lengths", "30-60,60-120",
                   "--min-turns", "0", "--count", "2")
    assert result.returncode == 0, result.stderr
    loaded = load_route_file(routes)
    assert [r.route_id for r in loaded.routes] == ["tiny_short_00", "tiny_short_01", "tiny_medium_00",
                                                   "tiny_medium_01"]
    assert "2 short (30-60 m, >= 0 turns), 2 medium (60-120 m, >= 0 turns)" in routes.read_text()

    strict = tmp_path / "strict.yaml"
    result = avsim("routes", "generate", str(highway_files["tiny"]), str(strict), "--lengths", "30-60",
                   "--min-turns", "3", "--count", "2")
    _assert_refused(result, "found only 0 of 2 short routes (30-60 m, >= 3 turns)")
    assert not strict.exists()

    default = tmp_path / "default.yaml"
    result = avsim("routes", "generate", str(highway_files["tiny"]), str(default), "--count", "1")
    assert result.returncode == 0, result.stderr
    assert len(load_route_file(default).routes) == 3
