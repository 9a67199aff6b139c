"""Helpers for tests: ``avsim serve`` and CARLA client scripts as child processes (killed by PID at the end)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def start_server(map_name: str = "Town01") -> tuple[subprocess.Popen, int]:
    """Start ``avsim serve`` on a free port; (process, RPC port) once it printed its ready line."""
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--map", map_name], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("avsim serve:"):
                return proc, int(line.split(" on 127.0.0.1:")[1].split()[0])
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"avsim serve did not start: {proc.communicate()[1][-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s: the process is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        raise AssertionError(f"client script timed out after {timeout_s} s: {err[-3000:]}") from None
    assert proc.returncode == 0, f"client script exited {proc.returncode}: {err[-3000:]}"
    return out
