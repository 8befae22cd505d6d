"""Play assignments in the same SQL store as the play log (SQLite or PostgreSQL, ``settings.crm_uri``).

``play_assignments``: one row per (account, play, episode start): the arm (recommend or
hold_out), the episode's end, the share and seed it was drawn with, and when. Rows are only
ever inserted: a row that exists is never re-drawn or changed, and two replicas writing the
same draw leave one row (the draw is a pure hash, so they agree). The table is declared in
:func:`declare_tables` alone, so it can move with the other product tables.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from features.play_assignment import Assignment
from serving.sinks.sql import SqlSink

COLUMNS = ("account_id", "play", "episode_start", "episode_end", "arm", "share", "seed")


def declare_tables(metadata: sa.MetaData, table_prefix: str = "") -> dict[str, sa.Table]:
    """Every table the play measurement owns (today: the assignments)."""
    assignments = sa.Table(
        f"{table_prefix}play_assignments", metadata,
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("play", sa.Text, primary_key=True),
        sa.Column("episode_start", sa.Date, primary_key=True),
        sa.Column("episode_end", sa.Date, nullable=False, index=True),
        sa.Column("arm", sa.Text, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    return {"assignments": assignments}


class PlayStore:
    """Reads and appends play assignments in the database at ``uri``."""

    def __init__(self, uri: str, *, table_prefix: str = "") -> None:
        self.sink = SqlSink(uri, table_prefix=table_prefix)  # the same engine set-up as the CRM and play-log tables
        self.engine = self.sink.engine
        self.metadata = sa.MetaData()
        self.assignments = declare_tables(self.metadata, table_prefix)["assignments"]
        self._created = False

    def close(self) -> None:
        self.sink.close()

    def create_tables(self) -> None:
        if not self._created:
            with self.engine.begin() as conn:
                self.metadata.create_all(conn, checkfirst=True)
            self._created = True

    def save(self, assignments: list[Assignment], now: dt.datetime) -> int:
        """Insert new assignments in one transaction; a row already stored is kept as it is. Returns rows inserted."""
        if not assignments:
            return 0
        self.create_tables()
        rows = [{**a.as_dict(), "assigned_at": now} for a in assignments]
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        query = dialect.insert(self.assignments).on_conflict_do_nothing(
            index_elements=["account_id", "play", "episode_start"])
        with self.engine.begin() as conn:
            result = conn.execute(query, rows)
        return int(result.rowcount) if result.rowcount is not None and result.rowcount >= 0 else len(rows)

    def covering(self, day: dt.date, account_id: str | None = None) -> list[Assignment]:
        """Assignments whose episode covers ``day`` (one account's when given)."""
        self.create_tables()
        a = self.assignments
        query = sa.select(*(a.c[c] for c in COLUMNS)).where(a.c.episode_start <= day, a.c.episode_end > day)
        if account_id is not None:
            query = query.where(a.c.account_id == account_id)
        with self.engine.connect() as conn:
            return [Assignment(**dict(r)) for r in conn.execute(query).mappings()]

    def control_groups(self, account_id: str, day: dt.date) -> list[Assignment]:
        """The plays ``account_id`` is held out of on ``day`` (for the account page)."""
        return sorted((x for x in self.covering(day, account_id) if x.held_out), key=lambda x: x.play)

    def frame(self) -> pd.DataFrame:
        """Every assignment ever drawn (``COLUMNS`` plus ``assigned_at``), oldest episode first."""
        self.create_tables()
        a = self.assignments
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(a).order_by(a.c.episode_start, a.c.play, a.c.account_id)).mappings().all()
        out = pd.DataFrame([dict(r) for r in rows], columns=[*COLUMNS, "assigned_at"])
        for c in ("episode_start", "episode_end"):
            out[c] = pd.to_datetime(out[c])
        return out
