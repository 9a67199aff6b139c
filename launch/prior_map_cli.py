"""``avsim map build-prior``: a prior point-cloud map for ICP localization from logged LiDAR with
ground-truth poses (:mod:`av_stack.localization.prior_map`)::

    avsim map build-prior data/town02_mapping --out maps/town02.npz
    avsim map build-prior outputs/run/run.mcap --out maps/run.npz --voxel 0.2

The source is one run log or an ``avsim collect`` dataset directory (every log of it, or those of
``--town``). A missing or unreadable source, a log without LiDAR or ground truth, or a dataset mixing towns
without ``--town`` each give one error line and exit status 2; a file already at ``--out`` is replaced only
once the new map is complete. ``--json`` prints one JSON object (points, voxel size, town, logs, seconds) as
the last line.

The command function is :func:`build_prior` (registered on ``avsim map`` by ``launch.cli``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from launch.errors import console, error_text as _error_text, fail as _fail


def build_prior(
    source: Path = typer.Argument(..., help="A run log (.mcap) or a dataset directory written by `avsim collect`."),
    out: Path = typer.Option(..., "--out", help="The prior map to write (.npz)."),
    voxel: float = typer.Option(0.2, "--voxel", help="Voxel size of the map (m)."),
    max_range: float = typer.Option(60.0, "--max-range", help="LiDAR returns farther than this are left out (m)."),
    town: str | None = typer.Option(None, "--town", help="Only the dataset's logs of this town."),
    lidar: str | None = typer.Option(None, "--lidar", help="The LiDAR sensor's name (default: the first one)."),
    keep_actors: bool = typer.Option(False, "--keep-actors", help="Keep returns inside ground-truth actor boxes."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Build a prior point-cloud map (voxel centroids with normals) from logged LiDAR sweeps and their
    ground-truth poses, for `localization: {name: icp, prior_map: FILE}`."""
    from av_stack.localization.prior_map import PriorMapError, build_prior_map, save_prior_map
    from av_stack.logs.reader import LogError

    if out.suffix != ".npz":
        _fail(f"--out must name a .npz file, got {out}")
    if not voxel > 0 or not max_range > 0:
        _fail(f"--voxel and --max-range must be > 0, got {voxel} and {max_range}")
    start = time.perf_counter()
    try:
        prior = build_prior_map(source, voxel, max_range, not keep_actors, town, lidar,
                                progress=None if as_json else _progress)
        save_prior_map(prior, out)
    except (PriorMapError, LogError, OSError) as exc:
        _fail(_error_text(exc))
        return
    low, high = prior.extent()
    summary = {"out": str(out), "points": len(prior), "voxel_m": prior.voxel_m, "map": prior.map_name,
               "logs": len(prior.sources), "extent_m": [low.round(1).tolist(), high.round(1).tolist()],
               "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - start, 2)}
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"{out}: {summary['points']:,} points ({prior.map_name}, voxel {prior.voxel_m} m) from "
                      f"{summary['logs']} log(s) in {summary['seconds']} s", highlight=False)


def _progress(done: int, total: int) -> None:
    console.print(f"  log {done}/{total} accumulated", highlight=False)
