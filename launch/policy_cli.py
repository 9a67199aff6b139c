"""``avsim train policy``: behaviour cloning from the expert, DAgger, then PPO (:mod:`av_stack.planning.rl.train`)::

    avsim train policy --config policy/bev_ppo.yaml --out runs/policy/bev_ppo

The command function is :func:`train_policy_command` (registered on ``avsim train`` by ``launch.cli``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from av_stack.distributed import RAY_HELP
from launch.errors import console, error_text as _error_text, fail as _fail


def train_policy_command(
    config: str = typer.Option("policy/bev_ppo.yaml", "--config", help="A policy config (a path or a shipped "
                               "name under configs/policy)."),
    out: Path = typer.Option(Path("runs/policy/bev_ppo"), "--out", help="Run folder: demonstrations, BC rounds, "
                             "PPO checkpoints, policy.zip, train_log.jsonl, TensorBoard curves (tb/); an existing "
                             "run is resumed."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes recording demonstrations (Ray tasks "
                                "with --ray)."),
    total_steps: int | None = typer.Option(None, "--total-steps", min=0, help="PPO env steps in all (default: "
                                           "the config's ppo.total_steps); raise it to train a resumed run on."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " The demonstration and DAgger shards are "
                                   "recorded as --workers Ray tasks (the same shards as local processes); "
                                   "PPO's envs stay on this machine."),
) -> None:
    """Train the RL driving policy (resumes OUT when it holds a run of the same config)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from av_stack.distributed import DistributedError
    from av_stack.planning.rl.config import load_policy_config
    from av_stack.planning.rl.demos import DemonstrationError
    from av_stack.planning.rl.train import PolicyRunError, train_policy
    from sim.config import ConfigError

    try:
        policy_config = load_policy_config(config)
        if total_steps is not None:
            policy_config = policy_config.model_copy(
                update={"ppo": policy_config.ppo.model_copy(update={"total_steps": total_steps})})
        tasks: dict[str, int] = {}
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            def tick(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(phase, total=total)
                progress.update(tasks[phase], completed=done, total=total)

            summary = train_policy(policy_config, out, workers=workers, progress=tick, ray=ray)
    except (ConfigError, DemonstrationError, PolicyRunError, DistributedError, FileNotFoundError, ValueError) as exc:
        _fail(_error_text(exc))
        return
    console.print(f"policy: {summary['policy']} ({summary['wall_s']:.0f} s this sitting)")
