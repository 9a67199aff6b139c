"""Action validation: every wrong shape or dtype is one ActionError naming what is expected."""

from __future__ import annotations

import numpy as np
import pytest

from sim.env.actions import ActionError, action_mapping


@pytest.mark.parametrize("action", [
    [0.5, -0.25], (0.5, -0.25), [1, 0], np.array([0.5, -0.25], dtype=np.float32),
    np.array([0.5, -0.25], dtype=np.float64), [np.float32(0.5), np.float64(-0.25)],
], ids=["list", "tuple", "list-of-ints", "float32", "float64", "numpy-scalars"])
def test_real_numbers_of_the_right_shape_are_applied(action):
    control, clipped, applied = action_mapping("acc_steer").to_control(action)
    assert not clipped and applied.dtype == np.float32 and applied.shape == (2,)
    assert control.steer == pytest.approx(float(np.asarray(action, dtype=float)[1]))
    assert control.throttle == pytest.approx(max(float(np.asarray(action, dtype=float)[0]), 0.0))


@pytest.mark.parametrize("action, problem", [
    (np.zeros((1, 2)), "shape (1, 2)"),
    (np.zeros((2, 1)), "shape (2, 1)"),
    (np.zeros(3), "shape (3,)"),
    (0.5, "shape ()"),
    (np.zeros(0), "shape (0,)"),
    ([[0.5, 0.1]], "shape (1, 2)"),
    (np.array([0.5 + 1j, 0.0]), "dtype complex128"),
    (np.array([True, False]), "dtype bool"),
    ([True, False], "bools"),
    ([0.5, True], "bools"),
    ((np.bool_(True), 0.0), "bools"),
    (["0.5", "0.1"], "dtype <U3"),
    ([0.5, None], "dtype object"),
    (None, "dtype object"),
    ([[0.5], [0.1, 0.2]], "got [[0.5], [0.1, 0.2]]"),
], ids=["1x2", "2x1", "three", "scalar", "empty", "nested-list", "complex", "bool-array", "bool-list",
        "one-bool", "numpy-bool", "strings", "none-inside", "none", "ragged"])
def test_wrong_shape_or_dtype_names_the_expected_shape_and_dtype(action, problem):
    with pytest.raises(ActionError) as caught:
        action_mapping("acc_steer").to_control(action)
    message = str(caught.value)
    assert "shape (2,)" in message and "float32/float64" in message and "'acc_steer'" in message
    assert problem in message


def test_throttle_brake_steer_expects_three_numbers():
    mapping = action_mapping("throttle_brake_steer")
    control, _, _ = mapping.to_control([0.3, 0.0, -0.2])
    assert (control.throttle, control.brake, control.steer) == pytest.approx((0.3, 0.0, -0.2))
    with pytest.raises(ActionError, match=r"shape \(3,\).*got shape \(2,\)"):
        mapping.to_control([0.3, 0.0])
    with pytest.raises(ActionError, match="dtype bool"):
        mapping.to_control(np.array([True, False, True]))


def test_non_finite_and_out_of_box_values_keep_their_handling():
    mapping = action_mapping("acc_steer")
    with pytest.raises(ActionError, match="non-finite"):
        mapping.to_control([np.inf, 0.0])
    control, clipped, applied = mapping.to_control(np.array([2.0, -3.0]))
    assert clipped and applied.tolist() == [1.0, -1.0] and control.steer == -1.0
