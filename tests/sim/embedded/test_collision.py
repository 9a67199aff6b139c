"""Tests for oriented-box collision (broad phase + separating-axis narrow phase)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.affinity import translate

from sim.embedded.collision import Contacts, candidate_pairs, find_contacts
from sim.transforms import box_corners


def _boxes(rows: list[tuple[float, float, float, float, float]]):
    """rows of (x, y, yaw_rad, half_x, half_y) -> (center, yaw, half)."""
    arr = np.asarray(rows, dtype=float).reshape(-1, 5)
    return arr[:, :2], arr[:, 2], arr[:, 3:5]


def _polygons(center, yaw, half) -> np.ndarray:
    return shapely.polygons(box_corners(center, yaw, half))


def test_box_corners_axis_aligned_and_rotated():
    corners = box_corners(*_boxes([(1.0, 2.0, 0.0, 2.0, 1.0)]))
    expected = [[3.0, 1.0], [3.0, 3.0], [-1.0, 3.0], [-1.0, 1.0]]
    np.testing.assert_allclose(corners[0], expected)
    # +90 deg yaw turns the box's forward (x) axis onto +y: front corners move to +y.
    corners = box_corners(*_boxes([(0.0, 0.0, np.pi / 2, 2.0, 1.0)]))
    expected = [[1.0, 2.0], [-1.0, 2.0], [-1.0, -2.0], [1.0, -2.0]]
    np.testing.assert_allclose(corners[0], expected, atol=1e-12)


def test_axis_aligned_overlap_normal_and_depth():
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 2.0, 1.0), (3.0, 0.5, 0.0, 2.0, 1.0)])
    contacts = find_contacts(center, yaw, half)
    np.testing.assert_array_equal(contacts.pairs, [[0, 1]])
    # x overlap = 2 + 2 - 3 = 1, y overlap = 1 + 1 - 0.5 = 1.5: minimum is along +x.
    np.testing.assert_allclose(contacts.depth_m, [1.0])
    np.testing.assert_allclose(contacts.normal_xy, [[1.0, 0.0]], atol=1e-12)


def test_normal_points_from_first_to_second_box():
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 2.0, 1.0), (0.5, -1.5, 0.0, 2.0, 1.0)])
    contacts = find_contacts(center, yaw, half)
    np.testing.assert_allclose(contacts.depth_m, [0.5])
    np.testing.assert_allclose(contacts.normal_xy, [[0.0, -1.0]], atol=1e-12)
    # Explicit reversed pair flips the normal.
    flipped = find_contacts(center, yaw, half, pairs=np.array([[1, 0]]))
    np.testing.assert_allclose(flipped.normal_xy, [[0.0, 1.0]], atol=1e-12)


def test_rotated_box_depth_closed_form():
    # B rotated 90 deg: its world x half-extent is 1, so x overlap = 2 + 1 - 2.5 = 0.5.
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 2.0, 1.0), (2.5, 0.0, np.pi / 2, 2.0, 1.0)])
    contacts = find_contacts(center, yaw, half)
    np.testing.assert_allclose(contacts.depth_m, [0.5])
    np.testing.assert_allclose(contacts.normal_xy, [[1.0, 0.0]], atol=1e-12)


def test_diagonal_contact_uses_rotated_axis():
    # B at 45 deg touching A's corner region: SAT on B's axes gives the minimum.
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 1.0, 1.0), (1.5, 1.5, np.pi / 4, 1.0, 1.0)])
    # Along the diagonal axis u=(1,1)/sqrt2: A projects to sqrt2, B to 1, distance 1.5*sqrt2;
    # on A's own axes the overlap is 1 + sqrt2 - 1.5 (larger).
    expected = np.sqrt(2.0) + 1.0 - 1.5 * np.sqrt(2.0)
    contacts = find_contacts(center, yaw, half)
    assert expected > 0.0
    np.testing.assert_allclose(contacts.depth_m, [expected])
    np.testing.assert_allclose(contacts.normal_xy, [[np.sqrt(0.5), np.sqrt(0.5)]], atol=1e-12)


def test_axis_aligned_separation():
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 2.0, 1.0), (10.0, 0.0, 0.0, 2.0, 1.0)])
    assert len(find_contacts(center, yaw, half)) == 0
    assert candidate_pairs(center, np.hypot(half[:, 0], half[:, 1])).shape == (0, 2)


def test_circles_overlap_but_boxes_only_when_rotated():
    parallel = _boxes([(0.0, 0.0, 0.0, 2.0, 0.5), (0.0, 1.2, 0.0, 2.0, 0.5)])
    radius = np.hypot(parallel[2][:, 0], parallel[2][:, 1])
    np.testing.assert_array_equal(candidate_pairs(parallel[0], radius), [[0, 1]])
    assert len(find_contacts(*parallel)) == 0
    crossed = _boxes([(0.0, 0.0, 0.0, 2.0, 0.5), (0.0, 1.2, np.pi / 2, 2.0, 0.5)])
    contacts = find_contacts(*crossed)
    np.testing.assert_array_equal(contacts.pairs, [[0, 1]])
    # y overlap = 0.5 + 2 - 1.2 = 1.3; x overlap = 2 + 0.5 = 2.5 -> normal +y.
    np.testing.assert_allclose(contacts.depth_m, [1.3])
    np.testing.assert_allclose(contacts.normal_xy, [[0.0, 1.0]], atol=1e-12)


def test_touching_edges_are_not_contacts():
    center, yaw, half = _boxes([(0.0, 0.0, 0.0, 2.0, 1.0), (4.0, 0.0, 0.0, 2.0, 1.0)])
    radius = np.hypot(half[:, 0], half[:, 1])
    assert candidate_pairs(center, radius).shape == (1, 2)  # circles overlap
    assert len(find_contacts(center, yaw, half)) == 0
    center[1, 0] = 3.999
    contacts = find_contacts(center, yaw, half)
    np.testing.assert_allclose(contacts.depth_m, [0.001], atol=1e-9)


def test_touching_bounding_circles_are_candidates():
    center = np.array([[0.0, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(candidate_pairs(center, np.array([1.0, 1.0])), [[0, 1]])
    assert candidate_pairs(center, np.array([0.9, 1.0])).shape == (0, 2)


def test_candidate_pairs_respects_each_radius():
    # The tree searches with 2 * max radius; pairs must still be culled by r_i + r_j.
    center = np.array([[0.0, 0.0], [5.0, 0.0], [9.0, 0.0]])
    radius = np.array([0.5, 4.0, 0.5])
    np.testing.assert_array_equal(candidate_pairs(center, radius), [[1, 2]])


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_inputs(n: int):
    center, yaw, half = np.zeros((n, 2)), np.zeros(n), np.ones((n, 2))
    assert box_corners(center, yaw, half).shape == (n, 4, 2)
    pairs = candidate_pairs(center, np.ones(n))
    assert pairs.shape == (0, 2) and pairs.dtype == np.int64
    contacts = find_contacts(center, yaw, half)
    assert isinstance(contacts, Contacts)
    assert contacts.pairs.shape == (0, 2) and contacts.pairs.dtype == np.int64
    assert contacts.normal_xy.shape == (0, 2) and contacts.depth_m.shape == (0,)


def test_random_boxes_match_shapely_brute_force():
    rng = np.random.default_rng(7)
    n = 200
    center = rng.uniform(0.0, 60.0, (n, 2))
    yaw = rng.uniform(-np.pi, np.pi, n)
    half = np.column_stack([rng.uniform(0.3, 3.0, n), rng.uniform(0.3, 1.5, n)])
    contacts = find_contacts(center, yaw, half)
    polys = _polygons(center, yaw, half)

    i, j = np.triu_indices(n, 1)
    area = shapely.area(shapely.intersection(polys[i], polys[j]))
    expected = {(a, b) for a, b, s in zip(i, j, area) if s > 1e-9}
    found = {tuple(p) for p in contacts.pairs.tolist()}
    assert len(expected) > 20  # the layout really has collisions
    assert found == expected
    assert np.all(contacts.depth_m > 0.0)
    np.testing.assert_allclose(np.linalg.norm(contacts.normal_xy, axis=1), 1.0)

    # The contact is the minimum translation: moving the second box by the depth along
    # the normal separates the boxes, moving it slightly less does not.
    for (a, b), normal, depth in zip(contacts.pairs, contacts.normal_xy, contacts.depth_m):
        beyond = translate(polys[b], *(normal * (depth + 1e-6)))
        short = translate(polys[b], *(normal * depth * 0.99))
        assert shapely.intersection(polys[a], beyond).area < 1e-9
        assert shapely.intersection(polys[a], short).area > 0.0


def test_candidate_count_grows_linearly_for_sparse_layout():
    rng = np.random.default_rng(3)
    counts = {}
    for n in (100, 1000):
        side = np.sqrt(n) * 20.0  # constant density: one box per 400 m^2
        center = rng.uniform(0.0, side, (n, 2))
        counts[n] = candidate_pairs(center, np.full(n, 2.6)).shape[0]
    assert counts[100] > 0
    assert 4.0 < counts[1000] / counts[100] < 25.0  # quadratic would be ~100x


def test_find_contacts_with_given_pairs_subset():
    center, yaw, half = _boxes(
        [(0.0, 0.0, 0.0, 2.0, 1.0), (1.0, 0.0, 0.0, 2.0, 1.0), (2.0, 0.0, 0.0, 2.0, 1.0)]
    )
    all_contacts = find_contacts(center, yaw, half)
    np.testing.assert_array_equal(all_contacts.pairs, [[0, 1], [0, 2], [1, 2]])
    only = find_contacts(center, yaw, half, pairs=np.array([[0, 2]]))
    np.testing.assert_array_equal(only.pairs, [[0, 2]])
    np.testing.assert_allclose(only.depth_m, [2.0])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="centre_xy"):
        box_corners(np.zeros(3), np.zeros(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="yaw_rad"):
        find_contacts(np.zeros((3, 2)), np.zeros(2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="half_extent_xy"):
        find_contacts(np.zeros((3, 2)), np.zeros(3), np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        find_contacts(np.zeros((2, 2)), np.zeros(2), np.array([[1.0, 1.0], [-1.0, 1.0]]))
    with pytest.raises(ValueError, match="radius_m"):
        candidate_pairs(np.zeros((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        candidate_pairs(np.zeros((3, 2)), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="out of range"):
        find_contacts(np.zeros((2, 2)), np.zeros(2), np.ones((2, 2)), pairs=np.array([[0, 5]]))


def test_verlet_pairs_match_fresh_broad_phase_under_motion():
    from sim.embedded.collision import VerletPairs

    rng = np.random.default_rng(7)
    n = 150
    center = rng.uniform(0, 120, (n, 2))
    radius = rng.uniform(0.3, 3.0, n)
    velocity = rng.normal(0, 6.0, (n, 2))
    verlet = VerletPairs(skin_m=3.0)
    for _ in range(200):
        center = center + velocity * 0.05
        got = {tuple(p) for p in verlet.pairs(center, radius).tolist()}
        want = {tuple(p) for p in candidate_pairs(center, radius).tolist()}
        assert got == want
    assert 1 < verlet.rebuilds < 200  # reused between rebuilds, rebuilt when boxes moved far


def test_verlet_pairs_rebuild_after_invalidate_and_bad_skin():
    from sim.embedded.collision import VerletPairs

    verlet = VerletPairs()
    center = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert verlet.pairs(center, np.ones(2)).tolist() == [[0, 1]]
    verlet.invalidate()
    assert verlet.pairs(center[:1], np.ones(1)).shape == (0, 2)
    with pytest.raises(ValueError, match="skin_m"):
        VerletPairs(skin_m=0)
