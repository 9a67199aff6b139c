"""What CARLA 0.9.16's own scripts needed when run unmodified against ``avsim serve`` (issue 20).

Client code of the project's own, in the style of ``util/config.py --fps N`` (asynchronous mode with a new
``fixed_delta_seconds``: the client's ``apply_settings`` ticks until two snapshots show the new step, and warns
``the settings were not correctly set`` otherwise) and of scripts that call ``world.tick()`` in asynchronous mode.
"""

from __future__ import annotations

import time

import pytest

carla = pytest.importorskip("carla")

from sim.carla_server.process import start_server_process, stop_server_process


@pytest.fixture(scope="module")
def world():
    proc, port = start_server_process()
    try:
        client = carla.Client("127.0.0.1", port)
        client.set_timeout(20.0)
        yield client.get_world()
    finally:
        stop_server_process(proc)


def _apply(world, synchronous: bool, delta: float | None) -> None:
    settings = world.get_settings()
    settings.synchronous_mode = synchronous
    settings.fixed_delta_seconds = delta
    world.apply_settings(settings)


def test_config_style_fixed_step_in_asynchronous_mode_is_seen_at_once(world, capfd):
    _apply(world, False, None)
    start = time.monotonic()
    _apply(world, False, 0.1)  # config.py --fps 10
    took = time.monotonic() - start
    try:
        # The client waited for snapshots stepped by 0.1 s (not 30 stale ones), so the new step shows at once.
        assert world.get_snapshot().timestamp.delta_seconds == pytest.approx(0.1)
        assert took < 5.0
        assert "not correctly set" not in capfd.readouterr().err
    finally:
        _apply(world, False, None)


def test_world_tick_in_asynchronous_mode_waits_for_the_next_frame(world):
    _apply(world, False, 0.05)
    try:
        for _ in range(3):
            before = world.get_snapshot().frame
            frame = world.tick()
            assert frame > before
            assert world.get_snapshot().frame >= frame
    finally:
        _apply(world, False, None)
