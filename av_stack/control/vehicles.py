"""The car side's own vehicle parameters by CARLA blueprint id: geometry, steering and the longitudinal limits.

The controllers read them at ``reset`` from ``mission.vehicle.blueprint_id``
(:func:`vehicle_params`). The figures are the vehicles' datasheet values;
they are the same physical numbers the embedded simulator models its
vehicles with, written down here again because the AV stack never reads a
simulator's internals (on CARLA the car is the same car). An unknown
blueprint id falls back to the generic car (:data:`GENERIC_CAR`, the Lincoln
MKZ 2020) with one ``UserWarning`` per id.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class VehicleParams:
    """One vehicle's parameters as the controllers need them.

    The vehicle's origin is the centre of its box on the ground (the ego frame's
    origin). ``rear_axle_m``: how far the rear axle sits behind the origin;
    ``front_axle_m``: how far the front axle sits ahead of it (their sum is
    ``wheelbase_m``); ``max_steer_rad``: the road-wheel angle of steer = 1;
    ``max_accel_mps2``: the acceleration of full throttle at low speed;
    ``max_brake_mps2``: the deceleration of full brake. ``lookahead_scale``
    is controller tuning, not a datasheet value: it stretches pure pursuit's
    look-ahead distances for vehicles whose long wheelbase and slow steering
    make the car's look-ahead unstable (the bus).
    """

    blueprint_id: str
    wheelbase_m: float
    rear_axle_m: float
    front_axle_m: float
    max_steer_rad: float
    max_accel_mps2: float
    max_brake_mps2: float
    lookahead_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("wheelbase_m", "rear_axle_m", "front_axle_m", "max_steer_rad", "max_accel_mps2",
                     "max_brake_mps2", "lookahead_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"VehicleParams.{name} must be a positive number, got {value!r}")
        if abs(self.rear_axle_m + self.front_axle_m - self.wheelbase_m) > 1e-6:
            raise ValueError(f"VehicleParams: rear_axle_m + front_axle_m ({self.rear_axle_m} + {self.front_axle_m})"
                             f" must equal wheelbase_m ({self.wheelbase_m})")


def _params(blueprint_id: str, wheelbase_m: float, front_axle_m: float, max_steer_rad: float,
            max_accel_mps2: float, max_brake_mps2: float, lookahead_scale: float = 1.0) -> VehicleParams:
    return VehicleParams(blueprint_id, wheelbase_m, round(wheelbase_m - front_axle_m, 9), front_axle_m,
                         max_steer_rad, max_accel_mps2, max_brake_mps2, lookahead_scale)


# Datasheet values of each vehicle (wheelbase, front axle ahead of the box centre, road-wheel angle at full lock,
# full-throttle acceleration at low speed, full-brake deceleration); the bus also gets a longer pure-pursuit
# look-ahead (with the car's, the embedded simulator's bus weaves off a straight line from 1 m off).
VEHICLES: dict[str, VehicleParams] = {p.blueprint_id: p for p in (
    _params("vehicle.lincoln.mkz_2020", 2.85, 1.20, 0.61, 4.0, 8.0),
    _params("vehicle.mercedes.sprinter", 3.25, 1.50, 0.60, 2.8, 7.0),
    _params("vehicle.carlamotors.carlacola", 3.5, 1.60, 0.60, 2.0, 6.0),
    _params("vehicle.mitsubishi.fusorosa", 6.0, 3.6, 0.75, 1.5, 5.0, lookahead_scale=1.5),
    _params("vehicle.yamaha.yzf", 1.4, 0.70, 0.50, 6.0, 8.5),
)}
"""Known vehicles by CARLA blueprint id."""

GENERIC_CAR: VehicleParams = VEHICLES["vehicle.lincoln.mkz_2020"]
"""What an unknown blueprint id gets: the generic car (CARLA's default ego, the Lincoln MKZ 2020)."""

_warned: set[str] = set()


def vehicle_params(blueprint_id: str) -> VehicleParams:
    """The parameters of ``blueprint_id``; an unknown id gets :data:`GENERIC_CAR`'s figures (under its own id)
    and a ``UserWarning`` naming it, once per id."""
    known = VEHICLES.get(blueprint_id)
    if known is not None:
        return known
    if blueprint_id not in _warned:
        _warned.add(blueprint_id)
        warnings.warn(f"no vehicle parameters for blueprint {blueprint_id!r}; using the generic car's "
                      f"({GENERIC_CAR.blueprint_id}). Known: {', '.join(sorted(VEHICLES))}", UserWarning,
                      stacklevel=2)
    return replace(GENERIC_CAR, blueprint_id=blueprint_id)
