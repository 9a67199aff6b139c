"""CARLA 0.9.16's vehicle blueprint library: ids, base types, generations, wheels, boxes, colours, role names.

Each blueprint names the project's vehicle class that simulates it (``car``,
``van``, ``truck``, ``bus``, ``motorcycle``; bicycles ride on the motorcycle
class, slowed down): the embedded world takes the class's dynamics and gives
the vehicle the blueprint's bounding box. The boxes are half extents in
metres, close to those CARLA 0.9.16 reports (rounded; the five blueprints the
classes themselves stand for keep the classes' boxes). Client scripts pick
vehicles by these ids (scenario_runner's ``vehicle.lincoln.mkz_2017``,
``vehicle.nissan.patrol``, ...), by ``base_type``, ``generation`` and
``number_of_wheels``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ROLE_NAMES", "VEHICLE_BLUEPRINTS", "VehicleBlueprint", "get_vehicle_blueprint"]

ROLE_NAMES = ("autopilot", "scenario", "ego_vehicle")
"""The recommended ``role_name`` values of CARLA's vehicle blueprints (the first is the default)."""

_CAR_COLOURS = ("17,37,103", "255,255,255", "0,0,0", "153,0,0", "30,110,40", "120,120,120", "200,190,60")
_WORK_COLOURS = ("255,255,255", "200,30,30", "40,70,160")
_BIKE_COLOURS = ("0,0,0", "200,30,30", "40,70,160", "240,240,240")


@dataclass(frozen=True)
class VehicleBlueprint:
    """One CARLA vehicle blueprint and the project class that simulates it."""

    id: str
    base_type: str
    """CARLA's ``base_type`` attribute: car, van, truck, bus, motorcycle or bicycle."""
    generation: int
    extent_m: tuple[float, float, float]
    """Half length, half width, half height (``BoundingBox.extent``)."""
    special_type: str = ""
    """CARLA's ``special_type``: "", emergency, taxi or electric."""
    has_lights: bool = False

    @property
    def number_of_wheels(self) -> int:
        """4, or 2 for motorcycles and bicycles."""
        return 2 if self.base_type in ("motorcycle", "bicycle") else 4

    @property
    def vehicle_class(self) -> str:
        """The project's vehicle class that simulates it (bicycles: ``motorcycle``)."""
        return "motorcycle" if self.base_type == "bicycle" else self.base_type

    @property
    def colours(self) -> tuple[str, ...]:
        """Recommended ``color`` values ("r,g,b"); the first is the default."""
        if self.number_of_wheels == 2:
            return _BIKE_COLOURS
        return _WORK_COLOURS if self.base_type in ("truck", "bus") or self.special_type == "emergency" \
            else _CAR_COLOURS

    @property
    def semantic_tag(self) -> int:
        """CARLA 0.9.16's ``CityObjectLabel``: Car 14, Truck 15, Bus 16, Motorcycle 18, Bicycle 19."""
        return {"truck": 15, "bus": 16, "motorcycle": 18, "bicycle": 19}.get(self.base_type, 14)


def _b(blueprint_id: str, base_type: str, generation: int, extent: tuple[float, float, float],
       special_type: str = "") -> VehicleBlueprint:
    return VehicleBlueprint(blueprint_id, base_type, generation, extent, special_type, generation == 2)


