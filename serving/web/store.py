"""The pages' tables, in the same SQL store as the CRM scores (SQLite or PostgreSQL).

- ``web_users``: one row per person who may sign in (name, role, CSM owner, the SHA-256 of
  their token);
- ``play_log``: one row per play a CSM logged on an account (the start of measuring which
  plays work);
- reads ``account_score_history`` (written by the batch job) for an account's score history.

Tables are created on first use, like the CRM tables (:mod:`serving.sinks.sql`).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from serving.sinks.sql import SqlSink
from serving.web.auth import ROLES, hash_token, new_token

#: What a logged play has led to so far; ``planned`` is the only state that is not an activity done.
OUTCOMES = ("planned", "contacted", "meeting_booked", "proposal_sent", "won", "not_now", "lost")
NOTE_MAX = 2000


class StoreError(ValueError):
    """Bad input for a store write: names the field and the rule."""


class WebStore:
    """Users and the play log beside ``account_scores`` in the CRM database at ``uri``."""

    def __init__(self, uri: str, *, table_prefix: str = "") -> None:
        # same engine set-up (psycopg 3, transactional SQLite) and table prefix as the CRM tables
        self.sink = SqlSink(uri, table_prefix=table_prefix)
        self.engine = self.sink.engine
        self.metadata = sa.MetaData()
        self.users = sa.Table(
            f"{table_prefix}web_users", self.metadata,
            sa.Column("name", sa.Text, primary_key=True),
            sa.Column("role", sa.Text, nullable=False),
            sa.Column("csm_owner", sa.Text, nullable=True),
            sa.Column("token_sha256", sa.Text, nullable=False, unique=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        self.plays = sa.Table(
            f"{table_prefix}play_log", self.metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("account_id", sa.Text, nullable=False, index=True),
            sa.Column("csm_owner", sa.Text, nullable=True, index=True),
            sa.Column("logged_by", sa.Text, nullable=False),
            sa.Column("play", sa.Text, nullable=False),
            sa.Column("outcome", sa.Text, nullable=False),
            sa.Column("note", sa.Text, nullable=True),
            sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        )
        self._created = False

    def close(self) -> None:
        self.sink.close()

    def create_tables(self) -> None:
        if not self._created:
            with self.engine.begin() as conn:
                self.metadata.create_all(conn, checkfirst=True)
            self._created = True

    # users -----------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, csm_owner: str | None, now: dt.datetime) -> str:
        """Create a person (or issue a new token to an existing one); returns the token, shown once."""
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise StoreError("users: name must be 1-200 characters")
        if role not in ROLES:
            raise StoreError(f"users: role must be one of {', '.join(ROLES)}, got {role!r}")
        self.create_tables()
        token = new_token()
        row = {"name": name, "role": role, "csm_owner": (csm_owner or (name if role == "csm" else None)),
               "token_sha256": hash_token(token), "created_at": now}
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.users).where(self.users.c.name == name))
            conn.execute(sa.insert(self.users), [row])
        return token

    def user_by_token(self, token: str) -> dict | None:
        """The person a sign-in token belongs to, or None."""
        if not token or not token.strip():
            return None
        self.create_tables()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.users).where(self.users.c.token_sha256 == hash_token(token))).mappings().first()
        return dict(row) if row else None

    def token_current(self, name: str, token_id: str) -> bool:
        """True while ``name`` exists and the token that opened their session is still theirs."""
        from serving.web.auth import token_id as id_of

        self.create_tables()
        with self.engine.connect() as conn:
            digest = conn.execute(sa.select(self.users.c.token_sha256).where(self.users.c.name == name)).scalar()
        return digest is not None and id_of(digest) == token_id

    def list_users(self) -> list[dict]:
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.users.c.name, self.users.c.role, self.users.c.csm_owner,
                                          self.users.c.created_at).order_by(self.users.c.name)).mappings().all()
        return [dict(r) for r in rows]

    # play log --------------------------------------------------------------------------------
    def log_play(self, account_id: str, csm_owner: str | None, logged_by: str, play: str, outcome: str,
                 note: str | None, now: dt.datetime) -> None:
        """Append one play; every rule broken names its field."""
        if not play or not play.strip() or len(play) > 200:
            raise StoreError("play: choose a play (1-200 characters)")
        if outcome not in OUTCOMES:
            raise StoreError(f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
        if note is not None and len(note) > NOTE_MAX:
            raise StoreError(f"note: at most {NOTE_MAX} characters, got {len(note)}")
        self.create_tables()
        row = {"account_id": account_id, "csm_owner": csm_owner, "logged_by": logged_by, "play": play.strip(),
               "outcome": outcome, "note": (note or "").strip() or None, "logged_at": now}
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.plays), [row])

    def plays_for(self, account_id: str, limit: int = 50) -> list[dict]:
        self.create_tables()
        p = self.plays
        query = sa.select(p).where(p.c.account_id == account_id).order_by(p.c.logged_at.desc(), p.c.id.desc())
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.limit(limit)).mappings().all()]

    def activity_counts(self, since: dt.datetime, csm_owner: str | None = None) -> pd.DataFrame:
        """Plays planned and done (any other outcome) per CSM owner since ``since``; one CSM, or all."""
        self.create_tables()
        p = self.plays
        planned = sa.func.sum(sa.case((p.c.outcome == "planned", 1), else_=0)).label("planned")
        done = sa.func.sum(sa.case((p.c.outcome != "planned", 1), else_=0)).label("done")
        query = sa.select(p.c.csm_owner, planned, done).where(p.c.logged_at >= since).group_by(p.c.csm_owner)
        if csm_owner is not None:
            query = query.where(p.c.csm_owner == csm_owner)
        with self.engine.connect() as conn:
            frame = pd.read_sql(query.order_by(p.c.csm_owner), conn)
        return frame.astype({"planned": "int64", "done": "int64"})

    # scores ----------------------------------------------------------------------------------
    def score_history(self, account_id: str) -> pd.DataFrame:
        """An account's readiness and churn risk per scoring run, oldest first (empty before any batch run)."""
        h = self.sink.history
        if not sa.inspect(self.engine).has_table(h.name):
            return pd.DataFrame(columns=["as_of", "readiness_score", "churn_probability"])
        query = (sa.select(h.c.as_of, h.c.scored_at, h.c.readiness_score, h.c.churn_probability)
                 .where(h.c.account_id == account_id).order_by(h.c.as_of, h.c.scored_at))
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        # one point per snapshot date: the newest run on it
        return frame.drop_duplicates("as_of", keep="last").drop(columns="scored_at").reset_index(drop=True)
