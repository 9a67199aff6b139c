"""``manifest.json`` of a dataset directory: its logs (file, town, frames, seed, split, settings) and the split
rule. Written atomically after every finished log, so an interrupted collection never loses a finished one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from av_stack.data.config import SPLITS, SplitConfig
from av_stack.files import write_text_atomically

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
APPLIED_CONTROL = "/collect/applied_control"
"""The JSON topic of the executed (noisy) control; the expert's clean one is ``/stack/control``."""


class DatasetError(RuntimeError):
    """A dataset directory, its manifest or cache that cannot be used; the message names the path and problem."""


def split_of(town: str, split: SplitConfig | None) -> str:
    """The split of ``town``: as ``split`` names it, else a stable hash rule (about 10 % of towns ``test``,
    10 % ``val``, the rest ``train``; the same name always lands in the same split, on any machine)."""
    if split is not None:
        if town in split.test:
            return "test"
        if town in split.val:
            return "val"
        return "train"
    bucket = int(hashlib.sha256(town.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def empty_manifest(config: dict[str, Any]) -> dict[str, Any]:
    """A manifest with no logs yet."""
    return {"version": MANIFEST_VERSION, "config": config, "logs": []}


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``root/manifest.json`` through a temporary file (a reader never sees half a manifest)."""
    write_text_atomically(Path(root) / MANIFEST, json.dumps(manifest, indent=1, allow_nan=False) + "\n")


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of dataset directory ``root``; :class:`DatasetError` naming the path if the directory or
    manifest is missing, not JSON, or lacks what a manifest holds."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"no dataset directory at {root}")
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{root} has no {MANIFEST}: not a dataset directory (collect one with `avsim collect`)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is corrupt: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("logs"), list):
        raise DatasetError(f"{path} is corrupt: expected an object with a 'logs' list")
    if int(manifest.get("version", 0)) > MANIFEST_VERSION:
        raise DatasetError(f"{path} is manifest version {manifest['version']}; this avsim reads up to "
                           f"{MANIFEST_VERSION}")
    for k, log in enumerate(manifest["logs"]):
        missing = [key for key in ("file", "town", "frames", "seed", "split") if key not in log]
        if missing:
            raise DatasetError(f"{path} is corrupt: logs[{k}] lacks {', '.join(missing)}")
        if log["split"] not in SPLITS:
            raise DatasetError(f"{path} is corrupt: logs[{k}] has split {log['split']!r} (not one of {SPLITS})")
    return manifest
