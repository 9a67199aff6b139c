"""A msgpack-rpc server with rpclib's framing, as CARLA's RPC port speaks it.

A request is ``[0, msgid, method, params]``; the answer is ``[1, msgid, error,
result]``. Every connection gets a thread that reads requests and answers
them in order through one handler; ``[2, method, params]`` notifications are
handled without answer. The handler returns the already wrapped CARLA result;
a handler that raises answers CARLA's error form naming the method, so a bad
call never takes the server down.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

import msgpack

from sim.carla_server.encoding import error

log = logging.getLogger(__name__)

Handler = Callable[[str, list], object]
"""``handler(method, params) -> result`` (params include CARLA's leading Metadata argument)."""

_REQUEST, _RESPONSE, _NOTIFY = 0, 1, 2


class RpcServer:
    """Listens on ``host:port`` (port 0: a free one, see :attr:`port`) and serves ``handler`` on every connection."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.handler = handler
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"carla-rpc-{self.port}", daemon=True)

    def start(self) -> None:
        """Start accepting connections."""
        self._accept_thread.start()

    def close(self) -> None:
        """Stop accepting, close every connection and wait for the threads."""
        self._stop.set()
        if self._accept_thread.is_alive():
            self._accept_thread.join()
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for conn in connections:
            _shutdown(conn)
        for thread in threads:
            thread.join(timeout=5.0)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log.debug("rpc connection from %s", peer)
            thread = threading.Thread(target=self._serve, args=(conn, peer), name=f"carla-rpc-conn-{peer[1]}",
                                      daemon=True)
            with self._lock:
                self._connections.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, conn: socket.socket, peer: tuple) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                unpacker.feed(chunk)
                for message in unpacker:
                    reply = self._answer(message)
                    if reply is not None:
                        conn.sendall(reply)
        except (OSError, ValueError) as exc:  # a broken peer or a malformed stream ends this connection only
            log.warning("rpc connection %s closed: %s", peer, exc)
        finally:
            log.debug("rpc connection from %s closed", peer)
            _shutdown(conn)
            with self._lock:
                self._connections.discard(conn)

    def _answer(self, message: object) -> bytes | None:
        log.debug("rpc message %r", message)
        if not isinstance(message, list) or not message:
            raise ValueError(f"not a msgpack-rpc message: {message!r:.200}")
        kind = message[0]
        if kind == _REQUEST and len(message) == 4:
            _, msgid, method, params = message
            return msgpack.packb([_RESPONSE, msgid, None, self._call(str(method), params)], use_bin_type=True)
        if kind == _NOTIFY and len(message) == 3:
            self._call(str(message[1]), message[2])
            return None
        raise ValueError(f"not a msgpack-rpc request: {message!r:.200}")

    def _call(self, method: str, params: object) -> object:
        try:
            return self.handler(method, params if isinstance(params, list) else [params])
        except Exception as exc:  # every failure becomes an RPC error; the server keeps serving
            log.exception("rpc %s failed", method)
            return error(f"{method}: {type(exc).__name__}: {exc}")


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()
