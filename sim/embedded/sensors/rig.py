"""A sensor suite mounted on a world's actors, measured once per tick with one raycast for all.

>>> rig = SensorRig(world, load_suite("configs/sensors/default.yaml"))
>>> snapshot = world.tick()
>>> data = rig.measure(snapshot)          # {sensor name: SensorMeasurement}
>>> data["front_rgb"].data.shape          # (300, 400, 3)

Every tick the rig moves the actors in the 3D scene, collects the rays of
every raycast sensor that is due (cameras with the same pose and intrinsics
share theirs), casts them in a single call, and hands each sensor its hits.
Sensors not built on rays (GNSS, IMU, collision, lane invasion) read the
snapshot. Attributes CARLA has but the embedded simulator does not model
(camera post-processing, lens effects) are accepted and stored in
``spec.attributes``.
"""

from __future__ import annotations

import inspect
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from sim.api import WorldSnapshot
from sim.transforms import box_corners_3d
from sim.embedded.sensors.base import Sensor, SensorMeasurement
from sim.sensors.blueprints import SensorConfigError
from sim.sensors.noise import episode_noise_seed
from sim.sensors.suite import SensorSpec, SensorSuite

_CLASS_PATHS = {
    "sensor.camera.rgb": ("sim.embedded.sensors.camera", "RgbCamera"),
    "sensor.camera.depth": ("sim.embedded.sensors.camera", "DepthCamera"),
    "sensor.camera.semantic_segmentation": ("sim.embedded.sensors.camera", "SemanticCamera"),
    "sensor.camera.instance_segmentation": ("sim.embedded.sensors.camera", "InstanceCamera"),
    "sensor.lidar.ray_cast": ("sim.embedded.sensors.lidar", "RayCastLidar"),
    "sensor.lidar.ray_cast_semantic": ("sim.embedded.sensors.lidar", "SemanticLidar"),
    "sensor.other.radar": ("sim.embedded.sensors.radar", "Radar"),
    "sensor.other.gnss": ("sim.embedded.sensors.gnss", "GnssSensor"),
    "sensor.other.imu": ("sim.embedded.sensors.imu", "ImuSensor"),
    "sensor.other.collision": ("sim.embedded.sensors.events", "CollisionSensor"),
    "sensor.other.lane_invasion": ("sim.embedded.sensors.events", "LaneInvasionSensor"),
}


def sensor_class(blueprint_id: str) -> type[Sensor]:
    """The class that implements a blueprint (imported on demand: only raycast sensors need Open3D)."""
    try:
        module_name, class_name = _CLASS_PATHS[blueprint_id]
    except KeyError:
        raise SensorConfigError(f"no sensor implements blueprint {blueprint_id!r}; "
                                f"valid: {', '.join(sorted(_CLASS_PATHS))}") from None
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)


def build_sensor(spec: SensorSpec, parent_id: int, episode_seed: int | None = None) -> Sensor:
    """Instantiate the sensor of ``spec`` on actor ``parent_id`` with the attributes its model uses.

    With ``episode_seed``, a sensor's ``noise_seed`` is mixed with it (``sim.sensors.noise.episode_noise_seed``).
    """
    cls = sensor_class(spec.blueprint_id)
    accepted = _accepted_keywords(cls)
    kwargs = {k: v for k, v in spec.attributes.values.items() if k in accepted}
    if episode_seed is not None and "noise_seed" in kwargs:
        kwargs["noise_seed"] = episode_noise_seed(int(kwargs["noise_seed"]), episode_seed)
    pose = spec.mount
    return cls(parent_id, pose, name=spec.name, **kwargs)


ACTOR_BOX_MARGIN_M = 0.05
"""Slack around each actor's bounding box (its mesh lies inside the box) when choosing rays that may hit it."""


def _actor_corners(snapshot: WorldSnapshot, hidden: tuple[int, ...]) -> np.ndarray:
    """World corners (A, 8, 3) of every visible actor's box, widened by :data:`ACTOR_BOX_MARGIN_M`.

    Corner k has bits (x, y, z) = (k >> 2 & 1, k >> 1 & 1, k & 1) (low or high
    side). Vehicle origins are on the ground under the box; walkers' at its centre.
    """
    keep = ~np.isin(snapshot.actor_id, np.asarray(hidden, dtype=np.int64))
    half = snapshot.extent_m[keep] + ACTOR_BOX_MARGIN_M
    centre = snapshot.location_m[keep].copy()
    vehicle = snapshot.kind[keep] == 0
    centre[vehicle, 2] += snapshot.extent_m[keep][vehicle, 2]
    return box_corners_3d(centre, snapshot.rotation_rad[keep, 1], half)


