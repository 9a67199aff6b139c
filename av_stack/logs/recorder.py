"""Record a closed-loop run into one MCAP log (:class:`RunRecorder`, an observer of ``av_stack.runner.drive``).

What goes where is listed in :mod:`av_stack.logs.topics`. The sensor frame a
stack sees at tick ``k`` was observed one step earlier than the world the env
reached after acting on it, so every message carries its own frame number
and simulation time: the sensor frame, the stage outputs and the ground truth
of frame ``f`` share time ``t_f``; ``/ground_truth/world`` of frame ``f`` was
written when the world reached it (at the route's start for its first frame).

Sensor data (``/sensors/*``, the BEV images, the boxes) is written on every
``sensors_every``-th frame of a route (1: all); everything else every tick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from av_stack.logs import encoding as enc
from av_stack.logs import topics as T
from av_stack.logs.config import RecordConfig
from av_stack.logs.writer import LOG_FORMAT_VERSION, LogWriter, jsonable
from av_stack.messages import BevSpec, SensorFrame


def bev_to_png(bev: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 channels stacked top to bottom into one (C*H, W) image."""
    channels, height, width = bev.shape
    return np.ascontiguousarray(bev.reshape(channels * height, width))


def bev_image(t_s: float, frame_id: str, bev: np.ndarray) -> Any:
    """A BEV raster as a lossless PNG image message (probabilities in [0, 1] become 0-255; a 0/255 mask is
    written as a 1-bit PNG, which decodes to the same 0/255 values)."""
    array = np.asarray(bev)
    if array.dtype != np.uint8:
        array = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    binary = bool(((array == 0) | (array == 255)).all())  # masks (the privileged BEV): a 1-bit PNG, 5x faster
    params = [cv2.IMWRITE_PNG_BILEVEL, 1] if binary else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode(".png", bev_to_png(array), params)
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage

    return CompressedImage(timestamp=enc.timestamp(t_s), frame_id=frame_id, data=data.tobytes(), format="png")


def run_metadata(env, bev_spec: BevSpec, calibration: dict) -> dict[str, Any]:
    """The ``avsim.run`` metadata of a run on ``env``."""
    world = env.world
    return {"format_version": str(LOG_FORMAT_VERSION), "map": world.source.name, "dt_s": world.dt_s,
            "ego_blueprint": env.config.ego_blueprint,
            "bev": {"channels": list(bev_spec.channels), "config": jsonable(bev_spec.config)},
            "sensors": {name: {"blueprint": c.blueprint_id, "mount": jsonable(c.mount),
                               "intrinsics": jsonable(c.intrinsics), "image_size": jsonable(c.image_size)}
                        for name, c in calibration.items()}}


