"""How the command line reports errors: one red line on stderr and exit code 2 (shared by every command)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


def error_text(exc: BaseException) -> str:
    """One line for an error: its message (a KeyError's without quotes), or its type if it has none."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def key_values(pairs: list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs of a repeatable CLI ``option`` as a dict of YAML-parsed values (one clear error for a
    pair without ``=``)."""
    import yaml

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"{option} takes KEY=VALUE, not {pair!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values
