"""Registries of stage implementations: each stage (perception, localization, planning, control) has one.

An implementation is registered under a name, either eagerly (the
:meth:`Registry.register` decorator) or lazily by import path
(:meth:`Registry.register_lazy`, so that naming a learned stage does not
import torch until it is built). It is a class with a nested pydantic
``Config`` (its typed config section; unknown keys are errors) that is
constructed as ``cls(config)``. A YAML section picks one by name::

    planning:
      name: expert
      cruise_mps: 8.0

:meth:`Registry.build` validates the section and builds the stage; an
unknown name raises :class:`StageConfigError` listing the valid ones, a bad
key one naming the stage and the key.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from sim.config import ConfigError

T = TypeVar("T")


class StageConfigError(ConfigError):
    """A stage section names an unknown implementation or has an invalid key or value."""


class StageParams(BaseModel):
    """Base of every implementation's ``Config``: typed, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Registry(Generic[T]):
    """Implementations of one stage by name."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._entries: dict[str, type | str] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: register the class under ``name`` (``ValueError`` if the name is taken)."""
        def decorate(cls: type) -> type:
            self._add(name, cls)
            return cls
        return decorate

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:ClassName"`` under ``name``; imported when first built."""
        if ":" not in target:
            raise ValueError(f"lazy target must be 'module:Class', got {target!r}")
        self._add(name, target)

    def _add(self, name: str, entry: type | str) -> None:
        if name in self._entries and self._entries[name] != entry:
            raise ValueError(f"{self.stage} implementation {name!r} is already registered")
        self._entries[name] = entry

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted."""
        return tuple(sorted(self._entries))

    def resolve(self, name: str) -> type:
        """The class registered under ``name``; :class:`StageConfigError` listing the valid names."""
        entry = self._entries.get(name)
        if entry is None:
            raise StageConfigError(f"{self.stage}: unknown implementation {name!r}; valid: {', '.join(self.names())}")
        if isinstance(entry, str):
            module, attr = entry.split(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def config_for(self, section: Mapping[str, Any] | None, where: str = "") -> tuple[type, BaseModel]:
        """(class, validated config) of a ``{name: ..., **params}`` section."""
        label = where or self.stage
        if not isinstance(section, Mapping):
            raise StageConfigError(f"{label}: expected a mapping with a 'name' key, got {section!r}")
        params = dict(section)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise StageConfigError(f"{label}: missing 'name' (valid: {', '.join(self.names())})")
        cls = self.resolve(name)
        config_cls: type[BaseModel] = getattr(cls, "Config", StageParams)
        try:
            return cls, config_cls.model_validate(params)
        except ValidationError as exc:
            raise StageConfigError(describe_validation(exc, f"{label} ({name})", config_cls)) from None

    def build(self, section: Mapping[str, Any] | None, where: str = "") -> T:
        """The stage a ``{name: ..., **params}`` section describes."""
        cls, config = self.config_for(section, where)
        return cls(config)


def describe_validation(exc: ValidationError, label: str, model: type[BaseModel]) -> str:
    """One line naming the first invalid key of ``exc``: ``label: key: message``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "section"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        fields = model.model_fields
        for part in first["loc"][:-1]:
            annotation = getattr(fields.get(str(part)), "annotation", None)
            fields = annotation.model_fields if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
                else {}
        message = f"unknown key (valid: {', '.join(fields) or 'none'})"
    return f"{label}: {where}: {message}"
