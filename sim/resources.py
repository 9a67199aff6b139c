"""The configs shipped with avsim, found relative to the installed package, never the current directory.

The repository's top-level ``configs/`` folder is the package directory
``sim/_configs`` (a symbolic link in the checkout, real files in a wheel; see
``pyproject.toml``). A shipped config is named by its path under ``configs/``,
e.g. ``"env/default.yaml"``; the ``configs/`` prefix the docs and the shipped
YAMLs write (``configs/routes/town01.yaml``) is accepted too, so those paths
work from any directory.

Every config argument is a path or a shipped name: a path that exists is used
as is, whatever the shipped configs hold; only a missing relative path is
looked up among the shipped ones.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import BaseModel

from sim.config import ConfigError, read_yaml

__all__ = ["SHIPPED_CONFIGS_DIR", "load_model_config", "locate_config", "resolve_config", "shipped_config",
           "shipped_configs"]

_Model = TypeVar("_Model", bound=BaseModel)

SHIPPED_CONFIGS_DIR = (Path(__file__).resolve().parent / "_configs").resolve()  # the real folder, link or not

_PREFIX = "configs"


def shipped_configs(kind: str | None = None) -> list[str]:
    """Sorted names of the shipped YAML configs (``"env/default.yaml"``, ...), only those under ``kind`` if given."""
    root = SHIPPED_CONFIGS_DIR / kind if kind else SHIPPED_CONFIGS_DIR
    return sorted(p.relative_to(SHIPPED_CONFIGS_DIR).as_posix() for p in root.rglob("*.yaml") if p.is_file())


def _shipped_match(name: str | Path, kind: str | None) -> Path | None:
    """The shipped file that ``name`` denotes (with or without ``configs/``, ``.yaml`` or, given ``kind``, ``kind/``)."""
    parts = PurePosixPath(Path(name).as_posix()).parts
    if not parts or PurePosixPath(*parts).is_absolute() or ".." in parts:
        return None
    if parts[0] == _PREFIX:
        parts = parts[1:]
    if not parts:
        return None
    rel = PurePosixPath(*parts)
    candidates = [rel] if rel.suffix == ".yaml" else [rel, rel.with_name(rel.name + ".yaml")]
    if kind and rel.parts[0] != kind:
        candidates += [PurePosixPath(kind) / c for c in candidates]
    for candidate in candidates:
        path = SHIPPED_CONFIGS_DIR / candidate
        if path.is_file():
            return path
    return None


def locate_config(path: str | Path, kind: str | None = None) -> Path:
    """``path`` if it exists, else the shipped config it names, else ``path`` unchanged (the caller reports it).

    For loaders that have their own "does not exist" error: they call this first,
    so a ``configs/...`` path works outside the checkout.
    """
    path = Path(path)
    if path.exists():
        return path
    return _shipped_match(path, kind) or path


def shipped_config(name: str | Path, kind: str | None = None) -> Path:
    """Path of the shipped config ``name`` (``"env/default.yaml"``; ``kind="env"`` allows ``"default"``).

    ``ConfigError`` naming ``name`` and listing the shipped choices if there is none.
    """
    path = _shipped_match(name, kind)
    if path is None:
        raise ConfigError(f"no shipped config '{name}'; {_choices(kind)}")
    return path


def resolve_config(path_or_name: str | Path, kind: str | None = None) -> Path:
    """An existing path as is, else the shipped config of that name (see :func:`shipped_config`).

    ``ConfigError`` if it is neither: the message says the path does not exist
    and lists the shipped choices (of ``kind``, e.g. ``"env"``, when given).
    """
    path = Path(path_or_name)
    if path.exists():
        return path
    found = _shipped_match(path, kind)
    if found is None:
        raise ConfigError(f"config {path} does not exist and is not a shipped config name; {_choices(kind)}")
    return found


def _choices(kind: str | None) -> str:
    """The shipped choices, for error messages."""
    where = f"shipped {kind} configs" if kind else "shipped configs"
    return f"{where}: {', '.join(shipped_configs(kind)) or 'none'}"


def load_model_config(path: str | Path | dict | None, model: type[_Model], kind: str, label: str) -> _Model:
    """``model`` validated from a YAML file (a path or a shipped name under ``configs/<kind>``), a dict, or its
    defaults (None); one :class:`ConfigError` naming the file (``label`` if it is missing) and the key."""
    if path is None:
        return model()
    if isinstance(path, dict):
        data, source = path, "<dict>"
    else:
        data, source = read_yaml(resolve_config(str(path), kind), label), str(path)
    try:
        return model.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
