"""Shared fixtures of the server tests: an ``avsim serve`` child process and a CARLA client connected to it."""

from __future__ import annotations

import pytest

from sim.carla_server.process import start_server_process, stop_server_process


@pytest.fixture(scope="module")
def client():
    """A ``carla.Client`` (60 s timeout) on a child-process server of this test module's own."""
    carla = pytest.importorskip("carla")
    proc, port = start_server_process()
    try:
        c = carla.Client("127.0.0.1", port)
        c.set_timeout(60.0)
        yield c
    finally:
        stop_server_process(proc)
