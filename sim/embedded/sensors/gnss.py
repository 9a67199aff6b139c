"""``sensor.other.gnss``: latitude, longitude and altitude through the map's geo-reference, with CARLA's noise.

The fix is ``carla.Map.transform_to_geolocation`` of the sensor's world
location (the same LibCarla code a CARLA server uses), then per component

    value + noise_*_bias + N(0, noise_*_stddev)

with latitude and longitude noise in degrees and altitude noise in metres, drawn
from a generator seeded by ``noise_seed`` (the same seed gives the same noise).

Note (CARLA 0.9.16 wheel): with the towns' ``+proj=tmerc`` geo-reference,
latitude grows toward +y, while the IMU compass (CARLA's server code) takes
north to be -y. Both are reproduced as CARLA has them.
"""

from __future__ import annotations

import carla
import numpy as np

from sim.api import Pose, WorldSnapshot
from sim.embedded.sensors.base import (
    Sensor,
    SensorMeasurement,
    check_finite,
    check_seed,
    check_stddev,
)

__all__ = ["GnssSensor"]


class GnssSensor(Sensor):
    """A GNSS receiver; parameters are CARLA's blueprint attributes and defaults.

    ``data`` of a measurement: float64 array (3,) ``[latitude_deg, longitude_deg, altitude_m]``.
    ``measure`` needs a world with a ``carla_map`` (``carla.Map``).
    """

    blueprint_id = "sensor.other.gnss"

    def __init__(self, parent_id: int, transform: Pose | None = None, *, name: str | None = None,
                 sensor_tick: float = 0.0, noise_alt_bias: float = 0.0, noise_alt_stddev: float = 0.0,
                 noise_lat_bias: float = 0.0, noise_lat_stddev: float = 0.0, noise_lon_bias: float = 0.0,
                 noise_lon_stddev: float = 0.0, noise_seed: int = 0) -> None:
        super().__init__(parent_id, transform, name=name, sensor_tick=sensor_tick)
        self.noise_lat_bias = check_finite("noise_lat_bias", noise_lat_bias)
        self.noise_lon_bias = check_finite("noise_lon_bias", noise_lon_bias)
        self.noise_alt_bias = check_finite("noise_alt_bias", noise_alt_bias)
        self.noise_lat_stddev = check_stddev("noise_lat_stddev", noise_lat_stddev)
        self.noise_lon_stddev = check_stddev("noise_lon_stddev", noise_lon_stddev)
        self.noise_alt_stddev = check_stddev("noise_alt_stddev", noise_alt_stddev)
        self.noise_seed = check_seed("noise_seed", noise_seed)
        self._bias = np.array([self.noise_lat_bias, self.noise_lon_bias, self.noise_alt_bias])
        self._stddev = np.array([self.noise_lat_stddev, self.noise_lon_stddev, self.noise_alt_stddev])
        self._noisy = bool(self._stddev.any())
        self._rng = np.random.default_rng(self.noise_seed)

    def measure(self, world: object, snapshot: WorldSnapshot) -> SensorMeasurement | None:
        """The fix at this tick (see the class docstring), or None when ``sensor_tick`` says wait."""
        if not self._due(snapshot.timestamp_s):
            return None
        location, rotation, _ = self._world_pose(snapshot, self._parent_row(snapshot))
        geo = world.carla_map.transform_to_geolocation(  # type: ignore[attr-defined]
            carla.Location(float(location[0]), float(location[1]), float(location[2])))
        data = np.array([geo.latitude, geo.longitude, geo.altitude]) + self._bias
        if self._noisy:
            data += self._stddev * self._rng.standard_normal(3)
        data.flags.writeable = False
        return self._measurement(snapshot, location, rotation, data)
