"""The learned perception's geometry: known points land in known BEV cells, the camera's ground grid
projects a known ground point to its known pixel, and targets decode back to their boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from av_stack.messages import BEV_SPEC
from av_stack.perception.learned.geometry import (camera_ground_grid, cell_centres_ego, ego_to_cell, lidar_bev,
                                                  radar_bev)
from av_stack.perception.learned.targets import decode_detections, detection_targets
from sim.api import ActorKind, Pose

SPEC = BEV_SPEC  # 192 px at 5 px/m, ego 40 px above the bottom edge: origin at (row 151, col 96)


def test_a_point_ahead_and_right_lands_in_its_cell():
    (row, col), = ego_to_cell(np.array([[10.0, 2.0]]), SPEC)
    assert (row, col) == (151 - 50, 96 + 10)
    (row2, col2), = ego_to_cell(np.array([[10.0, 2.0]]), SPEC, scale=2)
    assert (row2, col2) == (101 // 2, 106 // 2)
    centres = cell_centres_ego(SPEC, scale=2)
    assert np.allclose(centres[row2, col2], [10.0, 2.0], atol=0.2 + 1e-9)


def test_lidar_points_go_through_the_mount_into_the_ego_frame():
    """A roof LiDAR 2.5 m up and 1 m back: a return at sensor (11, -3, -2) is ego (10, -3, 0.5)."""
    mount = Pose(-1.0, 0.0, 2.5)
    points = np.array([[11.0, -3.0, -2.0, 0.8]], np.float32)
    raster = lidar_bev(points, mount, SPEC, scale=1)
    (row, col), = ego_to_cell(np.array([[10.0, -3.0]]), SPEC)
    assert raster[0, row, col] == pytest.approx(math.log(2.0))
    assert raster[1, row, col] == pytest.approx(0.5) and raster[2, row, col] == pytest.approx(0.5)
    assert raster[3, row, col] == pytest.approx(0.8)
    assert np.count_nonzero(raster[0]) == 1


def test_channels_last_rasters_hold_the_same_values_without_a_copy_to_torch():
    from av_stack.perception.learned.geometry import lidar_points_ego, lidar_raster

    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(-20, 20, (500, 2)), rng.uniform(-2, 1, 500), rng.random(500)])
    radar = np.column_stack([rng.normal(0, 3, 50), rng.uniform(-0.3, 0.3, 50), rng.uniform(-0.1, 0.1, 50),
                             rng.uniform(2, 40, 50)])
    mount = Pose(0.0, 0.0, 2.5)
    for plain, last in ((lidar_raster(*lidar_points_ego(points, mount), SPEC, 2),
                         lidar_raster(*lidar_points_ego(points, mount), SPEC, 2, channels_last=True)),
                        (radar_bev(radar, mount, SPEC, 2), radar_bev(radar, mount, SPEC, 2, channels_last=True))):
        assert np.array_equal(plain, last) and plain.any()
        tensor = torch.from_numpy(last)[None]
        assert tensor.is_contiguous(memory_format=torch.channels_last)
        assert tensor.contiguous(memory_format=torch.channels_last).data_ptr() == tensor.data_ptr()


def test_a_yawed_mount_rotates_points():
    """A sensor turned 90 deg to the right (CARLA yaw +90): its forward axis is the ego's +y."""
    raster = lidar_bev(np.array([[5.0, 0.0, 0.0, 1.0]], np.float32), Pose(0, 0, 0, math.pi / 2), SPEC)
    (row, col), = ego_to_cell(np.array([[0.0, 5.0]]), SPEC)
    assert raster[0, row, col] > 0


def test_radar_polar_rows_land_in_their_cells_with_their_velocity():
    mount = Pose(2.0, 0.0, 1.0)
    rows = np.array([[-3.0, math.radians(10.0), 0.0, 20.0]], np.float32)  # velocity, azimuth, altitude, depth
    raster = radar_bev(rows, mount, SPEC, scale=1)
    x, y = 2.0 + 20 * math.cos(math.radians(10)), 20 * math.sin(math.radians(10))
    (row, col), = ego_to_cell(np.array([[x, y]]), SPEC)
    assert raster[0, row, col] == 1 and raster[1, row, col] == pytest.approx(-3.0)


