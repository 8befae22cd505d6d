"""Read a connector's raw tables from a folder of CSV/Parquet files or from a database, one way for both.

A source's tables are found by name: ``customer.csv``, ``customer_data.csv``,
``sf_account_data.csv`` or a folder of Parquet parts in a folder; a table of the same
name in a database schema reached through Ibis (``duckdb:///path.duckdb``,
``postgresql://user@host/db``; Snowflake and BigQuery URIs the same way). Every table
arrives as a pandas frame; CSV columns arrive as text and are typed by the importer,
so ``TRUE``/``true`` booleans and mixed timestamp formats are parsed in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from features.importers import layout as layouts
from features.importers.errors import ImportFailed, ImportProblem, Ledger, Problems
from features.importers.parse import require_columns

_AFFIXES = re.compile(r"(^(sf|hs|stripe|hubspot|salesforce|segment|amplitude|mixpanel|growthcues|airbyte_raw)_)|(_data$)")
#: tables a source cannot do without: an empty one (a header-only file) is an error, not an empty import.
REQUIRED = {"stripe": ("customer", "subscription_item"), "salesforce": ("account",), "hubspot": ("company",),
            "segment": ("tracks",), "rudderstack": ("tracks",), "amplitude": ("event",), "mixpanel": ("event",)}


def normalise_name(name: str) -> str:
    """A table name as the importers ask for it: snake_case (``OpportunityHistory`` -> ``opportunity_history``),
    connector prefixes and ``_data`` suffixes dropped."""
    base = layouts.snake(name.lstrip("_")) if name.startswith("_airbyte_raw_") else layouts.snake(name)
    while True:
        stripped = _AFFIXES.sub("", base)
        if stripped == base:
            return base
        base = stripped


def _quote(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


@dataclass
class RawSource:
    """The raw tables of one connector: names found and a way to read each as a frame."""

    source: str
    location: str
    tables: dict[str, str] = field(default_factory=dict)  # normalised name -> path or table name
    backend: object | None = None  # an Ibis backend for databases, None for folders
    schema: str | None = None
    duck: duckdb.DuckDBPyConnection | None = None  # a DuckDB file, read directly (read only)
    layout: str = "fivetran"
    columns_map: dict = field(default_factory=dict)  # canonical table -> {canonical column: raw column or JSON path}
    ledger: Ledger | None = None

    def has(self, name: str) -> bool:
        return name in self.tables

    def required(self, name: str, problems: Problems, columns: tuple[str, ...] = (), *,
                 shown: str | None = None) -> pd.DataFrame | None:
        """The table ``name`` when it and its ``columns`` are there; else None, with what is missing recorded
        (a missing table under ``shown``, the canonical name the user knows, default ``name``)."""
        if not self.has(name):
            problems.add(shown or name, "*", "required table is missing")
            return None
        frame = self.read(name)
        return frame if require_columns(problems, name, frame, columns) else None

    def relation(self, name: str, con: duckdb.DuckDBPyConnection) -> dict[str, str]:
        """Make ``name`` a view of the same name on ``con`` (files read in place; a database table copied once
        through Arrow); return its lower-case column names and DuckDB types."""
        if name not in self.tables:
            raise ImportFailed([ImportProblem(self.source, name, "*", "required table is missing")])
        where = self.tables[name]
        if self.duck is not None:
            con.register(f"{name}__arrow", self._duck_arrow(where))
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "{name}__arrow"')
        elif self.backend is None:
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM {_reader_sql(where)}')
        else:
            arrow = self.backend.table(where, database=self.schema).to_pyarrow()  # type: ignore[attr-defined]
            con.register(f"{name}__arrow", arrow)
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM "{name}__arrow"')
        described = con.execute(f'DESCRIBE "{name}"').fetchall()
        renames = layouts.event_renames(self.source, [str(row[0]).lower() for row in described])
        if renames:  # dlt's "__" and the like, as ``shape`` renames them
            con.execute(f'ALTER VIEW "{name}" RENAME TO "{name}__landed"')
            cols = ", ".join(f'"{row[0]}" AS "{renames.get(str(row[0]).lower(), row[0])}"' for row in described)
            con.execute(f'CREATE OR REPLACE VIEW "{name}" AS SELECT {cols} FROM "{name}__landed"')
            described = con.execute(f'DESCRIBE "{name}"').fetchall()
        return {str(row[0]).lower(): str(row[1]) for row in described}

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The table ``name`` as a frame with lower-case column names (all of them, or ``columns`` when given)."""
        if name not in self.tables:
            raise ImportFailed([ImportProblem(self.source, name, "*", "required table is missing")])
        where = self.tables[name]
        try:
            if self.duck is not None:
                frame = self._duck_arrow(where).to_pandas()
            elif self.backend is None:
                frame = _read_file(where)
            else:
                frame = self.backend.table(where, database=self.schema).to_pandas()  # type: ignore[attr-defined]
        except (duckdb.Error, OSError, ValueError) as exc:
            lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            first = " / ".join(lines[:3]) if lines else type(exc).__name__
            raise ImportFailed([ImportProblem(self.source, name, "*", f"cannot read {where}: {first}")]) from exc
        if frame.empty and name in REQUIRED.get(self.source, ()):
            raise ImportFailed([ImportProblem(self.source, name, "*", f"no rows in {where} (a required table: "
                                              "only a header, or an empty export)")])
        frame = layouts.shape(self.source, name, frame, self.columns_map.get(name), self.ledger)
        if "dlt_parent_id" in frame and "parent_id" not in frame:
            frame["parent_id"] = frame["dlt_parent_id"].map(self._dlt_parent_ids(where))
        if "dlt_id" in frame and self.source in layouts.EVENT_SOURCES:
            frame = self._dlt_fold_lists(where, frame)
        if columns is not None:
            frame = frame[[c for c in columns if c in frame.columns]]
        return frame


    def _dlt_parent_ids(self, where: str) -> dict:
        """dlt's child table ``a__b`` links its rows to ``a``'s by ``_dlt_parent_id``: the parent's dlt id -> its ``id``."""
        stem = Path(str(where)).name.split(".")[0].rsplit("__", 1)[0]
        parent = next((k for k, v in self.tables.items() if Path(str(v)).name.split(".")[0] == stem), None)
        if parent is None:
            return {}
        p = self.read(parent)
        if "dlt_id" not in p or "id" not in p:
            return {}
        return dict(zip(p["dlt_id"], p["id"]))

    def _dlt_fold_lists(self, where: str, frame: pd.DataFrame) -> pd.DataFrame:
        """dlt's lists of plain values in child tables (``events__groups__company``: ``value``, ``_dlt_parent_id``)
        folded back into the parent row as the JSON the readers ask for (``groups`` = ``{"company": [...]}``)."""
        import json

        stem = Path(str(where)).name.split(".")[0]
        nested: dict[str, dict] = {}
        for name, path in self.tables.items():
            child = Path(str(path)).name.split(".")[0]
            if not child.startswith(stem + "__"):
                continue
            rows = self.read(name)
            if "value" not in rows or "dlt_parent_id" not in rows:
                continue
            keys = child[len(stem) + 2:].split("__")
            for parent, values in rows.groupby("dlt_parent_id", sort=False)["value"]:
                listed = [str(v) for v in values]
                if len(keys) == 1:
                    nested.setdefault(keys[0], {})[parent] = listed
                    continue
                node = nested.setdefault(keys[0], {}).setdefault(parent, {})
                for key in keys[1:-1]:
                    node = node.setdefault(key, {})
                node[keys[-1]] = listed
        for column, by_parent in nested.items():
            if column not in frame:
                frame[column] = frame["dlt_id"].map(lambda i, b=by_parent: json.dumps(b[i]) if i in b else None)
        return frame

    def _duck_arrow(self, table: str):  # noqa: ANN202 - a pyarrow Table
        return self.duck.sql(f'SELECT * FROM "{self.schema}"."{table}"').fetch_arrow_table()  # type: ignore[union-attr]


