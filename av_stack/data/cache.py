"""A dataset's decode-once cache: every sample's arrays in one flat binary file per field under
``DIR/cache/``, read back as memory maps (:class:`CachedSource`), so loading a sample is a copy, not an MCAP
seek, a decompression and image decoding.

``DIR/cache/fields.json`` lists the fields (file, dtype, row shape; point clouds and boxes are ragged: their
rows are concatenated and ``NAME.offsets.npy`` gives each sample's slice), the sensors and the logs the cache
was built from (file and size): a cache that no longer matches the manifest is stale and not used.
``refs.npy`` holds each sample's (log, frame, time [ns]). The cache is built in ``cache.partial/`` and renamed,
so an interrupted build leaves no half cache.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from av_stack.data.frames import (LABEL_FIELDS, RAGGED_BLUEPRINTS, RAGGED_LABELS, SENSOR, LogFile, SampleRef,
                                  resolve_sensors, sample_from_messages)
from av_stack.data.manifest import DatasetError, read_manifest
from av_stack.logs import topics as T

CACHE = "cache"
CACHE_VERSION = 1


def log_stamp(root: Path, manifest: dict[str, Any]) -> list[list[Any]]:
    """What a cache must match: each manifest log's file name and size."""
    return [[log["file"], (Path(root) / log["file"]).stat().st_size if (Path(root) / log["file"]).is_file() else -1]
            for log in manifest["logs"]]


class _FieldWriter:
    """Appends one field's rows to its binary file."""

    def __init__(self, folder: Path, name: str, ragged: bool) -> None:
        self.name, self.ragged = name, ragged
        self.file = name.replace("/", "_") + ".bin"
        self._out = open(folder / self.file, "wb")
        self.dtype: np.dtype | None = None
        self.shape: tuple[int, ...] | None = None
        self.offsets = [0]

    def add(self, array: np.ndarray, where: str) -> None:
        array = np.asarray(array)  # tobytes() writes C order; ascontiguousarray would make scalars 1-d
        row = array.shape[1:] if self.ragged else array.shape
        if self.dtype is None:
            self.dtype, self.shape = array.dtype, row
        if array.dtype != self.dtype or row != self.shape:
            raise DatasetError(f"{where}: {self.name} is {array.dtype} {array.shape}, other samples "
                               f"{self.dtype} {self.shape}: the logs do not share one sensor suite; cache them apart")
        self._out.write(array.tobytes())
        if self.ragged:
            self.offsets.append(self.offsets[-1] + len(array))

    def finish(self, folder: Path) -> dict[str, Any]:
        self._out.close()
        meta = {"file": self.file, "dtype": str(self.dtype), "shape": list(self.shape or ()), "ragged": self.ragged}
        if self.ragged:
            meta["offsets"] = self.name.replace("/", "_") + ".offsets.npy"
            np.save(folder / meta["offsets"], np.asarray(self.offsets, dtype=np.int64))
        return meta


def _samples_of(log: LogFile, log_index: int):
    """(ref, decoded messages) of each sample of ``log``, reading the file once front to back."""
    from av_stack.logs.reader import LogError, LogReader

    reader = LogReader(log.path)
    current_t, messages = None, {}

    def finish():
        ego = messages.get(T.EGO_SIGNALS)
        if ego is not None and any(topic.startswith(T.SENSOR_PREFIX) for topic in messages):
            return SampleRef(log_index, int(ego["frame"]), current_t), messages
        return None

    try:
        for message in reader.messages():
            t_ns = int(round(message.t_s * 1e9))
            if current_t is not None and t_ns != current_t:
                done = finish()
                if done is not None:
                    yield done
                messages = {}
            current_t = t_ns
            messages[message.topic] = message.value
    except LogError as exc:
        raise DatasetError(str(exc)) from None
    if current_t is not None:
        done = finish()
        if done is not None:
            yield done


