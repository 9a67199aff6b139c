"""``avsim serve`` as a child process: start it on a free port and stop it (tests and benchmarks).

The ``carla`` client keeps the GIL while it waits for some answers, so a
client and a server cannot share a Python process: whoever drives the real
client against the server starts the server with :func:`start_server_process`.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "avsim serve:"
PARENT_ENV = "AVSIM_SERVE_PARENT_PID"
"""Set by :func:`start_server_process`: the server stops when this process dies (see :func:`exit_with_parent`)."""


def serve_command(map_name: str = "Town01", host: str = "127.0.0.1") -> list[str]:
    """The command line of ``avsim serve`` on a free port (``--port 0``)."""
    return [sys.executable, "-m", "launch.cli", "serve", "--host", host, "--port", "0", "--map", map_name]


def start_server_process(command: list[str] | None = None, timeout_s: float = 30.0) -> tuple[subprocess.Popen, int]:
    """Run ``command`` (default :func:`serve_command`) and wait for its ready line; (process, RPC port).

    The ready line is ``avsim serve: <map> on <host>:<port> ...``. ``RuntimeError`` with the
    process's last stderr if it exits or stays silent for ``timeout_s``.
    """
    proc = subprocess.Popen(command or serve_command(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO), PARENT_ENV: str(os.getpid())})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(READY_PREFIX):
                _drain(proc)
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


def _drain(proc: subprocess.Popen) -> None:
    """Read (and drop) the server's output for as long as it runs: a full pipe would block it."""
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=_read_to_end, args=(stream,), daemon=True).start()


def _read_to_end(stream) -> None:
    for _ in iter(stream.readline, ""):
        pass


def exit_with_parent() -> None:
    """Called by ``avsim serve`` at start: if :data:`PARENT_ENV` names our parent, stop (SIGTERM) when it dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); a crashed test or benchmark then leaves no server behind.
    """
    expected = os.environ.get(PARENT_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(expected):  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def wait_for_stop_signal(poll_s: float = 0.2) -> None:
    """Block until SIGINT or SIGTERM arrives (the main thread's serve loop).

    The handler only sets a flag: a ``threading.Event.set`` from a signal handler can deadlock when the
    signal lands while the main thread holds the event's lock inside ``Event.wait``.
    """
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, _frame: received.append(signum))
    while not received:
        time.sleep(poll_s)