def test_the_camera_ground_grid_projects_a_known_point_to_its_pixel():
    """A camera 2 m up looking level: the ground point 10 m ahead, 1 m right is at u = cx + f/10,
    v = cy + 2 f/10."""
    width, height, f = 400, 300, 200.0
    intrinsics = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    grid, mask = camera_ground_grid(intrinsics, (width, height), Pose(0.0, 0.0, 2.0), SPEC, scale=1)
    (row, col), = ego_to_cell(np.array([[10.0, 1.0]]), SPEC)
    x, y = cell_centres_ego(SPEC)[row, col]
    u = f * y / x + width / 2
    v = f * 2.0 / x + height / 2
    assert mask[row, col]
    assert grid[row, col, 0] == pytest.approx((u + 0.5) / width * 2 - 1, abs=1e-5)
    assert grid[row, col, 1] == pytest.approx((v + 0.5) / height * 2 - 1, abs=1e-5)
    (behind_row, behind_col), = ego_to_cell(np.array([[-5.0, 0.0]]), SPEC)
    assert not mask[behind_row, behind_col]


def test_grid_sample_reads_the_projected_pixel():
    """Sampling an image whose pixel values are their own (u, v) gives back each visible cell's projection."""
    width, height, f = 64, 48, 32.0
    intrinsics = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    grid, mask = camera_ground_grid(intrinsics, (width, height), Pose(0.0, 0.0, 2.0), SPEC, scale=4)
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    image = torch.from_numpy(np.stack([u, v]))[None]
    sampled = torch.nn.functional.grid_sample(image, torch.from_numpy(grid)[None], align_corners=False)[0].numpy()
    expected_u = (grid[..., 0] + 1) / 2 * width - 0.5
    assert np.allclose(sampled[0][mask], expected_u[mask], atol=1e-3)


def test_detection_targets_decode_back_to_their_boxes():
    boxes = np.array([[12.3, -2.1, 0.8, 2.4, 1.0, 0.8, 0.4], [6.0, 3.3, 0.9, 0.3, 0.3, 0.9, -1.0]], np.float32)
    kinds = np.array([int(ActorKind.VEHICLE), int(ActorKind.WALKER)])
    velocity = np.array([[4.0, 0.5], [0.0, 1.2]])
    targets = detection_targets(boxes, kinds, velocity, SPEC, scale=2)
    assert targets["heatmap"].max() == 1.0 and targets["box_mask"].sum() == 2
    logits = torch.from_numpy(np.where(targets["heatmap"] >= 1.0, 10.0, -10.0).astype(np.float32))
    detections = decode_detections(logits, torch.from_numpy(targets["box"]), SPEC, scale=2)
    order = np.argsort(-detections.center_m[:, 0])
    assert detections.kind[order].tolist() == kinds.tolist()
    assert np.allclose(detections.center_m[order, :2], boxes[:, :2], atol=1e-4)
    assert np.allclose(detections.extent_m[order, :2], boxes[:, 3:5], atol=1e-4)
    assert np.allclose(detections.yaw_rad[order], boxes[:, 6], atol=1e-5)
    assert np.allclose(detections.velocity_mps[order], velocity, atol=1e-5)


