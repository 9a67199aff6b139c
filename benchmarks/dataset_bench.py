"""Samples per second of the driving dataset loader (``av_stack.data.dataset.DrivingDataset``): read straight
from the MCAP logs against read from the decode-once cache, through a torch ``DataLoader`` with 0 and 2 workers.

    python -m benchmarks.dataset_bench [--dataset DIR] [--frames 160] [--sensors front_rgb ...]
                                       [--batch-size 8] [--epochs 2] [--json]

Without ``--dataset`` it first collects one (``avsim collect --map Town01 --frames N --frames-per-log N/2
--vehicles 10 --walkers 5``: the default sensor suite, every frame) into a temporary folder. Each setting
reads every sample of the dataset ``--epochs`` times in shuffled batches with :func:`~av_stack.data.dataset.
collate` and reports samples/s; the ratio is cached / uncached at the same worker count. ``--json`` prints one
JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.world_bench import machine_info

MACHINE = "2-core development machine (no GPU)"


def collect_dataset(out: Path, frames: int, seed: int = 0) -> dict[str, Any]:
    """A Town01 dataset of ``frames`` frames in two logs; the collection summary with frames/s."""
    from av_stack.data.collect import collect
    from av_stack.data.config import CollectConfig

    config = CollectConfig.model_validate({"towns": [{"map": "Town01"}], "frames": frames,
                                           "frames_per_log": max(1, frames // 2), "seed": seed,
                                           "traffic": [{"vehicles": 10, "walkers": 5}]})
    summary = collect(config, out, show_progress=False)
    summary.pop("dataset")  # a temporary folder: no machine paths in recorded results
    summary["frames_per_s"] = round(summary["frames"] / summary["seconds"], 2)
    return summary


def time_loader(data, workers: int, batch_size: int, epochs: int) -> dict[str, Any]:
    """Samples/s of ``epochs`` shuffled passes over ``data`` (after one warm-up batch, which starts the workers)."""
    import torch
    from torch.utils.data import DataLoader

    from av_stack.data.dataset import collate

    loader = DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=collate, num_workers=workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=workers > 0)
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start, first file opens
    del iterator
    samples = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            samples += len(batch["frame"])
    seconds = time.perf_counter() - start
    return {"workers": workers, "samples": samples, "seconds": round(seconds, 3),
            "samples_per_s": round(samples / seconds, 1)}


def run_dataset_bench(dataset: Path | None = None, frames: int = 160, sensors: tuple[str, ...] | None = None,
                      batch_size: int = 8, epochs: int = 2) -> dict[str, Any]:
    """The benchmark (see the module docstring); the result object."""
    from av_stack.data.cache import CACHE, build_cache
    from av_stack.data.dataset import DrivingDataset

    with tempfile.TemporaryDirectory(prefix="avsim-dataset-bench-") as scratch:
        collected = None
        if dataset is None:
            root = Path(scratch) / "data"
            collected = collect_dataset(root, frames)
        else:
            root = Path(scratch) / "data"
            shutil.copytree(dataset, root, ignore=shutil.ignore_patterns(CACHE, CACHE + ".partial"))
        size_mb = sum(p.stat().st_size for p in root.glob("*.mcap")) / 1e6
        uncached = DrivingDataset(root, sensors=sensors, cache=False)
        runs = {"uncached": [time_loader(uncached, w, batch_size, epochs) for w in (0, 2)]}
        start = time.perf_counter()
        build_cache(root, sensors)
        build_s = time.perf_counter() - start
        cache_mb = sum(p.stat().st_size for p in (root / CACHE).iterdir()) / 1e6
        cached = DrivingDataset(root, sensors=sensors, cache=True)
        runs["cached"] = [time_loader(cached, w, batch_size, epochs) for w in (0, 2)]
    ratio = {f"workers_{u['workers']}": round(c["samples_per_s"] / u["samples_per_s"], 2)
             for u, c in zip(runs["uncached"], runs["cached"])}
    return {"benchmark": "dataset_loader", "machine_name": MACHINE, "machine": machine_info(),
            "samples": len(uncached), "sensors": list(uncached.sensors), "batch_size": batch_size,
            "epochs": epochs, "logs_mb": round(size_mb, 1), "cache_mb": round(cache_mb, 1),
            "cache_build_s": round(build_s, 2),
            "cache_build_samples_per_s": round(len(uncached) / build_s, 1),
            "uncached": runs["uncached"], "cached": runs["cached"], "ratio_cached_vs_uncached": ratio,
            "collect": collected, "load_average_1min": round(os.getloadavg()[0], 2),
            "recorded": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="an existing dataset directory (copied)")
    parser.add_argument("--frames", type=int, default=160, help="frames to collect without --dataset")
    parser.add_argument("--sensors", nargs="*", default=None, help="sensors to load (default: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    result = run_dataset_bench(args.dataset, args.frames, tuple(args.sensors) if args.sensors else None,
                               args.batch_size, args.epochs)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['samples']} samples ({', '.join(result['sensors'])}), batch {result['batch_size']}:")
    for kind in ("uncached", "cached"):
        for run in result[kind]:
            print(f"  {kind:>8}, {run['workers']} workers: {run['samples_per_s']:8.1f} samples/s")
    print(f"  cached / uncached: {result['ratio_cached_vs_uncached']}; cache built in {result['cache_build_s']} s "
          f"({result['cache_mb']} MB from {result['logs_mb']} MB of logs)")


if __name__ == "__main__":
    main()