def _accepted_keywords(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind == parameter.KEYWORD_ONLY or parameter.kind == parameter.POSITIONAL_OR_KEYWORD:
                names.add(parameter.name)
    return names - {"self", "parent_id", "transform", "name"}


def hidden_parents(sensors: list[Sensor], snapshot: WorldSnapshot) -> tuple[int, ...]:
    """Parents with one of ``sensors`` mounted inside their own box (they would blind it): hide them from its rays."""
    hidden: list[int] = []
    for sensor in sensors:
        if sensor.fixed_in_world:
            continue
        half = snapshot.extent_m[sensor._parent_row(snapshot)]
        mount = sensor.transform
        # Vehicle origins sit on the ground under the box centre; the box spans z in [0, 2 * half_z].
        inside = abs(mount.x_m) < half[0] and abs(mount.y_m) < half[1] and 0.0 <= mount.z_m < 2.0 * half[2]
        if inside and sensor.parent_id not in hidden:
            hidden.append(sensor.parent_id)
    return tuple(hidden)


def _timed_finish(job: tuple, snapshot: WorldSnapshot) -> tuple[SensorMeasurement, float]:
    sensor, plan, hits = job
    start = time.perf_counter()
    measurement = sensor.finish(snapshot, plan, hits)
    return measurement, time.perf_counter() - start


@dataclass
class RigTimings:
    """Seconds spent in the last :meth:`SensorRig.measure`, by stage and by sensor."""

    scene_update_s: float = 0.0
    raycast_s: float = 0.0
    rays: int = 0
    per_sensor_s: dict[str, float] = field(default_factory=dict)


class RaycastBatcher:
    """Casts the rays of many raycast sensors in one call and turns the hits into their data.

    Plans with the same ``share_key`` (cameras with one pose and intrinsics) are
    cast once; rays that cannot reach an actor skip the actor scene
    (``cull_actor_rays``); sensors finish on ``finish_threads`` threads side
    by side. The ray buffer is reused from call to call, so hits from one call
    are valid only until the next.
    """

    def __init__(self, cull_actor_rays: bool = True, finish_threads: int = 2) -> None:
        if isinstance(finish_threads, bool) or not isinstance(finish_threads, int) or finish_threads < 1:
            raise ValueError(f"finish_threads must be an integer >= 1, got {finish_threads!r}")
        self.cull_actor_rays = cull_actor_rays
        # Turning hits into data is numpy and OpenCV work that releases the GIL: sensors finish side by side.
        self._pool = ThreadPoolExecutor(finish_threads, thread_name_prefix="sensor-finish") \
            if finish_threads > 1 else None
        self._ray_buffer = np.empty((0, 6), dtype=np.float32)
        self._range_buffer = np.empty(0, dtype=np.float32)

    def close(self) -> None:
        """Stop the finishing threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self, scene, snapshot: WorldSnapshot, plans: list, hidden: tuple[int, ...] = (),
            timings: RigTimings | None = None) -> list[tuple[Sensor, SensorMeasurement, float]]:
        """(sensor, measurement, seconds it took to finish) for every ``(sensor, plan)`` of this tick."""
        timings = timings if timings is not None else RigTimings()
        start = time.perf_counter()
        scene.update(snapshot, hidden)
        timings.scene_update_s = time.perf_counter() - start
        # One slice of the combined ray batch per distinct plan; shared plans reuse theirs.
        slices: dict[object, slice] = {}
        batches = []
        offset = 0
        owner = []
        planner: dict[int, object] = {}
        for sensor, plan in plans:
            planner.setdefault(id(plan), sensor)
            key = plan.share_key if plan.share_key is not None else id(plan)
            if key not in slices:
                n = plan.num_rays
                slices[key] = slice(offset, offset + n)
                offset += n
                batches.append(plan)
            owner.append(key)
        # All rays packed once as (N, 6) [origin, direction], the layout the raycaster takes, in a buffer
        # reused from call to call: a fresh 3-4 MB buffer costs ~0.5 ms of page faults.
        if self._ray_buffer.shape[0] < offset:
            self._ray_buffer = np.empty((offset, 6), dtype=np.float32)
            self._range_buffer = np.empty(offset, dtype=np.float32)
        rays, max_range = self._ray_buffer[:offset], self._range_buffer[:offset]
        corners = _actor_corners(snapshot, hidden) if self.cull_actor_rays else None
        candidates: list[np.ndarray] = []
        for plan in batches:
            rows = slices[plan.share_key if plan.share_key is not None else id(plan)]
            plan.write(rays[rows])
            max_range[rows] = plan.max_range_m
            if corners is not None:
                chosen = planner[id(plan)].actor_candidates(plan, corners)
                candidates.append(np.arange(rows.start, rows.stop) if chosen is None else chosen + rows.start)
        actor_rays = np.concatenate(candidates) if corners is not None else None
        start = time.perf_counter()
        hits = scene.cast_ray_array(rays, max_range, actor_rays)
        timings.raycast_s = time.perf_counter() - start
        timings.rays = int(offset)
        jobs = [(sensor, plan, hits.select(slices[key])) for (sensor, plan), key in zip(plans, owner, strict=True)]
        results = self._pool.map(_timed_finish, jobs, [snapshot] * len(jobs)) if self._pool is not None \
            else map(_timed_finish, jobs, [snapshot] * len(jobs))
        return [(sensor, measurement, seconds)
                for (sensor, _, _), (measurement, seconds) in zip(jobs, results, strict=True)]


class SensorRig:
    """Sensors of a :class:`SensorSuite` mounted on ``world``'s actors (by role name).

    :meth:`reset` starts a new episode of the same map: the sensors are
    re-attached to the actors that now hold their role names and their noise is
    re-seeded, while the 3D scene (the map's static geometry, built once) is kept.
    """

    def __init__(self, world, suite: SensorSuite, scene_seed: int | None = None, cull_actor_rays: bool = True,
                 finish_threads: int = 2) -> None:
        self.world = world
        self.suite = suite
        self.scene_seed = scene_seed
        self._attach(None)
        self._scene = None
        self._scene_geometry = None
        self.timings = RigTimings()
        self._batcher = RaycastBatcher(cull_actor_rays, finish_threads)

    def _attach(self, episode_seed: int | None) -> None:
        """Build every sensor on the actor holding its role name; noise seeds mixed with ``episode_seed``."""
        roles = {info.role_name: actor_id for actor_id, info in self.world.actors.items() if info.role_name}
        sensors: list[Sensor] = []
        for spec in self.suite.sensors:
            if spec.is_fixed:
                raise SensorConfigError(f"sensor {spec.name!r}: attach_to 'world' is not supported by the embedded "
                                        "simulator yet; attach it to an actor by role name")
            if spec.attach_to not in roles:
                raise SensorConfigError(f"sensor {spec.name!r}: no actor with role_name {spec.attach_to!r}; "
                                        f"actors with role names: {sorted(roles) or 'none'}")
            sensors.append(build_sensor(spec, roles[spec.attach_to], episode_seed))
        from sim.embedded.sensors.raycast import RaycastSensor

        self.sensors = sensors
        self._raycast = [s for s in sensors if isinstance(s, RaycastSensor)]
        self._other = [s for s in sensors if not isinstance(s, RaycastSensor)]

    def reset(self, seed: int) -> None:
        """Start an episode: re-attach every sensor to its role's actor and re-seed its noise from ``seed``.

        Call it after the world's reset and the spawning of the actors the
        sensors ride on. The static scene is kept while the world has the same
        map; the same ``seed`` gives the same noise.
        """
        self._attach(int(seed))
        if self._scene is not None and self._scene_geometry is not self.world.geometry:
            self._scene = None  # another map: rebuild the static scene on the next measure

    def close(self) -> None:
        """Stop the finishing threads (also done when the rig is garbage-collected)."""
        self._batcher.close()

    @property
    def scene(self):
        """The 3D scene (built on first use; needs Open3D)."""
        if self._scene is None:
            try:
                from sim.embedded.sensors.scene import Scene, StaticScene
            except ImportError as exc:
                names = ", ".join(sorted({s.blueprint_id for s in self._raycast}))
                raise SensorConfigError(f"{names} raycast a 3D scene with Open3D, which is not installed here "
                                        f"({exc}); install the 'sensors' extra: pip install '.[sensors]'") from exc

            self._scene = Scene(StaticScene.build(self.world, seed=self.scene_seed))
            self._scene_geometry = self.world.geometry
        return self._scene

    def measure(self, snapshot: WorldSnapshot) -> dict[str, SensorMeasurement]:
        """Every sensor's measurement for ``snapshot`` (sensors with nothing this tick are left out)."""
        out: dict[str, SensorMeasurement] = {}
        timings = RigTimings()
        for sensor in self._other:
            start = time.perf_counter()
            result = sensor.measure(self.world, snapshot)
            timings.per_sensor_s[sensor.name] = time.perf_counter() - start
            if result is not None:
                out[sensor.name] = result
        plans = []
        for sensor in self._raycast:
            start = time.perf_counter()
            plan = sensor.plan(snapshot)
            timings.per_sensor_s[sensor.name] = time.perf_counter() - start
            if plan is not None:
                plans.append((sensor, plan))
        if plans:
            hidden = hidden_parents(self._raycast, snapshot)
            for sensor, measurement, seconds in self._batcher.run(self.scene, snapshot, plans, hidden, timings):
                out[sensor.name] = measurement
                timings.per_sensor_s[sensor.name] += seconds
        self.timings = timings
        return out
