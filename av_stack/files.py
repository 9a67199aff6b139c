"""Files replaced in one step: a reader (or a resumed run) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replaced_atomically", "write_bytes_atomically", "write_text_atomically"]


@contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, same extension, so writers that add or check one still
    work) to write to; when the block ends without an error it replaces ``path`` in one step, otherwise it is
    removed and ``path`` is left as it was. The folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through :func:`replaced_atomically`."""
    with replaced_atomically(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`replaced_atomically`."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text)
