"""The one engine factory for SQL: SQLite or PostgreSQL (psycopg 3), set up the same way for every table.

SQLite: the file is the owner's alone (0600 under a 0700 folder); every connection waits for
a writer (``busy_timeout``) rather than failing; transactions are real for DDL too (BEGIN is
emitted by us, the SQLAlchemy-documented recipe), and a connection opened with the
``IMMEDIATE`` execution option takes the write lock at BEGIN (a deferred transaction that read
before writing would get "database is locked" at once: SQLite never waits to upgrade a read
lock). The product store also runs in WAL mode, so the pages read while a job writes.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from features.config import private_file

#: Execution option: begin the SQLite transaction with ``BEGIN IMMEDIATE`` (take the write lock first).
IMMEDIATE = "expansion_sqlite_immediate"
BUSY_TIMEOUT_MS = 120_000  # a second writer waits this long for the first to commit


def engine_url(uri: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URIs (the driver the project installs)."""
    if uri.startswith("postgresql://") or uri.startswith("postgres://"):
        return "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri


def sql_engine(uri: str, *, what: str = "store", wal: bool = True) -> sa.Engine:
    """An engine on ``sqlite:///PATH`` or ``postgresql://...``; ValueError naming ``what`` for any other database.

    ``wal`` puts a SQLite file in write-ahead-log mode (readers never wait for the writer); the CRM
    sink keeps SQLite's default journal, so a reverse-ETL tool reading the file needs nothing more.
    """
    try:
        engine = sa.create_engine(engine_url(uri))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ValueError(f"{what} {uri!r}: not a database URI ({exc})") from exc
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            private_file(Path(database))
        _sqlite_transactions(engine, wal=wal and bool(database) and database != ":memory:")
    elif engine.dialect.name != "postgresql":
        engine.dispose()
        raise ValueError(f"{what} {uri!r}: only sqlite and postgresql databases are supported")
    return engine


def _sqlite_transactions(engine: sa.Engine, *, wal: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if wal:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:  # noqa: ANN001
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def shown(engine: sa.Engine) -> str:
    """The engine's URI as logs and summaries may show it (a password never reaches them)."""
    return engine.url.render_as_string(hide_password=True)
