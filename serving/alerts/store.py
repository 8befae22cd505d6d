"""Alert state in the product store (:mod:`serving.store`; SQLite by default, PostgreSQL by URI).

Tables, declared in :mod:`serving.store.schema` and created on first use (prefix ``alert_``):

- ``alert_runs``: one row per snapshot the alerts ran on;
- ``alert_conditions``: (account, rule) pairs in their condition at the last run, since when;
- ``alert_episodes``: every episode once (keyed by a stable id), with its decision;
- ``alert_outbox``: messages to deliver, keyed by their idempotency key, ``pending`` until a
  receiver accepted them (``sent``) or refused them for good (``parked``, with the reason),
  with attempts (counted before each send) and the last error; webhook URLs only redacted;
- ``alert_leases``: who holds the delivery lease and until when (one run at a time);
- ``alert_snoozes``: per account and rule, until a date;
- ``alert_track_record``: each rule's backtest figures, shown in every delivery.

A run's decisions (conditions, episodes, outbox) are written in one transaction; delivery
then updates outbox rows one by one, so a crash between a send and its mark re-sends the
same key next run (at least once, marked as a repeat), never a new message. A run holds the
lease ``alerts`` from its first read to its last send, so two runs never send the same message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import pandas as pd
import sqlalchemy as sa

from features.config import Settings, is_redacted, redact_url
from serving.store import OnStore, Store
from serving.store.schema import state_metadata

_md = state_metadata()
RUNS, CONDITIONS, EPISODES, OUTBOX, LEASES, SNOOZES, TRACK = (_md.tables[f"alert_{name}"] for name in (
    "runs", "conditions", "episodes", "outbox", "leases", "snoozes", "track_record"))


def _clean(value: object) -> object:
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class AlertStore(OnStore):
    """The alert tables in one SQL database."""

    def __init__(self, where: str | Store | Settings) -> None:
        super().__init__(where)  # the product store's engine: WAL, writers wait, 0600 file (serving.store)
        self.shown = self.store.shown
        self._ready = self.store.has(TRACK.name)

    def _ensure(self) -> None:
        """Create the tables on the first write (a dry run creates nothing)."""
        if not self._ready:
            self.store.ensure()
            self._ready = True

    def scrub(self) -> None:
        """Redact webhook URLs kept in clear by an older release (destination and last error); delivery calls it."""
        if not self._ready:
            return
        clear = sa.select(OUTBOX.c.message_key, OUTBOX.c.destination, OUTBOX.c.last_error).where(
            OUTBOX.c.channel != "email", OUTBOX.c.destination.like("http%"))
        with self.engine.begin() as conn:
            for key, url, error in conn.execute(clear).all():
                if is_redacted(url):
                    continue
                shown = redact_url(url)
                conn.execute(sa.update(OUTBOX).where(OUTBOX.c.message_key == key).values(
                    destination=shown, last_error=error.replace(url, shown) if error else error))

    def _insert(self, table: sa.Table):  # noqa: ANN202
        return self.store.insert(table)

    # reads
    def last_run(self) -> dt.date | None:
        if not self._ready:
            return None
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(RUNS.c.as_of))).scalar()

    def conditions(self) -> pd.DataFrame:
        if not self._ready:
            return pd.DataFrame({"account_id": pd.Series(dtype="string"), "rule": pd.Series(dtype="string"), "since": pd.Series(dtype=object)})
        with self.engine.connect() as conn:
            frame = pd.read_sql(sa.select(CONDITIONS), conn)
        return frame.astype({"account_id": "string", "rule": "string"})

    def sent_this_week(self, monday: dt.date, as_of: dt.date) -> dict[str, int]:
        """Alerts queued per CSM for episodes started from ``monday`` to ``as_of`` (the weekly cap's count)."""
        if not self._ready:
            return {}
        e = EPISODES
        query = (sa.select(e.c.csm_owner, sa.func.count()).where(e.c.status == "queued", e.c.started >= monday,
                                                                  e.c.started <= as_of).group_by(e.c.csm_owner))
        with self.engine.connect() as conn:
            return {str(csm or ""): int(n) for csm, n in conn.execute(query)}

    def recent_episodes(self, as_of: dt.date, days: int) -> set[tuple[str, str]]:
        """(account, rule) pairs whose last episode started within ``days`` before ``as_of``."""
        if not self._ready:
            return set()
        since = as_of - dt.timedelta(days=days)
        query = sa.select(EPISODES.c.account_id, EPISODES.c.rule).where(EPISODES.c.started > since,
                                                                         EPISODES.c.started < as_of)
        with self.engine.connect() as conn:
            return {(a, r) for a, r in conn.execute(query)}

    def snoozed(self, as_of: dt.date) -> set[tuple[str, str]]:
        if not self._ready:
            return set()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(SNOOZES.c.account_id, SNOOZES.c.rule).where(SNOOZES.c.until >= as_of))
            return {(a, r) for a, r in rows}

    def pending(self) -> list[dict]:
        if not self._ready:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.status == "pending").order_by(OUTBOX.c.queued_as_of,
                                                                                              OUTBOX.c.message_key))
            return [dict(r._mapping) for r in rows]

    def table(self, name: str) -> pd.DataFrame:
        """A whole alert table (tests, reports)."""
        self._ensure()
        table = _md.tables[f"alert_{name}"]
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(table).order_by(*table.primary_key.columns), conn)

    def track_records(self) -> dict[str, dict]:
        if not self._ready:
            return {}
        with self.engine.connect() as conn:
            return {r.rule: dict(r._mapping) for r in conn.execute(sa.select(TRACK))}

    # writes
    def snooze(self, account_id: str, rule: str, until: dt.date) -> None:
        self._ensure()
        stmt = self._insert(SNOOZES).values(account_id=account_id, rule=rule, until=until)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["account_id", "rule"], set_={"until": until}))

    def commit_run(self, as_of: dt.date, ran_at: dt.datetime, rules: list[str], current: pd.DataFrame,
                   episodes: pd.DataFrame, outbox: list[dict]) -> None:
        """One transaction: the run, the conditions of ``rules`` replaced by ``current``, new episodes and messages
        (an episode or message already present is left as it was)."""
        self._ensure()
        since = self.conditions().set_index(["account_id", "rule"])["since"].to_dict()
        conds = [{"account_id": a, "rule": r, "since": since.get((a, r), as_of)}
                 for a, r in zip(current["account_id"].astype(str), current["rule"].astype(str))]
        eps = [{k: _clean(v) for k, v in row.items()} for row in episodes.to_dict("records")]
        with self.engine.begin() as conn:
            conn.execute(self._insert(RUNS).values(as_of=as_of, ran_at=ran_at, episodes=len(eps))
                         .on_conflict_do_nothing(index_elements=["as_of"]))
            conn.execute(sa.delete(CONDITIONS).where(CONDITIONS.c.rule.in_(rules)))
            if conds:
                conn.execute(CONDITIONS.insert(), conds)
            if eps:
                conn.execute(self._insert(EPISODES).on_conflict_do_nothing(index_elements=["episode_id"]), eps)
            if outbox:
                conn.execute(self._insert(OUTBOX).on_conflict_do_nothing(index_elements=["message_key"]), outbox)

    def count_attempt(self, key: str) -> None:
        """One more attempt at ``key``, committed before the send: a later run knows it may be a repeat."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(OUTBOX).where(OUTBOX.c.message_key == key).values(attempts=OUTBOX.c.attempts + 1))

    def mark(self, key: str, *, sent_at: dt.datetime | None, error: str | None, park: bool = False) -> None:
        """Sent (``sent_at``), parked for good (``park``, the reason in ``error``) or still pending with its last error."""
        self._ensure()
        values: dict[str, object] = {"last_error": error}
        if sent_at is not None:
            values |= {"status": "sent", "sent_at": sent_at}
        elif park:
            values |= {"status": "parked"}
        with self.engine.begin() as conn:
            conn.execute(sa.update(OUTBOX).where(OUTBOX.c.message_key == key).values(**values))

    def acquire(self, name: str, holder: str, now: dt.datetime, seconds: float) -> dt.datetime | None:
        """Take (or renew) lease ``name`` for ``holder`` until ``now + seconds``: None when taken, else when the
        other holder's lease ends. One conditional upsert, so two runs at once never both hold it."""
        self._ensure()
        until = now + dt.timedelta(seconds=seconds)
        stmt = self._insert(LEASES).values(name=name, holder=holder, expires_at=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"], set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=(LEASES.c.holder == holder) | (LEASES.c.expires_at < now))
        with self.engine.begin() as conn:
            conn.execute(stmt)
            row = conn.execute(sa.select(LEASES.c.holder, LEASES.c.expires_at).where(LEASES.c.name == name)).one()
        return None if row.holder == holder else row.expires_at

    def release(self, name: str, holder: str) -> None:
        """Give lease ``name`` back (only when ``holder`` still has it)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LEASES).where(LEASES.c.name == name, LEASES.c.holder == holder))

    def save_track_record(self, record: pd.DataFrame, computed_at: dt.datetime) -> None:
        self._ensure()
        cols = [c.name for c in TRACK.columns if c.name != "computed_at"]
        rows = [{**{c: _clean(r[c]) for c in cols}, "computed_at": computed_at} for r in record.to_dict("records")]
        with self.engine.begin() as conn:
            conn.execute(sa.delete(TRACK))
            if rows:
                conn.execute(TRACK.insert(), rows)


def facts_json(facts: dict) -> str:
    return json.dumps({k: _clean(v) for k, v in facts.items()}, default=str, sort_keys=True)
