"""The only place where CARLA's units meet the project's: degrees, Unreal rotation order, km/h, enums.

The project's API (``sim.api``) uses CARLA's axes (x forward, y right, z up,
left-handed) with radians and SI units. CARLA's Python API uses degrees for
rotations and angular velocities, ``Rotation(pitch, yaw, roll)`` order, and
km/h for speed limits. Vehicle locations differ in one more way: a CARLA
vehicle's transform is its blueprint origin, while ``WorldSnapshot`` reports
the point on the ground under the bounding-box centre (:func:`vehicle_ground_xy`).
"""

from __future__ import annotations

import math

import carla

from sim.api import ActorKind, Pose, TrafficLightState, VehicleControl

KMH_PER_MPS = 3.6

_TAG_BY_BASE_TYPE = {"car": 14, "truck": 15, "van": 14, "bus": 16, "motorcycle": 18, "bicycle": 19}
PEDESTRIAN_TAG = 12
CAR_TAG = 14


def wrap_rad(angle: float) -> float:
    """``angle`` wrapped to (-pi, pi]."""
    wrapped = math.atan2(math.sin(angle), math.cos(angle))
    return math.pi if wrapped == -math.pi else wrapped


def pose_to_transform(pose: Pose) -> carla.Transform:
    """A project :class:`Pose` (radians) as a ``carla.Transform`` (degrees)."""
    return carla.Transform(carla.Location(x=float(pose.x_m), y=float(pose.y_m), z=float(pose.z_m)),
                           carla.Rotation(pitch=math.degrees(pose.pitch_rad), yaw=math.degrees(pose.yaw_rad),
                                          roll=math.degrees(pose.roll_rad)))


def transform_to_pose(transform: carla.Transform) -> Pose:
    """A ``carla.Transform`` as a :class:`Pose`; angles wrapped (CARLA does not normalise them)."""
    loc, rot = transform.location, transform.rotation
    return Pose(float(loc.x), float(loc.y), float(loc.z), wrap_rad(math.radians(rot.yaw)),
                wrap_rad(math.radians(rot.pitch)), wrap_rad(math.radians(rot.roll)))


def rotation_rad(rotation: carla.Rotation) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in radians, wrapped: the ``WorldSnapshot.rotation_rad`` order."""
    return (wrap_rad(math.radians(rotation.pitch)), wrap_rad(math.radians(rotation.yaw)),
            wrap_rad(math.radians(rotation.roll)))


def control_to_carla(control: VehicleControl) -> carla.VehicleControl:
    """Our (already clamped) control as ``carla.VehicleControl``; the client would not clamp."""
    return carla.VehicleControl(throttle=float(control.throttle), steer=float(control.steer),
                                brake=float(control.brake), hand_brake=bool(control.hand_brake),
                                reverse=bool(control.reverse))


def control_from_carla(control: carla.VehicleControl) -> VehicleControl:
    """A ``carla.VehicleControl`` as ours (clamped, NaN rejected)."""
    return VehicleControl(throttle=control.throttle, steer=control.steer, brake=control.brake,
                          hand_brake=bool(control.hand_brake), reverse=bool(control.reverse))


def vector_xyz(vector: carla.Vector3D) -> tuple[float, float, float]:
    """A ``carla.Vector3D`` as a tuple."""
    return (float(vector.x), float(vector.y), float(vector.z))


def angular_velocity_rad_s(vector: carla.Vector3D) -> tuple[float, float, float]:
    """CARLA's angular velocity (deg/s) in rad/s; z is the yaw rate (positive turns x toward y)."""
    return (math.radians(vector.x), math.radians(vector.y), math.radians(vector.z))


def light_state(state: carla.TrafficLightState) -> TrafficLightState:
    """CARLA's traffic-light state as ours (the integer values are the same)."""
    return TrafficLightState(int(state))


def light_state_to_carla(state: TrafficLightState | int) -> carla.TrafficLightState:
    """Our traffic-light state as CARLA's."""
    return carla.TrafficLightState.values[int(state)]


def speed_limit_mps(kmh: float) -> float:
    """CARLA speed limits (km/h, as ``Vehicle.get_speed_limit`` and signal 274) in m/s."""
    return float(kmh) / KMH_PER_MPS


def actor_kind(type_id: str) -> ActorKind:
    """Vehicle or walker, from the blueprint id; ``ValueError`` for anything else."""
    if type_id.startswith("vehicle."):
        return ActorKind.VEHICLE
    if type_id.startswith("walker.pedestrian"):
        return ActorKind.WALKER
    raise ValueError(f"{type_id!r} is neither a vehicle nor a pedestrian")


def semantic_tag(type_id: str, semantic_tags: list[int] | None = None, base_type: str = "") -> int:
    """CARLA's semantic tag of an actor: from its ``semantic_tags`` when known, else by type."""
    if semantic_tags:
        return int(semantic_tags[0])
    if actor_kind(type_id) == ActorKind.WALKER:
        return PEDESTRIAN_TAG
    return _TAG_BY_BASE_TYPE.get(base_type.lower(), CAR_TAG)


def vehicle_ground_xy(transform: carla.Transform, box_location: carla.Location) -> tuple[float, float]:
    """World (x, y) under a vehicle's bounding-box centre (the box location is in the actor's frame)."""
    yaw = math.radians(transform.rotation.yaw)
    c, s = math.cos(yaw), math.sin(yaw)
    return (float(transform.location.x + c * box_location.x - s * box_location.y),
            float(transform.location.y + s * box_location.x + c * box_location.y))

