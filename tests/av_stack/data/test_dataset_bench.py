"""The dataset loader benchmark runs on a small dataset and reports what its results file records."""

from __future__ import annotations

import json

from benchmarks.dataset_bench import MACHINE, main


def test_the_benchmark_reports_samples_per_second_and_the_cache_ratio(dataset, capsys):
    main(["--dataset", str(dataset[0]), "--epochs", "1", "--sensors", "front_rgb", "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["samples"] == 24 and result["sensors"] == ["front_rgb"] and result["machine_name"] == MACHINE
    for kind in ("uncached", "cached"):
        assert [run["workers"] for run in result[kind]] == [0, 2]
        assert all(run["samples"] == 24 and run["samples_per_s"] > 0 for run in result[kind])
    assert set(result["ratio_cached_vs_uncached"]) == {"workers_0", "workers_2"}
    assert not (dataset[0] / "cache").exists()  # the benchmark works on a copy
