"""The serve benchmark on tiny settings: what it times is what the client received through the protocol."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("open3d")

from benchmarks.serve_bench import LIDAR, run_serve_bench  # noqa: E402


def test_the_timed_frames_were_received_and_the_rates_are_physically_possible():
    ticks = 8
    start = time.perf_counter()
    record = run_serve_bench(map_name="Town01", ticks=ticks, warmup=4)
    wall_s = time.perf_counter() - start
    received = record["received"]
    # Every timed tick delivered a camera frame, in order, with the configured image and a LiDAR sweep.
    assert received["frames"] == ticks
    assert received["last_frame"] - received["first_frame"] == ticks - 1
    assert received["camera_shape"] == [300, 400, 4]
    assert 0 < received["lidar_points_per_frame"] <= LIDAR["channels"] * 1024
    # Both timed loops ran inside this call: neither rate can claim the ticks took longer than the call did.
    assert ticks / record["fps"] + ticks / record["inprocess_fps"] < wall_s
    assert record["map"] == "Town01" and record["ticks"] == ticks
    assert set(record["machine"]) >= {"cpu", "cores", "python"}
