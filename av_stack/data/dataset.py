"""A PyTorch ``Dataset`` over a dataset directory written by ``avsim collect`` (the only module of
:mod:`av_stack.data` that imports torch).

>>> data = DrivingDataset("data/small_mix", split="train", sensors=("front_rgb", "roof_lidar"))
>>> loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, collate_fn=collate, num_workers=2)

Each sample is a dict of numpy arrays (the fields of :mod:`av_stack.data.frames`) plus ``town``, ``log``,
``frame`` and ``t_s``. Splits are by town, from the manifest. With a cache (:func:`av_stack.data.cache.
build_cache`) that matches the manifest the samples come from memory maps; otherwise from the MCAP logs.
:func:`collate` stacks a batch into tensors, padding ragged fields (point clouds, boxes) with zeros and adding
``NAME_count``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from av_stack.data.cache import CachedSource, cache_meta
from av_stack.data.config import SPLITS
from av_stack.data.frames import McapSource
from av_stack.data.manifest import DatasetError, read_manifest


class DrivingDataset(Dataset):
    """Aligned training samples of a dataset directory (see the module docstring).

    ``split``: ``"train"``, ``"val"``, ``"test"``, several of them, or None for all. ``sensors``: the sensors
    to load (default: all with data). ``cache``: ``"auto"`` uses the cache when it is there and matches the
    manifest (a stale one is ignored with a warning), ``True`` requires it, ``False`` reads the logs."""

    def __init__(self, root: str | Path, split: str | Iterable[str] | None = None,
                 sensors: Iterable[str] | None = None, cache: bool | Literal["auto"] = "auto") -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        logs = self.manifest["logs"]
        if not logs:
            raise DatasetError(f"dataset {self.root} has no logs yet")
        splits = set(SPLITS) if split is None else {split} if isinstance(split, str) else set(split)
        unknown = splits - set(SPLITS)
        if unknown:
            raise DatasetError(f"unknown split {', '.join(sorted(unknown))}; splits are {', '.join(SPLITS)}")
        sensors = tuple(sensors) if sensors is not None else None
        self.source: CachedSource | McapSource
        meta, why = cache_meta(self.root, self.manifest) if cache is not False else (None, "cache off")
        if meta is not None:
            self.source = CachedSource(self.root, meta, sensors)
        else:
            if cache is True:
                raise DatasetError(f"dataset {self.root}: {why}; build it with av_stack.data.cache.build_cache")
            if why not in ("no cache", "cache off"):
                warnings.warn(f"{why}; reading the logs instead (rebuild the cache)", stacklevel=2)
            self.source = McapSource(self.root, self.manifest, sensors)
        self.cached = isinstance(self.source, CachedSource)
        self.sensors = self.source.sensors
        self.split = tuple(sorted(splits))
        self.indices = [k for k, ref in enumerate(self.source.refs) if logs[ref.log]["split"] in splits]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        k = self.indices[index]
        ref = self.source.refs[k]
        log = self.manifest["logs"][ref.log]
        sample: dict[str, Any] = self.source.sample(k)
        sample.update(town=log["town"], log=log["file"], frame=ref.frame, t_s=ref.t_ns * 1e-9)
        return sample

    def towns(self) -> list[str]:
        """The towns of the selected split(s)."""
        logs = self.manifest["logs"]
        return sorted({log["town"] for log in logs if log["split"] in self.split})


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of samples as tensors: equal-shaped arrays stacked; ragged ones (point clouds, boxes) padded with
    zeros to the batch's longest, with ``NAME_count`` (int64) giving each sample's rows; strings as lists."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [sample[key] for sample in batch]
        first = values[0]
        if isinstance(first, str):
            out[key] = values
        elif isinstance(first, (int, float)):
            out[key] = torch.tensor(values)
        elif all(v.shape == first.shape for v in values):
            out[key] = torch.from_numpy(np.stack(values))
        else:
            rows = max(len(v) for v in values)
            padded = np.zeros((len(values), rows, *first.shape[1:]), dtype=first.dtype)
            for i, v in enumerate(values):
                padded[i, : len(v)] = v
            out[key] = torch.from_numpy(padded)
            out[key + "_count"] = torch.tensor([len(v) for v in values], dtype=torch.int64)
    return out
