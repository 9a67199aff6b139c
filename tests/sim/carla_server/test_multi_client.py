"""Several clients at once, and a client that dies while ticking in synchronous mode (the server keeps serving).

As CARLA: the world stays in synchronous mode after the client that set it is gone (it waits for the next
``tick``), and the gone client's actors stay in the world.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

carla = pytest.importorskip("carla")

from sim.carla_server.process import start_server_process, stop_server_process
from tests.sim.carla_server.serve_proc import REPO, start_client

TICKING_CLIENT = """
import sys, carla
client = carla.Client("127.0.0.1", int(sys.argv[1]))
client.set_timeout(10.0)
world = client.get_world()
settings = world.get_settings()
settings.synchronous_mode = True
settings.fixed_delta_seconds = 0.05
world.apply_settings(settings)
bp = world.get_blueprint_library().find("vehicle.lincoln.mkz_2020")
vehicle = world.spawn_actor(bp, world.get_map().get_spawn_points()[int(sys.argv[2])])
vehicle.apply_control(carla.VehicleControl(throttle=0.5))
print("ready", vehicle.id, flush=True)
while True:
    world.tick()
"""


def _readline(proc, timeout_s: float = 20.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, f"no output from the client: {proc.poll()}"
    return proc.stdout.readline()


def test_two_clients_then_one_dies_while_ticking():
    server, port = start_server_process()
    first = second = None
    try:
        first = start_client(TICKING_CLIENT, port, "0")
        line = _readline(first)
        assert line.startswith("ready"), line + first.stderr.read() if first.poll() is not None else line
        first_vehicle = int(line.split()[1])
        # A second client in this process watches the first one's ticks and its vehicle.
        client = carla.Client("127.0.0.1", port)
        client.set_timeout(10.0)
        world = client.get_world()
        frame = world.wait_for_tick(5.0).frame
        assert world.wait_for_tick(5.0).frame > frame
        assert first_vehicle in {a.id for a in world.get_actors().filter("vehicle.*")}
        # A third client process spawns its own vehicle while the first one ticks.
        second = start_client(TICKING_CLIENT.replace("while True:\n    world.tick()", "world.tick()"), port, "40")
        assert _readline(second).startswith("ready")
        second.wait(timeout=20)
        assert second.returncode == 0
        first.kill()  # dies mid-run, in synchronous mode
        first.wait(timeout=10)
        time.sleep(0.3)
        assert client.get_server_version() == "0.9.16"
        settings = world.get_settings()
        assert settings.synchronous_mode is True  # the server waits for the next tick, as CARLA's
        frozen = world.get_snapshot().frame
        time.sleep(0.3)
        assert world.get_snapshot().frame == frozen
        vehicles = world.get_actors().filter("vehicle.*")
        assert len(vehicles) == 2 and first_vehicle in {v.id for v in vehicles}  # the dead client's actors stay
        actor = world.get_actor(first_vehicle)
        before = actor.get_location()
        for _ in range(10):
            world.tick()  # another client takes over the ticking
        assert world.get_snapshot().frame == frozen + 10
        assert actor.get_location().distance(before) > 0.1  # it keeps its last control (throttle 0.5)
        for vehicle in vehicles:
            vehicle.destroy()
        settings.synchronous_mode = False
        settings.fixed_delta_seconds = None
        world.apply_settings(settings)
        assert world.wait_for_tick(5.0).frame > frozen + 10
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        stop_server_process(server)


def test_a_server_started_by_a_process_that_dies_goes_with_it():
    """The server started by start_server_process stops when its parent dies, so a crashed test leaves none."""
    script = ("import os, sys\nfrom sim.carla_server.process import start_server_process\n"
              "proc, port = start_server_process()\nprint(proc.pid, flush=True)\nos._exit(1)\n")
    parent = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie (exited, not yet reaped) counts as gone
        return stat.read().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_serve_loop_returns_on_a_stop_signal(signum: int):
    """wait_for_stop_signal returns on SIGTERM and SIGINT, however often the handler lands mid-poll."""
    script = ("from sim.carla_server.process import wait_for_stop_signal\nprint('waiting', flush=True)\n"
              "wait_for_stop_signal(poll_s=0.0005)\nprint('stopped', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "waiting"
    time.sleep(0.05)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=10)
    assert out.strip() == "stopped" and proc.returncode == 0
