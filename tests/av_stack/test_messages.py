"""The stack's messages: shapes checked, arrays read-only, NaN refused, equality by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from av_stack.messages import (BEV_SPEC, Detections, EgoSignals, LightObservation, MessageError, PerceptionOutput,
                               Plan, PoseEstimate, SensorCalibration, SensorFrame, TrafficLightState,
                               VehicleControl)
from sim.api import Pose
from sim.env.bev import BEV_CHANNELS


def detections(n: int = 2) -> Detections:
    return Detections(kind=np.ones(n), center_m=np.arange(3 * n).reshape(n, 3), extent_m=np.ones((n, 3)),
                      yaw_rad=np.zeros(n), velocity_mps=np.zeros((n, 2)), score=np.full(n, 0.9),
                      track_id=np.arange(n))


def test_the_bev_spec_is_the_envs_channel_list_and_maps_ego_points_to_pixels():
    assert BEV_SPEC.channels == tuple(BEV_CHANNELS)
    assert BEV_SPEC.shape == (len(BEV_CHANNELS), 192, 192)
    # the ego's origin sits at column size/2, row size - 1 - ego_from_bottom; 1 m ahead is pixels_per_m up
    np.testing.assert_allclose(BEV_SPEC.ego_to_pixel(np.array([[0.0, 0.0], [1.0, 2.0]])),
                               [[96.0, 151.0], [106.0, 146.0]])


def test_detections_check_shapes_and_freeze_arrays():
    d = detections(3)
    assert len(d) == 3 and d.kind.dtype == np.int8 and d.track_id.dtype == np.int64
    with pytest.raises(ValueError, match="read-only"):
        d.center_m[0, 0] = 5.0
    with pytest.raises(MessageError, match=r"Detections.center_m must have shape \(3, 3\), got \(2, 3\)"):
        Detections(np.ones(3), np.zeros((2, 3)), np.ones((3, 3)), np.zeros(3), np.zeros((3, 2)), np.ones(3),
                   np.arange(3))
    with pytest.raises(MessageError, match="Detections.velocity_mps has non-finite values"):
        Detections(np.ones(1), np.zeros((1, 3)), np.ones((1, 3)), np.zeros(1), np.array([[np.nan, 0.0]]),
                   np.ones(1), np.arange(1))
    assert len(Detections.empty()) == 0
    assert detections(2) == detections(2) and detections(2) != detections(3)


def test_perception_output_holds_probabilities_on_the_spec_grid():
    bev = np.zeros(BEV_SPEC.shape, dtype=np.float32)
    bev[0, 10, 10] = 1.0
    out = PerceptionOutput(3, 0.15, detections(), LightObservation(TrafficLightState.RED, 12.0), bev)
    assert out.channel("road")[10, 10] == 1.0 and out.light.must_stop
    with pytest.raises(KeyError, match="no BEV channel 'roads'"):
        out.channel("roads")
    with pytest.raises(MessageError, match="probabilities in"):
        PerceptionOutput(3, 0.15, detections(), LightObservation(), bev * 2.0)
    with pytest.raises(MessageError, match="must have shape"):
        PerceptionOutput(3, 0.15, detections(), LightObservation(), np.zeros((3, 8, 8)))
    with pytest.raises(MessageError, match="distance_m must be a number"):
        LightObservation(TrafficLightState.GREEN, math.nan)


def test_pose_estimate_plan_and_frame_validate_their_fields():
    pose = PoseEstimate(1, 0.05, Pose(1.0, 2.0, 0.0, math.pi / 2), np.array([0.0, 3.0, 0.0]))
    assert pose.forward_speed_mps == pytest.approx(3.0) and pose.xy.tolist() == [1.0, 2.0]
    with pytest.raises(MessageError, match="finite"):
        PoseEstimate(1, 0.05, Pose(), np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(MessageError, match=r"velocity_mps must have shape \(3,\)"):
        PoseEstimate(1, 0.05, Pose(), np.zeros(2))

    plan = Plan(1, 0.05, np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([5.0, 5.0]))
    assert plan.arc_length_m.tolist() == [0.0, 5.0]
    with pytest.raises(MessageError, match=r"target_speed_mps must have shape \(2,\)"):
        Plan(1, 0.05, np.zeros((2, 2)), np.zeros(3))
    with pytest.raises(MessageError, match="needs a trajectory or a control"):
        Plan(1, 0.05)
    assert Plan(1, 0.05, control=VehicleControl(brake=1.0)).trajectory_xy.shape == (0, 2)
    with pytest.raises(MessageError, match="finite"):
        Plan(1, 0.05, np.array([[0.0, np.inf]]), np.zeros(1))

    camera = SensorCalibration("front_rgb", "sensor.camera.rgb", Pose(1.5, 0.0, 2.4), np.eye(3), (400, 300))
    frame = SensorFrame(7, 0.35, EgoSignals(4.0), {"front_rgb": np.zeros((2, 2, 3), np.uint8)}, {"front_rgb": camera})
    assert frame.sensor("front_rgb").shape == (2, 2, 3) and np.isnan(frame.ego.gnss).all()
    with pytest.raises(KeyError, match=r"no sensor 'lidar' in this frame; it has \['front_rgb'\]"):
        frame.sensor("lidar")
    with pytest.raises(TypeError):
        frame.data["x"] = np.zeros(1)  # the mapping is read-only
    with pytest.raises(MessageError, match="speed_mps must be finite"):
        EgoSignals(math.nan)
    with pytest.raises(MessageError, match="privileged_bev must have shape"):
        SensorFrame(7, 0.35, EgoSignals(0.0), privileged_bev=np.zeros((1, 4, 4), np.uint8))
