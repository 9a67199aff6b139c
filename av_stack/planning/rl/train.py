"""``avsim train policy``: behaviour cloning from the expert, DAgger rounds, then PPO fine-tuning; every phase
resumable. The run folder holds:

- ``config.json``: the config the run started with (a resumed run must use the same);
- ``demos/round{r}_{i}.npz``: demonstrations (round 0: the expert with noise; round r > 0: DAgger);
- ``bc_round{r}.zip``: the policy after behaviour cloning on rounds 0..r (SB3 PPO zips);
- ``ppo/last.zip``: PPO's latest checkpoint (every ``ppo.checkpoint_every_steps``); ``ppo/steps_N.zip`` kept
  at every evaluation;
- ``policy.zip``: the newest finished policy (the latest BC round, then PPO's latest checkpoint);
- ``train_log.jsonl``: one JSON line per BC epoch, recorded shard, PPO evaluation;
- ``tb/``: TensorBoard curves (BC losses; PPO's losses, episode return, driving score of the training
  episodes and of the periodic evaluations, infractions).

Stopping at any time loses at most one shard, one BC round or ``checkpoint_every_steps`` of PPO.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.files import replaced_atomically, write_bytes_atomically
from av_stack.planning.rl.config import PolicyTrainConfig
from av_stack.planning.rl.demos import ShardJob, load_shards

__all__ = ["PolicyRunError", "evaluate_policy", "train_policy"]

Progress = Callable[[str, int, int], None]


class PolicyRunError(RuntimeError):
    """A run folder that cannot be resumed with this config."""


def _log(run: Path, record: dict[str, Any]) -> None:
    with open(run / "train_log.jsonl", "a") as handle:
        handle.write(json.dumps({"time": round(time.time(), 1), **record}) + "\n")


def _check_run(run: Path, config: PolicyTrainConfig) -> None:
    run.mkdir(parents=True, exist_ok=True)
    saved = run / "config.json"
    current = config.model_dump(mode="json")
    if saved.is_file():
        before = json.loads(saved.read_text())
        changed = sorted(k for k in set(before) | set(current)
                         if _comparable(before, k) != _comparable(current, k) and k not in ("ppo", "threads"))
        if changed:
            raise PolicyRunError(f"run folder {run} was started with another config (sections {changed} differ); "
                                 "use a new --out or the run's own config (ppo, threads and more "
                                 "bc.dagger_rounds may change)")
        rounds_before, rounds_now = before["bc"]["dagger_rounds"], current["bc"]["dagger_rounds"]
        if rounds_now < rounds_before:
            raise PolicyRunError(f"run folder {run} already has {rounds_before} DAgger rounds; "
                                 f"bc.dagger_rounds may grow, not shrink to {rounds_now}")
    saved.write_text(json.dumps(current, indent=1))


def _comparable(config: dict[str, Any], section: str) -> Any:
    """A config section as compared on resume: more DAgger rounds only add rounds, so their count is left out."""
    value = config.get(section)
    if section == "bc" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "dagger_rounds"}
    return value


# ------------------------------------------------------------------------------------------- recording
def _town_env(config: PolicyTrainConfig, seed: int, towns=None, wrap=None):
    from av_stack.planning.rl.towns import TownMixEnv

    towns = towns if towns is not None else config.towns
    return TownMixEnv([config.env_overrides(t, seed=seed + k) for k, t in enumerate(towns)], wrap=wrap, seed=seed)


def _record_jobs(config_json: dict, jobs: list[ShardJob], policy_path: str | None, worker: int) -> list[dict]:
    """Worker: record ``jobs`` with one env and one expert (the learner from ``policy_path`` if given)."""
    import torch

    from av_stack.planning.rl.config import PolicyTrainConfig as Config
    from av_stack.planning.rl.demos import ExpertLabeler, record_shard

    torch.set_num_threads(1)
    config = Config.model_validate(config_json)
    env = _town_env(config, seed=config.seed * 7919 + 101 * worker + jobs[0].seed)
    target = config.model.target if config.model.action == "target" else None
    labeler = ExpertLabeler(target)
    policy, driver = None, None
    if policy_path is not None:
        from av_stack.planning.rl.policy import load_policy
        from av_stack.planning.rl.target import TargetDriver

        model = load_policy(policy_path)
        policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
        driver = TargetDriver(target) if target is not None else None
    out = [record_shard(job, env, labeler, config.model.pool, config.ppo.gamma, policy, driver) for job in jobs]
    env.close()
    return out


def _record_jobs_remote(task: tuple[dict, list[ShardJob], bytes | None, int]) -> list[tuple[dict, bytes]]:
    """Ray task: :func:`_record_jobs` in a scratch folder of the worker (the learner's zip comes as bytes);
    each shard's summary and file bytes, so the driver needs no file system shared with the worker."""
    import dataclasses
    import tempfile

    config_json, jobs, policy_zip, worker = task
    with tempfile.TemporaryDirectory(prefix="avsim-shards-") as scratch:
        policy = None
        if policy_zip is not None:
            policy = str(Path(scratch) / "policy.zip")
            Path(policy).write_bytes(policy_zip)
        local = [dataclasses.replace(job, path=Path(scratch) / job.path.name) for job in jobs]
        results = _record_jobs(config_json, local, policy, worker)
        return [({**result, "path": str(job.path)}, here.path.read_bytes())
                for job, here, result in zip(jobs, local, results)]


def _record_on_ray(json_config: dict, groups: list[list[ShardJob]], policy: str | None, ray: str
                   ) -> list[list[dict]]:
    """The groups of :func:`_record_round` as Ray tasks (the same groups, worker indices and seeds as the
    process pool, so the same shards); each shard is written here as its group returns."""
    from av_stack.distributed import run_jobs

    policy_zip = Path(policy).read_bytes() if policy is not None else None

    def arrived(index: int, shards: list[tuple[dict, bytes]]) -> None:
        for (result, data), job in zip(shards, groups[index]):
            write_bytes_atomically(job.path, data)

    tasks = [(json_config, group, policy_zip, w) for w, group in enumerate(groups)]
    outputs = run_jobs(_record_jobs_remote, tasks, ray, on_result=arrived)
    return [[result for result, _ in shards] for shards in outputs]


def _record_round(run: Path, config: PolicyTrainConfig, round_: int, steps: int, policy_path: Path | None,
                  workers: int, progress: Progress | None, ray: str | None = None) -> list[Path]:
    """Record (or keep, when already there) the shards of one round; their paths. ``ray``: the shard groups
    run as Ray tasks instead of local processes (same shards)."""
    count = max(1, math.ceil(steps / config.bc.shard_steps))
    paths = [run / "demos" / f"round{round_}_{i:04d}.npz" for i in range(count)]
    beta = 1.0 if round_ == 0 else config.bc.dagger_beta
    noise = config.bc.noise if round_ == 0 else None
    todo = [ShardJob(p, config.bc.shard_steps, seed=config.seed * 100_003 + round_ * 1009 + i, beta=beta, noise=noise)
            for i, p in enumerate(paths) if not p.is_file()]
    done = count - len(todo)
    if progress:
        progress(f"recording round {round_}", done, count)
    if not todo:
        return paths
    groups = [todo[w::workers] for w in range(min(workers, len(todo)))]
    policy = str(policy_path) if policy_path is not None else None
    json_config = config.model_dump(mode="json")
    if ray is not None:
        results_iter = _record_on_ray(json_config, groups, policy, ray)
    elif len(groups) == 1:
        results_iter = [_record_jobs(json_config, groups[0], policy, 0)]
    else:
        with ProcessPoolExecutor(len(groups), mp_context=get_context("forkserver")) as pool:
            futures = [pool.submit(_record_jobs, json_config, group, policy, w) for w, group in enumerate(groups)]
            results_iter = [f.result() for f in futures]
    for results in results_iter:
        for result in results:
            done += 1
            _log(run, {"phase": f"record_round{round_}", **result})
            if progress:
                progress(f"recording round {round_}", done, count)
    return paths


# ------------------------------------------------------------------------------------------ evaluation
def _policy_wrap(config: PolicyTrainConfig):
    """The wrapper that makes a driving env the policy's: pooled observations, and for a ``target`` policy
    target actions driven by the controller."""
    pool, model = config.model.pool, config.model

    def wrap(env):
        from av_stack.planning.rl.observation import PolicyObservation
        from av_stack.planning.rl.target import TargetActions

        env = PolicyObservation(env, pool)
        return TargetActions(env, model.target) if model.action == "target" else env
    return wrap


def evaluate_policy(model, config: PolicyTrainConfig, routes: int | None = None, seed: int | None = None
                    ) -> dict[str, Any]:
    """The deterministic policy on ``routes`` seeded random routes of the config's evaluation town: mean
    driving score, route completion, termination counts."""
    from av_stack.planning.rl.towns import make_driving_env

    e = config.eval
    env = _policy_wrap(config)(make_driving_env(config.env_overrides(e.town, seed=e.seed)))
    scores, completions, terminations = [], [], {}
    for k in range(routes or e.routes):
        obs, _ = env.reset(seed=(seed if seed is not None else e.seed) + k)
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        score = info["route_score"]
        scores.append(score["driving_score"])
        completions.append(score["route_completion"])
        terminations[score["termination"]] = terminations.get(score["termination"], 0) + 1
    env.close()
    return {"driving_score": float(np.mean(scores)), "route_completion": float(np.mean(completions)),
            "terminations": terminations}


# ------------------------------------------------------------------------------------ behaviour cloning
def _bc_round(run: Path, config: PolicyTrainConfig, round_: int, shard_paths: list[Path], start: Path | None,
              progress: Progress | None, tb) -> Path:
    from av_stack.planning.rl.bc import behaviour_clone, set_normalisation
    from av_stack.planning.rl.observation import policy_space
    from av_stack.planning.rl.policy import SpacesEnv, load_policy, new_ppo, save_policy

    target = run / f"bc_round{round_}.zip"
    if target.is_file():
        return target
    # The last shard of round 0 is the validation set: expert driving, never trained on.
    val_path, train_paths = shard_paths[0], shard_paths[1:] if len(shard_paths) > 1 else shard_paths
    demos, val = load_shards(train_paths), load_shards([val_path])
    if start is None:
        env = _town_env(config, seed=config.seed)
        space, action_space = policy_space(env.observation_space, config.model.pool), env.action_space
        env.close()
        model = new_ppo(SpacesEnv(space, action_space), config.model, seed=config.seed, n_steps=8, batch_size=8)
        set_normalisation(model.policy, demos)
    else:
        model = load_policy(start)
    epochs = config.bc.epochs if round_ == 0 else config.bc.dagger_epochs
    history = behaviour_clone(model.policy, demos, config.bc, epochs, seed=config.seed + round_, val=val,
                              progress=(lambda d, t: progress(f"behaviour cloning round {round_}", d, t))
                              if progress else None)
    for record in history:
        _log(run, {"phase": f"bc_round{round_}", "samples": len(demos), **record})
        step = round_ * 1000 + record["epoch"]
        for key, value in record.items():
            if key != "epoch":
                tb.add_scalar(f"bc/{key}", value, step)
    evaluation = evaluate_policy(model, config)
    _log(run, {"phase": f"bc_round{round_}_eval", **evaluation})
    tb.add_scalar("bc/eval_driving_score", evaluation["driving_score"], round_)
    save_policy(model.policy, model.observation_space, model.action_space, config.model, target)
    return target


# ------------------------------------------------------------------------------------------------- PPO
def _make_vec_env(config: PolicyTrainConfig):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    def factory(index: int):
        def build():
            return _town_env(config, seed=config.seed * 7919 + 1_000_003 + 31 * index, wrap=_policy_wrap(config))
        return build

    fns = [factory(i) for i in range(config.ppo.n_envs)]
    vec = SubprocVecEnv(fns, start_method="forkserver") if config.ppo.vec_env == "subproc" and len(fns) > 1 \
        else DummyVecEnv(fns)
    return VecMonitor(vec)


def _ppo(run: Path, config: PolicyTrainConfig, start: Path, progress: Progress | None) -> Path:
    from stable_baselines3 import PPO

    from av_stack.planning.rl.callbacks import TrainingCallback
    from av_stack.planning.rl.policy import load_policy, new_ppo

    p = config.ppo
    folder = run / "ppo"
    folder.mkdir(exist_ok=True)
    last = folder / "last.zip"
    origin = folder / "started_from.txt"
    if last.is_file() and origin.is_file() and origin.read_text().strip() != start.name:
        raise PolicyRunError(f"{last} continues PPO from {origin.read_text().strip()}, but the behaviour-cloning "
                             f"phases now end at {start.name} (more DAgger rounds?); move {folder} aside to "
                             "start PPO from the new policy")
    env = _make_vec_env(config)
    kwargs = dict(n_steps=p.n_steps, batch_size=p.batch_size, n_epochs=p.n_epochs, learning_rate=p.learning_rate,
                  clip_range=p.clip_range, ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
                  gamma=p.gamma, gae_lambda=p.gae_lambda, target_kl=p.target_kl)
    try:
        if last.is_file():
            model = PPO.load(last, env=env, device="cpu", tensorboard_log=str(run / "tb"), **kwargs)
        else:
            model = new_ppo(env, config.model, seed=config.seed, tensorboard_log=str(run / "tb"), **kwargs)
            origin.write_text(start.name + "\n")
            model.policy.load_state_dict(load_policy(start).policy.state_dict())
            model.policy.log_std.data.fill_(config.model.init_log_std)
        remaining = p.total_steps - model.num_timesteps
        if remaining > 0:
            callback = TrainingCallback(run, config, last, progress)
            model.learn(remaining, callback=callback, reset_num_timesteps=False, tb_log_name="ppo")
            callback.save(model)
    finally:
        env.close()
    return last


# ----------------------------------------------------------------------------------------------- driver
def train_policy(config: PolicyTrainConfig, out: str | Path, workers: int = 2,
                 progress: Progress | None = None, ray: str | None = None) -> dict[str, Any]:
    """Run (or resume) every phase; the final policy is ``OUT/policy.zip``. Returns a summary. ``ray``
    (``local[:N]``, ``auto`` or a cluster address): the demonstration and DAgger shards are recorded as
    ``workers`` Ray tasks instead of local processes (the same shards); PPO's envs stay local."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    if ray is not None:
        from av_stack.distributed import check_ray_option

        check_ray_option(ray)
    torch.set_num_threads(config.threads)
    run = Path(out)
    _check_run(run, config)
    started = time.time()
    tb = SummaryWriter(str(run / "tb" / "bc"))
    try:
        shards = _record_round(run, config, 0, config.bc.demo_steps, None, workers, progress, ray)
        policy = _bc_round(run, config, 0, shards, None, progress, tb)
        _publish(run, policy)
        for round_ in range(1, config.bc.dagger_rounds + 1):
            shards += _record_round(run, config, round_, config.bc.dagger_steps, policy, workers, progress, ray)
            policy = _bc_round(run, config, round_, shards, policy, progress, tb)
            _publish(run, policy)
    finally:
        tb.close()
    if config.ppo.total_steps > 0:
        policy = _ppo(run, config, policy, progress)
        _publish(run, policy)
    summary = {"policy": str(run / "policy.zip"), "wall_s": round(time.time() - started, 1)}
    _log(run, {"phase": "done", **summary})
    return summary


def _publish(run: Path, policy: Path) -> None:
    with replaced_atomically(run / "policy.zip") as tmp:
        shutil.copyfile(policy, tmp)
