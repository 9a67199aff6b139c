"""Pedestrian centres refined on the LiDAR points: a synthetic sweep of flat (or raised) ground and one
pedestrian's visible half; the refined centre lands on the true one, other detections and sparse ones stay."""

from __future__ import annotations

import numpy as np

from av_stack.messages import Detections
from av_stack.perception.refine import refine_centres
from sim.api import ActorKind

SENSOR = (0.0, 0.0)
TRUE_CENTRE = np.array([10.0, 2.0])
RADIUS = 0.25
SURFACE_M = 0.1  # the default surface_offset_m


def sweep(ground_z: float = 0.0, body: bool = True) -> np.ndarray:
    """Ego-frame points: a ground grid around the pedestrian and the half of its body facing the sensor."""
    gx, gy = np.meshgrid(np.arange(7.0, 13.0, 0.3), np.arange(-1.0, 5.0, 0.3))
    ground = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, ground_z)], axis=1)
    ground = ground[np.hypot(*(ground[:, :2] - TRUE_CENTRE).T) > RADIUS]
    if not body:
        return ground
    # the front of the torso: a 0.4 m wide vertical patch facing the sensor, 0.1 m in front of the centre
    toward = (np.array(SENSOR) - TRUE_CENTRE) / np.hypot(*(np.array(SENSOR) - TRUE_CENTRE))
    across = np.array([-toward[1], toward[0]])
    w, h = np.meshgrid(np.linspace(-0.2, 0.2, 9), ground_z + np.linspace(0.2, 1.7, 8))
    face = TRUE_CENTRE + SURFACE_M * toward + w.reshape(-1, 1) * across
    person = np.column_stack([face, h.ravel()])
    return np.concatenate([ground, person])


def detections(centres: list[tuple[float, float]], kinds: list[ActorKind]) -> Detections:
    n = len(centres)
    centre = np.array([[x, y, 0.9] for x, y in centres], dtype=np.float64).reshape(n, 3)
    return Detections(np.array([int(k) for k in kinds], np.int8), centre, np.full((n, 3), 0.3), np.zeros(n),
                      np.zeros((n, 2)), np.full(n, 0.8), np.full(n, -1, np.int64))


def test_a_pedestrian_centre_moves_onto_its_body():
    guess = detections([(10.1, 2.1)], [ActorKind.WALKER])
    refined = refine_centres(guess, sweep(), SENSOR)
    before = np.hypot(*(guess.center_m[0, :2] - TRUE_CENTRE))
    after = np.hypot(*(refined.center_m[0, :2] - TRUE_CENTRE))
    assert before > 0.13 and after < 0.02
    assert refined.center_m[0, 2] == guess.center_m[0, 2]


def test_the_local_ground_makes_slopes_harmless():
    guess = detections([(10.1, 2.1)], [ActorKind.WALKER])
    refined = refine_centres(guess, sweep(ground_z=1.5), SENSOR)  # a street 1.5 m above the ego's
    assert np.hypot(*(refined.center_m[0, :2] - TRUE_CENTRE)) < 0.02


def test_vehicles_and_pedestrians_without_points_stay():
    guess = detections([(10.1, 2.1), (3.0, -6.0)], [ActorKind.VEHICLE, ActorKind.WALKER])
    refined = refine_centres(guess, sweep(), SENSOR)
    np.testing.assert_array_equal(refined.center_m, guess.center_m)
    only_ground = refine_centres(detections([(10.1, 2.1)], [ActorKind.WALKER]), sweep(body=False), SENSOR)
    np.testing.assert_allclose(only_ground.center_m[0, :2], (10.1, 2.1))
    assert refine_centres(guess, np.zeros((0, 3)), SENSOR) is guess


def test_the_lookup_keeps_every_point_near_a_centre():
    from av_stack.perception.refine import _points_near

    rng = np.random.default_rng(0)
    xy = rng.uniform(-30, 30, (5000, 2))
    centres = rng.uniform(-25, 25, (6, 2))
    kept = np.zeros(len(xy), bool)
    kept[_points_near(xy, centres, 1.5)] = True
    near = (np.abs(xy[:, None, :] - centres[None]) < 1.5).all(axis=2).any(axis=1)
    assert kept[near].all() and kept.sum() < 0.2 * len(xy)  # all that matter, and few of the rest
