"""The run-log benchmark on small settings: the fields its issue names, and its errors."""

from __future__ import annotations

import pytest

from benchmarks.log_bench import run_log_bench
from benchmarks.world_bench import BenchError


def test_log_bench_reports_both_frame_rates_and_the_log_size():
    result = run_log_bench("Town01", vehicles=2, walkers=0, ticks=20, sensors_every=2, repeats=1)
    for key in ("fps_without_log", "fps_with_log", "fps_ratio", "recording_share", "recorder_ms_per_tick",
                "log_mb", "mb_per_60s"):
        assert result[key] > 0, key
    assert result["ticks"] == 20 and 0 < result["recording_share"] < 1
    assert result["fps_ratio"] == pytest.approx(result["fps_with_log"] / result["fps_without_log"], rel=0.01)


def test_log_bench_refuses_a_town_without_routes():
    with pytest.raises(BenchError, match="shipped route set"):
        run_log_bench("Town05", ticks=20)
    with pytest.raises(BenchError, match="at least 20"):
        run_log_bench("Town01", ticks=5)
