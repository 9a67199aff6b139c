"""Break the CARLA client library's Traffic Manager deadlock in synchronous mode.

The Traffic Manager that ``client.get_trafficmanager(port)`` starts runs in
the client's own process. In synchronous mode every ``world.tick()`` ends in
``TrafficManagerLocal::SynchronousTick``, which wakes the manager's worker
thread and waits on a condition variable for the end of its step. The worker
sets that flag and notifies without holding the waiter's mutex, so now and
then (seen here about once in a few thousand ticks on a loaded 2-core machine)
the notification is lost: the tick waits for ever, the worker waits for the
next step, and the process hangs inside C++ where no Python timeout reaches it
(a native stack of such a hang: ``World::Tick`` -> ``SynchronizeFrame`` ->
``TrafficManager::Tick`` -> ``SynchronousTick``, the worker in ``Run`` waiting
for ``step_begin``; upstream carla-simulator/carla#9172).

The in-process API cannot help: ``TrafficManager::Tick`` holds the static
mutex every other ``TrafficManager`` method takes first. But the manager also
serves its methods over msgpack-RPC on its port for remote clients, and that
path calls the worker object directly. Switching synchronous mode off through
it sets ``step_begin`` and wakes the worker, which finishes its step, sets
``step_end`` and releases the tick; synchronous mode is then switched back on.

:class:`TickWatchdog` does that, and only in that state: a tick has run for
``stall_s`` *and* the server's frame has already advanced past the frame
before the tick (the client is past waiting for the server, so it is inside
the Traffic Manager's step). A slow server is never mistaken for the deadlock.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import msgpack

log = logging.getLogger(__name__)

DEFAULT_STALL_S = 2.0
"""How long a tick may sit in the Traffic Manager's step before the watchdog steps in (a step with
hundreds of vehicles takes milliseconds)."""


def call_traffic_manager(port: int, method: str, *params, host: str = "127.0.0.1", timeout_s: float = 5.0):
    """One msgpack-RPC call to the Traffic Manager server on ``host:port``; its result.

    ``OSError`` when nothing answers; ``RuntimeError`` with the server's message when the call fails.
    """
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(msgpack.packb([0, 1, method, list(params)]))
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            data = sock.recv(65536)
            if not data:
                raise OSError(f"the Traffic Manager on {host}:{port} closed the connection during {method!r}")
            unpacker.feed(data)
            for message in unpacker:
                _, _, error, result = message
                if error is not None:
                    raise RuntimeError(f"Traffic Manager call {method!r} failed: {error}")
                return result


class TickWatchdog:
    """Watches ticks of one world (see the module docstring); one daemon thread, started on first use.

    ``server_frame`` returns the newest frame the client has received from the server (called from the
    watchdog thread while the main thread is inside the tick, so it must not take the Traffic Manager's
    locks: ``world.get_snapshot().frame`` reads the client's episode state). ``nudge`` breaks the deadlock;
    by default it toggles synchronous mode through the Traffic Manager's RPC port.
    """

    def __init__(self, tm_port: int, server_frame: Callable[[], int], stall_s: float = DEFAULT_STALL_S,
                 nudge: Callable[[], None] | None = None, poll_s: float = 0.25) -> None:
        self.tm_port = int(tm_port)
        self.stall_s = float(stall_s)
        self.poll_s = float(poll_s)
        self._server_frame = server_frame
        self._nudge = nudge or self._toggle_synchronous_mode
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._tick: tuple[float, int] | None = None  # (monotonic start, frame before) of the tick in flight
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.nudges = 0
        """How many deadlocked ticks were released (also logged as warnings)."""

    def tick(self, frame_before: int, run: Callable[[], int]) -> int:
        """Run ``run`` (the world's tick, returning its frame) under watch."""
        self._ensure_thread()
        with self._lock:
            self._tick = (time.monotonic(), int(frame_before))
        try:
            return run()
        finally:
            with self._lock:
                self._tick = None

    def close(self) -> None:
        """Stop the watchdog thread (idempotent)."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._watch, name=f"tm-watchdog-{self.tm_port}", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stopped:
            self._wake.wait(self.poll_s)
            with self._lock:
                in_flight = self._tick
            if in_flight is None or self._stopped:
                continue
            started, frame_before = in_flight
            stalled_s = time.monotonic() - started
            if stalled_s < self.stall_s:
                continue
            try:
                arrived = self._server_frame() > frame_before
            except RuntimeError:
                continue
            if not arrived:
                continue  # still waiting for the server: not the Traffic Manager's deadlock
            with self._lock:
                if self._tick is not in_flight:
                    continue  # that tick returned meanwhile
            try:
                self._nudge()
            except (OSError, RuntimeError) as exc:
                log.warning("a tick is stuck in the Traffic Manager (port %d) and it could not be released: %s",
                            self.tm_port, exc)
                time.sleep(self.stall_s)
                continue
            self.nudges += 1
            log.warning("released a tick stuck %.1f s in the CARLA client's Traffic Manager (port %d): a lost "
                        "wake-up in its synchronous step (carla-simulator/carla#9172)", stalled_s, self.tm_port)
            with self._lock:  # one nudge per stuck tick; a further one only after another stall_s
                if self._tick is in_flight:
                    self._tick = (time.monotonic(), frame_before)

    def _toggle_synchronous_mode(self) -> None:
        call_traffic_manager(self.tm_port, "set_synchronous_mode", False)
        call_traffic_manager(self.tm_port, "set_synchronous_mode", True)
