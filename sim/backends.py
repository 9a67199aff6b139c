"""The one place that knows every backend: builds a world and its sensor rig by backend name.

The env, the scenarios and the AV stack's runner go through here, so they never
import a backend module themselves (``lint-imports`` holds that). Each backend
is imported only when asked for, so the embedded world runs without the CARLA
server and the sensor rig's Open3D is loaded only when sensors are used.
"""

from __future__ import annotations

from typing import Literal

from sim.api import World
from sim.config import CarlaConfig, WorldConfig

BACKENDS = ("embedded", "carla")
BackendName = Literal["embedded", "carla"]


def _check(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")


def make_world(backend: str, world: WorldConfig, carla: CarlaConfig | None = None) -> World:
    """A world on ``backend`` ("embedded" or "carla") for ``world``'s map, seed and step.

    The embedded world takes the whole config; a CARLA world takes the map,
    seed and step, and reaches the server described by ``carla``.
    """
    _check(backend)
    if backend == "carla":
        from sim.carla_backend.world import CarlaWorld

        c = carla or CarlaConfig()
        return CarlaWorld(map=world.map, seed=world.seed, dt_s=world.dt_s, host=c.host, port=c.port,
                          timeout_s=c.timeout_s, tm_port=c.tm_port)
    from sim.embedded.world import EmbeddedWorld

    return EmbeddedWorld(world)


def make_sensor_rig(backend: str, world: World, suite, seed: int | None = None):
    """The rig that measures ``suite`` (a ``SensorSuite``) on ``world``: ``measure(snapshot)`` after every tick.

    Both rigs return ``{sensor name: SensorMeasurement}`` for the sensors that
    measured this tick and are closed with ``close()``. ``reset(episode_seed)``
    after the world's reset and the new episode's spawns re-attaches the sensors
    to the actors holding their role names and seeds their noise from
    ``episode_seed`` (same seed, same noise); the embedded rig keeps the map's
    static scene (``seed`` places its props; default: fixed by the map, as a
    CARLA town's are) instead of rebuilding it.
    """
    _check(backend)
    if backend == "carla":
        from sim.carla_backend.sensors import CarlaSensorRig

        return CarlaSensorRig(world, suite)
    from sim.embedded.sensors.rig import SensorRig

    return SensorRig(world, suite, scene_seed=seed)
