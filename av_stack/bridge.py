"""The bridge between ``avsim/Driving-v0`` and the stack: the env's observation to a :class:`SensorFrame`,
the env's route and map to a :class:`Mission`, the ego's true pose to a :class:`PoseEstimate`, and the stack's
control back to an env action.

Only public parts of the env are read: the observation (the sensor suite's
arrays and, for oracle stages, the privileged BEV), the ground truth the env
hands out (:meth:`DrivingEnv.ground_truth`, what ``info["ground_truth"]``
holds), the speedometer, the route (the Leaderboard's global plan) and the
map (lane graph and signals).
"""

from __future__ import annotations

import math

import numpy as np

from av_stack.messages import (BevSpec, EgoSignals, Mission, PoseEstimate, SensorCalibration, SensorFrame,
                               VehicleGeometry)
from sim.api import Pose
from sim.env.actions import control_to_action
from sim.env.bev import BevConfig

_NOT_SENSORS = {"bev", "measurements", "state"}


def bev_spec_of(env) -> BevSpec:
    """The BEV grid of ``env``'s ``observation.bev`` section."""
    b = env.config.observation.bev
    return BevSpec(BevConfig(size_px=b.size_px, pixels_per_m=b.pixels_per_m, ego_from_bottom_px=b.ego_from_bottom_px,
                             history_steps=tuple(b.history_steps)))


def calibration_of(suite) -> dict[str, SensorCalibration]:
    """Per sensor of a :class:`~sim.sensors.suite.SensorSuite`: its mount and, for cameras, the intrinsics."""
    out: dict[str, SensorCalibration] = {}
    for spec in suite or ():
        intrinsics, size = None, None
        if spec.blueprint_id.startswith("sensor.camera.") and "image_size_x" in spec.attributes:
            width, height = int(spec.attributes["image_size_x"]), int(spec.attributes["image_size_y"])
            focal = width / (2.0 * math.tan(math.radians(float(spec.attributes["fov"])) / 2.0))
            intrinsics = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
            size = (width, height)
        out[spec.name] = SensorCalibration(spec.name, spec.blueprint_id, spec.mount, intrinsics, size)
    return out


def mission_of(env) -> Mission:
    """The current episode's mission: route, lane graph, signals and the ego vehicle."""
    snapshot = env.world.snapshot()
    extent = tuple(float(v) for v in snapshot.extent_m[snapshot.index_of(env.ego_id)])
    return Mission(env.route, env.lanes, env.world.signals, VehicleGeometry(env.config.ego_blueprint, extent),
                   env.world.source.name)


def oracle_pose(env) -> PoseEstimate:
    """The ego's true pose in ``env`` (a ``DrivingEnv``), as the stack's oracle localization gives it."""
    snapshot = env.world.snapshot()
    row = snapshot.index_of(env.ego_id)
    x, y, z = (float(v) for v in snapshot.location_m[row])
    pitch, yaw, roll = (float(v) for v in snapshot.rotation_rad[row])
    pose = Pose(x, y, z, yaw, pitch_rad=pitch, roll_rad=roll)
    return PoseEstimate(snapshot.frame, snapshot.timestamp_s, pose, np.array(snapshot.velocity_mps[row]))


class FrameBuilder:
    """Builds one :class:`SensorFrame` per tick from the env's observation (see the module docstring)."""

    def __init__(self, env) -> None:
        self.env = env
        self.bev_spec = bev_spec_of(env)
        suite = env.sensor_suite
        self.calibration = calibration_of(suite)
        self._imu = next((s.name for s in suite or () if s.blueprint_id == "sensor.other.imu"), None)
        self._gnss = next((s.name for s in suite or () if s.blueprint_id == "sensor.other.gnss"), None)

    def __call__(self, obs, speed_mps: float) -> SensorFrame:
        """The frame of observation ``obs`` with the speedometer reading ``speed_mps``."""
        env = self.env
        truth = env.ground_truth()
        arrays = obs if isinstance(obs, dict) else {}
        data: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            if name in _NOT_SENSORS or (name.endswith("_count") and name[:-6] in arrays):
                continue
            count = arrays.get(f"{name}_count")
            data[name] = value[: int(count[0])] if count is not None else value
        imu = data.get(self._imu) if self._imu else None
        gnss = data.get(self._gnss) if self._gnss else None
        ego = EgoSignals(speed_mps,
                         accelerometer_mps2=imu[:3] if imu is not None else np.full(3, np.nan),
                         gyroscope_rad_s=imu[3:6] if imu is not None else np.full(3, np.nan),
                         compass_rad=float(imu[6]) if imu is not None else math.nan,
                         gnss=gnss[:3] if gnss is not None else np.full(3, np.nan))
        return SensorFrame(truth.frame, truth.timestamp_s, ego, data, self.calibration, truth,
                           arrays.get("bev"), self.bev_spec)


class StackAgent:
    """An :class:`~av_stack.stack.Stack` as an agent of ``avsim/Driving-v0`` (``reset(env)``,
    ``agent(obs, env) -> action``); keeps the latest :class:`SensorFrame` and
    :class:`~av_stack.stack.StackOutputs` for video and latency reports."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self.frame: SensorFrame | None = None
        self.outputs = None
        self._builder: FrameBuilder | None = None
        self._env = None

    def reset(self, env) -> None:
        """Hand the stack the new episode's mission."""
        if self._env is not env:
            self._env, self._builder = env, FrameBuilder(env)
        self.stack.reset(mission_of(env))
        self.frame, self.outputs = None, None

    def __call__(self, obs, env) -> np.ndarray:
        return control_to_action(self.control(obs, env), env.config.action.mode)

    def control(self, obs, env):
        """The stack's :class:`~sim.api.VehicleControl` for observation ``obs`` (one stack step)."""
        snapshot = env.world.snapshot()
        row = snapshot.index_of(env.ego_id)
        yaw = float(snapshot.rotation_rad[row, 1])
        speed = float(snapshot.velocity_mps[row, 0] * math.cos(yaw) + snapshot.velocity_mps[row, 1] * math.sin(yaw))
        self.frame = self._builder(obs, speed)
        self.outputs = self.stack.step(self.frame)
        return self.outputs.control


def expert_agent(**planner_keys) -> StackAgent:
    """The privileged expert as an env agent: oracle perception and localization, the expert planner (with
    ``planner_keys`` for its config), the Stanley controller (front-axle tracking keeps the swept body inside
    the lane in tight turns better than rear-axle pure pursuit). The env needs ``action.mode:
    vehicle_control`` for the expert to back off a kerb (other modes raise when it tries)."""
    from av_stack.stack import Stack

    return StackAgent(Stack.from_config({"planning": {"name": "expert", **planner_keys}}))
