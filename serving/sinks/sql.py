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
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from features.config import private_file
from serving.sinks.rows import ROW_FIELDS, RunInfo, to_rows

_TYPES = {
    "text": sa.Text,
    "date": sa.Date,
    "datetime": lambda: sa.DateTime(timezone=True),
    "probability": sa.Float,
    "points": sa.Float,
    "money": sa.Float,
    "flag": sa.Boolean,
}


# Read with the previous run's scores, so the next run can say what changed.
PREVIOUS_EXTRA = ("as_of", "churn_probability", "concept_contributions")
#: Columns a table holding rows cannot lack: every release wrote them, so their absence means someone dropped
#: them. Any other missing column is added on write (a table made by an earlier release).
REQUIRED = ("account_id", "as_of", "readiness_score", "readiness_band", "scored_at")


class SinkSchemaError(ValueError):
    """A CRM table whose shape the sink cannot use (a dropped column or primary key): names the table and column."""


def engine_url(uri: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URIs (the driver the project installs)."""
    if uri.startswith("postgresql://") or uri.startswith("postgres://"):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def _columns(key: tuple[str, ...]) -> list[sa.Column]:
    return [
        sa.Column(name, _TYPES[kind](), primary_key=name in key, nullable=name not in key)
        for name, kind in ROW_FIELDS.items()
    ]


IMMEDIATE = "expansion_sqlite_immediate"


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``, from the current table's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _sqlite_transactions(engine: sa.Engine) -> None:
    """Make pysqlite transactional for DDL too: emit BEGIN ourselves (the SQLAlchemy-documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 120000")  # a second run waits for the first to publish

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001
        # a publishing transaction takes the write lock first: a deferred one that read before writing would get
        # "database is locked" at once (SQLite never waits to upgrade a read lock), where IMMEDIATE waits its turn
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


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
        self.engine = sa.create_engine(engine_url(uri))
        # what logs and summaries show: a password in the URI never reaches them
        self.uri = self.engine.url.render_as_string(hide_password=True) if self.engine.url.password else uri
        if self.engine.dialect.name == "sqlite":
            _sqlite_transactions(self.engine)
            database = self.engine.url.database
            if database and database != ":memory:":  # the embedded default lives under a home folder
                private_file(Path(database))  # the CRM scores are the owner's alone (0600 under 0700)
        elif self.engine.dialect.name != "postgresql":
            raise ValueError(f"sink {uri!r}: only sqlite and postgresql databases are supported")
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
        inspector = sa.inspect(self.engine)
        if not inspector.has_table(self.current.name):
            return None
        self.check_schema()
        names = ["account_id", "readiness_score", "readiness_band", *PREVIOUS_EXTRA]
        if before is None:
            query = sa.select(*[self.current.c[n] for n in names if n in self.current.c])
        else:
            h = self.history
            newest = sa.select(h.c.run_id).where(h.c.as_of < before).order_by(h.c.scored_at.desc(), h.c.as_of.desc())
            run = newest.limit(1).scalar_subquery()
            query = sa.select(*[h.c[n] for n in names if n in h.c]).where(h.c.run_id == run)
        with self.engine.connect() as conn:
            existing = {c["name"] for c in inspector.get_columns(self.current.name if before is None else self.history.name)}
            if not set(names) <= existing:  # a table written before these columns existed
                query = query.with_only_columns(*[c for c in query.selected_columns if c.name in existing])
            frame = pd.read_sql(query, conn, dtype={"account_id": "string", "readiness_band": "string"})
        return frame if len(frame) else None

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
        staging = self._staging_table()
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                with conn.begin():  # the rows into a temporary table: the main database stays unlocked meanwhile
                    staging.create(conn)
                    written = self._stage(conn, staging, run, chunks)
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
                written = self._stage(conn, staging, run, chunks)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(self.current.name))))
                self._publish(conn, staging, run)
                staging.drop(conn)
        return written

    @staticmethod
    def _stage(conn: sa.Connection, staging: sa.Table, run: RunInfo, chunks: Iterable[pd.DataFrame]) -> int:
        written = 0
        for chunk in chunks:
            rows = to_rows(chunk, run)
            if len(rows):
                conn.execute(staging.insert(), _records(rows))
            written += len(rows)
        return written

    def _publish(self, conn: sa.Connection, staging: sa.Table, run: RunInfo) -> None:
        """The staged run into the current table (unless it holds a newer snapshot) and the history."""
        self.kept_newer = None if self.replace_newer else self._newer_current(conn, run)
        if self.kept_newer is None:
            self._upsert(conn, staging, self.current, ("account_id",))
        self._upsert(conn, staging, self.history, ("account_id", "run_id"))
        # NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN over the unanalysed staging table as a
        # per-row subplan once it guesses the ids will not fit in work_mem, quadratic in the
        # accounts (measured: minutes for 100,000 wide rows); NOT EXISTS is a hash anti-join.
        def absent(table: sa.Table) -> sa.ColumnElement[bool]:
            return ~sa.exists().where(staging.c.account_id == table.c.account_id)

        if self.kept_newer is None:
            conn.execute(sa.delete(self.current).where(absent(self.current)))
        conn.execute(sa.delete(self.history).where(self.history.c.run_id == run.run_id, absent(self.history)))

    def _newer_current(self, conn: sa.Connection, run: RunInfo) -> dt.date | None:
        """The current table's snapshot date when it is newer than ``run``'s (read inside the run's transaction)."""
        newest = conn.execute(sa.select(sa.func.max(self.current.c.as_of))).scalar()
        if newest is None:
            return None
        newest = pd.Timestamp(newest).date()
        return newest if newest > run.as_of else None

    def _staging_table(self) -> sa.Table:
        """A temporary table private to this connection (PostgreSQL also drops it at commit)."""
        return sa.Table(
            self._staging_name,
            sa.MetaData(),
            *_columns(("account_id",)),
            prefixes=["TEMPORARY"],
        )

    def _upsert(self, conn: sa.Connection, staging: sa.Table, target: sa.Table, key: tuple[str, ...]) -> None:
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
