"""The BEV assembled after localization: map layers at the pose estimate, dynamic layers from perception."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from av_stack.localization.oracle import OracleLocalization
from av_stack.logs import topics as T
from av_stack.logs.reader import LogReader
from av_stack.perception.assembly import BevAssembler, BevAssemblyConfig
from av_stack.perception.evaluate import evaluate_perception
from av_stack.perception.oracle import OraclePerception
from av_stack.replay.logged import log_map, mission_of
from sim.api import Pose


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1))


@pytest.fixture(scope="module")
def scene(dataset):
    """(mission, a logged frame, the oracle's output, the true pose) of the dataset's fifth sample frame."""
    from av_stack.data.manifest import read_manifest

    entry = read_manifest(dataset)["logs"][0]
    log = LogReader(dataset / entry["file"])
    the_map, mission, seen = log_map(log), None, 0
    perception, localization = OraclePerception(), OracleLocalization()
    for logged in log.frames():
        episode = logged.messages.get(T.EPISODE)
        if episode is not None:
            mission = mission_of(log, the_map, episode, logged.messages.get(T.GT_WORLD))
            perception.reset(mission)
            localization.reset(mission)
        if logged.has_sensor_data and logged.sensor_frame.ground_truth is not None:
            frame = logged.sensor_frame
            output, pose = perception.step(frame), localization.step(frame)
            seen += 1
            if seen == 5:
                return mission, frame, output, pose
    raise AssertionError("the dataset has fewer than five sample frames")


def test_map_layers_at_the_true_pose_match_the_privileged_bev(scene):
    mission, frame, output, pose = scene
    channels = frame.bev_spec.channels
    blank = replace(output, bev=np.zeros_like(output.bev))  # a perception that saw nothing
    assembler = BevAssembler()
    assembler.reset(mission)
    bev = assembler(blank, pose).bev
    truth = frame.privileged_bev > 127
    for name, least in (("road", 0.95), ("route", 0.8)):
        k = channels.index(name)
        assert _iou(bev[k] > 0.5, truth[k]) > least, name
    k = channels.index("vehicles_t0")
    assert not bev[k].any()  # dynamic layers stay perception's (here: nothing)
    assert not blank.bev.any()  # the input is not written to


def test_the_layers_follow_the_pose_and_perception_keeps_its_road_when_asked(scene):
    mission, frame, output, pose = scene
    road = frame.bev_spec.channels.index("road")
    truth = frame.privileged_bev[road] > 127
    assembler = BevAssembler()
    assembler.reset(mission)
    p = pose.pose
    moved = replace(pose, pose=Pose(p.x_m + 3.0 * np.sin(p.yaw_rad), p.y_m - 3.0 * np.cos(p.yaw_rad), p.z_m,
                                    p.yaw_rad))
    assert _iou(assembler(output, moved).bev[road] > 0.5, truth) < 0.9  # 3 m to the side: visibly off
    keep = BevAssembler(BevAssemblyConfig(assemble=True, road_and_lanes="perception"))
    keep.reset(mission)
    marked = output.bev.copy()
    marked[road] = 0.0
    marked[road, :10, :10] = 1.0
    assert np.array_equal(keep(replace(output, bev=marked), pose).bev[road], marked[road])


def test_eval_scores_the_assembled_bev_and_the_stage_own(dataset):
    result = evaluate_perception({"name": "oracle"}, dataset, assemble="map", localization={"name": "oracle"})
    assert result["iou_stage"]["road"] == 1.0 and result["iou"]["vehicles"] in (1.0, None)
    assert result["iou"]["road"] > 0.95  # the map's road at the true pose
    assert result["assemble"] == "map" and result["localization"] == {"name": "oracle"}
    assert result["ms_assembly"] > 0 and result["ms_per_frame"] >= result["ms_stage"]
    with pytest.raises(ValueError, match="assemble"):
        evaluate_perception({"name": "oracle"}, dataset, assemble="both")
