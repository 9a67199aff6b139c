"""``avsim serve`` as a child process: start it on a free port and stop it (tests and benchmarks).

The ``carla`` client keeps the GIL while it waits for some answers, so a
client and a server cannot share a Python process: whoever drives the real
client against the server starts the server with :func:`start_server_process`.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "avsim serve:"


def serve_command(map_name: str = "Town01", host: str = "127.0.0.1") -> list[str]:
    """The command line of ``avsim serve`` on a free port (``--port 0``)."""
    return [sys.executable, "-m", "launch.cli", "serve", "--host", host, "--port", "0", "--map", map_name]


def start_server_process(command: list[str] | None = None, timeout_s: float = 30.0) -> tuple[subprocess.Popen, int]:
    """Run ``command`` (default :func:`serve_command`) and wait for its ready line; (process, RPC port).

    The ready line is ``avsim serve: <map> on <host>:<port> ...``. ``RuntimeError`` with the
    process's last stderr if it exits or stays silent for ``timeout_s``.
    """
    proc = subprocess.Popen(command or serve_command(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(READY_PREFIX):
                return proc, int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1])
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"avsim serve did not start: {proc.communicate()[1][-2000:]}")


def stop_server_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: the process is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
