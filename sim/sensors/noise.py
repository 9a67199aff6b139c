"""Per-episode sensor noise seeds, shared by every backend's sensor rig."""

from __future__ import annotations

import numpy as np


def episode_noise_seed(noise_seed: int, episode_seed: int) -> int:
    """The seed a sensor's noise uses in one episode: its ``noise_seed`` attribute mixed with the episode's seed.

    Different episode seeds give unrelated noise streams; the same pair gives
    the same stream. The result is a non-negative 31-bit integer, valid as
    CARLA's ``noise_seed`` attribute.
    """
    if int(noise_seed) < 0 or int(episode_seed) < 0:
        raise ValueError(f"seeds must be non-negative, got noise_seed={noise_seed!r}, episode_seed={episode_seed!r}")
    state = np.random.SeedSequence([int(noise_seed), int(episode_seed)]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF
