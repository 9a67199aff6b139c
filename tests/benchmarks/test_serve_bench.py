"""The serve benchmark on tiny settings: the client really receives both sensors' frames through the protocol."""

from __future__ import annotations

import pytest

pytest.importorskip("open3d")

from benchmarks.serve_bench import run_serve_bench  # noqa: E402


def test_record_fields_and_ratio():
    record = run_serve_bench(map_name="Town01", ticks=8, warmup=4)
    assert record["benchmark"] == "serve" and record["ticks"] == 8 and record["map"] == "Town01"
    assert record["fps"] > 0 and record["inprocess_fps"] > 0
    assert record["ratio"] == pytest.approx(record["fps"] / record["inprocess_fps"], rel=0.01)
    assert set(record["machine"]) >= {"cpu", "cores", "python"}