class RunRecorder:
    """Writes ``path`` during :func:`av_stack.runner.drive`; ``agent`` is the run's
    :class:`~av_stack.bridge.StackAgent` (or any agent: then only the world and env are recorded)."""

    def __init__(self, path: str | Path, env, agent, config: dict[str, Any], record: RecordConfig) -> None:
        from av_stack.bridge import bev_spec_of, calibration_of

        self.env, self.agent, self.record = env, agent, record
        self.bev_spec = bev_spec_of(env)
        self.calibration = calibration_of(env.sensor_suite)
        self.writer = LogWriter(path, compression=record.compression)
        self.writer.metadata(T.RUN_METADATA, run_metadata(env, self.bev_spec, self.calibration))
        self.writer.attach(T.CONFIG_ATTACHMENT, "application/json", json.dumps(jsonable(config), indent=1))
        xodr = getattr(env.world.source, "xodr_text", None)
        if xodr:
            import zstandard

            self.writer.attach(T.MAP_ATTACHMENT, "application/zstd", zstandard.ZstdCompressor(level=9).compress(
                xodr.encode()))
        self._frames_in_route = 0
        self.ticks = 0

    # -------------------------------------------------------------- observer hooks
    def route_started(self, index: int, route_id: str, env) -> None:
        """Write the episode record and the world of the route's first frame."""
        snapshot = env.world.snapshot()
        route = env.route
        self.writer.write_json(T.EPISODE, "Episode", {
            "index": index, "route_id": route_id, "frame": snapshot.frame, "ego_id": env.ego_id,
            "route": {"points_xy": route.points_xy, "lane": route.lane, "length_m": route.length_m,
                      "waypoints_xy": getattr(route, "waypoints_xy", None)}},
            snapshot.timestamp_s)
        self._write_world(snapshot, env.ego_id)
        self._frames_in_route = 0

    def tick(self, tick) -> None:
        """Write the frame the agent acted on, its outputs, then the world the step reached."""
        frame = getattr(self.agent, "frame", None)
        outputs = getattr(self.agent, "outputs", None)
        if frame is not None:
            self._write_frame(frame, outputs)
        snapshot = self.env.world.snapshot()
        self._write_world(snapshot, self.env.ego_id)
        info = tick.info
        self.writer.write_json(T.ENV_STEP, "EnvStep", {
            "frame": snapshot.frame, "route_id": tick.route_id, "step": tick.step,
            "infractions": info.get("infractions", []), "route_completion": info.get("route_completion"),
            "speed_mps": info.get("speed_mps"), "termination": info.get("termination_reason")},
            snapshot.timestamp_s)
        self._frames_in_route += 1
        self.ticks += 1

    def route_finished(self, record: dict) -> None:
        """Nothing beyond the ticks (the score is in metrics.json)."""

    def close(self) -> None:
        """Finish the log (idempotent)."""
        self.writer.close()

    # -------------------------------------------------------------- writing
    def _write_world(self, snapshot, ego_id: int) -> None:
        self.writer.write_json(T.GT_WORLD, "WorldSnapshot", {
            "frame": snapshot.frame, "timestamp_s": snapshot.timestamp_s, "ego_id": ego_id,
            "actor_id": snapshot.actor_id, "kind": snapshot.kind, "type_id": list(snapshot.type_id),
            "location_m": snapshot.location_m, "rotation_rad": snapshot.rotation_rad,
            "velocity_mps": snapshot.velocity_mps, "extent_m": snapshot.extent_m, "autopilot": snapshot.autopilot,
            "light_id": snapshot.light_id, "light_state": snapshot.light_state,
            "events": [{"type": type(e).__name__, **jsonable(e)} for e in snapshot.events]},
            snapshot.timestamp_s)

    def _write_frame(self, frame: SensorFrame, outputs) -> None:
        w, t = self.writer, frame.timestamp_s
        due = self._frames_in_route % self.record.sensors_every == 0
        w.write_json(T.EGO_SIGNALS, "EgoSignals", {"frame": frame.frame, **jsonable(frame.ego)}, t)
        if due:
            for name, array in frame.data.items():
                self._write_sensor(name, t, array)
        truth = frame.ground_truth
        if truth is not None:
            w.write_json(T.GT_FRAME, "GroundTruth", jsonable(truth), t)
            ego = truth.ego
            from sim.api import Pose

            transforms = [enc.frame_transform(T.WORLD_FRAME, T.EGO_FRAME, t, Pose(
                ego.x_m, ego.y_m, ego.z_m, ego.yaw_rad, pitch_rad=ego.pitch_rad, roll_rad=ego.roll_rad))]
            transforms += [enc.frame_transform(T.EGO_FRAME, name, t, c.mount) for name, c in self.calibration.items()]
            w.write_proto(T.TF, enc.frame_transforms(transforms), t)
            if due:
                a = truth.actors
                w.write_proto(T.GT_BOXES, enc.scene_update(T.EGO_FRAME, t, a.actor_id, a.kind, a.center_m,
                                                           a.extent_m, a.yaw_rad, prefix="gt-"), t)
        if due and frame.privileged_bev is not None:
            w.write_proto(T.GT_BEV, bev_image(t, T.EGO_FRAME, frame.privileged_bev), t)
        if outputs is None:
            return
        perception = outputs.perception
        w.write_json(T.STACK_PERCEPTION, "PerceptionOutput", {
            "frame": perception.frame, "detections": jsonable(perception.detections),
            "light": jsonable(perception.light)}, t)
        w.write_json(T.STACK_LOCALIZATION, "PoseEstimate", jsonable(outputs.pose), t)
        w.write_json(T.STACK_PLAN, "Plan", jsonable(outputs.plan), t)
        w.write_json(T.STACK_CONTROL, "VehicleControl", {"frame": frame.frame, **jsonable(outputs.control)}, t)
        w.write_json(T.STACK_LATENCY, "Latency", {"frame": frame.frame, **outputs.latency_ms}, t)
        if due:
            d = perception.detections
            ids = np.where(d.track_id >= 0, d.track_id, np.arange(len(d.track_id)))
            w.write_proto(T.PERCEPTION_BOXES, enc.scene_update(T.EGO_FRAME, t, ids, d.kind, d.center_m, d.extent_m,
                                                               d.yaw_rad, alpha=0.3, prefix="det-"), t)
            if perception.bev is not None:
                w.write_proto(T.PERCEPTION_BEV, bev_image(t, T.EGO_FRAME, perception.bev), t)

    def _write_sensor(self, name: str, t: float, array: np.ndarray) -> None:
        calibration = self.calibration.get(name)
        if calibration is None:
            return
        blueprint = calibration.blueprint_id
        topic = T.sensor_topic(name)
        if blueprint.startswith("sensor.camera."):
            self.writer.write_proto(topic, enc.encode_camera(blueprint, name, t, array, self.record.jpeg_quality), t)
        elif blueprint in enc.POINT_CLOUDS:
            self.writer.write_proto(topic, enc.encode_points(blueprint, name, t, array), t)
        elif blueprint == "sensor.other.gnss":
            self.writer.write_proto(topic, enc.encode_gnss(name, t, array), t)
        elif blueprint == "sensor.other.imu":
            values = np.asarray(array, dtype=float)
            self.writer.write_json(topic, "Imu", {"accelerometer_mps2": values[:3], "gyroscope_rad_s": values[3:6],
                                                  "compass_rad": values[6]}, t)
