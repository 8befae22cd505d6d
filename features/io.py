"""Load a data folder into DuckDB as views, without copying tables into pandas.

A data folder holds one file per canonical table: ``<table>.parquet``, ``<table>.csv``
or a folder ``<table>/`` of Parquet parts. Tables become DuckDB views over the files,
so tables larger than memory still load; features and checks then run as SQL or Ibis
expressions over those views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from features.contract import REQUIRED_TABLES, TABLES


class DataError(Exception):
    """Raised when a data folder cannot be read as the canonical tables."""


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
        if reader == "parquet":
            sql = f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({_quote(path)}, union_by_name=true)"
        else:
            sql = f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_csv({_quote(path)}, header=true, auto_detect=true)"
        try:
            con.execute(sql)
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
