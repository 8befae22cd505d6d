"""SQL sink (SQLite, PostgreSQL): upsert current scores and append history in one transaction.

Tables, created on first use:

- ``account_scores``: the current score of every account, keyed by ``account_id``;
- ``account_score_history``: one row per account and run, keyed by (``account_id``, ``run_id``).

A run streams its chunks into a temporary staging table (private to its connection), then
upserts both tables from it in one transaction and commits. Until the commit nobody sees
anything; if the run fails or is killed, nothing is published and the previous scores stay
whole. Publishing is serialised between runs (a PostgreSQL advisory lock, SQLite's write
lock, for which a second run waits rather than failing), so two runs at once on different
snapshots leave the newer one current, whichever finishes last.
The run id is deterministic (snapshot date + model versions), and the upserts only
touch rows whose values changed, so writing the same run twice changes nothing.
Accounts absent from the run (no longer active) leave ``account_scores``, so the
current table is always exactly the newest run; their past rows stay in history.

Scores never go backwards: a run on a snapshot older than the current table's (a delayed
job, a backfill) writes its history rows and leaves ``account_scores`` as it is
(``kept_newer`` says from which snapshot), unless the sink was opened with ``replace_newer``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from serving.sinks.rows import ROW_FIELDS, RunInfo, to_rows
from serving.store.engine import IMMEDIATE, shown, sql_engine
from serving.store.schema import row_columns as _columns

__all__ = ["SqlSink", "SinkSchemaError", "REQUIRED", "PREVIOUS_EXTRA", "read_previous", "stage_rows", "staging_table",
           "upsert_from", "drop_absent"]

# Read with the previous run's scores, so the next run can say what changed.
PREVIOUS_EXTRA = ("as_of", "churn_probability", "concept_contributions")
#: Columns a table holding rows cannot lack: every release wrote them, so their absence means someone dropped
#: them. Any other missing column is added on write (a table made by an earlier release).
REQUIRED = ("account_id", "as_of", "readiness_score", "readiness_band", "scored_at")


class SinkSchemaError(ValueError):
    """A CRM table whose shape the sink cannot use (a dropped column or primary key): names the table and column."""


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``, from the current table's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _records(rows: pd.DataFrame) -> list[dict]:
    """Rows as DB-API parameters: None for nulls, Python dates and datetimes."""
    frame = rows[list(ROW_FIELDS)].copy()
    frame["as_of"] = frame["as_of"].dt.date
    frame["scored_at"] = frame["scored_at"].dt.to_pydatetime()
    records = frame.astype(object).to_dict("records")
    for record in records:
        for key, value in record.items():
            if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                record[key] = None
    return records


class SqlSink:
    """``sqlite:///PATH`` or ``postgresql://...``: the CRM warehouse tables a reverse-ETL tool syncs."""

    def __init__(self, uri: str, *, table_prefix: str = "", replace_newer: bool = False) -> None:
        self.replace_newer = replace_newer
        self.kept_newer: dt.date | None = None
        # the one engine set-up (serving.store.engine): the CRM file is the owner's alone, a second run waits
        self.engine = sql_engine(uri, what="sink", wal=False)
        # what logs and summaries show: a password in the URI never reaches them
        self.uri = shown(self.engine) if self.engine.url.password else uri
        self.metadata = sa.MetaData()
        self.current = sa.Table(f"{table_prefix}account_scores", self.metadata, *_columns(("account_id",)))
        self.history = sa.Table(
            f"{table_prefix}account_score_history", self.metadata, *_columns(("account_id", "run_id"))
        )
        self._staging_name = f"{table_prefix}account_scores_staging"

    def close(self) -> None:
        self.engine.dispose()

    def check_schema(self) -> None:
        """Raise :class:`SinkSchemaError` (one line: table, column, what to do) for a table the sink cannot use:
        a primary key that is not the declared one, or a column every release wrote missing from a table with rows."""
        inspector = sa.inspect(self.engine)
        for table in (self.current, self.history):
            if not inspector.has_table(table.name):
                continue
            declared = [c.name for c in table.primary_key.columns]
            found = inspector.get_pk_constraint(table.name).get("constrained_columns") or []
            if sorted(found) != sorted(declared):
                raise SinkSchemaError(
                    f"CRM table {table.name}: primary key is ({', '.join(found) or 'none'}), expected "
                    f"({', '.join(declared)}); the run's upsert needs it: restore it, or drop the table to have the "
                    "next run create it")
            present = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c for c in REQUIRED if c not in present]
            if missing:
                with self.engine.connect() as conn:
                    rows = conn.execute(sa.select(sa.func.count()).select_from(sa.table(table.name))).scalar()
                if rows:
                    raise SinkSchemaError(
                        f"CRM table {table.name}: column(s) {', '.join(missing)} missing ({rows:,} rows hold scores "
                        "without them); restore the column(s), or drop the table to have the next run create it")

    def create_tables(self) -> None:
        """Create both tables when absent, and add columns a newer schema declares (idempotent)."""
        self.check_schema()
        with self.engine.begin() as conn:
            self.metadata.create_all(conn, checkfirst=True)
            for table in (self.current, self.history):
                self._add_missing_columns(conn, table)

    @staticmethod
    def _add_missing_columns(conn: sa.Connection, table: sa.Table) -> None:
        """A table made by an earlier release gets the row's newer columns (nullable), so it keeps being written."""
        present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')

    def previous_scores(self, before: dt.date | None = None) -> pd.DataFrame | None:
        """Scores of the previous run: the newest run (by ``scored_at``) on a snapshot older than ``before``,
        from the history; without ``before``, the current table. None when there is none."""
        if not sa.inspect(self.engine).has_table(self.current.name):
            return None
        self.check_schema()
        with self.engine.connect() as conn:
            return read_previous(conn, self.current if before is None else self.history, before)

    def read_table(self, which: str = "current") -> pd.DataFrame:
        """Read back a whole table (tests, reports), sorted by its key."""
        table = self.current if which == "current" else self.history
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(table).order_by(*table.primary_key.columns), conn)

    def write(self, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        """Stage the run's rows privately, then publish them in one transaction that holds the sink's write lock.

        Runs are serialised on the publish: PostgreSQL takes a transaction-level advisory lock
        named after the table, SQLite its write lock (``BEGIN IMMEDIATE``, waiting up to the busy
        timeout); so the newer-snapshot check always sees the other run's committed rows, and
        the newest snapshot stays current whichever run finishes last.
        """
        self.create_tables()
        staging = staging_table(self._staging_name)
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                with conn.begin():  # the rows into a temporary table: the main database stays unlocked meanwhile
                    staging.create(conn)
                    written = stage_rows(conn, staging, run, chunks)
                conn.execution_options(**{IMMEDIATE: True})
                try:
                    with conn.begin():
                        self._publish(conn, staging, run)
                finally:
                    with conn.begin():
                        staging.drop(conn, checkfirst=True)
                return written
            with conn.begin():
                staging.create(conn)
                written = stage_rows(conn, staging, run, chunks)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(self.current.name))))
                self._publish(conn, staging, run)
                staging.drop(conn)
        return written

    def _publish(self, conn: sa.Connection, staging: sa.Table, run: RunInfo) -> None:
        """The staged run into the current table (unless it holds a newer snapshot) and the history."""
        self.kept_newer = None if self.replace_newer else self._newer_current(conn, run)
        if self.kept_newer is None:
            upsert_from(conn, staging, self.current, ("account_id",))
        upsert_from(conn, staging, self.history, ("account_id", "run_id"))
        if self.kept_newer is None:
            drop_absent(conn, staging, self.current)
        drop_absent(conn, staging, self.history, run.run_id)

    def _newer_current(self, conn: sa.Connection, run: RunInfo) -> dt.date | None:
        """The current table's snapshot date when it is newer than ``run``'s (read inside the run's transaction)."""
        newest = conn.execute(sa.select(sa.func.max(self.current.c.as_of))).scalar()
        if newest is None:
            return None
        newest = pd.Timestamp(newest).date()
        return newest if newest > run.as_of else None


