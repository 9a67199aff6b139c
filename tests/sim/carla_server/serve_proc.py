"""Helpers for tests: CARLA client scripts as child processes (the server: ``sim.carla_server.process``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


class ClientTimeout(AssertionError):
    """A client script did not finish in time (it was killed)."""


def start_client(script: str, port: int, *args: str) -> subprocess.Popen:
    """Run a client ``script`` (Python source) in a child process with ``argv[1:] = [port, *args]``."""
    return subprocess.Popen([sys.executable, "-c", script, str(port), *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def run_client(script: str, port: int, *args: str, timeout_s: float = 60.0) -> str:
    """Run a client script to the end; its stdout (an AssertionError names the exit code and stderr)."""
    proc = start_client(script, port, *args)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise ClientTimeout(f"client script timed out after {timeout_s} s: {err[-3000:]}") from None
    assert proc.returncode == 0, f"client script exited {proc.returncode}: {err[-3000:]}"
    return out


RESET_WORLD = """
import sys
import carla
from carla import command

client = carla.Client("127.0.0.1", int(sys.argv[1]))
client.set_timeout(20.0)
world = client.get_world()
settings = world.get_settings()
settings.synchronous_mode = False
settings.fixed_delta_seconds = None
world.apply_settings(settings)
leftover = [a.id for a in world.get_actors() if a.type_id.startswith(("vehicle.", "sensor."))]
client.apply_batch_sync([command.DestroyActor(a) for a in leftover], False)
"""
"""A client script that puts the world back in asynchronous mode and destroys every vehicle and sensor (after a
killed client script)."""


def free_port() -> int:
    """A free loopback TCP port (e.g. for a client's Traffic Manager)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
