"""The episode over RPC: settings, the map and map changes, weather, the Traffic Manager registry, and the
episode-state stream.

- Settings: any ``fixed_delta_seconds`` in (0, 1] s steps the world by
  it (vehicle dynamics in substeps no longer than the server's own step);
  None steps the server's own step in synchronous mode and the wall-clock
  time between ticks in asynchronous mode (as CARLA's variable step).
- Traffic Manager: it runs inside the client library. The server keeps its
  registry (``is/add/get_traffic_manager_running``) and the TM drives its
  vehicles with ``apply_batch`` ApplyVehicleControl like any client; the
  episode state gives it each vehicle's lane speed limit and the light ahead.
- Map changes (``load_world``, ``generate_opendrive_world``; an empty map
  name, as ``reload_world`` sends, reloads the current map) build a new
  embedded world: a new episode id, the map-change flag on its first episode
  state, frame numbers going on, the episode's time back at 0, the weather
  back to the default, every actor gone, settings reset unless
  ``reset_settings=False``.
- The episode switch, as CARLA's client makes it: when ``load_new_episode``
  answers, carla 0.9.16's ``Simulator::LoadEpisode`` drops its ``Episode``
  and subscribes a new one to the same episode stream. Its streaming client
  keys subscriptions by stream id without a lock, so if the old ``Episode``
  is still alive then (a state callback of it running on a stream thread
  holds it), the new subscription is lost, or freed while it connects, and
  the client segfaults or times out. CARLA sends nothing while a map loads;
  so here no episode state is published from the map change until the new
  episode has a new subscriber (the loading client's; at most
  :data:`EPISODE_SWITCH_HOLD_S`): the change itself only sets the greeting
  (the new episode's first state, for the client's new subscription), and the
  asynchronous ticker waits (:meth:`EpisodeHandlers.switching`); the first
  state published after it carries the map-change flag (other clients
  re-read the map).
- The episode state (pushed after every tick, after the sensors' data)
  carries every world actor, traffic light, sensor, controller and the
  spectator; a new subscriber is greeted with the last one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from sim.api import ActorKind, TrafficLightState, WorldSnapshot
from sim.carla_server import encoding as enc
from sim.carla_server.encoding import EpisodeSettings, Transform
from sim.carla_server.lights import light_records
from sim.carla_server.sensor_streams import sensor_transform
from sim.carla_server.state import EPISODE_STREAM_ID, LIGHT_ID_BASE, SPECTATOR_ID, SensorActor, ServerState
from sim.carla_server.walkers import walker_records
from sim.embedded.world import EmbeddedWorld
from sim.maps.loader import MapSource, check_opendrive_text, resolve_map, shipped_town_names

__all__ = [
    "DEFAULT_SPEED_LIMIT_KMH", "EPISODE_SWITCH_HOLD_S", "LIGHT_TRIGGER_M", "MAP_PREFIX", "OPENDRIVE_MAP_NAME",
    "EpisodeHandlers",
]

log = logging.getLogger(__name__)

DEFAULT_SPEED_LIMIT_KMH = 30.0
MAX_DELTA_SECONDS = 1.0
"""The longest ``fixed_delta_seconds`` this server steps."""
MAP_PREFIX = "/Game/Carla/Maps/"
"""How CARLA names its maps in ``get_available_maps``."""
OPENDRIVE_MAP_NAME = "OpenDriveMap"
OPT_SUFFIX = "_Opt"
"""CARLA's layered variant of a town (``Town10HD_Opt``, scenario_runner's routes ask for it): the same roads, so it is
served as the town itself, under the name asked for (map layers do not exist here)."""
LIGHT_TRIGGER_M = 15.0
"""A vehicle is "at" the light at the end of its lane within this distance of the lane's end (CARLA's trigger box)."""
EPISODE_SWITCH_HOLD_S = 5.0
"""After a map change, the asynchronous ticker waits at most this long for the new episode's first subscriber (a client
that re-subscribes ends the wait at once; CARLA itself does not tick for the seconds a map takes to load)."""


def available_map_names() -> list[str]:
    """The maps ``load_world`` takes by name: the shipped towns and their ``_Opt`` variants (as CARLA lists them)."""
    towns = shipped_town_names()
    return towns + [town + OPT_SUFFIX for town in towns]


class EpisodeHandlers:
    """The episode RPCs of one server and its episode-state stream."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.weather = enc.CLEAR_NOON_WEATHER
        self._traffic_managers: dict[int, tuple[str, int]] = {}  # TM port -> (host, port) of its RPC server
        self._opendrive_text: str | None = None  # the map of generate_opendrive_world
        self._map_name: str | None = None  # the name the map was loaded by, if not its own (an ``_Opt`` variant)
        self._last_state_payload: bytes | None = None  # greets new episode-state subscribers
        self._switch: tuple[int, float] | None = None  # after a map change: (subscriptions made then, deadline)

    def handlers(self) -> dict[str, Callable[..., object]]:
        """RPC name -> handler."""
        state = self.state
        return {
            "version": lambda: enc.ok(enc.CARLA_VERSION),
            "get_episode_info": lambda: enc.ok([state.episode_id, [state.token(EPISODE_STREAM_ID)]]),
            "get_episode_settings": lambda: enc.ok(state.settings.to_msg()),
            "set_episode_settings": self.set_settings,
            "get_map_info": self.map_info,
            "get_map_data": lambda: enc.ok(state.world.source.xodr_text),
            "get_available_maps": lambda: enc.ok([MAP_PREFIX + name for name in available_map_names()]),
            "load_new_episode": self.load_new_episode,
            "copy_opendrive_to_file": self.copy_opendrive,  # 0.9.16's generate_opendrive_world, then load_new_episode
            "get_weather_parameters": lambda: enc.ok(list(self.weather)),
            "set_weather_parameters": self.set_weather,
            "is_traffic_manager_running": lambda port: enc.ok(int(port) in self._traffic_managers),
            "add_traffic_manager_running": self.add_traffic_manager,
            "get_traffic_manager_running": self.get_traffic_manager,
            "destroy_traffic_manager": lambda port: enc.ok(self._traffic_managers.pop(int(port), None) is not None),
        }

    # ------------------------------------------------------------------ settings and the map
    def set_settings(self, message: list) -> list:
        """``World.apply_settings``; answers the current frame."""
        state = self.state
        settings = EpisodeSettings.from_msg(message)
        delta = settings.fixed_delta_seconds
        if delta is not None and not 0.0 < delta <= MAX_DELTA_SECONDS:
            raise ValueError(f"fixed_delta_seconds={delta:g} is not supported: it must be in "
                             f"(0, {MAX_DELTA_SECONDS:g}] s, or None")
        if settings.max_substeps < 1 or not settings.max_substep_delta_time > 0.0:
            raise ValueError(f"max_substeps={settings.max_substeps} and max_substep_delta_time="
                             f"{settings.max_substep_delta_time:g} must be positive")
        state.settings = settings
        state.apply_step()
        self.publish_state(state.world.snapshot())
        return enc.ok(state.world.frame)

    def map_info(self) -> list:
        """The map's name and spawn points."""
        world = self.state.world
        points = [Transform.from_arrays(p.pose.location, p.pose.rotation).to_msg() for p in world.spawn_points]
        return enc.ok([self._map_name or world.source.name, points])

    def load_new_episode(self, map_name: str, reset_settings: bool = True, _map_layers: int = 0) -> list:
        """``client.load_world``: a new embedded world on a shipped town (``Town02`` or ``/Game/Carla/Maps/Town02``).

        ``OpenDriveMap`` is the OpenDRIVE text of the last ``copy_opendrive_to_file`` (``generate_opendrive_world``
        sends the text, then loads that map).
        """
        name = str(map_name).rsplit("/", 1)[-1]
        served_name = None
        if not name:  # client.reload_world(): the current map again
            source, served_name = self.state.world.source, self._map_name
        elif name == OPENDRIVE_MAP_NAME and self._opendrive_text is not None:
            source = MapSource(OPENDRIVE_MAP_NAME, self._opendrive_text, None, trusted=False)
        elif name in shipped_town_names():
            source = resolve_map(name)
        elif name.endswith(OPT_SUFFIX) and name.removesuffix(OPT_SUFFIX) in shipped_town_names():
            source, served_name = resolve_map(name.removesuffix(OPT_SUFFIX)), name
        else:
            raise ValueError(f"map {map_name!r} not found; available: {', '.join(available_map_names())}")
        self._change_map(source, bool(reset_settings))
        self._map_name = served_name
        return enc.ok_void()

    def copy_opendrive(self, xodr_text: str, _parameters: list | None = None) -> list:
        """First half of ``client.generate_opendrive_world``: keep the (checked) OpenDRIVE text as ``OpenDriveMap``."""
        if not isinstance(xodr_text, str):
            raise TypeError(f"OpenDRIVE text must be a string, got {type(xodr_text).__name__}")
        check_opendrive_text(xodr_text, "from generate_opendrive_world")
        self._opendrive_text = xodr_text
        return enc.ok_void()

    def _change_map(self, source: MapSource, reset_settings: bool) -> None:
        """A new episode on ``source``: every actor goes, frames go on, settings reset if asked (CARLA's default).

        Nothing is published here (see the module docstring: the loading client's old subscription must stay
        quiet while it switches): the new episode's state becomes the greeting, and the first state published
        in the new episode carries the map-change flag, so clients fetch the new map.
        """
        state = self.state
        old = state.world
        world = EmbeddedWorld(source=source, seed=old.seed, dt_s=state.base_dt_s)
        for sensor in state.sensors.values():
            state.streams.drop_stream(sensor.stream_id)
        world.continue_from_frame(old.frame)  # frame numbers keep increasing across episodes, as CARLA's
        state.new_episode(world)
        state.episode_id = (state.episode_id % 0xFFFFFFFF) + 1
        if reset_settings:
            state.settings = EpisodeSettings()
        state.apply_step()
        self.weather = enc.CLEAR_NOON_WEATHER
        state.state_flags = enc.MAP_CHANGE_FLAG
        log.info("new episode %d on %s", state.episode_id, source.name)
        self._last_state_payload = self._state_payload(world.snapshot(), 0)
        self._switch = (state.streams.subscriptions_made(EPISODE_STREAM_ID),
                        time.monotonic() + EPISODE_SWITCH_HOLD_S)

    def switching(self) -> bool:
        """Whether a map change waits for the new episode's first subscriber (at most ``EPISODE_SWITCH_HOLD_S``).

        The asynchronous ticker does not step meanwhile: a state pushed then would reach the loading client's old
        ``Episode`` while its ``load_world`` replaces it.
        """
        if self._switch is None:
            return False
        made, deadline = self._switch
        if self.state.streams.subscriptions_made(EPISODE_STREAM_ID) > made or time.monotonic() > deadline:
            self._switch = None
        return self._switch is not None

    # ------------------------------------------------------------------ weather and the Traffic Manager registry
    def set_weather(self, message: list) -> list:
        """Weather is stored and reported back; it does not change the embedded rendering."""
        if not isinstance(message, (list, tuple)) or len(message) != len(enc.CLEAR_NOON_WEATHER):
            raise ValueError(f"WeatherParameters must have {len(enc.CLEAR_NOON_WEATHER)} fields (CARLA 0.9.16), "
                             f"got {message!r:.200}")
        self.weather = tuple(float(v) for v in message)
        return enc.ok_void()

    def add_traffic_manager(self, endpoint: list) -> list:
        """A client started a Traffic Manager (it runs inside that client) and serves it at ``endpoint``."""
        host, port = str(endpoint[0]), int(endpoint[1])
        if port in self._traffic_managers:
            return enc.ok(False)
        self._traffic_managers[port] = (host, port)
        return enc.ok(True)

    def get_traffic_manager(self, port: int) -> list:
        """The (host, port) of the Traffic Manager registered on ``port``."""
        if int(port) not in self._traffic_managers:
            raise KeyError(f"no Traffic Manager runs on port {port}")
        return enc.ok(list(self._traffic_managers[int(port)]))

    # ------------------------------------------------------------------ the episode-state stream
    def publish_state(self, snapshot: WorldSnapshot) -> None:
        """Push the episode state of ``snapshot``: world actors, traffic lights, sensors and controllers."""
        state = self.state
        payload = self._state_payload(snapshot, state.state_flags)
        # The greeting never repeats the map-change flag: it is news once.
        self._last_state_payload = payload if state.state_flags == 0 else self._state_payload(snapshot, 0)
        state.state_flags = 0
        state.streams.publish(EPISODE_STREAM_ID, payload)

    def _state_payload(self, snapshot: WorldSnapshot, flags: int) -> bytes:
        """The serialized episode state of ``snapshot`` with the simulation state bits ``flags``."""
        state = self.state
        n = snapshot.num_actors
        num_lights = state.world.signals.num_lights
        extra = list(state.sensors.values()) + list(state.controllers.values())
        records = np.zeros(n + num_lights + len(extra) + 1, dtype=enc.ACTOR_STATE_DTYPE)
        records["state"] = enc.ACTOR_STATE_ACTIVE
        head = records[:n]
        head["id"] = snapshot.actor_id
        head["transform"][:, :3] = snapshot.location_m
        head["transform"][:, 3:] = np.degrees(snapshot.rotation_rad)
        head["velocity"] = snapshot.velocity_mps
        head["angular_velocity"] = np.degrees(snapshot.angular_velocity_rad_s)
        head["acceleration"] = snapshot.acceleration_mps2
        self._vehicle_records(snapshot, head)
        walker_records(snapshot, records)
        light_records(state, records, n)
        rows = {int(a): k for k, a in enumerate(snapshot.actor_id.tolist())}
        for row, actor in enumerate(extra, start=n + num_lights):
            records[row]["id"] = actor.actor_id
            if isinstance(actor, SensorActor):
                records[row]["transform"] = sensor_transform(snapshot, actor).as_tuple()
            elif actor.parent_id in rows:
                records[row]["transform"] = head["transform"][rows[actor.parent_id]]
        records[-1]["id"] = SPECTATOR_ID
        records[-1]["transform"] = state.spectator.as_tuple()
        return enc.episode_state_payload(snapshot.frame, snapshot.timestamp_s, state.episode_id, snapshot.dt_s,
                                         records, time.time(), flags)

    def greeting(self, stream_id: int) -> bytes | None:
        """A new episode-state subscriber gets the last state at once, not only from the next tick on.

        The client subscribes anew after a map change (a new ``Episode``); in synchronous mode it would
        otherwise see an empty state (frame 0) until its next tick.
        """
        return self._last_state_payload if stream_id == EPISODE_STREAM_ID else None

    def _vehicle_records(self, snapshot: WorldSnapshot, head: np.ndarray) -> None:
        """Controls, speed limits and the light ahead (the Traffic Manager drives by these)."""
        rows = np.flatnonzero(snapshot.kind == int(ActorKind.VEHICLE))
        if rows.size == 0:
            return
        state = self.state
        for row in rows.tolist():
            vehicle = state.vehicles.get(int(snapshot.actor_id[row]))
            if vehicle is not None:
                for name in ("throttle", "steer", "brake", "hand_brake", "reverse", "manual_gear_shift", "gear"):
                    head[name][row] = getattr(vehicle.control, name)
        world = state.world
        lanes, signals = world.lanes, world.signals
        lane, s_m, _ = lanes.project(snapshot.location_m[rows, :2], snapshot.rotation_rad[rows, 1])
        on_lane = lane >= 0
        safe = np.maximum(lane, 0)
        limit = np.where(on_lane, lanes.speed_limit_mps[safe] * 3.6, DEFAULT_SPEED_LIMIT_KMH)
        head["speed_limit"][rows] = np.where(limit > 0, limit, DEFAULT_SPEED_LIMIT_KMH)
        head["light_state"][rows] = int(TrafficLightState.GREEN)  # CARLA's state when no light applies
        if signals.num_lights == 0:
            return
        light = np.where(on_lane, signals.lane_light[safe], -1)
        near = (light >= 0) & (lanes.length_m[safe] - s_m < LIGHT_TRIGGER_M)
        at = rows[near]
        head["has_light"][at] = 1
        head["light_id"][at] = LIGHT_ID_BASE + light[near]
        head["light_state"][at] = world.light_state[light[near]]
