"""Helpers shared by CLI commands: settings, dates, console output, and the one way a command fails."""

from __future__ import annotations

import datetime as dt
import sys
from typing import NoReturn

import typer
from rich.console import Console

from features.config import Settings, get_settings

# Off a terminal (logs, CI, pipes) rich would wrap tables at 80 columns; reports read better wide.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

#: Exit codes: 2 for bad input (data, files, options), 3 for the model registry and missing keys.
EXIT_INVALID_DATA = 2
EXIT_REGISTRY = 3


def fail(message: str, code: int = EXIT_INVALID_DATA) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (the one failure path of every command)."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings for this command, read once from the environment."""
    return get_settings()


def parse_date(value: str | None, *, default_today: bool = True) -> dt.date | None:
    """Parse an ISO date given on the command line; entry points are the only place that reads the clock."""
    if value is None:
        return dt.date.today() if default_today else None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"{value!r} is not a date (expected YYYY-MM-DD)")


def is_interactive() -> bool:
    """True when progress bars make sense (a terminal), False for logs and CI."""
    return sys.stderr.isatty()
