"""CARLA's stream server (RPC port + 1): one TCP connection per subscribed stream.

A client subscribes by connecting and sending the stream id as 4
little-endian bytes; from then on it reads messages framed as a u32
little-endian length followed by the payload. It unsubscribes by closing.
:meth:`StreamServer.publish` sends one payload to every subscriber of a
stream; a subscriber that cannot take it within ``send_timeout_s`` is dropped.
``greeting`` (optional) gives a payload a new subscriber gets first, before
any published one (the server greets episode-state subscribers with the
current state).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")


class StreamServer:
    """Accepts stream subscriptions on ``host:port`` and pushes framed payloads to them."""

    def __init__(self, host: str, port: int, send_timeout_s: float = 5.0,
                 greeting: Callable[[int], bytes | None] | None = None) -> None:
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self.send_timeout_s = float(send_timeout_s)
        self.greeting = greeting
        self._subscribers: dict[int, list[socket.socket]] = {}
        self._subscriptions_made: dict[int, int] = {}  # stream id -> subscriptions listed so far (ever)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"carla-streams-{self.port}", daemon=True)

    def start(self) -> None:
        """Start accepting subscriptions."""
        self._thread.start()

    def close(self) -> None:
        """Stop accepting and close every subscription."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._listener.close()
        with self._lock:
            sockets = [s for subs in self._subscribers.values() for s in subs]
            self._subscribers.clear()
        for sock in sockets:
            _close(sock)

    def subscriber_count(self, stream_id: int) -> int:
        """How many connections are subscribed to ``stream_id``."""
        with self._lock:
            return len(self._subscribers.get(int(stream_id), ()))

    def subscriptions_made(self, stream_id: int) -> int:
        """How many subscriptions ``stream_id`` has had so far (counted once greeted and listed, never decreasing)."""
        with self._lock:
            return self._subscriptions_made.get(int(stream_id), 0)

    def wait_for_subscriber(self, stream_id: int, timeout_s: float) -> bool:
        """Wait until ``stream_id`` has a subscriber; whether it has one."""
        deadline = time.monotonic() + timeout_s
        while self.subscriber_count(stream_id) == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def publish(self, stream_id: int, payload: bytes) -> int:
        """Send ``payload`` to every subscriber of ``stream_id``; returns how many got it."""
        with self._lock:
            subscribers = list(self._subscribers.get(int(stream_id), ()))
        if not subscribers:
            return 0
        dead = []
        for sock in subscribers:
            try:
                _send_frame(sock, payload)
            except OSError as exc:
                log.info("stream %d: dropping a subscriber (%s)", stream_id, exc)
                dead.append(sock)
        if dead:
            with self._lock:
                alive = [s for s in self._subscribers.get(int(stream_id), ()) if s not in dead]
                self._subscribers[int(stream_id)] = alive
            for sock in dead:
                _close(sock)
        return len(subscribers) - len(dead)

    def drop_stream(self, stream_id: int) -> None:
        """Close every subscription of a stream (its sensor was destroyed)."""
        with self._lock:
            sockets = self._subscribers.pop(int(stream_id), [])
        for sock in sockets:
            _close(sock)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            # The 4-byte stream id comes right after connecting; read it off the accept thread.
            threading.Thread(target=self._register, args=(conn,), daemon=True).start()

    def _register(self, conn: socket.socket) -> None:
        conn.settimeout(self.send_timeout_s)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        try:
            while len(data) < 4:
                chunk = conn.recv(4 - len(data))
                if not chunk:
                    raise OSError("closed before sending its stream id")
                data += chunk
        except OSError as exc:
            log.info("stream subscription failed: %s", exc)
            _close(conn)
            return
        stream_id = _LENGTH.unpack(data)[0]
        first = self.greeting(stream_id) if self.greeting is not None else None
        if first is not None:  # sent before the subscription is listed, so no publish can interleave with it
            try:
                _send_frame(conn, first)
            except OSError as exc:
                log.info("stream %d: greeting failed: %s", stream_id, exc)
                _close(conn)
                return
        with self._lock:
            if self._stop.is_set():
                _close(conn)
                return
            self._subscribers.setdefault(stream_id, []).append(conn)
            self._subscriptions_made[stream_id] = self._subscriptions_made.get(stream_id, 0) + 1
        threading.Thread(target=self._watch, args=(stream_id, conn), daemon=True).start()

    def _watch(self, stream_id: int, conn: socket.socket) -> None:
        """Notice when the client closes (it never sends more), and forget the subscription."""
        while not self._stop.is_set():
            try:  # the socket keeps its send timeout: a recv timeout just loops
                if not conn.recv(64):
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        with self._lock:
            subs = self._subscribers.get(stream_id)
            if subs and conn in subs:
                subs.remove(conn)
        _close(conn)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    """Length prefix and payload in one system call when the socket takes it all (no joined copy of the payload)."""
    header = _LENGTH.pack(len(payload))
    sent = sock.sendmsg([header, payload])
    if sent < len(header):
        sock.sendall(header[sent:])
        sock.sendall(payload)
    elif sent < len(header) + len(payload):
        sock.sendall(memoryview(payload)[sent - len(header):])


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