def build_cache(root: str | Path, sensors: tuple[str, ...] | None = None, progress: bool = False) -> Path:
    """Decode every sample of the dataset at ``root`` once into ``root/cache/`` (replacing an old cache) and
    return that folder. ``sensors``: the sensors to cache (default: all that have data)."""
    root = Path(root)
    manifest = read_manifest(root)
    if not manifest["logs"]:
        raise DatasetError(f"dataset {root} has no logs yet")
    logs = [LogFile(root / entry["file"]) for entry in manifest["logs"]]
    sensors = resolve_sensors(sensors, logs[0].blueprints, root)
    partial = root / (CACHE + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    writers: dict[str, _FieldWriter] = {}
    for name in sensors:
        writers[SENSOR + name] = _FieldWriter(partial, SENSOR + name, logs[0].blueprints[name] in RAGGED_BLUEPRINTS)
    for name in LABEL_FIELDS:
        writers[name] = _FieldWriter(partial, name, name in RAGGED_LABELS)
    refs: list[tuple[int, int, int]] = []
    total = sum(int(entry.get("samples", entry["frames"])) for entry in manifest["logs"])
    bar = _bar(progress, total)
    try:
        for k, log in enumerate(logs):
            for ref, messages in _samples_of(log, k):
                where = f"{log.path} frame {ref.frame}"
                sample = sample_from_messages(messages, log.blueprints, log.bev_spec, sensors, where)
                for name, writer in writers.items():
                    writer.add(sample[name], where)
                refs.append((ref.log, ref.frame, ref.t_ns))
                bar.advance()
    finally:
        bar.close()
    fields = {name: writer.finish(partial) for name, writer in writers.items()}
    np.save(partial / "refs.npy", np.asarray(refs, dtype=np.int64).reshape(-1, 3))
    (partial / "fields.json").write_text(json.dumps({
        "version": CACHE_VERSION, "count": len(refs), "sensors": list(sensors), "fields": fields,
        "logs": log_stamp(root, manifest)}, indent=1) + "\n")
    final = root / CACHE
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


class CachedSource:
    """The samples of a dataset from its cache (memory maps; one copy per sample)."""

    def __init__(self, root: Path, meta: dict[str, Any], sensors: tuple[str, ...] | None) -> None:
        folder = Path(root) / CACHE
        cached = tuple(meta["sensors"])
        if sensors is not None:
            missing = [name for name in sensors if name not in cached]
            if missing:
                raise DatasetError(f"the cache of {root} lacks sensor {', '.join(map(repr, missing))} (it holds "
                                   f"{', '.join(cached)}); rebuild it with those sensors or load without the cache")
        self.sensors = cached if sensors is None else tuple(sensors)
        rows = np.load(folder / "refs.npy")
        self.refs = [SampleRef(int(a), int(b), int(c)) for a, b, c in rows]
        self._folder, self._meta = folder, meta
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray | None]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps pickle as full arrays: a spawned DataLoader worker maps the files again instead.
        return {**self.__dict__, "_arrays": None}

    def _open(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        if self._arrays is None:
            arrays = {}
            for name in [SENSOR + name for name in self.sensors] + list(LABEL_FIELDS):
                f = self._meta["fields"][name]
                dtype, shape = np.dtype(f["dtype"]), tuple(f["shape"])
                path = self._folder / f["file"]
                count = path.stat().st_size // max(dtype.itemsize * math.prod(shape), 1)
                values = (np.memmap(path, dtype=dtype, mode="r", shape=(count, *shape)) if count
                          else np.zeros((0, *shape), dtype))
                offsets = np.load(self._folder / f["offsets"]) if f["ragged"] else None
                arrays[name] = (values, offsets)
            self._arrays = arrays
        return self._arrays

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """The arrays of sample ``index`` (copies: writable, independent of the file)."""
        out = {}
        for name, (values, offsets) in self._open().items():
            if offsets is not None:
                out[name] = np.array(values[offsets[index]:offsets[index + 1]])
            else:  # a slice, then the row: indexing a memmap by an integer keeps a 1-element axis for scalars
                out[name] = np.array(values[index:index + 1]).reshape(values.shape[1:])
        return out


def cache_meta(root: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The cache's ``fields.json`` if ``root`` has a cache that matches ``manifest``, else None and why not."""
    path = Path(root) / CACHE / "fields.json"
    if not path.is_file():
        return None, "no cache"
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, f"{path} is corrupt"
    if meta.get("version") != CACHE_VERSION:
        return None, f"{path} is cache version {meta.get('version')}, not {CACHE_VERSION}"
    if meta.get("logs") != log_stamp(root, manifest):
        return None, f"the cache at {path.parent} is stale (the logs changed since it was built)"
    return meta, None


class _Bar:
    def __init__(self, progress, task) -> None:
        self.progress, self.task = progress, task

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _bar(show: bool, total: int) -> _Bar:
    """A rich progress bar over samples (or nothing)."""
    if not show:
        return _Bar(None, None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]cache"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress.start()
    return _Bar(progress, progress.add_task("cache", total=total))
