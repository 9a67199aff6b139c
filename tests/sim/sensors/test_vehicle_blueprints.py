"""CARLA 0.9.16's vehicle blueprint library and the embedded vehicle types derived from it."""

from __future__ import annotations

import numpy as np
import pytest

from sim.embedded.dynamics import BicycleFleet, ControlArrays
from sim.embedded.vehicle_types import VEHICLE_TYPES, get_vehicle_type
from sim.sensors.vehicle_blueprints import VEHICLE_BLUEPRINTS, get_vehicle_blueprint


def test_every_blueprint_maps_onto_a_vehicle_class_with_its_own_box():
    assert len(VEHICLE_BLUEPRINTS) >= 40
    for blueprint in VEHICLE_BLUEPRINTS.values():
        vtype = get_vehicle_type(blueprint.id)
        assert vtype.blueprint_id == blueprint.id and vtype.extent_m == blueprint.extent_m
        assert vtype.base_type == blueprint.vehicle_class and vtype.base_type in VEHICLE_TYPES
        assert vtype.number_of_wheels == blueprint.number_of_wheels
        assert 0.0 < vtype.cg_to_front_axle_m < vtype.wheelbase_m < 2.0 * blueprint.extent_m[0]
    for vtype in VEHICLE_TYPES.values():  # the classes' own blueprints are the classes
        assert get_vehicle_type(vtype.blueprint_id) is vtype


def test_scenario_runner_models_and_tags():
    assert get_vehicle_blueprint("vehicle.lincoln.mkz_2017").base_type == "car"
    assert get_vehicle_blueprint("vehicle.nissan.patrol").generation == 1
    assert get_vehicle_type("vehicle.diamondback.century").semantic_tag == 19  # Bicycle
    assert get_vehicle_type("vehicle.carlamotors.firetruck").semantic_tag == 15  # Truck
    with pytest.raises(KeyError, match="mkz_2017"):
        get_vehicle_blueprint("vehicle.lincoln.mkz2017")


def _top_speed(blueprint_id: str) -> float:
    fleet = BicycleFleet("dynamic")
    fleet.add(get_vehicle_type(blueprint_id), 0.0, 0.0, 0.0, 0.0)
    controls = ControlArrays(np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool))
    for _ in range(600):
        fleet.step(controls, 0.05)
    return float(fleet.speed_mps()[0])


def test_bicycles_are_slower_than_motorcycles():
    bicycle, motorcycle = _top_speed("vehicle.gazelle.omafiets"), _top_speed("vehicle.kawasaki.ninja")
    assert 5.0 < bicycle < 0.5 * motorcycle
