"""Behaviour cloning of the SB3 policy on demonstrations: the actor's mean regresses on the expert's action
(steer weighted by ``steer_weight``), the critic on the discounted returns (scaled by their std), so PPO
starts from a policy that drives and a value function that knows what driving is worth."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from av_stack.planning.rl.config import BcConfig
from av_stack.planning.rl.demos import Demonstrations
from av_stack.planning.rl.policy import obs_tensor

__all__ = ["behaviour_clone", "bc_losses", "set_normalisation"]


def set_normalisation(policy, demos: Demonstrations) -> None:
    """Fix the features extractor's measurement normalisation from the demonstrations' statistics."""
    policy.features_extractor.set_normalisation(torch.as_tensor(demos.measurements.mean(axis=0)),
                                                torch.as_tensor(demos.measurements.std(axis=0)))


def bc_losses(policy, demos: Demonstrations, index: np.ndarray, config: BcConfig,
              returns_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(action loss, value loss) of the steps at ``index``."""
    obs = obs_tensor({"bev": demos.bev(index), "measurements": demos.measurements[index]}, batched=True)
    features = policy.extract_features(obs)
    latent_pi, latent_vf = policy.mlp_extractor(features)
    mean = policy.action_net(latent_pi)
    value = policy.value_net(latent_vf).squeeze(1)
    target = torch.as_tensor(demos.action[index])
    weights = torch.tensor([1.0, config.steer_weight])
    error = mean - target
    # l1 regresses on the median: where the expert's label is bimodal (stop or go), the mean is a slow roll
    per_dim = error.abs() if config.action_loss == "l1" else error ** 2
    action_loss = (per_dim * weights).sum(dim=1).mean()
    returns = torch.as_tensor(demos.returns[index])
    value_loss = (((value - returns) / returns_scale) ** 2).mean()
    return action_loss, value_loss


def behaviour_clone(policy, demos: Demonstrations, config: BcConfig, epochs: int, seed: int,
                    val: Demonstrations | None = None, progress: Callable[[int, int], None] | None = None
                    ) -> list[dict[str, float]]:
    """Train ``policy`` for ``epochs`` on the valid steps of ``demos``; per epoch: train and val losses."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    returns_scale = float(max(demos.returns.std(), 1e-3))
    usable = np.flatnonzero(demos.valid)
    batches = max(1, len(usable) // config.batch_size)
    history = []
    for epoch in range(epochs):
        policy.train()
        order = rng.permutation(usable)
        totals = np.zeros(2)
        for b in range(batches):
            index = np.sort(order[b * config.batch_size:(b + 1) * config.batch_size])
            action_loss, value_loss = bc_losses(policy, demos, index, config, returns_scale)
            loss = action_loss + config.value_coef * value_loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            totals += (action_loss.item(), value_loss.item())
            if progress is not None:
                progress(epoch * batches + b + 1, epochs * batches)
        record = {"epoch": epoch + 1, "action_loss": totals[0] / batches, "value_loss": totals[1] / batches}
        if val is not None and len(val):
            record.update(evaluate_bc(policy, val, config, returns_scale))
        history.append(record)
    policy.eval()
    return history


@torch.no_grad()
def evaluate_bc(policy, demos: Demonstrations, config: BcConfig, returns_scale: float) -> dict[str, float]:
    """Validation losses and the mean absolute error of acceleration and steer on the valid steps."""
    policy.eval()
    usable = np.flatnonzero(demos.valid)
    errors, values = [], []
    for start in range(0, len(usable), 512):
        index = usable[start:start + 512]
        obs = obs_tensor({"bev": demos.bev(index), "measurements": demos.measurements[index]}, batched=True)
        latent_pi, latent_vf = policy.mlp_extractor(policy.extract_features(obs))
        mean = policy.action_net(latent_pi).clamp(-1.0, 1.0)
        errors.append(np.abs(mean.numpy() - demos.action[index]))
        values.append((policy.value_net(latent_vf).squeeze(1).numpy() - demos.returns[index]) / returns_scale)
    error = np.concatenate(errors)
    value = np.concatenate(values)
    return {"val_acc_mae": float(error[:, 0].mean()), "val_steer_mae": float(error[:, 1].mean()),
            "val_value_loss": float((value ** 2).mean())}
