"""Load a data folder into DuckDB as views, without copying tables into pandas.

A data folder holds one file per canonical table: ``<table>.parquet``, ``<table>.csv``
or a folder ``<table>/`` of Parquet parts. Tables become DuckDB views over the files,
so tables larger than memory still load; features and checks then run as SQL or Ibis
expressions over those views.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from features.contract import REQUIRED_TABLES, TABLES

if TYPE_CHECKING:
    from features.data_end import DataEnd
    from features.validate import Violation


class DataError(Exception):
    """Raised when a data folder cannot be read as the canonical tables."""


class ContractError(DataError):
    """The data breaks the contract: every violation, so a command can list them and run nothing."""

    def __init__(self, data_dir: Path, violations: list[Violation]) -> None:
        self.data_dir, self.violations = data_dir, violations
        super().__init__(f"{data_dir}: {len(violations)} contract violation(s); nothing was run: "
                         + "; ".join(str(v) for v in violations[:5]))


@dataclass(frozen=True)
class AsOf:
    """The snapshot day a job runs at, how it was chosen (``why``, for the commands to print) and the newest usage day.

    ``newest`` is None when the day was given (``--as-of``): nothing needed the data end then.
    """

    day: dt.date
    why: str
    newest: dt.date | None = None

    def describe(self, command: str) -> str:
        return f"{command}: as of {self.day} ({self.why})"


def find_table_source(data_dir: Path, table: str) -> tuple[str, str] | None:
    """Return ``(reader, path_glob)`` for a table in ``data_dir``, or None when absent."""
    parquet, csv, folder = data_dir / f"{table}.parquet", data_dir / f"{table}.csv", data_dir / table
    if parquet.is_file():
        return "parquet", str(parquet)
    if folder.is_dir() and any(folder.rglob("*.parquet")):
        return "parquet", str(folder / "**" / "*.parquet")
    if csv.is_file():
        return "csv", str(csv)
    return None


def table_files(data_dir: Path, table: str) -> tuple[str, list[Path]] | None:
    """The reader and every file of ``table`` in ``data_dir`` (the parts of a folder, sorted), or None when absent."""
    found = find_table_source(data_dir, table)
    if found is None:
        return None
    reader, path = found
    return reader, sorted((data_dir / table).rglob("*.parquet")) if path.endswith("**/*.parquet") else [Path(path)]


def read_sql(reader: str, path: str | Path) -> str:
    """The ``SELECT`` that reads a table's file (or glob of Parquet parts) with ``reader`` ('parquet' or 'csv')."""
    if reader == "parquet":
        return f"SELECT * FROM read_parquet({_quote(str(path))}, union_by_name=true)"
    return f"SELECT * FROM read_csv({_quote(str(path))}, header=true, auto_detect=true)"


def is_uri(location: str) -> bool:
    """True for a lake URI (``s3a://``, ``gs://``, ``abfss://``, ``file://``, ...), kept as a string end to end.

    ``--data`` and ``--features`` are strings, not paths: a path would turn ``s3a://lake`` into ``s3a:/lake``.
    """
    return "://" in location and location.split("://", 1)[0].isidentifier()


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


@dataclass
class DataSource:
    """A DuckDB connection with one view per canonical table that was found."""

    con: duckdb.DuckDBPyConnection
    data_dir: Path
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def has(self, table: str) -> bool:
        return table in self.present

    def ibis(self):  # noqa: ANN201 - ibis is imported lazily to keep start-up light
        """An Ibis backend over the same connection (the views are visible to it)."""
        import ibis

        return ibis.duckdb.from_connection(self.con)

    def close(self) -> None:
        self.con.close()

    def tables(self) -> dict:
        """Ibis tables of the canonical tables present (``features.build.tables_from_backend``)."""
        from features.build import tables_from_backend

        return tables_from_backend(self.ibis(), self.present)

    def span(self) -> tuple[dt.date, dt.date]:
        """The first and the newest ``usage_daily`` day; DataError when usage_daily is missing or empty."""
        from features.build import usage_span

        return usage_span(self._with_usage())

    def data_end(self) -> DataEnd:
        """Where the data ends: the newest usage day, and the last complete one (``features.data_end``)."""
        from features.build import data_end_of

        return data_end_of(self._with_usage())

    def _with_usage(self) -> dict:
        if not self.has("usage_daily"):
            raise DataError(f"{self.data_dir}: usage_daily is missing: cannot tell where the data begins or ends")
        return self.tables()

    def as_of(self, as_of: dt.date | None = None) -> AsOf:
        """``as_of`` when given, else the data end (its last complete day), with the reason either way."""
        if as_of is not None:
            return AsOf(as_of, "--as-of")
        end = self.data_end()
        return AsOf(end.day, end.describe(), end.newest)

    def checked(self, as_of: dt.date | None = None, on_as_of: Callable[[AsOf], None] | None = None) -> AsOf:
        """The one open-validate-as-of step of every job: required tables, the as-of (default: the data end), the contract.

        No event may lie after the later of the as-of and the newest usage day. Raises DataError
        naming missing tables, or ContractError listing every violation. ``on_as_of`` hears the
        chosen day before the contract is checked (a command says it even when the data is invalid).
        """
        from features.validate import validate

        require_tables(self)
        chosen = self.as_of(as_of)
        if on_as_of is not None:
            on_as_of(chosen)
        report = validate(self, max(chosen.day, chosen.newest or self.span()[1]))
        if not report.ok:
            raise ContractError(self.data_dir, report.violations)
        return chosen


def open_data(data_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> DataSource:
    """Register every table found in ``data_dir`` as a DuckDB view; missing optional tables are listed as absent.

    Raises DataError when the folder does not exist. Missing required tables are not an
    error here (``validate`` reports them); reading code checks ``present``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist or is not a folder")
    con = con or duckdb.connect()
    source = DataSource(con=con, data_dir=data_dir)
    for name in TABLES:
        found = find_table_source(data_dir, name)
        if found is None:
            source.absent.append(name)
            continue
        reader, path = found
        try:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {read_sql(reader, path)}")
        except duckdb.Error as exc:  # unreadable file: name the table and the file
            raise DataError(f"table {name}: cannot read {path}: {exc}") from exc
        source.present.append(name)
    return source


def require_tables(source: DataSource) -> None:
    """Raise DataError naming every required table the folder lacks."""
    missing = [t for t in REQUIRED_TABLES if not source.has(t)]
    if missing:
        raise DataError(
            f"{source.data_dir}: missing required table(s) {', '.join(missing)} "
            "(expected <table>.parquet, <table>.csv or a folder <table>/ of Parquet parts)"
        )
