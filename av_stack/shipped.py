"""Files the repository ships (checkpoints), found wherever a run starts."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def shipped_file(path: str | Path) -> Path:
    """``path`` as given, or relative to the repository when it is relative and not found from here (a shipped
    checkpoint such as ``checkpoints/perception/bev.pt``, from any working directory)."""
    found = Path(path)
    if not found.is_absolute() and not found.exists():
        found = REPOSITORY / found
    return found
