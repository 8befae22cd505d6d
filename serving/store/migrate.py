"""Additive migrations of the product store, and the one-time move of an older home's state out of ``crm.db``.

Migrations only add: a missing table is created, a missing column is added (nullable); nothing
is ever dropped or rewritten. Up to this release the product's state lived in the CRM database
``<home>/crm.db``; a store that holds none of the state tables yet takes a copy of every state
table found there, once, in one transaction (the rows stay in ``crm.db``; nothing is deleted).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from serving.store.engine import IMMEDIATE, sql_engine
from serving.store.schema import STATE_TABLES

#: A transaction-level PostgreSQL advisory lock key: two processes migrate one at a time.
_LOCK = 0x5EED_57A7E


def _locked(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK)))


def add_missing(conn: sa.Connection, metadata: sa.MetaData) -> list[str]:
    """Create missing tables and add missing columns of ``metadata``; returns ``table.column`` of each column added."""
    metadata.create_all(conn, checkfirst=True)
    inspector = sa.inspect(conn)
    added = []
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                added.append(f"{table.name}.{column.name}")
    return added


def migrate(engine: sa.Engine, metadata: sa.MetaData, prefix: str, legacy: Path | None,
            say: Callable[[str], None] | None = None) -> int:
    """Bring the store at ``engine`` up to ``metadata``: first the copy from ``legacy`` (an older home's ``crm.db``)
    when the store holds no state table yet, then the additive changes. One transaction; returns rows copied."""
    say = say or (lambda line: print(line, file=sys.stderr))
    with engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
        _locked(conn)
        copied = 0
        if legacy is not None and not has_state(conn, prefix) and _is_other_file(engine, legacy):
            copied = _adopt(conn, metadata, prefix, legacy, say)
        add_missing(conn, metadata)
    return copied


def has_state(bind: sa.Engine | sa.Connection, prefix: str) -> bool:
    """Whether the store holds any state table yet (an older home's state is moved only into one that holds none)."""
    present = set(sa.inspect(bind).get_table_names())
    return any(f"{prefix}{name}" in present for name in STATE_TABLES)


def _is_other_file(engine: sa.Engine, legacy: Path) -> bool:
    if not legacy.is_file() or legacy.stat().st_size == 0:
        return False
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    return not database or Path(database).resolve() != legacy.resolve()


def _adopt(conn: sa.Connection, metadata: sa.MetaData, prefix: str, legacy: Path, say: Callable[[str], None]) -> int:
    """Copy every state table ``legacy`` holds into the (empty) store, the columns both know."""
    source = sql_engine(f"sqlite:///{legacy}", what="older state file", wal=False)
    try:
        with source.connect() as old:
            inspector = sa.inspect(old)
            found = [name for name in STATE_TABLES if inspector.has_table(name)]
            if not found:
                return 0
            metadata.create_all(conn, checkfirst=True)
            counts, total = [], 0
            for name in found:
                table = metadata.tables[f"{prefix}{name}"]
                have = {c["name"] for c in inspector.get_columns(name)}
                columns = [c.name for c in table.columns if c.name in have]
                typed = [sa.column(c, table.c[c].type) for c in columns]  # dates and times read back as such
                rows = [dict(r._mapping) for r in old.execute(sa.select(*typed).select_from(sa.table(name)))]
                if rows:
                    conn.execute(table.insert(), rows)
                counts.append(f"{name} {len(rows):,}")
                total += len(rows)
                if conn.dialect.name == "postgresql" and "id" in table.c and table.c.id.autoincrement is True:
                    conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                                         f"COALESCE((SELECT MAX(id) FROM \"{table.name}\"), 0) + 1, false)")
    finally:
        source.dispose()
    say(f"store: moved this home's state from {legacy} into the product store, once ({'; '.join(counts)} rows); "
        f"{legacy} keeps its copy and the CRM scores")
    return total