def test_mirroring_a_scene_mirrors_its_rasters_and_targets_alike():
    """A car 10 m ahead and 3 m right, mirrored: its LiDAR returns and its target cell land 3 m left, the BEV
    label's pixels go to 2 cx - col, and the rasters of the mirrored scene equal the mirrored label's cells."""
    from av_stack.perception.learned.geometry import is_mirror_symmetric, mirror_bev

    mount = Pose(0.0, 0.0, 2.5)
    points = np.array([[10.0, 3.0, -1.5, 0.5]], np.float32)
    mirrored = lidar_bev(points, mount, SPEC, scale=1, mirror=True)
    (row, col), = ego_to_cell(np.array([[10.0, -3.0]]), SPEC)
    assert mirrored[0, row, col] > 0 and np.count_nonzero(mirrored[0]) == 1
    label = np.zeros((1, 192, 192), np.float32)
    (r0, c0), = ego_to_cell(np.array([[10.0, 3.0]]), SPEC)
    label[0, r0, c0] = 1.0
    flipped = mirror_bev(label, SPEC)
    assert flipped[0, row, col] == 1.0 and flipped.sum() == 1.0
    assert np.array_equal(mirror_bev(flipped, SPEC), label)
    radar = np.array([[-2.0, math.atan2(3.0, 10.0), 0.0, math.hypot(10.0, 3.0)]])
    (rr, rc), = ego_to_cell(np.array([[10.0, -3.0]]), SPEC)
    assert radar_bev(radar, Pose(), SPEC, mirror=True)[1, rr, rc] == pytest.approx(-2.0)
    assert is_mirror_symmetric(Pose(1.5, 0.0, 2.4, pitch_rad=-0.1))
    assert not is_mirror_symmetric(Pose(1.5, 0.4, 2.4)) and not is_mirror_symmetric(Pose(yaw_rad=0.3))


def test_the_wide_network_grid_holds_the_shared_grid_as_a_window():
    """With a 30 m detection range the network's grid is square, reaches 30 m left, right and behind, and
    its cells inside the window are the shared grid's cells (same centres)."""
    from av_stack.perception.learned.geometry import network_grid

    assert network_grid(SPEC, 2).spec == SPEC and network_grid(SPEC, 2).cells == 96
    grid = network_grid(SPEC, 2, 30.0)
    assert grid.cells == 150 and (grid.row0, grid.col0) == (0, 27)
    wide, shared = cell_centres_ego(grid.spec, 2), cell_centres_ego(SPEC, 2)
    assert np.allclose(wide[grid.row0:grid.row0 + 96, grid.col0:grid.col0 + 96], shared)
    assert wide[..., 1].min() <= -29.5 and wide[..., 1].max() >= 29.5 and wide[..., 0].min() <= -29.5  # to a cell
    assert wide[..., 0].max() >= shared[..., 0].max()
    with pytest.raises(ValueError, match="multiple"):
        network_grid(SPEC, 5, 30.0)


def test_a_point_behind_the_shared_grid_reaches_the_wide_raster_and_decodes_back():
    from av_stack.perception.learned.geometry import network_grid

    grid = network_grid(SPEC, 2, 30.0)
    points = np.array([[-25.0, 20.0, -2.0, 1.0]], np.float32)  # 25 m behind, 20 m right: off the shared grid
    assert lidar_bev(points, Pose(0.0, 0.0, 2.5), SPEC, 2)[0].sum() == 0
    wide = lidar_bev(points, Pose(0.0, 0.0, 2.5), grid.spec, 2)
    (row, col), = ego_to_cell(np.array([[-25.0, 20.0]]), grid.spec, 2)
    assert wide[0, row, col] > 0 and np.count_nonzero(wide[0]) == 1
    boxes = np.array([[-25.0, 20.0, 0.8, 2.4, 1.0, 0.8, 0.3]], np.float32)
    targets = detection_targets(boxes, np.array([int(ActorKind.VEHICLE)]), None, grid.spec, 2)
    assert targets["box_mask"][row, col] == 1.0
    logits = torch.from_numpy(np.where(targets["heatmap"] >= 1.0, 10.0, -10.0).astype(np.float32))
    detections = decode_detections(logits, torch.from_numpy(targets["box"]), grid.spec, scale=2)
    assert np.allclose(detections.center_m[:, :2], boxes[:, :2], atol=1e-4)
