"""What every command module shares: how a user-facing error ends a command."""

from __future__ import annotations

import sys

import typer


def fail(error: Exception) -> None:
    """Print ``error: ...`` (no traceback) and exit with code 2."""
    # Plain print: a terminal-width wrap would split file paths and line numbers.
    print(f"error: {error}", file=sys.stderr)
    raise typer.Exit(2)
