"""The policy's observation: max-pooling keeps thin layers, shapes and spaces are checked."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from av_stack.planning.rl.observation import pool_bev, pool_to, policy_space


def test_pooling_keeps_a_one_pixel_line_and_takes_the_max():
    bev = np.zeros((2, 12, 12), dtype=np.uint8)
    bev[0, 7, :] = 255  # a 1 px stop line
    bev[1, 4, 5] = 255  # a single pixel (a far pedestrian)
    pooled = pool_bev(bev, 3)
    assert pooled.shape == (2, 4, 4)
    assert pooled[0, 2].tolist() == [255] * 4 and pooled[0].sum() == 4 * 255
    assert np.argwhere(pooled[1]).tolist() == [[1, 1]]
    assert pool_bev(bev, 1) is bev


@pytest.mark.parametrize("pool", [2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pooling_equals_the_block_maximum(pool, dtype):
    bev = (np.random.default_rng(pool).random((3, 24, 36)) * 255).astype(dtype)
    expected = bev.reshape(3, 24 // pool, pool, 36 // pool, pool).max(axis=(2, 4))
    pooled = pool_bev(bev, pool)
    assert pooled.dtype == dtype and np.array_equal(pooled, expected)


def test_pooling_a_grid_that_does_not_divide_is_an_error():
    with pytest.raises(ValueError, match="10 x 10 px cannot be pooled by 3"):
        pool_bev(np.zeros((1, 10, 10), dtype=np.uint8), 3)



def test_pooling_onto_a_policy_grid_finds_the_factor_or_names_both_shapes():
    bev = np.zeros((14, 192, 192), dtype=np.float32)
    bev[3, 100, 7] = 0.5
    pooled = pool_to(bev, (14, 64, 64))
    assert pooled.shape == (14, 64, 64) and pooled[3, 33, 2] == 0.5
    assert pool_to(bev, (14, 192, 192)) is bev
    for shape in ((13, 64, 64), (14, 50, 50), (14, 64, 32), (14, 384, 384)):
        with pytest.raises(ValueError, match=f"takes {shape[0]} BEV channels of {shape[1]} x {shape[2]} px.*"
                                             "has 14 channels of 192 x 192 px"):
            pool_to(bev, shape)

def test_policy_space_needs_bev_and_measurements():
    env_space = spaces.Dict({"bev": spaces.Box(0, 255, (14, 192, 192), np.uint8),
                             "measurements": spaces.Box(-np.inf, np.inf, (13,), np.float32)})
    space = policy_space(env_space, 3)
    assert space["bev"].shape == (14, 64, 64) and space["measurements"] == env_space["measurements"]
    with pytest.raises(ValueError, match="observation has no \\['bev', 'measurements'\\]"):
        policy_space(spaces.Box(-1, 1, (5,)), 3)


def test_the_wrapped_env_gives_the_pooled_bev(tiny_env):
    obs, _ = tiny_env.reset(seed=0)
    assert obs["bev"].shape == (14, 64, 64) and obs["bev"].dtype == np.uint8
    assert tiny_env.observation_space.contains(obs)
    assert obs["bev"][0].any(), "the road is in view"
    assert set(np.unique(obs["bev"])) <= {0, 255}
