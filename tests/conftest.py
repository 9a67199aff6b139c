"""Shared fixtures: small worlds built once per test module."""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import tempfile

import pytest

from sim.maps.lanes import build_lane_graph
from sim.maps.loader import load_carla_map, resolve_map

_CACHE_KEY = "_avsim_carla_cache"
SESSION_LIMIT_S = float(os.environ.get("AVSIM_TEST_SESSION_LIMIT_S", "1800"))
"""A hard cap on a whole test session. pytest-timeout's per-test limit runs in Python, so it cannot end a
test stuck inside a C++ library that waits with the GIL held; this one (faulthandler's C watchdog thread)
prints every thread's stack and exits, so a hang fails the run in minutes instead of stalling it."""


def pytest_configure(config):
    """CARLA clients cache files a server offers (the navigation mesh) under CARLA_CACHE_DIR, else in the home
    directory: tests keep them in a temporary directory (clients in child processes inherit it).
    Also arms :data:`SESSION_LIMIT_S`."""
    if SESSION_LIMIT_S > 0:
        faulthandler.dump_traceback_later(SESSION_LIMIT_S, exit=True, file=sys.__stderr__)
    if "CARLA_CACHE_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="avsim-carla-cache-")
        os.environ["CARLA_CACHE_DIR"] = path
        setattr(config, _CACHE_KEY, path)


def pytest_unconfigure(config):
    faulthandler.cancel_dump_traceback_later()
    path = getattr(config, _CACHE_KEY, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop("CARLA_CACHE_DIR", None)


@pytest.fixture(scope="session")
def carla_endpoint():
    """(host, port, is_avsim_serve) of the server that ``carla``-marked tests use.

    CARLA_HOST / CARLA_PORT when set (a real CARLA server); otherwise ``avsim serve``
    on a free loopback port, started once for the session.
    """
    host = os.environ.get("CARLA_HOST")
    if host:
        yield host, int(os.environ.get("CARLA_PORT", "2000")), False
        return
    from sim.carla_server.process import start_server_process, stop_server_process

    proc, port = start_server_process()
    try:
        yield "127.0.0.1", port, True
    finally:
        stop_server_process(proc)


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
