"""The policy training config (``configs/policy/*.yaml``): towns, env, model, behaviour cloning, PPO, evaluation.

Every section and key is optional; unknown keys are errors naming the key (``ConfigError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from av_stack.data.config import NoiseConfig, TownSpec, TrafficSpec
from av_stack.planning.rl.target import TargetSpec
from sim.resources import load_model_config
from sim.env.config import merge_overrides

__all__ = ["BcConfig", "EvalConfig", "ModelConfig", "PolicyTrainConfig", "PpoConfig", "load_policy_config"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """The policy network: BEV pooling, CNN width, features, the actor / critic heads, the initial action std,
    and what its actions mean: ``control`` (acceleration and steering, applied as they are) or ``target`` (a
    target speed and a lateral offset from the route that the stack's controller tracks:
    :mod:`av_stack.planning.rl.target`)."""

    pool: int = Field(3, ge=1, le=8, description="max-pool factor of the env's BEV (3: 192 -> 64 px)")
    width: int = Field(16, ge=4, le=128)
    features_dim: int = Field(256, ge=16, le=1024)
    net_arch: tuple[int, ...] = (256,)
    init_log_std: float = Field(-1.0, ge=-5.0, le=1.0, description="log std of the Gaussian actions after BC")
    action: Literal["control", "target"] = "control"
    target: TargetSpec = TargetSpec()
    ignore_measurements: tuple[str, ...] = Field(("previous_acceleration", "previous_steer"), description=(
        "measurements the network does not see (sim.env.observations.measurement_names); by default the "
        "previous action, which behaviour cloning would learn to copy"))

    @model_validator(mode="after")
    def _known_measurements(self) -> ModelConfig:
        from sim.env.observations import MEASUREMENT_NAMES

        unknown = sorted(set(self.ignore_measurements) - set(MEASUREMENT_NAMES))
        if unknown:
            raise ValueError(f"ignore_measurements: unknown {unknown}; measurements: {list(MEASUREMENT_NAMES)}")
        previous = {"previous_acceleration", "previous_steer"}
        if self.action == "target" and not previous <= set(self.ignore_measurements):
            raise ValueError("action: target needs ignore_measurements to hold previous_acceleration and "
                             "previous_steer: the env reports the controller's last control there, the stack "
                             "the policy's last target")
        return self


class BcConfig(_Section):
    """Behaviour cloning from the expert: demonstrations with noise injection, then DAgger rounds in which the
    learner drives (mixed with the expert by ``beta``) and the expert labels every step."""

    demo_steps: int = Field(60_000, ge=0, description="expert steps (noise injected) recorded first")
    noise: NoiseConfig = NoiseConfig()
    dagger_rounds: int = Field(2, ge=0)
    dagger_steps: int = Field(20_000, ge=1, description="steps recorded per DAgger round")
    dagger_beta: float = Field(0.3, ge=0.0, le=1.0, description="chance per episode that the expert drives")
    epochs: int = Field(6, ge=1, description="epochs over all data after the demonstrations")
    dagger_epochs: int = Field(3, ge=1, description="epochs over all data after each DAgger round")
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-5, ge=0.0)
    steer_weight: float = Field(2.0, ge=0.0, description="weight of the steer error against the acceleration's")
    action_loss: Literal["mse", "l1"] = Field("mse", description=(
        "the actor's regression loss: mse (the mean label) or l1 (the median: decisive where the label is "
        "bimodal, as stop or go)"))
    value_coef: float = Field(0.5, ge=0.0, description="weight of the value head's regression on returns")
    shard_steps: int = Field(2_000, ge=10, description="steps per demonstration file (the unit of resuming)")


class PpoConfig(_Section):
    """PPO fine-tuning (Stable-Baselines3) from the behaviour-cloned policy."""

    total_steps: int = Field(1_000_000, ge=0)
    n_envs: int = Field(4, ge=1)
    n_steps: int = Field(512, ge=8, description="steps per env per rollout")
    batch_size: int = Field(256, ge=8)
    n_epochs: int = Field(4, ge=1)
    learning_rate: float = Field(1e-4, gt=0.0)
    clip_range: float = Field(0.2, gt=0.0)
    ent_coef: float = Field(0.0, ge=0.0)
    vf_coef: float = Field(0.5, ge=0.0)
    max_grad_norm: float = Field(0.5, gt=0.0)
    gamma: float = Field(0.99, gt=0.0, le=1.0)
    gae_lambda: float = Field(0.95, gt=0.0, le=1.0)
    target_kl: float | None = Field(0.05, gt=0.0)
    checkpoint_every_steps: int = Field(50_000, ge=1)
    vec_env: Literal["subproc", "dummy"] = "subproc"


class EvalConfig(_Section):
    """Periodic evaluation during training: the deterministic policy on seeded random routes of a town not
    trained on; its driving score goes to TensorBoard."""

    town: TownSpec = TownSpec(procedural={"seed": 3, "grid_rows": 2, "grid_cols": 3, "block_length_jitter": 0.1})
    routes: int = Field(4, ge=1)
    every_steps: int = Field(100_000, ge=1)
    seed: int = 1000


class PolicyTrainConfig(_Section):
    """Everything ``avsim train policy`` needs."""

    towns: tuple[TownSpec, ...] = Field((TownSpec(map="Town01"),), min_length=1)
    traffic: TrafficSpec = TrafficSpec(vehicles=30, walkers=20)
    env: dict[str, Any] = Field(default_factory=dict, description="EnvConfig keys for every training env")
    model: ModelConfig = ModelConfig()
    bc: BcConfig = BcConfig()
    ppo: PpoConfig = PpoConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = Field(0, ge=0)
    threads: int = Field(2, ge=1, description="torch threads of the learner")

    @model_validator(mode="after")
    def _check_env(self) -> PolicyTrainConfig:
        from sim.env.config import load_env_config

        load_env_config(self.env_overrides(self.towns[0]))  # unknown or invalid env keys fail here, by name
        return self

    def env_overrides(self, town: TownSpec, seed: int | None = None) -> dict[str, Any]:
        """The env config of one town: BEV observations, ``acc_steer`` actions, the Roach reward and short
        episodes by default, then the config's ``env`` keys."""
        base = {"world": {**town.world_overrides(), "seed": self.seed if seed is None else seed},
                "traffic": self.traffic.model_dump(),
                "observation": {"modes": ["bev"]}, "action": {"mode": "acc_steer"},
                "routes": {"min_length_m": 100, "max_length_m": 300}, "reward": {"name": "roach"},
                "episode": {"terminate_on": ["collision", "red_light", "route_deviation", "blocked"],
                            "route_deviation_m": 6.0, "blocked_s": 40.0}}
        return merge_overrides(base, self.env)


def load_policy_config(source: str | Path | dict[str, Any] | None) -> PolicyTrainConfig:
    """A :class:`PolicyTrainConfig` from a YAML path (a shipped name such as ``policy/bev_ppo.yaml`` too), a
    dict, or the defaults (None); one ``ConfigError`` naming the file and the key when invalid."""
    return load_model_config(source, PolicyTrainConfig, "policy", "policy config")
