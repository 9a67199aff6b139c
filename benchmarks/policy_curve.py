"""The RL policy's learning curve as a PNG, from a run folder of ``avsim train policy``::

    python -m benchmarks.policy_curve runs/policy/bev_ppo --out benchmarks/policy_curve.png [--json]

Panels: the driving score of the periodic evaluations (behaviour-cloning rounds at step 0, then PPO's
evaluations by env step) from ``train_log.jsonl``; PPO's training-episode return and driving score from the
TensorBoard scalars under ``tb/``. ``--json`` prints one JSON object last: the points plotted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file under ``folder``: tag -> [(step, value)] sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return {tag: sorted(points.items()) for tag, points in out.items()}


def evaluations(run: Path) -> dict[str, list]:
    """The behaviour-cloning rounds' and PPO's evaluation driving scores from ``train_log.jsonl``."""
    bc, ppo = [], []
    for line in (run / "train_log.jsonl").read_text().splitlines():
        record = json.loads(line)
        phase = record.get("phase", "")
        if phase.startswith("bc_round") and phase.endswith("_eval"):
            bc.append((phase.removesuffix("_eval"), record["driving_score"]))
        elif phase == "ppo_eval":
            ppo.append((record["steps"], record["driving_score"]))
    return {"bc": bc, "ppo": ppo}


def plot(run: Path, out: Path) -> dict:
    """Draw the curve of ``run`` into ``out``; the points drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scalars = tensorboard_scalars(run / "tb")
    evals = evaluations(run)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    if evals["ppo"]:
        start = [(0, evals["bc"][-1][1])] if evals["bc"] else []  # PPO starts from the last BC round's policy
        ax.plot(*zip(*(start + evals["ppo"])), marker="o", label="PPO (evaluation routes)")
    for k, (name, score) in enumerate(evals["bc"]):
        ax.scatter([0], [score], marker="s", color=f"C{k + 1}", label=f"after {name.replace('_', ' ')}")
    ax.set(xlabel="PPO env steps", ylabel="driving score", title="Evaluation town (never trained on)", ylim=(0, 105))
    ax.legend(fontsize=8)
    ax = axes[1]
    if "driving/score" in scalars:
        steps, scores = zip(*scalars["driving/score"])
        window = 10
        smooth = [sum(scores[max(0, i - window + 1):i + 1]) / len(scores[max(0, i - window + 1):i + 1])
                  for i in range(len(scores))]
        ax.plot(steps, smooth, label=f"training episodes' driving score ({window}-point mean)")
    ax.set(xlabel="PPO env steps", ylabel="driving score", title="Training episodes", ylim=(0, 105))
    if "rollout/ep_rew_mean" in scalars:
        twin = ax.twinx()
        twin.plot(*zip(*scalars["rollout/ep_rew_mean"]), color="C1", label="episode return (Roach reward)")
        twin.set_ylabel("episode return")
        twin.legend(fontsize=8, loc="lower right")
    ax.legend(fontsize=8, loc="upper left")
    for axis in axes:
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return {"png": str(out), "evaluations": evals,
            "training_driving_score": scalars.get("driving/score", []),
            "episode_return": scalars.get("rollout/ep_rew_mean", [])}


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder of avsim train policy")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/policy_curve.png"))
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    if not (args.run / "train_log.jsonl").is_file():
        parser.error(f"{args.run} is not a policy run folder (no train_log.jsonl)")
    result = plot(args.run, args.out)
    print(f"wrote {args.out}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
