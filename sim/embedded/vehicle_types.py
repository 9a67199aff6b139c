"""Vehicle types of the embedded simulator: geometry and bicycle-model parameters.

Each type mirrors one CARLA vehicle blueprint (id, semantic tag, bounding-box
extent) and carries the physical parameters the bicycle models in
`sim.embedded.dynamics` need. Values are realistic for the class of vehicle
(road-wheel steering angles, not CARLA's 70 degree wheel limits).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from sim.sensors.vehicle_blueprints import VEHICLE_BLUEPRINTS, get_vehicle_blueprint

GRAVITY_MPS2 = 9.81


@dataclass(frozen=True)
class VehicleType:
    """Geometry and physical parameters of one kind of vehicle.

    Angles are radians; the extent is half length, half width, half height
    (as CARLA's `BoundingBox.extent`), in metres.
    """

    name: str
    blueprint_id: str
    base_type: str
    semantic_tag: int
    extent_m: tuple[float, float, float]
    wheelbase_m: float
    cg_to_front_axle_m: float
    mass_kg: float
    yaw_inertia_kgm2: float
    cornering_stiffness_front_n_per_rad: float
    cornering_stiffness_rear_n_per_rad: float
    max_steer_rad: float
    max_steer_rate_rad_s: float
    max_accel_mps2: float
    max_power_w: float
    max_brake_mps2: float
    drag_area_kg_per_m: float
    rolling_resistance_coeff: float
    number_of_wheels: int

    @property
    def cg_to_rear_axle_m(self) -> float:
        """Distance from the centre of gravity back to the rear axle (lr = L - lf)."""
        return self.wheelbase_m - self.cg_to_front_axle_m

    @property
    def hand_brake_decel_mps2(self) -> float:
        """Deceleration of the hand brake: full braking on the rear axle only.

        The rear axle carries the static load fraction lf / L, so a friction-
        limited rear-only brake gives max_brake * lf / L.
        """
        return self.max_brake_mps2 * self.cg_to_front_axle_m / self.wheelbase_m

    @property
    def understeer_gradient_rad_per_mps2(self) -> float:
        """Linear-tyre understeer gradient K = m / L * (lr / Cf - lf / Cr).

        Steady cornering needs a road-wheel angle delta = L / R + K * a_lat.
        """
        lf, lr = self.cg_to_front_axle_m, self.cg_to_rear_axle_m
        return (
            self.mass_kg
            / self.wheelbase_m
            * (
                lr / self.cornering_stiffness_front_n_per_rad
                - lf / self.cornering_stiffness_rear_n_per_rad
            )
        )


VEHICLE_TYPES: dict[str, VehicleType] = {
    t.base_type: t
    for t in (
        VehicleType(
            name="Lincoln MKZ 2020",
            blueprint_id="vehicle.lincoln.mkz_2020",
            base_type="car",
            semantic_tag=14,
            extent_m=(2.45, 1.06, 0.76),
            wheelbase_m=2.85,
            cg_to_front_axle_m=1.20,
            mass_kg=1800.0,
            yaw_inertia_kgm2=3200.0,
            cornering_stiffness_front_n_per_rad=100_000.0,
            cornering_stiffness_rear_n_per_rad=110_000.0,
            max_steer_rad=0.61,
            max_steer_rate_rad_s=1.2,
            max_accel_mps2=4.0,
            max_power_w=140_000.0,
            max_brake_mps2=8.0,
            drag_area_kg_per_m=0.42,
            rolling_resistance_coeff=0.012,
            number_of_wheels=4,
        ),
        VehicleType(
            name="Mercedes Sprinter",
            blueprint_id="vehicle.mercedes.sprinter",
            base_type="van",
            semantic_tag=14,
            extent_m=(2.6, 1.0, 1.2),
            wheelbase_m=3.25,
            cg_to_front_axle_m=1.50,
            mass_kg=2500.0,
            yaw_inertia_kgm2=6500.0,
            cornering_stiffness_front_n_per_rad=120_000.0,
            cornering_stiffness_rear_n_per_rad=140_000.0,
            max_steer_rad=0.60,
            max_steer_rate_rad_s=1.0,
            max_accel_mps2=2.8,
            max_power_w=110_000.0,
            max_brake_mps2=7.0,
            drag_area_kg_per_m=1.05,
            rolling_resistance_coeff=0.012,
            number_of_wheels=4,
        ),
        VehicleType(
            name="CarlaCola truck",
            blueprint_id="vehicle.carlamotors.carlacola",
            base_type="truck",
            semantic_tag=15,
            extent_m=(2.9, 1.2, 1.75),
            wheelbase_m=3.5,
            cg_to_front_axle_m=1.60,
            mass_kg=5500.0,
            yaw_inertia_kgm2=17_000.0,
            cornering_stiffness_front_n_per_rad=180_000.0,
            cornering_stiffness_rear_n_per_rad=250_000.0,
            max_steer_rad=0.60,
            max_steer_rate_rad_s=0.8,
            max_accel_mps2=2.0,
            max_power_w=130_000.0,
            max_brake_mps2=6.0,
            drag_area_kg_per_m=2.6,
            rolling_resistance_coeff=0.008,
            number_of_wheels=4,
        ),
        VehicleType(
            name="Mitsubishi Fuso Rosa bus",
            blueprint_id="vehicle.mitsubishi.fusorosa",
            base_type="bus",
            semantic_tag=16,
            extent_m=(6.0, 1.6, 1.6),
            wheelbase_m=6.0,
            cg_to_front_axle_m=3.6,
            mass_kg=12_000.0,
            yaw_inertia_kgm2=150_000.0,
            cornering_stiffness_front_n_per_rad=250_000.0,
            cornering_stiffness_rear_n_per_rad=450_000.0,
            max_steer_rad=0.75,
            max_steer_rate_rad_s=0.6,
            max_accel_mps2=1.5,
            max_power_w=200_000.0,
            max_brake_mps2=5.0,
            drag_area_kg_per_m=3.2,
            rolling_resistance_coeff=0.008,
            number_of_wheels=4,
        ),
        VehicleType(
            name="Yamaha YZF",
            blueprint_id="vehicle.yamaha.yzf",
            base_type="motorcycle",
            semantic_tag=18,
            extent_m=(1.1, 0.4, 0.8),
            wheelbase_m=1.4,
            cg_to_front_axle_m=0.70,
            mass_kg=250.0,
            yaw_inertia_kgm2=100.0,
            cornering_stiffness_front_n_per_rad=14_000.0,
            cornering_stiffness_rear_n_per_rad=16_000.0,
            max_steer_rad=0.50,
            max_steer_rate_rad_s=2.0,
            max_accel_mps2=6.0,
            max_power_w=80_000.0,
            max_brake_mps2=8.5,
            drag_area_kg_per_m=0.22,
            rolling_resistance_coeff=0.015,
            number_of_wheels=2,
        ),
    )
}

_BY_BLUEPRINT: dict[str, VehicleType] = {t.blueprint_id: t for t in VEHICLE_TYPES.values()}


BICYCLE_MAX_POWER_W = 1_500.0
BICYCLE_MAX_ACCEL_MPS2 = 2.0
BICYCLE_MASS_KG = 90.0


@functools.cache
def blueprint_vehicle_type(blueprint_id: str) -> VehicleType:
    """The type of any CARLA 0.9.16 vehicle blueprint (``sim.sensors.vehicle_blueprints``): its class's
    parameters with the blueprint's box, the axles scaled with its length; bicycles ride on the motorcycle class
    with a rider's power and a bicycle's mass. ``KeyError`` for an unknown id."""
    blueprint = get_vehicle_blueprint(blueprint_id)
    base = VEHICLE_TYPES[blueprint.vehicle_class]
    if base.blueprint_id == blueprint_id:
        return base
    scale = blueprint.extent_m[0] / base.extent_m[0]
    vtype = replace(base, name=blueprint_id, blueprint_id=blueprint_id, semantic_tag=blueprint.semantic_tag,
                    extent_m=blueprint.extent_m, wheelbase_m=base.wheelbase_m * scale,
                    cg_to_front_axle_m=base.cg_to_front_axle_m * scale)
    if blueprint.base_type == "bicycle":
        vtype = replace(vtype, mass_kg=BICYCLE_MASS_KG, yaw_inertia_kgm2=base.yaw_inertia_kgm2 * 0.4,
                        max_power_w=BICYCLE_MAX_POWER_W, max_accel_mps2=BICYCLE_MAX_ACCEL_MPS2)
    return vtype


def get_vehicle_type(name: str) -> VehicleType:
    """Look a vehicle type up by base type ("car") or blueprint id ("vehicle.lincoln.mkz_2020", or any CARLA
    0.9.16 vehicle blueprint: :func:`blueprint_vehicle_type`).

    Raises ValueError listing the valid names when `name` is unknown.
    """
    found = VEHICLE_TYPES.get(name) or _BY_BLUEPRINT.get(name)
    if found is None and name in VEHICLE_BLUEPRINTS:
        found = blueprint_vehicle_type(name)
    if found is None:
        valid = sorted(VEHICLE_TYPES) + sorted(VEHICLE_BLUEPRINTS)
        raise ValueError(f"unknown vehicle type {name!r}; valid names: {', '.join(valid)}")
    return found