def staging_table(name: str) -> sa.Table:
    """A temporary table of CRM rows private to its connection (PostgreSQL drops it at commit when made inside one)."""
    return sa.Table(name, sa.MetaData(), *_columns(("account_id",)), prefixes=["TEMPORARY"])


def stage_rows(conn: sa.Connection, staging: sa.Table, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
    """Each chunk's CRM rows into ``staging``; the number of rows."""
    written = 0
    for chunk in chunks:
        rows = to_rows(chunk, run)
        if len(rows):
            conn.execute(staging.insert(), _records(rows))
        written += len(rows)
    return written


def upsert_from(conn: sa.Connection, staging: sa.Table, target: sa.Table, key: tuple[str, ...]) -> None:
    """Insert new keys; update existing ones only where a value differs, so a re-run is a no-op."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    names = list(ROW_FIELDS)
    # WHERE true: SQLite's parser needs it to tell INSERT ... SELECT from an ON CONFLICT clause.
    stmt = insert(target).from_select(names, sa.select(*[staging.c[n] for n in names]).where(sa.true()))
    values = [n for n in names if n not in key]
    # scored_at alone never counts as a change: a re-run of the same scores keeps the first run's time.
    compared = [n for n in values if n != "scored_at"]
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={n: stmt.excluded[n] for n in values},
        where=sa.or_(*[target.c[n].is_distinct_from(stmt.excluded[n]) for n in compared]),
    )
    conn.execute(stmt)


def drop_absent(conn: sa.Connection, staging: sa.Table, table: sa.Table, run_id: str | None = None) -> None:
    """Delete ``table``'s rows (of ``run_id`` when given) whose account the staged run lacks.

    NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN over the unanalysed staging table as a per-row
    subplan once it guesses the ids will not fit in work_mem, quadratic in the accounts (measured:
    minutes for 100,000 wide rows); NOT EXISTS is a hash anti-join.
    """
    absent = ~sa.exists().where(staging.c.account_id == table.c.account_id)
    conn.execute(sa.delete(table).where(absent if run_id is None else sa.and_(table.c.run_id == run_id, absent)))


def read_previous(conn: sa.Connection, table: sa.Table, before: dt.date | None) -> pd.DataFrame | None:
    """From a current table (``before`` None) or a history (the newest run by ``scored_at`` on a snapshot older than
    ``before``): each account's scores the next run says what changed from; None when there is none."""
    names = ["account_id", "readiness_score", "readiness_band", *PREVIOUS_EXTRA]
    if before is None:
        query = sa.select(*[table.c[n] for n in names if n in table.c])
    else:
        newest = sa.select(table.c.run_id).where(table.c.as_of < before).order_by(table.c.scored_at.desc(),
                                                                                  table.c.as_of.desc())
        query = sa.select(*[table.c[n] for n in names if n in table.c]).where(table.c.run_id == newest.limit(1)
                                                                             .scalar_subquery())
    existing = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    if not set(names) <= existing:  # a table written before these columns existed
        query = query.with_only_columns(*[c for c in query.selected_columns if c.name in existing])
    frame = pd.read_sql(query, conn, dtype={"account_id": "string", "readiness_band": "string"})
    return frame if len(frame) else None
