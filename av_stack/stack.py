"""The AV stack: perception -> localization -> planning -> control, composed from one YAML file.

A stack config (``configs/stack/*.yaml``) has one section per stage, each
picking an implementation by name with its own typed keys (see
:mod:`av_stack.registry`), an ``env`` section (the env the stack drives in
closed loop: a base env config plus overrides, :mod:`sim.env.config`) and a
``run`` section (what ``avsim run --config`` writes), a ``record`` section
(its log ``run.mcap``, :class:`av_stack.logs.config.RecordConfig`) and a
``bev`` section (whether the planner's BEV is assembled after localization
from the map at the pose estimate and perception's dynamic layers,
:mod:`av_stack.perception.assembly`)::

    env: {base: env/leaderboard_town01.yaml, observation: {modes: [bev], ground_truth: true}}
    perception: {name: oracle}
    localization: {name: oracle}
    planning: {name: expert}
    control: {name: stanley}

:meth:`Stack.step` runs the four stages on one :class:`SensorFrame` and
returns the control with every intermediate message and each stage's
latency (``bev_assembly`` too when it assembles). A plan that carries a
direct ``control`` (an end-to-end policy, or a manoeuvre such as backing off
a kerb) is applied as it is; the controller is then skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from av_stack.control import CONTROL
from av_stack.localization import LOCALIZATION
from av_stack.logs.config import RecordConfig
from av_stack.messages import Mission, PerceptionOutput, Plan, PoseEstimate, SensorFrame, VehicleControl
from av_stack.perception import PERCEPTION
from av_stack.perception.assembly import BevAssembler, BevAssemblyConfig
from av_stack.planning import PLANNING
from av_stack.registry import Registry, StageConfigError, describe_validation
from av_stack.stages import Controller, Localization, Perception, Planner
from sim.config import ConfigError, read_yaml

STAGES = ("perception", "localization", "planning", "control")
REGISTRIES: dict[str, Registry] = {"perception": PERCEPTION, "localization": LOCALIZATION, "planning": PLANNING,
                                   "control": CONTROL}
"""The registry of each stage, by stage name."""
_PROTOCOLS = {"perception": Perception, "localization": Localization, "planning": Planner, "control": Controller}


class RunSection(BaseModel):
    """What a closed-loop run writes: ``video`` (an MP4 of camera, BEVs and overlays), the ``camera``
    sensor shown in it (``None``: no camera panel), its frame rate divisor ``video_every`` (1: every tick)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video: bool = True
    camera: str | None = "front_rgb"
    video_every: int = Field(1, ge=1)


class StackConfig(BaseModel):
    """One stack config file (see the module docstring); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: dict[str, Any] = Field(default_factory=lambda: {"base": "env/leaderboard_town01.yaml"})
    perception: dict[str, Any] = Field(default_factory=lambda: {"name": "oracle"})
    localization: dict[str, Any] = Field(default_factory=lambda: {"name": "oracle"})
    planning: dict[str, Any] = Field(default_factory=lambda: {"name": "expert"})
    control: dict[str, Any] = Field(default_factory=lambda: {"name": "stanley"})
    bev: BevAssemblyConfig = BevAssemblyConfig()
    run: RunSection = RunSection()
    record: RecordConfig = RecordConfig()

    @field_validator("perception", "localization", "planning", "control")
    @classmethod
    def _check_stage(cls, value: dict[str, Any], info) -> dict[str, Any]:
        REGISTRIES[info.field_name].config_for(value, info.field_name)  # raises StageConfigError
        return value


def load_stack_config(config: str | Path | dict | StackConfig) -> StackConfig:
    """A validated :class:`StackConfig` from a file path, a shipped name (``stack/oracle.yaml``), or a dict;
    :class:`ConfigError` naming the file and key."""
    if isinstance(config, StackConfig):
        return config
    source = "<dict>"
    if isinstance(config, (str, Path)):
        from sim.resources import resolve_config

        path = resolve_config(str(config), "stack")
        source = str(config)
        data = read_yaml(path, "stack config")
    else:
        data = config
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a stack config is a mapping of sections, got {type(data).__name__}")
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0].get("ctx", {}).get("error")
        if isinstance(error, StageConfigError):
            raise ConfigError(f"{source}: {error}") from None
        raise ConfigError(describe_validation(exc, source, StackConfig)) from None


@dataclass(frozen=True)
class StackOutputs:
    """Every message of one tick and each stage's wall time [ms] (``latency_ms`` by stage name, plus
    ``stack``: the whole step)."""

    perception: PerceptionOutput
    pose: PoseEstimate
    plan: Plan
    control: VehicleControl
    latency_ms: dict[str, float] = field(default_factory=dict)


class Stack:
    """The four stages, run in order on every tick (see the module docstring)."""

    def __init__(self, perception: Perception, localization: Localization, planner: Planner,
                 controller: Controller, config: StackConfig | None = None) -> None:
        for name, stage in zip(STAGES, (perception, localization, planner, controller)):
            if not isinstance(stage, _PROTOCOLS[name]):
                raise TypeError(f"{name} stage {type(stage).__name__} lacks reset() / step()")
        self.perception, self.localization, self.planner, self.controller = (
            perception, localization, planner, controller)
        self.config = config or StackConfig()
        self.assembler = BevAssembler(self.config.bev) if self.config.bev.assemble else None

    @classmethod
    def from_config(cls, config: str | Path | dict | StackConfig) -> Stack:
        """Build every stage of a stack config (a path, a shipped name, a dict or a :class:`StackConfig`)."""
        c = load_stack_config(config)
        stages = [REGISTRIES[name].build(getattr(c, name), name) for name in STAGES]
        return cls(*stages, config=c)

    @property
    def names(self) -> dict[str, str]:
        """The implementation name of each stage (from the config)."""
        return {name: str(getattr(self.config, name)["name"]) for name in STAGES}

    def reset(self, mission: Mission) -> None:
        """Hand every stage the new mission."""
        for stage in (self.perception, self.localization, self.planner, self.controller):
            stage.reset(mission)
        if self.assembler is not None:
            self.assembler.reset(mission)

    def step(self, frame: SensorFrame) -> StackOutputs:
        """Run perception, localization, planning and control on one frame."""
        clock = time.perf_counter
        t0 = clock()
        perception = self.perception.step(frame)
        t1 = clock()
        pose = self.localization.step(frame)
        t2 = clock()
        if self.assembler is not None:
            perception = self.assembler(perception, pose)
        ta = clock()
        plan = self.planner.step(perception, pose)
        t3 = clock()
        control = plan.control if plan.control is not None else self.controller.step(plan, pose)
        t4 = clock()
        latency = {"perception": (t1 - t0) * 1e3, "localization": (t2 - t1) * 1e3, "planning": (t3 - ta) * 1e3,
                   "control": (t4 - t3) * 1e3, "stack": (t4 - t0) * 1e3}
        if self.assembler is not None:
            latency["bev_assembly"] = (ta - t2) * 1e3
        return StackOutputs(perception, pose, plan, control, latency)
