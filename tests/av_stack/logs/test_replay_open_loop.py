"""Open-loop replay of one stage over the committed regression log: the oracles score perfectly, degraded stages
score worse by what they got wrong, and bad inputs each give one clear error."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from av_stack.localization import LOCALIZATION
from av_stack.localization.oracle import OracleLocalization
from av_stack.logs.reader import LogError
from av_stack.messages import Detections, LightObservation, PerceptionOutput, PoseEstimate, SensorFrame
from av_stack.perception import PERCEPTION
from av_stack.perception.oracle import OraclePerception
from av_stack.registry import StageConfigError, StageParams
from av_stack.replay.logged import ReplayError
from av_stack.replay.metrics import greedy_match
from av_stack.replay.open_loop import replay_open_loop
from sim.api import Pose

LOG = Path(__file__).resolve().parents[2] / "data" / "logs" / "regression.mcap"


class DroppingPerception(OraclePerception):
    """Test perception: the oracle, but every other box dropped and the rest 1 m too far ahead, the vehicle
    channels of the BEV empty, and never a traffic light."""

    def step(self, frame: SensorFrame) -> PerceptionOutput:
        out = super().step(frame)
        d = out.detections
        keep = np.arange(len(d)) % 2 == 0
        center = d.center_m[keep] + np.array([1.0, 0.0, 0.0])
        detections = Detections(d.kind[keep], center, d.extent_m[keep], d.yaw_rad[keep], d.velocity_mps[keep],
                                d.score[keep], d.track_id[keep])
        bev = None
        if out.bev is not None:
            bev = out.bev.copy()
            for k, name in enumerate(out.bev_spec.channels):
                if name.startswith("vehicles"):
                    bev[k] = 0.0
        return PerceptionOutput(out.frame, out.timestamp_s, detections, LightObservation(), bev, out.bev_spec)


class OffsetLocalization(OracleLocalization):
    """Test localization: the ground truth shifted by ``offset_m`` to the east and ``yaw_deg`` turned."""

    class Config(StageParams):
        offset_m: float = 1.0
        yaw_deg: float = 2.0

    def step(self, frame: SensorFrame) -> PoseEstimate:
        out = super().step(frame)
        p = out.pose
        pose = Pose(p.x_m + self.config.offset_m, p.y_m, p.z_m, p.yaw_rad + math.radians(self.config.yaw_deg))
        return PoseEstimate(out.frame, out.timestamp_s, pose, out.velocity_mps, out.covariance, out.valid)


if "_test_dropping" not in PERCEPTION.names():
    PERCEPTION.register("_test_dropping")(DroppingPerception)
if "_test_offset" not in LOCALIZATION.names():
    LOCALIZATION.register("_test_offset")(OffsetLocalization)


@pytest.fixture(scope="module")
def oracle_perception():
    return replay_open_loop(LOG, "perception", {"name": "oracle"})


def test_oracle_perception_scores_perfectly(oracle_perception):
    r = oracle_perception
    assert r["complete"] and r["error"] is None and r["routes"] == 1
    m = r["metrics"]
    assert r["frames"] == m["frames"] == m["bev_frames"] == 20  # 80 ticks, sensors on every 4th
    iou = {k: v for k, v in m["bev_iou"].items() if v is not None}
    assert {"road", "route", "vehicles_t0", "pedestrians_t0"} <= set(iou)
    assert all(v == 1.0 for v in iou.values()) and m["bev_miou"] == 1.0
    d = m["detection"]
    assert d["vehicle"]["true_positives"] > 20 and d["walker"]["true_positives"] > 20
    for kind in ("all", "vehicle", "walker"):
        assert d[kind]["precision"] == d[kind]["recall"] == 1.0 and d[kind]["mean_center_error_m"] == 0.0
    assert m["light_accuracy"] == 1.0 and m["light_frames"] == 20


def test_a_perception_that_drops_boxes_scores_worse(oracle_perception):
    r = replay_open_loop(LOG, "perception", {"name": "_test_dropping"})
    assert r["implementation"] == "_test_dropping" and r["frames"] == 20
    m, perfect = r["metrics"], oracle_perception["metrics"]
    d = m["detection"]["all"]
    total = perfect["detection"]["all"]["true_positives"]
    assert d["precision"] == 1.0  # what is left is still there, 1 m off: within the 2 m match radius
    assert d["true_positives"] + d["false_negatives"] == total
    assert 0.4 < d["recall"] < 0.6
    assert d["mean_center_error_m"] == pytest.approx(1.0)
    assert m["bev_iou"]["vehicles_t0"] == 0.0 and m["bev_iou"]["road"] == 1.0 and m["bev_miou"] < 1.0
    assert m["light_accuracy"] < 1.0  # the log's frames all have a light ahead; this stage never sees one


def test_oracle_localization_scores_perfectly_and_an_offset_one_by_its_offset():
    perfect = replay_open_loop(LOG, "localization", {"name": "oracle"}, all_frames=True)
    assert perfect["frames"] == 80
    m = perfect["metrics"]
    assert m["position_error_m"] == {"mean": 0.0, "p95": 0.0, "max": 0.0}
    assert m["yaw_error_deg"]["max"] == pytest.approx(0.0, abs=1e-9) and m["valid_share"] == 1.0
    off = replay_open_loop(LOG, "localization", {"name": "_test_offset", "offset_m": 1.5, "yaw_deg": -3.0})
    m = off["metrics"]
    assert off["frames"] == 20
    assert m["position_error_m"]["mean"] == pytest.approx(1.5) and m["position_error_m"]["p95"] == pytest.approx(1.5)
    assert m["yaw_error_deg"]["mean"] == pytest.approx(3.0, abs=1e-6)


def test_the_logged_runs_own_stage_is_the_default():
    r = replay_open_loop(LOG, "localization")
    assert r["implementation"] == "oracle" and r["metrics"]["position_error_m"]["max"] == 0.0


def test_greedy_matching_takes_the_closest_pairs_of_one_kind_within_the_radius():
    pred = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    true = np.array([[0.9, 0.0], [0.1, 0.0], [12.5, 0.0], [20.0, 0.5]])
    pairs = greedy_match(pred, np.array([0, 0, 0, 1]), true, np.array([0, 0, 0, 0]))
    assert sorted((p, t) for p, t, _ in pairs) == [(0, 1), (1, 0)]  # 2.5 m is too far; kinds 1 vs 0 differ


def test_a_log_cut_at_two_thirds_is_scored_up_to_the_cut(tmp_path):
    cut = tmp_path / "cut.mcap"
    data = LOG.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    r = replay_open_loop(cut, "perception", {"name": "oracle"})
    assert not r["complete"]
    assert str(cut) in r["error"] and "cut or corrupt after t =" in r["error"]
    assert 5 < r["frames"] < 20
    assert r["metrics"]["detection"]["all"]["recall"] == 1.0


def test_bad_inputs_each_give_one_clear_error(tmp_path):
    with pytest.raises(LogError, match="no log file at"):
        replay_open_loop(tmp_path / "nowhere.mcap", "perception")
    text = tmp_path / "notes.mcap"
    text.write_text("not a log\n" * 100)
    with pytest.raises(LogError, match="not a readable MCAP log"):
        replay_open_loop(text, "perception")
    with pytest.raises(ReplayError, match="scores the stages perception, localization; got 'planning'"):
        replay_open_loop(LOG, "planning")
    with pytest.raises(StageConfigError, match="unknown implementation 'cnn'; valid: .*oracle"):
        replay_open_loop(LOG, "perception", {"name": "cnn"})
    with pytest.raises(StageConfigError, match="range_mm"):
        replay_open_loop(LOG, "perception", {"name": "oracle", "range_mm": 3})


def test_a_log_without_a_map_cannot_be_replayed(tmp_path, monkeypatch):
    from av_stack.logs.reader import LogReader

    copy = tmp_path / "copy.mcap"
    shutil.copyfile(LOG, copy)
    monkeypatch.setattr(LogReader, "map_xodr", property(lambda self: None))
    with pytest.raises(ReplayError, match="no OpenDRIVE map attached"):
        replay_open_loop(copy, "perception")
