"""The tick watchdog that releases the CARLA client's Traffic Manager deadlock (sim/carla_backend/tm_watchdog.py).

A stand-in Traffic Manager server speaks msgpack-RPC on a loopback port, as the real one does; a stand-in
tick blocks the way the deadlocked ``world.tick()`` does, until synchronous mode is switched off.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time

import msgpack
import pytest

from sim.carla_backend.tm_watchdog import TickWatchdog, call_traffic_manager


class _FakeTrafficManager(socketserver.ThreadingTCPServer):
    """Answers msgpack-RPC requests; records them; ``set_synchronous_mode(False)`` releases ``stuck``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fail: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, list]] = []
        self.stuck = threading.Event()
        self.fail = fail
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while data := self.request.recv(65536):
            unpacker.feed(data)
            for _, msgid, method, params in unpacker:
                self.server.calls.append((method, params))
                error = f"no method {method}" if method == self.server.fail else None
                if method == "set_synchronous_mode" and params == [False]:
                    self.server.stuck.set()
                self.request.sendall(msgpack.packb([1, msgid, error, None]))


@pytest.fixture()
def tm():
    server = _FakeTrafficManager()
    yield server
    server.shutdown()
    server.server_close()


def test_a_tick_stuck_in_the_traffic_manager_is_released_by_toggling_synchronous_mode(tm, caplog):
    """The server's frame has arrived but the tick does not return: after stall_s the watchdog switches
    synchronous mode off and on again over the manager's RPC port, which ends the tick."""
    watchdog = TickWatchdog(tm.port, server_frame=lambda: 11, stall_s=0.2, poll_s=0.05)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sim.carla_backend.tm_watchdog"):
        frame = watchdog.tick(10, lambda: 11 if tm.stuck.wait(10.0) else -1)
    watchdog.close()
    assert frame == 11 and time.monotonic() - started < 5.0
    assert tm.calls == [("set_synchronous_mode", [False]), ("set_synchronous_mode", [True])]
    assert watchdog.nudges == 1 and "carla#9172" in caplog.text


def test_a_slow_server_is_not_mistaken_for_the_deadlock(tm):
    """While the server's frame has not advanced, the client is still waiting for the server: no nudge."""
    watchdog = TickWatchdog(tm.port, server_frame=lambda: 10, stall_s=0.1, poll_s=0.02)
    assert watchdog.tick(10, lambda: time.sleep(0.5) or 11) == 11
    watchdog.close()
    assert tm.calls == [] and watchdog.nudges == 0


def test_a_quick_tick_is_left_alone(tm):
    watchdog = TickWatchdog(tm.port, server_frame=lambda: 11, stall_s=0.3, poll_s=0.02)
    for frame in range(20):
        assert watchdog.tick(frame, lambda f=frame: f + 1) == frame + 1
    time.sleep(0.4)
    watchdog.close()
    assert tm.calls == [] and watchdog.nudges == 0


def test_a_nudge_that_fails_is_logged_and_the_tick_still_returns(caplog):
    """Nothing listens on the port: the failure is logged; the tick's own result still comes back."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    watchdog = TickWatchdog(free_port, server_frame=lambda: 11, stall_s=0.05, poll_s=0.02)
    with caplog.at_level(logging.WARNING, logger="sim.carla_backend.tm_watchdog"):
        assert watchdog.tick(10, lambda: time.sleep(0.4) or 11) == 11
    watchdog.close()
    assert watchdog.nudges == 0 and "could not be released" in caplog.text


def test_call_traffic_manager_reports_the_servers_error():
    server = _FakeTrafficManager(fail="set_synchronous_mode")
    try:
        with pytest.raises(RuntimeError, match="set_synchronous_mode.*no method"):
            call_traffic_manager(server.port, "set_synchronous_mode", True)
    finally:
        server.shutdown()
        server.server_close()


def test_an_exception_in_the_tick_propagates_and_clears_the_watch(tm):
    watchdog = TickWatchdog(tm.port, server_frame=lambda: 11, stall_s=0.05, poll_s=0.02)
    with pytest.raises(RuntimeError, match="time-out"):
        watchdog.tick(10, lambda: (_ for _ in ()).throw(RuntimeError("time-out")))
    time.sleep(0.2)
    watchdog.close()
    assert tm.calls == []
