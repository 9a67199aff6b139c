"""The embedded simulator: a deterministic, server-less world with CARLA frames and semantics."""
