"""Shared fixtures: small worlds built once per test module."""

from __future__ import annotations

import os

import pytest

from sim.embedded.maps.lanes import build_lane_graph
from sim.embedded.maps.loader import load_carla_map, resolve_map


def pytest_collection_modifyitems(config, items):
    """Tests marked ``carla`` need a CARLA-protocol server: skip them unless CARLA_HOST is set."""
    if os.environ.get("CARLA_HOST"):
        return
    skip = pytest.mark.skip(reason="needs a CARLA-protocol server: set CARLA_HOST (and CARLA_PORT)")
    for item in items:
        if "carla" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def town01():
    """(source, carla_map, lane_graph) of Town01."""
    source = resolve_map("Town01")
    carla_map = load_carla_map(source)
    return source, carla_map, build_lane_graph(carla_map, source.xodr_text)


@pytest.fixture(scope="session")
def town10():
    """(source, carla_map, lane_graph) of Town10HD."""
    source = resolve_map("Town10HD")
    carla_map = load_carla_map(source)
    return source, carla_map, build_lane_graph(carla_map, source.xodr_text)
