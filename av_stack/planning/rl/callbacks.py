"""PPO's training callback: driving metrics of the training episodes, periodic evaluations, checkpoints."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from stable_baselines3.common.callbacks import BaseCallback

from av_stack.files import replaced_atomically
from av_stack.planning.rl.config import PolicyTrainConfig

__all__ = ["TrainingCallback"]


class TrainingCallback(BaseCallback):
    """Logs each finished training episode's driving score, route completion and infractions (TensorBoard
    ``driving/*``), saves ``last`` every ``ppo.checkpoint_every_steps`` and evaluates the deterministic
    policy every ``eval.every_steps`` (``eval/*``, and a kept ``steps_N.zip``)."""

    def __init__(self, run: Path, config: PolicyTrainConfig, last: Path,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        super().__init__()
        self.run, self.config, self.last, self.progress = run, config, last, progress
        self._saved_at = self._evaluated_at = None

    def _on_training_start(self) -> None:
        self._saved_at = self._evaluated_at = self.model.num_timesteps

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            score = info.get("route_score") if done else None
            if score is None:
                continue
            self.logger.record_mean("driving/score", score["driving_score"])
            self.logger.record_mean("driving/route_completion", score["route_completion"])
            for kind in ("collision", "red_light", "route_deviation", "blocked", "route_timeout"):
                self.logger.record_mean(f"driving/ends_{kind}", float(score["termination"] == kind))
        steps = self.model.num_timesteps
        if steps - self._saved_at >= self.config.ppo.checkpoint_every_steps:
            self.save(self.model)
        if steps - self._evaluated_at >= self.config.eval.every_steps:
            self.evaluate()
        if self.progress is not None:
            self.progress("PPO steps", steps, self.config.ppo.total_steps)
        return True

    def save(self, model) -> None:
        """Write ``last`` atomically (a stop mid-write keeps the previous one)."""
        with replaced_atomically(self.last) as tmp:
            model.save(tmp)
        self._saved_at = model.num_timesteps

    def evaluate(self) -> None:
        """Evaluate, log, checkpoint, and keep this checkpoint as ``steps_N.zip``."""
        from av_stack.planning.rl.train import evaluate_policy

        started = time.time()
        result = evaluate_policy(self.model, self.config)
        steps = self.model.num_timesteps
        self.logger.record("eval/driving_score", result["driving_score"])
        self.logger.record("eval/route_completion", result["route_completion"])
        with open(self.run / "train_log.jsonl", "a") as handle:
            handle.write(json.dumps({"time": round(time.time(), 1), "phase": "ppo_eval", "steps": steps,
                                     "eval_s": round(time.time() - started, 1), **result}) + "\n")
        self.save(self.model)
        shutil.copyfile(self.last, self.last.with_name(f"steps_{steps}.zip"))
        self._evaluated_at = steps
