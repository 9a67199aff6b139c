"""``avsim eval localization``: score localization stages on a collected dataset
(:mod:`av_stack.localization.evaluate`)::

    avsim eval localization --data data/perception --split test --methods ekf,oracle --gnss-noise 2.0 --json

Each method is a registered localization implementation with its default
keys. The GNSS fixes get seeded Gaussian noise (``--gnss-noise``, metres per
axis) and a constant bias (``--gnss-bias``, metres on each axis) before any
method sees them. ``--json`` prints ``{"methods": {name: scores}, ...}`` as the
last line. A missing dataset, an unknown method or a bad option each give one
error line and exit status 2.

The command function is :func:`eval_localization` (registered on ``avsim eval`` by ``launch.cli``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from launch.errors import console, error_text as _error_text, fail as _fail


def _print_table(result: dict) -> None:
    console.print(f"{result['frames']} frames ({result['split']}: {', '.join(result['towns'])}), GNSS noise "
                  f"{result['gnss_noise_m']} m, bias {result['gnss_bias_m']} m", highlight=False)
    for name, m in result["methods"].items():
        console.print(f"{name:>10}  lateral {m['rms_lateral_m']} m  longitudinal {m['rms_longitudinal_m']} m  "
                      f"yaw {m['rms_yaw_deg']} deg  ATE {m['ate_m']} m  >1 m {m['share_over_1m']}  "
                      f"{m['ms_per_frame']} ms/frame", highlight=False)


def eval_localization(
    data: Path = typer.Option(..., "--data", help="A dataset directory written by `avsim collect`."),
    split: str | None = typer.Option(None, "--split", help="train, val or test (default: every log)."),
    methods: str = typer.Option("ekf,oracle", "--methods", help="Comma-separated localization implementations."),
    gnss_noise: float = typer.Option(2.0, "--gnss-noise", min=0.0, help="GNSS noise std per axis [m]."),
    gnss_bias: float = typer.Option(0.0, "--gnss-bias", help="Constant GNSS bias on each axis [m]."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the injected GNSS noise."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Score localization methods against the logged ground truth: RMS lateral / longitudinal / yaw error,
    ATE, share of frames over 1 m, ms per frame."""
    from av_stack.data.manifest import DatasetError
    from av_stack.localization.evaluate import evaluate_localization
    from av_stack.logs.reader import LogError
    from av_stack.registry import StageConfigError

    names = [name.strip() for name in methods.split(",") if name.strip()]
    if not names:
        _fail("--methods names no localization method")
    try:
        result = evaluate_localization({name: {"name": name} for name in names}, data, split, gnss_noise,
                                       gnss_bias, max_frames, seed)
    except (DatasetError, StageConfigError, LogError, ValueError, OSError, KeyError) as exc:
        _fail(_error_text(exc))
        return
    if as_json:
        print(json.dumps(result))
    else:
        _print_table(result)
