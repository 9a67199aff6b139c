"""Demonstrations for behaviour cloning: the privileged expert's actions recorded in the policy's observation
format, while the expert (with noise injection, DART) or the learner (DAgger) drives.

- The expert is :func:`av_stack.bridge.expert_agent` (oracle perception and localization, the expert planner,
  Stanley): the same drive as ``avsim collect``. Its control becomes an ``acc_steer`` label (acceleration =
  throttle - brake), or for a ``target`` policy the target speed and offset its plan stands for
  (:func:`~av_stack.planning.rl.target.target_label`). A step where it wants to reverse (backing off a kerb)
  has no label: it is recorded with ``valid = False`` and braking is applied.
- Noise (``av_stack.data.noise.NoiseProcess``) perturbs the executed action during short episodes; the
  label stays the expert's clean action, so the data holds recoveries.
- In a DAgger round the learner drives an episode with chance ``1 - beta`` (the expert otherwise); the
  expert labels every step either way.

A shard is whole episodes, at least ``steps`` steps, in one ``.npz``: ``bev`` (N, bits) packed with
``np.packbits``, ``bev_shape``, ``measurements`` (N, M), ``action`` (N, 2) the expert's label, ``valid``,
``reward`` (the env's), ``returns`` (discounted, per episode), ``driver_expert`` (N,) bool.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.data.config import NoiseConfig
from av_stack.data.noise import NoiseProcess, NoiseSample
from av_stack.files import replaced_atomically
from av_stack.planning.rl.observation import pool_bev
from av_stack.planning.rl.target import TargetSpec, target_label
from sim.scenarios.routes import RouteTracker

__all__ = ["ExpertLabeler", "ShardJob", "load_shards", "perturb_acc_steer", "record_shard"]


def perturb_acc_steer(action: np.ndarray, noise: NoiseSample) -> np.ndarray:
    """An ``acc_steer`` action with ``noise`` added: steer offset; a positive throttle offset accelerates
    harder or brakes less, a negative one takes acceleration away but never brakes harder. Clipped."""
    out = np.array(action, dtype=np.float32, copy=True)
    if not noise.active:
        return out
    out[1] = np.clip(out[1] + noise.steer, -1.0, 1.0)
    acc = float(out[0])
    out[0] = np.clip(acc + noise.throttle, -1.0, 1.0) if noise.throttle >= 0.0 else \
        max(acc + noise.throttle, min(acc, 0.0))
    return out


class ExpertLabeler:
    """The privileged expert's label for the env's current state (one expert step per call): its ``acc_steer``
    control, or with a :class:`~av_stack.planning.rl.target.TargetSpec` the ``target`` action its plan stands
    for. :attr:`expert_action` is the ``acc_steer`` action the expert itself would apply (what it executes
    when it drives)."""

    def __init__(self, target: TargetSpec | None = None) -> None:
        from av_stack.bridge import expert_agent

        self.agent = expert_agent()
        self.target = target
        self.expert_action = np.zeros(2, dtype=np.float32)
        self._tracker: RouteTracker | None = None

    def reset(self, env) -> None:
        """A new episode of ``env`` (a ``DrivingEnv``)."""
        self.agent.reset(env)
        self._tracker = RouteTracker(env.route)

    def __call__(self, obs: dict, env) -> tuple[np.ndarray, bool]:
        """(label, valid): the expert's action; ``valid`` is False where it wants to reverse or holds a direct
        brake (label: full brake, or in ``target`` mode stop on the route)."""
        control = self.agent.control(obs, env)
        outputs = self.agent.outputs
        progress = None
        if self.target is not None:  # tracked every step (reversing too): the label's stretch of route
            if self._tracker is None:
                raise RuntimeError("ExpertLabeler used before reset(env)")
            progress = self._tracker.update(outputs.pose.pose.x_m, outputs.pose.pose.y_m, outputs.pose.yaw_rad)
        if control.reverse:
            self.expert_action = np.array([-1.0, 0.0], dtype=np.float32)
            return self.expert_action.copy(), False
        acc = control.throttle if control.throttle > 0.0 else -control.brake
        self.expert_action = np.array([acc, control.steer], dtype=np.float32)
        if progress is None:
            return self.expert_action.copy(), True
        label = target_label(outputs.plan, env.route, outputs.pose, self.target, progress.index)
        if label is None:
            return np.array([-1.0, 0.0], dtype=np.float32), False
        return label, True


@dataclass(frozen=True)
class ShardJob:
    """One demonstration file to record: where, how many steps at least, its seed, who drives."""

    path: Path
    steps: int
    seed: int
    beta: float = 1.0  # chance per episode that the expert drives (1: demonstrations)
    noise: NoiseConfig | None = None  # noise on the expert's executed action (demonstrations only)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Per-step discounted return of one episode (0 after its last step)."""
    out = np.zeros_like(rewards, dtype=np.float32)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def record_shard(job: ShardJob, env, labeler: ExpertLabeler, pool: int, gamma: float, policy=None,
                 driver=None) -> dict[str, Any]:
    """Drive whole episodes in ``env`` (a :class:`~av_stack.planning.rl.towns.TownMixEnv` of raw env
    observations) until ``job.steps`` are recorded; write the shard atomically; return its summary.
    ``policy(pooled_obs) -> action`` drives the learner's episodes (needed when ``job.beta < 1``);
    ``driver`` (a :class:`~av_stack.planning.rl.target.TargetDriver`) turns a ``target`` policy's actions
    into the env's. The expert drives with its own control (noise added) either way."""
    rng = np.random.default_rng(job.seed)
    columns: dict[str, list] = {k: [] for k in ("bev", "measurements", "action", "valid", "reward", "returns",
                                                "driver_expert")}
    episodes, scores, steps, bev_shape = 0, [], 0, None
    while steps < job.steps:
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        driving = env.driving_env
        labeler.reset(driving)
        if driver is not None:
            driver.reset(driving)
        expert_drives = policy is None or rng.random() < job.beta
        noise = NoiseProcess(job.noise or NoiseConfig(enabled=False), driving.world.dt_s,
                             int(rng.integers(2**31 - 1)))
        rewards: list[float] = []
        done = False
        while not done:
            label, valid = labeler(obs, driving)
            pooled = {"bev": pool_bev(obs["bev"], pool), "measurements": obs["measurements"]}
            if expert_drives:
                action = perturb_acc_steer(labeler.expert_action, noise.step())
            else:
                action = np.asarray(policy(pooled), dtype=np.float32)
                if driver is not None:
                    action = driver(action, driving)
            bev_shape = pooled["bev"].shape
            columns["bev"].append(np.packbits(pooled["bev"] > 127))
            columns["measurements"].append(pooled["measurements"])
            columns["action"].append(label)
            columns["valid"].append(valid)
            columns["driver_expert"].append(expert_drives)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        columns["reward"].extend(rewards)
        columns["returns"].extend(discounted_returns(np.asarray(rewards), gamma))
        episodes += 1
        steps += len(rewards)
        scores.append(float(info["route_score"]["driving_score"]))
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    arrays["bev"] = np.stack(columns["bev"])
    arrays["bev_shape"] = np.asarray(bev_shape)
    _save_atomic(job.path, arrays)
    return {"path": str(job.path), "steps": steps, "episodes": episodes, "mean_driving_score": float(np.mean(scores))}


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with replaced_atomically(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


@dataclass
class Demonstrations:
    """All shards' steps in memory (BEV still packed); :meth:`bev` unpacks a batch."""

    bev_packed: np.ndarray
    bev_shape: tuple[int, int, int]
    measurements: np.ndarray
    action: np.ndarray
    valid: np.ndarray
    returns: np.ndarray

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def bev(self, index: np.ndarray) -> np.ndarray:
        """(B, C, H, W) uint8 0/255 BEVs of the steps at ``index``."""
        n = int(np.prod(self.bev_shape))
        bits = np.unpackbits(self.bev_packed[index], axis=1, count=n)
        return (bits.reshape(len(index), *self.bev_shape) * 255).astype(np.uint8)


class DemonstrationError(ValueError):
    """A demonstration file that cannot be read (corrupt, truncated, or of another observation shape)."""


def load_shards(paths: list[Path]) -> Demonstrations:
    """Every step of the shards at ``paths``; :class:`DemonstrationError` naming a file that cannot be read."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("bev", "measurements", "action", "valid", "returns")}
    shape = None
    for path in paths:
        try:
            with np.load(path) as data:
                this = tuple(int(v) for v in data["bev_shape"])
                for key in parts:
                    parts[key].append(data[key])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DemonstrationError(f"demonstration file {path} cannot be read ({exc}); delete it and run the "
                                     "command again to record it anew") from None
        if shape is not None and this != shape:
            raise DemonstrationError(f"demonstration file {path} has BEV shape {this}, the others {shape}")
        shape = this
    if shape is None:
        raise DemonstrationError("no demonstration files to load")
    return Demonstrations(np.concatenate(parts["bev"]), shape, np.concatenate(parts["measurements"]),
                          np.concatenate(parts["action"]), np.concatenate(parts["valid"]),
                          np.concatenate(parts["returns"]))
