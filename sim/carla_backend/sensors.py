"""A sensor suite (the same YAML as the embedded simulator's) spawned on a CARLA server.

Every sensor's callback puts its data in a per-sensor queue; :meth:`measure`
returns, for the frame of a snapshot, exactly that frame's data from every
sensor, decoded to the embedded layouts (:mod:`sim.carla_backend.decode`),
dropping older frames and waiting up to ``timeout_s`` for missing ones (a
``TimeoutError`` names the sensor). Sensors with a ``sensor_tick`` may have
nothing on a frame and are not waited for; event sensors (collision, lane
invasion) report the events of that frame, possibly none.
"""

from __future__ import annotations

import math
import queue
import time

import carla
import numpy as np

from sim.api import WorldSnapshot
from sim.carla_backend import conversions as cv
from sim.carla_backend.decode import decode_measurement
from sim.sensors.measurements import SensorMeasurement
from sim.sensors.blueprints import SensorConfigError
from sim.sensors.noise import episode_noise_seed
from sim.sensors.suite import SensorSpec, SensorSuite

EVENT_BLUEPRINTS = ("sensor.other.collision", "sensor.other.lane_invasion")


def _attribute_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spec_transform(spec: SensorSpec) -> carla.Transform:
    """The sensor's pose relative to its parent as a ``carla.Transform`` (degrees)."""
    m = spec.mount
    return carla.Transform(carla.Location(m.x_m, m.y_m, m.z_m),
                           carla.Rotation(pitch=math.degrees(m.pitch_rad), yaw=math.degrees(m.yaw_rad),
                                          roll=math.degrees(m.roll_rad)))


class CarlaSensorRig:
    """Sensors of ``suite`` on a :class:`~sim.carla_backend.world.CarlaWorld`'s actors (by role name).

    :meth:`reset` starts a new episode: the world's reset destroyed the sensor
    actors with the rest of what it spawned, so the sensors are spawned again
    on the actors that now hold their role names (the hero's id changes every
    episode), with ``noise_seed`` mixed with the episode's seed.
    """

    def __init__(self, world, suite: SensorSuite, timeout_s: float = 5.0) -> None:
        self.world = world
        self.suite = suite
        self.timeout_s = timeout_s
        self._actors: list[carla.Actor] = []
        self._queues: dict[str, queue.Queue] = {}
        self._spawn(None)

    def reset(self, seed: int) -> None:
        """Start an episode: destroy the old sensors, spawn them on their roles' actors, noise seeded from ``seed``."""
        self.close()
        self._queues = {}
        self._spawn(int(seed))

    def _spawn(self, episode_seed: int | None) -> None:
        world = self.world
        roles = {info.role_name: actor_id for actor_id, info in world.actors.items() if info.role_name}
        library = world.carla_world.get_blueprint_library()
        try:
            for spec in self.suite.sensors:
                bp = library.find(spec.blueprint_id)
                for name, value in spec.attributes.values.items():
                    if bp.has_attribute(name):
                        if name == "noise_seed" and episode_seed is not None:
                            value = episode_noise_seed(int(value), episode_seed)
                        bp.set_attribute(name, _attribute_text(value))
                if spec.is_fixed:
                    parent = None
                else:
                    if spec.attach_to not in roles:
                        raise SensorConfigError(f"sensor {spec.name!r}: no actor with role_name {spec.attach_to!r}; "
                                                f"actors with role names: {sorted(roles) or 'none'}")
                    parent = world.carla_world.get_actor(roles[spec.attach_to])
                actor = world.carla_world.spawn_actor(bp, spec_transform(spec), attach_to=parent)
                self._actors.append(actor)
                world._owned.append(actor.id)
                q: queue.Queue = queue.Queue()
                self._queues[spec.name] = q
                actor.listen(q.put)
        except Exception:
            self.close()
            raise

    def measure(self, snapshot: WorldSnapshot) -> dict[str, SensorMeasurement | list]:
        """Every sensor's data of ``snapshot.frame`` (see the module docstring)."""
        out: dict[str, SensorMeasurement | list] = {}
        deadline = time.monotonic() + self.timeout_s
        for spec in self.suite.sensors:
            q = self._queues[spec.name]
            if spec.blueprint_id in EVENT_BLUEPRINTS:
                events = []
                while not q.empty():
                    data = q.get_nowait()
                    if data.frame <= snapshot.frame:
                        events.append(data)
                out[spec.name] = events
                continue
            periodic = float(spec.attributes.values.get("sensor_tick", 0.0) or 0.0) > 0.0
            data = self._frame_data(q, snapshot.frame, deadline, wait=not periodic, name=spec.name)
            if data is None:
                continue
            transform = data.transform
            out[spec.name] = SensorMeasurement(
                frame=int(data.frame), timestamp_s=float(data.timestamp), sensor_name=spec.name,
                blueprint_id=spec.blueprint_id,
                location_m=np.array(cv.vector_xyz(transform.location)),
                rotation_rad=np.array(cv.rotation_rad(transform.rotation)),
                data=decode_measurement(spec.blueprint_id, data))
        return out

    @staticmethod
    def _frame_data(q: queue.Queue, frame: int, deadline: float, wait: bool, name: str):
        while True:
            try:
                data = q.get(timeout=max(deadline - time.monotonic(), 0.0)) if wait else q.get_nowait()
            except queue.Empty:
                if not wait:
                    return None
                raise TimeoutError(f"sensor {name!r} sent no data for frame {frame}") from None
            if data.frame == frame:
                return data
            if data.frame > frame:  # a periodic sensor skipped this frame; keep nothing older
                return None

    def close(self) -> None:
        """Stop and destroy the sensors (those the world's reset has not destroyed already); idempotent."""
        for actor in self._actors:
            try:
                actor.stop()
                if actor.id in self.world._owned:
                    actor.destroy()
                    self.world._owned.remove(actor.id)
            except (RuntimeError, ValueError):
                pass
        self._actors = []
