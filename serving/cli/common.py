"""Helpers shared by CLI commands: settings, dates, console output, and the one way a command fails."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from features.config import Settings, get_settings

# Off a terminal (logs, CI, pipes) rich would wrap tables at 80 columns; reports read better wide.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

#: Exit codes, the same for every command (docs/operations.md says what to do for each):
#: 0 done; 1 an unexpected error (the traceback is in the log); 2 bad input (data, files,
#: options); 3 the model registry (unreachable, no such version) or a missing key;
#: 4 ``retrain`` ran but the gate kept the current models (no new champion); 5 ``alerts``
#: could not deliver every message that was due (kept for the next run, or parked), or
#: another alerts run holds the lease.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INVALID_DATA = 2
EXIT_REGISTRY = 3
EXIT_KEPT = 4
EXIT_UNDELIVERED = 5


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


def data_end(source) -> dt.date:  # noqa: ANN001 - features.io.DataSource, imported lazily
    """The newest ``usage_daily`` date: nothing in the data may lie after it (the bound ``validate`` checks)."""
    return data_end_info(source).newest


def data_end_info(source):  # noqa: ANN001, ANN201 - a DataSource -> features.data_end.DataEnd, imported lazily
    """Where the data ends: the newest usage day and the last complete one (the default ``--as-of`` of every command)."""
    from features.build import data_end_of, tables_from_backend
    from features.io import DataError

    try:
        return data_end_of(tables_from_backend(source.ibis(), source.present))
    except (DataError, ValueError) as exc:
        fail(str(exc))


def as_of_or_data_end(value: str | None, source, *, command: str) -> dt.date:  # noqa: ANN001 - a DataSource
    """``--as-of`` when given, else the data end (its last complete day); either way the command says which (on stderr)."""
    if value is not None:
        chosen = parse_date(value)
        err_console.print(f"{command}: as of {chosen} (--as-of)", highlight=False)
        return chosen
    end = data_end_info(source)
    err_console.print(f"{command}: as of {end.day} ({end.describe()})", highlight=False)
    return end.day


def is_uri(location: str) -> bool:
    """True for a lake URI (``s3a://``, ``gs://``, ``abfss://``, ``file://``, ...), kept as a string end to end.

    ``--data`` and ``--features`` are strings, not paths: a path would turn ``s3a://lake`` into ``s3a:/lake``.
    """
    return "://" in location and location.split("://", 1)[0].isidentifier()


def local_path(location: str | Path, option: str) -> Path:
    """A local folder or file: a plain path or a ``file://`` URI; a remote lake URI needs ``--engine spark``."""
    location = str(location)
    if location.startswith("file://"):
        return Path(location.removeprefix("file://"))
    if is_uri(location):
        fail(f"{option} {location}: here a local folder or file:// URI is read; a remote lake URI is read by Spark "
             "(the spark extra): `features --engine spark`, `score --engine spark`, `train`/`retrain --features URI`")
    return Path(location)


def is_interactive() -> bool:
    """True when progress bars make sense (a terminal), False for logs and CI."""
    return sys.stderr.isatty()


def open_source(data: Path):  # noqa: ANN201 - features.io.DataSource, imported lazily
    """The data folder with its required tables, or exit 2 naming what is missing."""
    from features.io import DataError, open_data, require_tables

    try:
        source = open_data(data)
        require_tables(source)
    except DataError as exc:
        fail(str(exc))
    return source
