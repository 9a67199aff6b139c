"""The topics of a run log, their schemas, and the names of its metadata and attachments.

=============================  ==========================  ==============================================
topic                          schema                      what
=============================  ==========================  ==============================================
``/sensors/<name>``            foxglove.CompressedImage    a camera (RGB JPEG; depth, semantic, instance PNG)
``/sensors/<name>``            foxglove.PointCloud         a LiDAR, semantic LiDAR or radar
``/sensors/<name>``            foxglove.LocationFix        a GNSS
``/sensors/<name>``            avsim.Imu                   an IMU (accelerometer, gyroscope, compass)
``/ego/signals``               avsim.EgoSignals            speedometer, IMU, compass and GNSS of the frame
``/tf``                        foxglove.FrameTransforms    world -> ego, ego -> every sensor
``/ground_truth/boxes``        foxglove.SceneUpdate        actors near the ego (frame ``ego``)
``/ground_truth/frame``        avsim.GroundTruth           the frame's privileged ground truth
``/ground_truth/world``        avsim.WorldSnapshot         every actor (world frame), light states, events
``/ground_truth/bev``          foxglove.CompressedImage    the privileged BEV, channels stacked (PNG)
``/perception/boxes``          foxglove.SceneUpdate        the perception stage's detections
``/perception/bev``            foxglove.CompressedImage    the perception stage's BEV (PNG, 0-255)
``/stack/perception``          avsim.PerceptionOutput      detections, governing light
``/stack/localization``        avsim.PoseEstimate          the localization stage's estimate
``/stack/plan``                avsim.Plan                  trajectory, speeds, command, direct control
``/stack/control``             avsim.VehicleControl        the controller's command
``/stack/latency``             avsim.Latency               each stage's wall time [ms]
``/env/step``                  avsim.EnvStep               infractions, route completion, termination
``/episode``                   avsim.Episode               once per route: id, ego id, the route itself
=============================  ==========================  ==============================================

Metadata ``avsim.run``: the log format version, map name, dt, the sensor
suite's calibration, the BEV grid, the ego vehicle. Attachments:
``config.json`` (the run's full stack config) and ``map.xodr.zst`` (the map's
OpenDRIVE text, zstd-compressed), so a log replays without the original files.
"""

from __future__ import annotations

SENSOR_PREFIX = "/sensors/"
EGO_SIGNALS = "/ego/signals"
TF = "/tf"
GT_BOXES = "/ground_truth/boxes"
GT_FRAME = "/ground_truth/frame"
GT_WORLD = "/ground_truth/world"
GT_BEV = "/ground_truth/bev"
PERCEPTION_BOXES = "/perception/boxes"
PERCEPTION_BEV = "/perception/bev"
STACK_PERCEPTION = "/stack/perception"
STACK_LOCALIZATION = "/stack/localization"
STACK_PLAN = "/stack/plan"
STACK_CONTROL = "/stack/control"
STACK_LATENCY = "/stack/latency"
ENV_STEP = "/env/step"
EPISODE = "/episode"

RUN_METADATA = "avsim.run"
CONFIG_ATTACHMENT = "config.json"
MAP_ATTACHMENT = "map.xodr.zst"
"""The OpenDRIVE text, zstd-compressed (a town's is about a megabyte, a tenth of that compressed)."""

WORLD_FRAME = "world"
EGO_FRAME = "ego"


def sensor_topic(name: str) -> str:
    """The topic of sensor ``name``."""
    return SENSOR_PREFIX + name