_ALL = (
    # Generation 1
    _b("vehicle.audi.a2", "car", 1, (1.85, 0.90, 0.77)),
    _b("vehicle.audi.etron", "car", 1, (2.43, 1.02, 0.82), "electric"),
    _b("vehicle.audi.tt", "car", 1, (2.09, 1.00, 0.69)),
    _b("vehicle.bmw.grandtourer", "car", 1, (2.31, 1.12, 0.83)),
    _b("vehicle.chevrolet.impala", "car", 1, (2.68, 1.00, 0.70)),
    _b("vehicle.citroen.c3", "car", 1, (1.99, 0.93, 0.81)),
    _b("vehicle.dodge.charger_police", "car", 1, (2.49, 1.02, 0.78), "emergency"),
    _b("vehicle.ford.mustang", "car", 1, (2.36, 0.95, 0.65)),
    _b("vehicle.jeep.wrangler_rubicon", "car", 1, (1.93, 0.95, 0.94)),
    _b("vehicle.lincoln.mkz_2017", "car", 1, (2.45, 1.06, 0.76)),
    _b("vehicle.mercedes.coupe", "car", 1, (2.51, 1.08, 0.75)),
    _b("vehicle.micro.microlino", "car", 1, (1.11, 0.74, 0.69), "electric"),
    _b("vehicle.mini.cooper_s", "car", 1, (1.90, 0.99, 0.74)),
    _b("vehicle.nissan.micra", "car", 1, (1.82, 0.93, 0.77)),
    _b("vehicle.nissan.patrol", "car", 1, (2.31, 0.96, 0.93)),
    _b("vehicle.seat.leon", "car", 1, (2.10, 0.91, 0.74)),
    _b("vehicle.tesla.model3", "car", 1, (2.40, 1.08, 0.75), "electric"),
    _b("vehicle.toyota.prius", "car", 1, (2.26, 1.01, 0.76), "electric"),
    _b("vehicle.tesla.cybertruck", "truck", 1, (3.14, 1.20, 1.05), "electric"),
    _b("vehicle.carlamotors.carlacola", "truck", 1, (2.9, 1.2, 1.75)),
    _b("vehicle.volkswagen.t2", "van", 1, (2.24, 1.03, 1.02)),
    _b("vehicle.harley-davidson.low_rider", "motorcycle", 1, (1.18, 0.38, 0.64)),
    _b("vehicle.kawasaki.ninja", "motorcycle", 1, (1.02, 0.40, 0.59)),
    _b("vehicle.vespa.zx125", "motorcycle", 1, (0.90, 0.43, 0.62)),
    _b("vehicle.yamaha.yzf", "motorcycle", 1, (1.1, 0.4, 0.8)),
    _b("vehicle.bh.crossbike", "bicycle", 1, (0.74, 0.43, 0.54)),
    _b("vehicle.diamondback.century", "bicycle", 1, (0.82, 0.19, 0.54)),
    _b("vehicle.gazelle.omafiets", "bicycle", 1, (0.92, 0.17, 0.56)),
    # Generation 2
    _b("vehicle.dodge.charger_2020", "car", 2, (2.50, 1.05, 0.77)),
    _b("vehicle.dodge.charger_police_2020", "car", 2, (2.62, 1.04, 0.80), "emergency"),
    _b("vehicle.ford.crown", "car", 2, (2.68, 0.90, 0.78), "taxi"),
    _b("vehicle.lincoln.mkz_2020", "car", 2, (2.45, 1.06, 0.76)),
    _b("vehicle.mercedes.coupe_2020", "car", 2, (2.34, 1.01, 0.74)),
    _b("vehicle.mini.cooper_s_2021", "car", 2, (2.27, 1.04, 0.89)),
    _b("vehicle.nissan.patrol_2021", "car", 2, (2.78, 1.07, 1.03)),
    _b("vehicle.ford.ambulance", "van", 2, (3.18, 1.19, 1.22), "emergency"),
    _b("vehicle.mercedes.sprinter", "van", 2, (2.6, 1.0, 1.2)),
    _b("vehicle.volkswagen.t2_2021", "van", 2, (2.23, 1.05, 1.01)),
    _b("vehicle.carlamotors.european_hgv", "truck", 2, (3.96, 1.43, 1.89)),
    _b("vehicle.carlamotors.firetruck", "truck", 2, (4.23, 1.19, 1.90), "emergency"),
    _b("vehicle.mitsubishi.fusorosa", "bus", 2, (6.0, 1.6, 1.6)),
)

VEHICLE_BLUEPRINTS: MappingProxyType[str, VehicleBlueprint] = MappingProxyType({b.id: b for b in _ALL})
"""Every vehicle blueprint of CARLA 0.9.16 by id."""


def get_vehicle_blueprint(blueprint_id: str) -> VehicleBlueprint:
    """The vehicle blueprint ``blueprint_id``; ``KeyError`` naming the closest ids if there is none."""
    found = VEHICLE_BLUEPRINTS.get(blueprint_id)
    if found is None:
        close = difflib.get_close_matches(blueprint_id, list(VEHICLE_BLUEPRINTS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown vehicle blueprint {blueprint_id!r}{hint}")
    return found
