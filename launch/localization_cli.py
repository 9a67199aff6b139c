"""``avsim eval localization``: score localization stages on a collected dataset
(:mod:`av_stack.localization.evaluate`)::

    avsim eval localization --data data/perception --split test --methods ekf,icp,oracle --gnss-noise 2.0 --json

Each method is a registered localization implementation with its default
keys. The GNSS fixes get seeded Gaussian noise (``--gnss-noise``, metres per
axis) and a constant bias (``--gnss-bias``, metres on each axis) before any
method sees them; ``--gnss-dropout`` removes them for that many seconds from
``--dropout-start`` after each route's start, and ``--speed-noise``,
``--gyro-noise`` / ``--gyro-bias`` and ``--compass-noise`` corrupt the
odometry and the IMU; ``--init-error`` / ``--init-yaw-error`` start the
filters (ekf, icp) that far from the truth; ``--lidar-noise`` adds range noise
to every LiDAR return. The ``icp`` method uses ``--prior-map`` (a map file, or
a folder with one ``<log stem>.npz`` per evaluated log); without it, a map
per evaluated log is built from the dataset's other logs of its town
(leave-one-out; the JSON's ``prior_map`` says so). The ``learned`` method
uses ``--checkpoint`` (default: the shipped ``checkpoints/localization/matcher.pt``).
``--json`` prints ``{"methods": {name: scores}, ...}`` as the last line. A missing dataset, an unknown method or a bad option each give one
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
                  f"{result['gnss_noise_m']} m, bias {result['gnss_bias_m']} m"
                  + (f", prior map: {result['prior_map']}" if "prior_map" in result else ""), highlight=False)
    for name, m in result["methods"].items():
        console.print(f"{name:>10}  lateral {m['rms_lateral_m']} m  longitudinal {m['rms_longitudinal_m']} m  "
                      f"yaw {m['rms_yaw_deg']} deg  ATE {m['ate_m']} m  >1 m {m['share_over_1m']}  "
                      f"{m['ms_per_frame']} ms/frame", highlight=False)


def eval_localization(
    data: Path = typer.Option(..., "--data", help="A dataset directory written by `avsim collect`."),
    split: str | None = typer.Option(None, "--split", help="train, val or test (default: every log)."),
    methods: str = typer.Option("ekf,oracle", "--methods", help="Comma-separated localization implementations."),
    gnss_noise: float = typer.Option(2.0, "--gnss-noise", min=0.0, help="GNSS noise std per axis (m)."),
    gnss_bias: float = typer.Option(0.0, "--gnss-bias", help="Constant GNSS bias on each axis (m)."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after this many frames."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the injected GNSS noise."),
    prior_map: Path | None = typer.Option(None, "--prior-map", help="icp: a prior map (.npz), or a folder of "
                                          "<log stem>.npz; default: leave-one-out maps from the dataset."),
    gnss_dropout: float = typer.Option(0.0, "--gnss-dropout", min=0.0, help="GNSS dropout per route (s)."),
    dropout_start: float = typer.Option(3.0, "--dropout-start", min=0.0, help="Dropout start after the "
                                        "route's start (s)."),
    speed_noise: float = typer.Option(0.0, "--speed-noise", min=0.0, help="Wheel-speed noise std (m/s)."),
    gyro_noise: float = typer.Option(0.0, "--gyro-noise", min=0.0, help="Yaw-rate noise std (rad/s)."),
    gyro_bias: float = typer.Option(0.0, "--gyro-bias", help="Constant yaw-rate bias (rad/s)."),
    compass_noise: float = typer.Option(0.0, "--compass-noise", min=0.0, help="Compass noise std (deg)."),
    init_error: float = typer.Option(0.0, "--init-error", min=0.0, help="Start the filters this far off (m)."),
    init_yaw_error: float = typer.Option(0.0, "--init-yaw-error", help="... and turned this much (deg)."),
    lidar_noise: float = typer.Option(0.0, "--lidar-noise", min=0.0, help="LiDAR range noise std (m)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="learned: a checkpoint of `avsim train "
                                           "localization` (default: the shipped one)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line."),
) -> None:
    """Score localization methods against the logged ground truth: RMS lateral / longitudinal / yaw error,
    ATE, share of frames over 1 m, ms per frame."""
    from av_stack.data.manifest import DatasetError
    from av_stack.localization.evaluate import Corruption, evaluate_localization
    from av_stack.localization.prior_map import PriorMapError
    from av_stack.logs.reader import LogError
    from av_stack.registry import StageConfigError

    names = [name.strip() for name in methods.split(",") if name.strip()]
    if not names:
        _fail("--methods names no localization method")
    if prior_map is not None and not prior_map.exists():
        _fail(f"no prior map at {prior_map} (build one with `avsim map build-prior`)")
    sections = {name: {"name": name} for name in names}
    if prior_map is not None and "icp" in sections:
        sections["icp"]["prior_map"] = str(prior_map)
    if checkpoint is not None and "learned" in sections:
        sections["learned"]["checkpoint"] = str(checkpoint)
    corruption = Corruption(gnss_dropout_s=gnss_dropout, gnss_dropout_start_s=dropout_start,
                            speed_noise_mps=speed_noise, gyro_noise_rad_s=gyro_noise, gyro_bias_rad_s=gyro_bias,
                            compass_noise_deg=compass_noise, init_error_m=init_error,
                            init_error_deg=init_yaw_error, lidar_noise_m=lidar_noise)
    try:
        result = evaluate_localization(sections, data, split, gnss_noise, gnss_bias, max_frames, seed,
                                       corruption=corruption)
    except (DatasetError, StageConfigError, LogError, PriorMapError, ValueError, OSError, KeyError) as exc:
        # (a bad learned checkpoint is a CheckpointError, a ValueError)
        _fail(_error_text(exc))
        return
    if as_json:
        print(json.dumps(result))
    else:
        _print_table(result)
