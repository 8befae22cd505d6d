"""Helpers shared by CLI commands: settings, dates, console output, and the one way a command fails."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from features.config import Settings, get_settings

# the exit codes, the same for every command, are declared with the jobs' errors (re-exported here for the commands)
from serving.jobs.errors import (  # noqa: F401
    EXIT_ERROR,
    EXIT_INVALID_DATA,
    EXIT_KEPT,
    EXIT_OK,
    EXIT_REGISTRY,
    EXIT_UNDELIVERED,
    JobError,
)

# Off a terminal (logs, CI, pipes) rich would wrap tables at 80 columns; reports read better wide.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

def fail(message: str, code: int = EXIT_INVALID_DATA) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (the one failure path of every command)."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


#: The option of every job that rebuilds past month ends: recompute the stored feature snapshots instead of reusing them.
RebuildSnapshots = Annotated[bool, typer.Option(
    "--rebuild-snapshots", help="Recompute every month end's features instead of reusing the stored snapshots "
    "(EXPANSION_REBUILD_SNAPSHOTS), and store them anew.")]


def settings(rebuild_snapshots: bool = False) -> Settings:
    """Settings for this command, read once from the environment; ``--rebuild-snapshots`` wins over the environment when given."""
    return get_settings(**({"rebuild_snapshots": True} if rebuild_snapshots else {}))


def parse_date(value: str | None, *, default_today: bool = True) -> dt.date | None:
    """Parse an ISO date given on the command line; entry points are the only place that reads the clock."""
    if value is None:
        return dt.date.today() if default_today else None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"{value!r} is not a date (expected YYYY-MM-DD)")


def say(message: str) -> None:
    """How a job's lines reach the console: on stderr, as they happen (the ``say`` of ``serving.jobs``)."""
    err_console.print(message, highlight=False)


def failed(exc: JobError) -> NoReturn:
    """A job's typed error as the command's failure: the message and its exit code; a contract breach lists every violation."""
    from features.io import ContractError

    if isinstance(exc.__cause__, ContractError):
        invalid_data(exc.__cause__)
    fail(str(exc), exc.exit_code)


def invalid_data(exc) -> NoReturn:  # noqa: ANN001 - features.io.ContractError
    """Exit 2 listing every violation of the contract, with a few offending rows each; nothing was run."""
    err_console.print(f"[red]invalid data:[/red] {len(exc.violations)} violation(s) in {exc.data_dir}; nothing was run")
    print_violations(exc.violations)
    raise typer.Exit(EXIT_INVALID_DATA)


def print_violations(violations: list) -> None:
    """Each violation of the contract on stderr, with a few of its offending rows."""
    for v in violations:
        err_console.print(f"- {v}")
        for row in v.examples:
            err_console.print(f"    {row}")


@contextmanager
def job_errors() -> Iterator[None]:
    """Run a job; its typed error becomes the command's failure (the one mapping of errors to exit codes)."""
    try:
        yield
    except JobError as exc:
        failed(exc)


def finish(problem: JobError | None) -> None:
    """End a command whose job did its work but carries an error (a fallback model, an undelivered message)."""
    if problem is not None:
        failed(problem)


def checked(source, value: str | None, *, command: str) -> dt.date:  # noqa: ANN001 - a DataSource
    """``DataSource.checked``: the as-of (said; default the data end), then the contract; exit 2 listing every violation."""
    from features.io import ContractError, DataError

    try:
        return source.checked(parse_date(value, default_today=False), on_as_of=lambda c: say(c.describe(command))).day
    except ContractError as exc:
        invalid_data(exc)
    except (DataError, ValueError) as exc:
        fail(str(exc))


def is_uri(location: str) -> bool:
    """``features.io.is_uri``, imported when asked so that ``expansion --help`` does not load DuckDB."""
    from features.io import is_uri as lake_uri

    return lake_uri(location)


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


def open_source(data: str | Path, option: str = "--data"):  # noqa: ANN201 - features.io.DataSource, imported lazily
    """The data folder (a path or file:// URI) with its required tables, or exit 2 naming what is missing."""
    from features.io import DataError, open_data, require_tables

    try:
        source = open_data(local_path(data, option))
        require_tables(source)
    except DataError as exc:
        fail(str(exc))
    return source
