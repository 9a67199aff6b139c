"""CarlaServer: an :class:`EmbeddedWorld` behind CARLA 0.9.16's own RPC and stream ports.

The unmodified ``carla`` client connects to ``host:port`` (RPC) and
``host:port + 1`` (streams). Time: in synchronous mode ``tick_cue`` advances
the world one step; in asynchronous mode (CARLA's default) a background
thread ticks it every ``dt`` of wall-clock time. After every tick the
sensors' data are pushed first, then the episode state (the client's
``world.tick()`` returns when that state arrives). All clients share one
world: a client that goes away leaves its actors and the synchronous mode
behind (as CARLA). Anything not handled answers an RPC error naming the
method.

The handlers live in modules by responsibility, each over one shared
:class:`~sim.carla_server.state.ServerState` (the world, the actors the
server knows, ids and lookups):

- ``episode``: settings, the map and map changes, weather, the Traffic
  Manager registry, the episode-state stream;
- ``actors``: spawn and destroy, control, transforms, physics, vehicle
  lights, bounding boxes, the spectator; ``batch``: ``apply_batch``;
- ``lights``: traffic lights; ``walkers``: walkers, their AI controllers and
  the navigation mesh;
- ``level``: level boxes and environment objects (no Open3D);
- ``sensor_streams``: sensor actors, measured and serialized after each tick.

A client-side pitfall (README): carla 0.9.16's ``apply_batch_sync(..., True)`` holds
the GIL while it waits for the tick, and stream threads freeing just-stopped sensors'
Python callbacks wait for the GIL, so stopping several sensors and destroying them in
one ticking batch can deadlock the client. The server answers both calls; the client
never reads the episode state. Pausing briefly after ``stop()`` avoids it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

from sim.api import SpawnError, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.actors import ActorHandlers
from sim.carla_server.batch import BatchCommands
from sim.carla_server.episode import (
    DEFAULT_SPEED_LIMIT_KMH,
    LIGHT_TRIGGER_M,
    MAP_PREFIX,
    OPENDRIVE_MAP_NAME,
    EpisodeHandlers,
)
from sim.carla_server.level import LevelHandlers
from sim.carla_server.lights import TrafficLightHandlers
from sim.carla_server.rpc import RpcServer
from sim.carla_server.sensor_streams import SUBSCRIBE_WAIT_S, SensorStreams
from sim.carla_server.state import (
    BUILDING_LABEL,
    EPISODE_STREAM_ID,
    LIGHT_ID_BASE,
    SENSOR_ID_BASE,
    SPECTATOR_ID,
    TRAFFIC_LIGHT_LABEL,
    ServerState,
    UnsupportedError,
)
from sim.carla_server.streams import StreamServer
from sim.carla_server.walkers import WalkerHandlers
from sim.embedded.sensors.base import SensorMeasurement
from sim.embedded.world import EmbeddedWorld

__all__ = [
    "BUILDING_LABEL", "DEFAULT_SPEED_LIMIT_KMH", "EPISODE_STREAM_ID", "LIGHT_ID_BASE", "LIGHT_TRIGGER_M", "MAP_PREFIX",
    "OPENDRIVE_MAP_NAME", "SENSOR_ID_BASE", "SPECTATOR_ID", "SUBSCRIBE_WAIT_S", "TRAFFIC_LIGHT_LABEL", "CarlaServer",
    "UnsupportedError",
]

log = logging.getLogger(__name__)

ASYNC_STEP_RANGE_S = (0.001, 0.1)
"""Asynchronous mode without ``fixed_delta_seconds``: the wall-clock step, clamped to this range."""


class CarlaServer:
    """Serve ``world`` (or a new ``EmbeddedWorld`` on ``map_name``) to CARLA clients; see the module docstring.

    ``port`` 0 picks a free RPC port whose next port is free too; the chosen
    ports are :attr:`port` and :attr:`stream_port`. Use as a context manager
    or call :meth:`start` and :meth:`stop`. ``measurement_hook(sensor_actor_id,
    measurement)`` sees every embedded measurement before it is serialized
    (tests compare it with what the client decodes).
    """

    def __init__(self, map_name: str = "Town01", host: str = "127.0.0.1", port: int = 2000, *,
                 delta_seconds: float = 0.05, seed: int = 0, world: EmbeddedWorld | None = None,
                 measurement_hook: Callable[[int, SensorMeasurement], None] | None = None) -> None:
        world = world if world is not None else EmbeddedWorld(map=map_name, seed=seed, dt_s=delta_seconds)
        self.host = host
        self._lock = threading.RLock()
        self.rpc, self.streams = self._bind(host, port)
        self.port, self.stream_port = self.rpc.port, self.streams.port
        self.state = ServerState(world, self.streams, host)
        self._episode = EpisodeHandlers(self.state)
        self._sensors = SensorStreams(self.state, measurement_hook)
        self._walkers = WalkerHandlers(self.state)
        self._lights = TrafficLightHandlers(self.state)
        actors = ActorHandlers(self.state, self._walkers, self._sensors)
        groups = (self._episode, actors, BatchCommands(self.state, actors, self._walkers, self._lights, self.step),
                  self._lights, self._walkers, LevelHandlers(self.state), self._sensors)
        self._handlers: dict[str, Callable[..., object]] = {"tick_cue": self._tick_cue}
        for group in groups:
            for name, handler in group.handlers().items():
                if name in self._handlers:
                    raise AssertionError(f"RPC {name!r} has two handlers")
                self._handlers[name] = handler
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._async_loop, name="carla-async-ticker", daemon=True)

    @property
    def world(self) -> EmbeddedWorld:
        """The world being served (a new one after each map change)."""
        return self.state.world

    def _bind(self, host: str, port: int) -> tuple[RpcServer, StreamServer]:
        for _ in range(20):
            rpc = RpcServer(host, port, self.handle)
            try:
                return rpc, StreamServer(host, rpc.port + 1, greeting=self._greeting)
            except OSError:
                rpc.close()
                if port != 0:
                    raise
        raise OSError(f"no free pair of ports (rpc, rpc + 1) on {host}")

    def _greeting(self, stream_id: int) -> bytes | None:
        return self._episode.greeting(stream_id)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> CarlaServer:
        """Start serving (returns self)."""
        self.rpc.start()
        self.streams.start()
        self._ticker.start()
        log.info("serving %s on %s:%d (streams on %d)", self.world.source.name, self.host, self.port,
                 self.stream_port)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()
        self.rpc.close()
        self.streams.close()
        self._sensors.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _async_loop(self) -> None:
        """In asynchronous mode the world runs on its own: a step every ``fixed_delta_seconds`` of wall-clock time,
        or, without one, every server step (``delta_seconds``) with the wall-clock time since the last as its step
        (CARLA's variable step, kept within [``ASYNC_STEP_RANGE_S``]). Not while a map change waits for its new
        episode's first subscriber (``EpisodeHandlers.switching``)."""
        last = time.monotonic()
        while not self._stop.wait(self.world.dt_s if self.state.settings.fixed_delta_seconds is not None
                                  else self.state.base_dt_s):
            with self._lock:
                now = time.monotonic()
                elapsed, last = now - last, now
                if self.state.settings.synchronous_mode or self._episode.switching():
                    continue
                if self.state.settings.fixed_delta_seconds is None:
                    low, high = ASYNC_STEP_RANGE_S
                    self.world.set_step(min(max(elapsed, low), high))
                self.step()

    # ------------------------------------------------------------------ dispatch and time
    def handle(self, method: str, params: list) -> object:
        """Answer one RPC call (``params`` start with CARLA's Metadata argument)."""
        handler = self._handlers.get(method)
        if handler is None:
            return enc.error(f"{method}: not supported by the avsim CARLA server (embedded simulator)")
        args = params[1:] if params and isinstance(params[0], list) else params
        with self._lock:
            try:
                return handler(*args)
            except TypeError as exc:
                return enc.error(f"{method}: bad arguments {args!r:.200}: {exc}")
            except (ValueError, KeyError, SpawnError, UnsupportedError) as exc:
                return enc.error(f"{method}: {exc}")

    def token(self, stream_id: int) -> bytes:
        """The 24-byte token of a stream on this server."""
        return self.state.token(stream_id)

    def navigation_file(self) -> tuple[str, bytes]:
        """The map's navigation mesh as CARLA's client loads it: (cache file name, bytes); built once per map."""
        return self._walkers.navigation_file()

    def _tick_cue(self) -> list:
        """The frame the client waits for, as CARLA: the next one. In synchronous mode this call makes it; in
        asynchronous mode the ticker does, so ``world.tick()`` (and ``apply_settings``' check of the new
        ``fixed_delta_seconds``, which ticks until the snapshots show it) waits for a frame stepped anew."""
        if self.state.settings.synchronous_mode:
            self.step()
            return enc.ok(self.world.frame)
        return enc.ok(self.world.frame + 1)

    def step(self) -> WorldSnapshot:
        """Advance one step; push sensor data, then the episode state."""
        world = self.world
        for actor_id, pose in self.state.held.items():  # no physics: back where it is held, at rest
            world.teleport(actor_id, pose, 0.0)
        snapshot = world.tick()
        self._sensors.publish(snapshot)
        self._episode.publish_state(snapshot)
        return snapshot
