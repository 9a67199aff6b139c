"""An MCAP file of Foxglove protobuf messages and JSON messages (:class:`LogWriter`).

Protobuf channels carry Foxglove's well-known schemas (their file descriptor
sets are the schemas, as Foxglove expects); JSON channels carry the project's
own messages, each with a JSON schema named ``avsim.<Name>``. JSON cannot
hold NaN or infinity: :func:`jsonable` writes them as ``null``.

Chunks are closed every ``chunk_size`` bytes (:data:`CHUNK_SIZE`), so a process killed without
:meth:`LogWriter.close` loses at most the last chunk; the reader
(:mod:`av_stack.logs.reader`) recovers every message before the cut.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from mcap.writer import CompressionType, Writer
from mcap_protobuf.schema import build_file_descriptor_set

PROFILE = "avsim"
LOG_FORMAT_VERSION = 1
"""Bumped when a topic's meaning changes; the reader refuses logs of a newer version."""

CHUNK_SIZE = 256 * 1024
"""Bytes of messages per MCAP chunk: what a killed writer can lose at most (one or two sensor frames)."""
COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4, "none": CompressionType.NONE}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: arrays as lists, dataclasses as dicts, enums by name, NaN/inf as None."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return jsonable(value.tolist())
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def nanoseconds(t_s: float) -> int:
    """Simulation time [s] as an MCAP log time [ns]."""
    return int(round(t_s * 1e9))


class LogWriter:
    """Writes one MCAP file; channels are registered on first use. A context manager; :meth:`close` is
    idempotent and finishes the file (summary, indexes) so it opens in Foxglove and seeks fast."""

    def __init__(self, path: str | Path, compression: str = "zstd", chunk_size: int = CHUNK_SIZE) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"log compression {compression!r} is not one of {sorted(COMPRESSIONS)}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file, chunk_size=chunk_size, compression=COMPRESSIONS[compression])
        self._writer.start(profile=PROFILE, library=f"avsim log format {LOG_FORMAT_VERSION}")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._sequence: dict[int, int] = {}
        self.messages = 0
        self.closed = False

    # -------------------------------------------------------------- channels
    def _channel(self, topic: str, schema_name: str, encoding: str, schema_encoding: str, schema_data) -> int:
        channel = self._channels.get(topic)
        if channel is not None:
            return channel
        schema = self._schemas.get(schema_name)
        if schema is None:
            schema = self._writer.register_schema(schema_name, schema_encoding, schema_data())
            self._schemas[schema_name] = schema
        channel = self._writer.register_channel(topic, encoding, schema)
        self._channels[topic] = channel
        return channel

    def _add(self, channel: int, t_s: float, data: bytes) -> None:
        sequence = self._sequence.get(channel, 0)
        self._sequence[channel] = sequence + 1
        stamp = nanoseconds(t_s)
        self._writer.add_message(channel, log_time=stamp, data=data, publish_time=stamp, sequence=sequence)
        self.messages += 1

    # -------------------------------------------------------------- messages
    def write_proto(self, topic: str, message, t_s: float) -> None:
        """A protobuf message (a Foxglove schema) on ``topic`` at simulation time ``t_s``."""
        descriptor = message.DESCRIPTOR
        channel = self._channel(topic, descriptor.full_name, "protobuf", "protobuf",
                                lambda: build_file_descriptor_set(type(message)).SerializeToString())
        self._add(channel, t_s, message.SerializeToString())

    def write_json(self, topic: str, schema_name: str, payload: Any, t_s: float) -> None:
        """A JSON message (schema ``avsim.<schema_name>``) on ``topic`` at simulation time ``t_s``."""
        name = f"avsim.{schema_name}"
        channel = self._channel(topic, name, "json", "jsonschema",
                                lambda: json.dumps({"title": name, "type": "object"}).encode())
        self._add(channel, t_s, json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False).encode())

    def attach(self, name: str, media_type: str, data: bytes | str, t_s: float = 0.0) -> None:
        """A file stored in the log (the run's config, the map's OpenDRIVE text)."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._writer.add_attachment(create_time=time.time_ns(), log_time=nanoseconds(t_s), name=name,
                                    media_type=media_type, data=payload)

    def metadata(self, name: str, values: dict[str, Any]) -> None:
        """A metadata record: string values (non-strings are stored as JSON)."""
        self._writer.add_metadata(name, {k: v if isinstance(v, str) else json.dumps(jsonable(v))
                                         for k, v in values.items()})

    # -------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.finish()
        finally:
            self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
