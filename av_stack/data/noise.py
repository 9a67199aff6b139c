"""Noise injection on the executed control (DART, Laskey et al. 2017; CARLA CIL, Codevilla et al. 2018).

The expert computes its clean control; :class:`NoisyAgent` executes a perturbed one during short random noise
episodes. The car drifts, the expert (which sees the drift in the next frame) steers back, and the dataset
labels every frame with the expert's clean control: the recoveries are in the data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from av_stack.data.config import DriftConfig, NoiseConfig

# The action of ``action.mode: vehicle_control``: throttle, steer, brake, reverse.
THROTTLE, STEER, BRAKE = 0, 1, 2


@dataclass(frozen=True)
class NoiseSample:
    """The offsets added at one tick (0 outside a noise episode)."""

    active: bool
    steer: float
    throttle: float


class NoiseProcess:
    """Triangular noise episodes (CIL's shape): offsets ramp from 0 to a random peak and back to 0."""

    def __init__(self, config: NoiseConfig, dt_s: float, seed: int) -> None:
        self.config, self.dt_s = config, dt_s
        self.rng = np.random.default_rng(seed)
        self._left = 0
        self._length = 0
        self._peak = (0.0, 0.0)

    def step(self) -> NoiseSample:
        """The offsets of the next tick."""
        c = self.config
        if not c.enabled:
            return NoiseSample(False, 0.0, 0.0)
        if self._left == 0 and self.rng.random() < c.start_probability:
            duration = self.rng.uniform(*c.duration_s)
            self._length = self._left = max(2, int(round(duration / self.dt_s)))
            sign = self.rng.choice((-1.0, 1.0))
            self._peak = (sign * self.rng.uniform(0.3, 1.0) * c.steer_max,
                          self.rng.choice((-1.0, 1.0)) * self.rng.uniform(0.0, 1.0) * c.throttle_max)
        if self._left == 0:
            return NoiseSample(False, 0.0, 0.0)
        k = self._length - self._left
        self._left -= 1
        shape = 1.0 - abs(2.0 * (k + 0.5) / self._length - 1.0)  # 0 -> 1 -> 0 over the episode
        return NoiseSample(True, self._peak[0] * shape, self._peak[1] * shape)


def perturb(action: np.ndarray, noise: NoiseSample) -> np.ndarray:
    """A ``vehicle_control`` action with ``noise`` added: steer offset; a positive throttle offset adds throttle
    and eases the brake, a negative one takes throttle away (never brakes harder). Clipped to the valid ranges."""
    out = np.array(action, dtype=np.float32, copy=True)
    if not noise.active:
        return out
    out[STEER] = np.clip(out[STEER] + noise.steer, -1.0, 1.0)
    if noise.throttle >= 0.0:
        out[THROTTLE] = np.clip(out[THROTTLE] + noise.throttle, 0.0, 1.0)
        out[BRAKE] = np.clip(out[BRAKE] - noise.throttle, 0.0, 1.0)
    else:
        out[THROTTLE] = np.clip(out[THROTTLE] + noise.throttle, 0.0, 1.0)
    return out


class DriftProcess:
    """The lateral offset of :class:`~av_stack.data.config.DriftConfig`: piecewise linear between uniform
    targets, one segment of random length after another, starting at 0."""

    def __init__(self, config: DriftConfig, dt_s: float, seed: int) -> None:
        self.config, self.dt_s = config, dt_s
        self.rng = np.random.default_rng(seed)
        self.offset_m = 0.0
        self._start = self._target = 0.0
        self._length = self._done = 0

    def step(self) -> float:
        """The offset [m] of the next tick (0 when disabled)."""
        c = self.config
        if not c.enabled or c.lateral_max_m == 0.0:
            return 0.0
        if self._done >= self._length:
            self._start = self.offset_m
            self._target = float(self.rng.uniform(-c.lateral_max_m, c.lateral_max_m))
            self._length, self._done = max(1, int(round(self.rng.uniform(*c.segment_s) / self.dt_s))), 0
        self._done += 1
        self.offset_m = self._start + (self._target - self._start) * self._done / self._length
        return self.offset_m


class DriftedLocalization:
    """A localization stage whose pose is moved ``process.offset_m`` across its heading (to the right for a
    positive offset) on every step: the planner steers that point onto its path, so the car drives the offset
    to the left of it. Everything else passes through."""

    def __init__(self, stage, process: DriftProcess) -> None:
        self.stage, self.process = stage, process

    def reset(self, mission) -> None:
        """Reset the wrapped stage."""
        self.stage.reset(mission)

    def step(self, frame):
        """The wrapped stage's estimate, moved by the next offset."""
        estimate = self.stage.step(frame)
        offset = self.process.step()
        pose = estimate.pose
        moved = dataclasses.replace(pose, x_m=pose.x_m - math.sin(pose.yaw_rad) * offset,
                                    y_m=pose.y_m + math.cos(pose.yaw_rad) * offset)
        return dataclasses.replace(estimate, pose=moved)

    def __getattr__(self, name: str):
        return getattr(self.stage, name)


class NoisyAgent:
    """Wraps a :class:`~av_stack.bridge.StackAgent` (the expert): returns its action perturbed by a
    :class:`NoiseProcess`; keeps the clean action, the applied one and the noise of the last tick.
    ``frame`` and ``outputs`` are the wrapped agent's (what the run recorder logs)."""

    def __init__(self, agent, config: NoiseConfig, seed: int, drift: DriftConfig | None = None) -> None:
        self.agent, self.config, self.seed = agent, config, seed
        self.drift = drift or DriftConfig()
        self.process: NoiseProcess | None = None
        self.drift_process: DriftProcess | None = None
        self.clean: np.ndarray | None = None
        self.applied: np.ndarray | None = None
        self.noise = NoiseSample(False, 0.0, 0.0)
        self._episodes = 0

    @property
    def frame(self):
        """The wrapped agent's latest sensor frame."""
        return self.agent.frame

    @property
    def outputs(self):
        """The wrapped agent's latest stack outputs."""
        return self.agent.outputs

    def reset(self, env) -> None:
        """A new route: reset the expert and reseed the noise (seeded per route, so runs repeat)."""
        self.agent.reset(env)
        self.process = NoiseProcess(self.config, env.world.dt_s, self.seed * 1000 + self._episodes)
        if self.drift.enabled:
            self.drift_process = DriftProcess(self.drift, env.world.dt_s, self.seed * 1000 + self._episodes + 500)
            stack = self.agent.stack
            stage = stack.localization.stage if isinstance(stack.localization, DriftedLocalization) \
                else stack.localization
            stack.localization = DriftedLocalization(stage, self.drift_process)
        self._episodes += 1

    @property
    def drift_m(self) -> float:
        """The expert's lateral offset from its path this tick [m] (0 without drift)."""
        return 0.0 if self.drift_process is None else self.drift_process.offset_m

    def __call__(self, obs, env) -> np.ndarray:
        self.clean = np.asarray(self.agent(obs, env), dtype=np.float32)
        self.noise = self.process.step()
        self.applied = perturb(self.clean, self.noise)
        return self.applied
