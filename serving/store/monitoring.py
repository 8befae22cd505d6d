"""The model track record's tables, in the product store (:mod:`serving.store`) beside ``account_score_history``.

- ``account_shadow_scores``: the shadow challenger's probability per account and score run
  (keyed by ``account_id, run_id, model_name``), written beside the champion's run and never
  read by the pages CSMs see;
- ``model_monitoring``: one row per scored month, model, segment, scorer and metric with its
  interval and counts (``expansion monitor``); a re-run of a month replaces its rows;
- ``model_alarms``: alarms sent, keyed by their idempotency key, so an alarm goes out once.

Tables are declared in :mod:`serving.store.schema` and created on first use.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from features.config import Settings
from serving.store import OnStore, Store
from serving.store.schema import HISTORY

TRACK_COLUMNS = ("month", "model_name", "segment", "scorer", "metric", "value", "low", "high", "positives", "rows",
                 "version")


class MonitoringStore(OnStore):
    """Shadow scores, the realised track record and sent alarms in the product store (a URI, a store or settings)."""

    def __init__(self, where: str | Store | Settings, *, table_prefix: str = "") -> None:
        super().__init__(where, table_prefix=table_prefix)
        t = self.store.table
        self.shadow, self.track, self.alarms = t("account_shadow_scores"), t("model_monitoring"), t("model_alarms")
        self.history = t(HISTORY)

    def write_shadow(self, scores: pd.DataFrame) -> int:
        """Replace the shadow scores of the runs in ``scores`` (``account_id, run_id, model_name, as_of, version, probability``)."""
        self.create_tables()
        if not len(scores):
            return 0
        records = scores.assign(as_of=pd.to_datetime(scores["as_of"]).dt.date).astype(object).to_dict("records")
        with self.engine.begin() as conn:
            for run_id in scores["run_id"].unique():
                conn.execute(sa.delete(self.shadow).where(self.shadow.c.run_id == run_id))
            conn.execute(self.shadow.insert(), records)
        return len(records)

    def shadow_scores(self, run_ids: list[str], model_name: str) -> pd.DataFrame:
        self.create_tables()
        s = self.shadow
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(s).where(s.c.run_id.in_(run_ids), s.c.model_name == model_name), conn,
                               dtype={"account_id": "string"})

    def history_runs(self) -> pd.DataFrame:
        """Every score run in ``account_score_history``: ``run_id, as_of, scored_at, accounts`` (empty when none)."""
        h = self.history
        if not sa.inspect(self.engine).has_table(h.name):
            return pd.DataFrame(columns=["run_id", "as_of", "scored_at", "accounts"])
        query = sa.select(h.c.run_id, sa.func.max(h.c.as_of).label("as_of"), sa.func.max(h.c.scored_at).label("scored_at"),
                          sa.func.count().label("accounts")).group_by(h.c.run_id)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def history_rows(self, run_id: str, columns: tuple[str, ...]) -> pd.DataFrame:
        """One run's stored ``columns`` (account, snapshot, probabilities, versions, rule scores).

        The additive migrations run first, so a column added since the run was written reads as null."""
        self.create_tables()
        h = self.history
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(*(h.c[c] for c in columns)).where(h.c.run_id == run_id), conn,
                               dtype={"account_id": "string"})

    def save_track(self, rows: pd.DataFrame, computed_at: dt.datetime) -> None:
        """Replace the stored rows of every (month, model) in ``rows``."""
        self.create_tables()
        frame = rows[list(TRACK_COLUMNS)].astype(object).where(rows[list(TRACK_COLUMNS)].notna(), None)
        records = [{**r, "computed_at": computed_at} for r in frame.to_dict("records")]
        with self.engine.begin() as conn:
            for (month, name), _ in rows.groupby(["month", "model_name"]):
                conn.execute(sa.delete(self.track).where(self.track.c.month == month, self.track.c.model_name == name))
            if records:
                conn.execute(self.track.insert(), records)

    def read_track(self) -> pd.DataFrame:
        self.create_tables()
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(self.track).order_by(self.track.c.month), conn)

    def alarm_sent(self, key: str) -> bool:
        self.create_tables()
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.alarms.c.key).where(self.alarms.c.key == key)).first() is not None

    def record_alarm(self, key: str, model_name: str, kind: str, message: str, sent_to: str, at: dt.datetime) -> None:
        self.create_tables()
        with self.engine.begin() as conn:
            conn.execute(self.alarms.insert(), [{"key": key, "model_name": model_name, "kind": kind, "message": message,
                                                 "sent_to": sent_to, "sent_at": at}])

    def read_alarms(self) -> pd.DataFrame:
        self.create_tables()
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(self.alarms).order_by(self.alarms.c.sent_at.desc()), conn)