def _read_file(path: str) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.sql(f"SELECT * FROM {_reader_sql(path)}").fetch_arrow_table().to_pandas()
    finally:
        con.close()


def _folder_tables(folder: Path, source: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in (".csv", ".parquet", ".jsonl"):
            found.setdefault(layouts.table_name(source, normalise_name(entry.stem)), str(entry))
        elif entry.is_dir() and any(entry.rglob("*.parquet")):
            found.setdefault(layouts.table_name(source, normalise_name(entry.name)), str(entry / "**" / "*.parquet"))
    return found


def _columns_of(raw: RawSource) -> list[str]:
    """Column names of every table (headers and schemas only), for detecting the layout."""
    out: list[str] = []
    con = duckdb.connect()
    try:
        for where in raw.tables.values():
            try:
                if raw.duck is not None:
                    rows = raw.duck.execute(f'DESCRIBE "{raw.schema}"."{where}"').fetchall()
                elif raw.backend is None:
                    rows = con.execute(f"DESCRIBE SELECT * FROM {_reader_sql(where)} LIMIT 0").fetchall()
                else:
                    rows = [(c,) for c in raw.backend.table(where, database=raw.schema).columns]  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - an unreadable table is reported when it is read
                continue
            out += [str(r[0]) for r in rows]
    finally:
        con.close()
    return out


def _csv_header(path: str) -> tuple[str, list[str]]:
    """The delimiter (comma, semicolon or tab, whichever the header has most of) and the header's column names."""
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        first = f.readline()
    delim = max((",", ";", "\t"), key=first.count)
    names = next(csv.reader([first], delimiter=delim), [])
    return delim, [n.strip() for n in names]


def _reader_sql(path: str) -> str:
    if path.endswith(".csv"):
        delim, names = _csv_header(path)
        if not names or names == [""]:
            return f"read_csv({_quote(path)}, header=true, all_varchar=true)"
        columns = ", ".join(f"{_quote(n)}: 'VARCHAR'" for n in names)
        # the header fixes the columns: a row cut short or an unterminated quote is an error naming its line
        return (f"read_csv({_quote(path)}, header=true, auto_detect=false, delim={_quote(delim)}, quote='\"', escape='\"', "
                f"columns={{{columns}}})")
    if path.endswith(".jsonl"):
        return f"read_json({_quote(path)}, format='newline_delimited', records=true, maximum_depth=1)"
    return f"read_parquet({_quote(path)}, union_by_name=true)"


def open_raw(source: str, location: str | Path, schema: str | None = None, settings: dict | None = None,
             layout: str | None = None) -> RawSource:
    """The raw tables of ``source`` at ``location``: a folder (or its ``source/`` subfolder), or a database URI,
    in the connector layout detected from them (or ``layout``); ``settings`` (the source's map section) may rename
    tables (``tables``) and columns (``columns``).

    For a database, ``schema`` names the schema the connector wrote (default: the source's name,
    as Fivetran and Airbyte name it; ``main``/``public`` when that schema does not exist).
    """
    raw = _open(source, location, schema)
    settings = settings or {}
    for canonical, landed in settings.get("tables", {}).items():
        hit = next((k for k, v in raw.tables.items() if k == normalise_name(landed) or Path(str(v)).stem == landed
                    or str(v) == landed), None)
        if hit is None:
            raise ImportFailed([ImportProblem(source, canonical, "*", f"table named by [{source}.tables] {canonical} = "
                                              f"\"{landed}\" does not exist (found: {', '.join(sorted(raw.tables))})")])
        raw.tables[canonical] = raw.tables.pop(hit)
    raw.columns_map = {k: dict(v) for k, v in settings.get("columns", {}).items()}
    if layout is not None and layout not in layouts.LAYOUTS:
        raise ImportFailed([ImportProblem(source, "*", "*", f"unknown layout {layout} (known: {', '.join(layouts.LAYOUTS)})")])
    raw.layout = layout or layouts.detect(_columns_of(raw), [Path(str(v)).name.split(".")[0] for v in raw.tables.values()])
    raw.ledger = Ledger(source)
    return raw


def _open(source: str, location: str | Path, schema: str | None) -> RawSource:
    text = str(location)
    if "://" not in text:
        folder = Path(text)
        if (folder / source).is_dir():
            folder = folder / source
        if not folder.is_dir():
            raise ImportFailed([ImportProblem(source, "*", "*", f"folder {folder} does not exist")])
        return RawSource(source, str(folder), _folder_tables(folder, source))
    if text.startswith("duckdb://"):
        return _open_duckdb_file(source, text, schema)
    import ibis

    text = re.sub(r"^postgresql(\+\w+)?://", "postgres://", text)  # SQLAlchemy spellings of the same URI
    try:
        backend = ibis.connect(text)
    except Exception as exc:  # noqa: BLE001 - any driver error: name the URI's scheme, never its credentials
        raise ImportFailed([ImportProblem(source, "*", "*", f"cannot connect to {text.split('://')[0]} database: {exc}")]) from exc
    chosen = schema
    if chosen is None:
        try:
            names = backend.list_tables(database=source)
            chosen = source if names else None
        except Exception:  # noqa: BLE001 - the schema does not exist on this backend
            chosen = None
    names = backend.list_tables(database=chosen) if chosen else backend.list_tables()
    tables: dict[str, str] = {}
    for name in sorted(names):
        tables.setdefault(layouts.table_name(source, normalise_name(name)), name)
    return RawSource(source, text.split("@")[-1], tables, backend, chosen)


def _open_duckdb_file(source: str, uri: str, schema: str | None) -> RawSource:
    """A DuckDB file, opened read only (DuckDB directly: the same tables Ibis would give)."""
    path = uri.removeprefix("duckdb://")
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        raise ImportFailed([ImportProblem(source, "*", "*", f"cannot open DuckDB file {path}: {exc}")]) from exc
    rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
    schemas = {s for s, _ in rows}
    chosen = schema or (source if source in schemas else "main")
    tables: dict[str, str] = {}
    for s, name in sorted(rows):
        if s == chosen:
            tables.setdefault(layouts.table_name(source, normalise_name(name)), name)
    return RawSource(source, path, tables, None, chosen, con)
