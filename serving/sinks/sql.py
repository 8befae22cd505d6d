"""SQL sink (SQLite, PostgreSQL): upsert current scores and append history in one transaction.

Tables, created on first use:

- ``account_scores``: the current score of every account, keyed by ``account_id``;
- ``account_score_history``: one row per account and run, keyed by (``account_id``, ``run_id``).

A run streams its chunks into a temporary staging table inside one transaction, then
upserts both tables from it and commits. Until the commit nobody sees anything; if the
run fails or is killed, the transaction rolls back and the previous scores stay whole.
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
import math
from pathlib import Path
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

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


def _sqlite_transactions(engine: sa.Engine) -> None:
    """Make pysqlite transactional for DDL too: emit BEGIN ourselves (the SQLAlchemy-documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 30000")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql("BEGIN")


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
                Path(database).parent.mkdir(parents=True, exist_ok=True)
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

    def create_tables(self) -> None:
        """Create both tables when absent, and add columns a newer schema declares (idempotent)."""
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
        names = ["account_id", "readiness_score", "readiness_band", *PREVIOUS_EXTRA]
        if before is None:
            query = sa.select(*[self.current.c[n] for n in names if n in self.current.c])
        else:
            h = self.history
            newest = sa.select(h.c.run_id).where(h.c.as_of < before).order_by(h.c.scored_at.desc(), h.c.as_of.desc())
            run = newest.limit(1).scalar_subquery()
            query = sa.select(*[h.c[n] for n in names if n in h.c]).where(h.c.run_id == run)
        with self.engine.connect() as conn:
            existing = {c["name"] for c in inspector.get_columns(self.current.name)}
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
        self.create_tables()
        staging = self._staging_table()
        written = 0
        with self.engine.begin() as conn:
            staging.create(conn)
            for chunk in chunks:
                rows = to_rows(chunk, run)
                if len(rows):
                    conn.execute(staging.insert(), _records(rows))
                written += len(rows)
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
            staging.drop(conn)
        return written

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
