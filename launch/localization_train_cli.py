"""``avsim train localization``: train the learned localization's map-matching network
(:mod:`av_stack.localization.learned.train`)::

    avsim train localization --config localization/matcher.yaml --out runs/localization/matcher

The command function is :func:`train_localization` (registered on ``avsim train`` by ``launch.cli``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from launch.errors import console, error_text as _error_text, fail as _fail


def train_localization(
    config: str = typer.Option("localization/matcher.yaml", "--config", help="A localization config (a path "
                               "or a shipped name under configs/localization)."),
    out: Path = typer.Option(Path("runs/localization/matcher"), "--out", help="Run folder: last.pt, "
                             "train_log.jsonl, TensorBoard curves (tb/); an existing run is resumed."),
    data: Path | None = typer.Option(None, "--data", help="Dataset directory (default: the config's train.data)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps in all."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads."),
) -> None:
    """Train the map-matching network on a collected dataset (resumes OUT/last.pt when it is there)."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from av_stack.data.manifest import DatasetError
    from av_stack.localization.learned.model import CheckpointError
    from av_stack.localization.learned.train import load_matcher_config, train_matcher
    from av_stack.logs.reader import LogError
    from sim.config import ConfigError

    torch.set_num_threads(threads)
    try:
        matcher_config = load_matcher_config(config)
        with Progress(TextColumn("steps"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[nll]}"),
                      TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("train", total=None, nll="")

            def tick(step: int, total: int, terms: dict) -> None:
                bar.update(task, completed=step, total=total, nll=f"nll {terms['nll']:.3f}")

            record = train_matcher(matcher_config, out, data, max_steps, progress=tick)
    except (ConfigError, DatasetError, CheckpointError, LogError, OSError, ValueError) as exc:
        _fail(_error_text(exc))
        return
    console.print(f"{out / 'last.pt'}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in record.items()), highlight=False)
