"""The one set of rigid transforms: box corners in 2-D and 3-D agree with the rotation matrix and each other."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.api import Pose
from sim.transforms import body_to_world_xy, box_corners, box_corners_3d, rotation_matrix


def test_box_corners_order_and_heading():
    corners = box_corners(np.array([[10.0, 5.0]]), np.array([math.pi / 2]), np.array([[2.0, 1.0]]))[0]
    # Heading +y (CARLA: yaw 90 deg): the front is at +y, the box's left (-y in its frame) at world +x.
    np.testing.assert_allclose(corners, [[11.0, 7.0], [9.0, 7.0], [9.0, 3.0], [11.0, 3.0]], atol=1e-12)


def test_box_corners_3d_agree_with_the_rotation_matrix_and_the_2d_corners():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=(5, 3)) * 20
    yaw = rng.uniform(-math.pi, math.pi, 5)
    half = rng.uniform(0.2, 3.0, (5, 3))
    corners = box_corners_3d(centre, yaw, half)
    for n in range(5):
        matrix = rotation_matrix(0.0, float(yaw[n]), 0.0)
        for k in range(8):
            local = (np.array([(k >> 2) & 1, (k >> 1) & 1, k & 1]) * 2.0 - 1.0) * half[n]
            np.testing.assert_allclose(corners[n, k], centre[n] + matrix @ local, atol=1e-9)
    flat = box_corners(centre[:, :2], yaw, half[:, :2])
    top_view = {tuple(np.round(p, 9)) for p in corners[:, :, :2].reshape(-1, 2)}
    assert {tuple(np.round(p, 9)) for p in flat.reshape(-1, 2)} == top_view


def test_body_to_world_matches_pose_rotation():
    pose = Pose(3.0, -2.0, 0.0, 0.7)
    local = np.array([[[1.0, 0.0], [0.0, 1.0], [-2.0, 0.5]]])
    world = body_to_world_xy(local, pose.location[None, :2], np.array([pose.yaw_rad]))[0]
    matrix = rotation_matrix(*pose.rotation)
    expected = [(pose.location + matrix @ np.array([x, y, 0.0]))[:2] for x, y in local[0]]
    np.testing.assert_allclose(world, expected, atol=1e-12)


def test_bad_boxes_are_refused():
    with pytest.raises(ValueError, match="yaw_rad"):
        box_corners(np.zeros((3, 2)), np.zeros(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        box_corners(np.zeros((1, 2)), np.zeros(1), -np.ones((1, 2)))


def test_pose_round_trips_through_arrays_and_refuses_non_finite_values():
    pose = Pose(1.0, 2.0, 3.0, yaw_rad=0.3, pitch_rad=-0.1, roll_rad=0.2)
    assert Pose.from_arrays(pose.location, pose.rotation) == pose
    np.testing.assert_allclose(pose.rotation, [-0.1, 0.3, 0.2])
    with pytest.raises(ValueError, match="Pose.z_m"):
        Pose(0.0, 0.0, float("inf"))
    with pytest.raises(ValueError, match="Pose.roll_rad"):
        Pose(roll_rad=True)
