"""Shared fixtures of the server tests: an ``avsim serve`` child process and a CARLA client connected to it."""

from __future__ import annotations

import pytest

from sim.carla_server.process import start_server_process, stop_server_process


@pytest.fixture(scope="module")
def server_port():
    """The RPC port of a child-process server of this test module's own (client scripts in child processes)."""
    proc, port = start_server_process()
    try:
        yield port
    finally:
        stop_server_process(proc)


@pytest.fixture(scope="module")
def client(server_port):
    """A ``carla.Client`` (60 s timeout) on the module's child-process server."""
    carla = pytest.importorskip("carla")
    c = carla.Client("127.0.0.1", server_port)
    c.set_timeout(60.0)
    return c
