"""Safe map loading: shipped towns, bad files give one clear error, crashes never reach the caller."""

from __future__ import annotations

import pytest

from sim.maps.loader import (MapLoadError, check_opendrive_text, load_carla_map, resolve_map,
                                      shipped_town_names, validate_in_child)


def test_shipped_towns_resolve_and_are_trusted():
    assert shipped_town_names() == ["Town01", "Town02", "Town10HD"]
    for name in shipped_town_names():
        source = resolve_map(name)
        assert source.trusted, f"{name} hash mismatch"
        assert "<OpenDRIVE" in source.xodr_text[:2000]


def test_attribution_ships_beside_the_maps():
    source = resolve_map("Town01")
    attribution = (source.path.parent / "ATTRIBUTION.md").read_text()
    assert "CC-BY 4.0" in attribution


def test_unknown_name_lists_shipped_towns():
    with pytest.raises(MapLoadError, match="Town01, Town02, Town10HD"):
        resolve_map("Town99")


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nowhere.xodr"
    with pytest.raises(MapLoadError, match="nowhere.xodr does not exist"):
        resolve_map(path)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("<OpenDRIVE><header/><road id='1'", "not well-formed XML"),
    ("<html></html>", "expected <OpenDRIVE>"),
    ("<OpenDRIVE><header/></OpenDRIVE>", "no <road> elements"),
])
def test_bad_text_rejected_before_carla(text, message):
    with pytest.raises(MapLoadError, match=message):
        check_opendrive_text(text, "bad.xodr")


def test_truncated_town_file_gives_clear_error(tmp_path):
    text = resolve_map("Town02").xodr_text
    path = tmp_path / "truncated.xodr"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(MapLoadError, match="truncated.xodr.*not well-formed"):
        load_carla_map(resolve_map(path))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "binary.xodr"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MapLoadError, match="binary.xodr is not UTF-8"):
        resolve_map(path)


def test_wellformed_but_roadless_geometry_fails_in_child_not_here(tmp_path):
    # Valid XML that carla.Map accepts or rejects: either way the caller gets MapLoadError, never a crash.
    text = ("<?xml version='1.0'?><OpenDRIVE><header revMajor='1' revMinor='4'/>"
            "<road id='1' length='-5' junction='-1'><planView><geometry s='0' x='0' y='0' hdg='0' length='-5'>"
            "<line/></geometry></planView><lanes><laneSection s='0'><center><lane id='0' type='none'/></center>"
            "</laneSection></lanes></road></OpenDRIVE>")
    with pytest.raises(MapLoadError, match="weird.xodr"):
        validate_in_child(text, "weird.xodr")


def test_child_crash_becomes_error(monkeypatch):
    # A child that dies by a signal (as carla.Map does on some files) must become a clear error.
    import sim.maps.loader as loader

    monkeypatch.setattr(loader, "_CHILD_SCRIPT", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(MapLoadError, match="crashed.*SIGSEGV"):
        validate_in_child("<OpenDRIVE/>", "crashy.xodr")


def test_user_file_is_validated_then_loaded(tmp_path):
    path = tmp_path / "copy.xodr"
    path.write_text(resolve_map("Town02").xodr_text)
    source = resolve_map(path)
    assert not source.trusted
    carla_map = load_carla_map(source)
    assert len(carla_map.get_topology()) > 50


def test_child_check_reports_the_lane_graph_from_any_directory(tmp_path, monkeypatch):
    # The child imports sim from this checkout whatever the working directory.
    monkeypatch.chdir(tmp_path)
    check = validate_in_child(resolve_map("Town02").xodr_text, "Town02 copy", name="Town02")
    assert check.topology_edges > 50 and check.waypoints > 1000
    assert check.lanes == 88 and check.main_component_share == 1.0 and check.spawn_points > 50

