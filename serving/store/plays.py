"""Play assignments in the product store beside the play log (:mod:`serving.store`, SQLite or PostgreSQL).

``play_assignments``: one row per (account, play, episode start): the arm (recommend or
hold_out), the episode's end, the share and seed it was drawn with, and when. Rows are only
ever inserted: a row that exists is never re-drawn or changed, and two replicas writing the
same draw leave one row (the draw is a pure hash, so they agree). The table is declared with
the other product tables in :mod:`serving.store.schema`.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from features.play_assignment import Assignment
from features.config import Settings
from serving.store import OnStore, Store

COLUMNS = ("account_id", "play", "episode_start", "episode_end", "arm", "share", "seed")


class PlayStore(OnStore):
    """Reads and appends play assignments in the product store (a URI, a store or settings)."""

    def __init__(self, where: str | Store | Settings, *, table_prefix: str = "") -> None:
        super().__init__(where, table_prefix=table_prefix)
        self.assignments = self.store.table("play_assignments")

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
