"""The pages' tables, in the product store (:mod:`serving.store`; SQLite or PostgreSQL).

- ``web_users``: one row per person who may sign in (name, role, CSM owner, the SHA-256 of
  their token);
- ``web_sessions``: one row per signed-in browser (the SHA-256 of its cookie's random id, who,
  until when, its CSRF token): signing out, a new token, ``users disable`` or ``users remove``
  delete rows, and a cookie whose row is gone is refused at once;
- ``play_log``: one row per play logged on an account (the start of measuring which plays
  work), credited to whoever logged it, with the amount won, the reason a play was lost or
  put off (:data:`REASON_CODES`) or the date a planned play is for; ``play_changes`` keeps
  every later update or correction;
- ``owner_assignments``: an owner a leader gave an account the data leaves unowned (the data
  folder itself is never written);
- reads ``account_score_history`` (the score job writes it into the store) for an account's score history.

Tables are declared in :mod:`serving.store.schema` and created on first use.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pandas as pd
import sqlalchemy as sa

from features.config import Settings
from serving.store import OnStore, Store
from serving.store.engine import IMMEDIATE
from serving.store.schema import HISTORY
from serving.web.auth import ROLES, hash_token, new_csrf, new_token

#: What a logged play has led to so far; ``planned`` is the only state that is not an activity done.
OUTCOMES = ("planned", "contacted", "meeting_booked", "proposal_sent", "won", "not_now", "lost")
NOTE_MAX = 2000
#: Why a play was lost or put off (``reason_code`` of a ``lost`` or ``not_now`` play).
REASON_CODES = ("no_budget", "bad_timing", "no_need", "chose_competitor", "sponsor_left", "price", "other")
#: The extra field each outcome may carry: an amount (annual value won), a reason code, a planned date.
DETAIL_FOR = {"won": "amount", "lost": "reason_code", "not_now": "reason_code", "planned": "planned_for"}
DETAILS = ("amount", "reason_code", "planned_for")
#: What replaces a disabled person's token hash: no token hashes to it, so sign-in is refused.
DISABLED = "disabled:"


class StoreError(ValueError):
    """Bad input for a store write: names the field and the rule."""


def _check(outcome: str, note: str | None) -> None:
    if outcome not in OUTCOMES:
        raise StoreError(f"outcome: must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if note is not None and len(note) > NOTE_MAX:
        raise StoreError(f"note: at most {NOTE_MAX} characters, got {len(note)}")


def play_details(outcome: str, amount: float | None = None, reason_code: str | None = None,
                 planned_for: dt.date | None = None) -> dict:
    """The detail columns of a play with ``outcome``: an amount only for ``won`` (>= 0, the MRR won a month),
    a reason code from :data:`REASON_CODES` only for ``lost`` and ``not_now``, a date only for ``planned``."""
    given = {"amount": amount, "reason_code": reason_code or None, "planned_for": planned_for}
    for name, value in given.items():
        if value is not None and DETAIL_FOR.get(outcome) != name:
            allowed = ", ".join(o for o, d in DETAIL_FOR.items() if d == name)
            raise StoreError(f"{name}: only a play whose outcome is {allowed} has one, this one is {outcome}")
    if amount is not None and not (amount >= 0 and amount < 1e12):
        raise StoreError(f"amount: must be a number >= 0 (the MRR won), got {amount}")
    if reason_code is not None and reason_code and reason_code not in REASON_CODES:
        raise StoreError(f"reason_code: must be one of {', '.join(REASON_CODES)}, got {reason_code!r}")
    return given


class WebStore(OnStore):
    """Users, sessions, the play log and owner assignments in the product store (a URI, a store or settings)."""

    def __init__(self, where: str | Store | Settings, *, table_prefix: str = "") -> None:
        # the product store's engine and declared tables (serving.store), not the CRM sink's
        super().__init__(where, table_prefix=table_prefix)
        t = self.store.table
        self.users, self.plays, self.changes = t("web_users"), t("play_log"), t("play_changes")
        self.sessions, self.owner_table, self.history = t("web_sessions"), t("owner_assignments"), t(HISTORY)

    # users -----------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, csm_owner: str | None, now: dt.datetime) -> str:
        """Create a person (or issue a new token to an existing one, ending their sessions); returns the token, shown once."""
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
            conn.execute(sa.delete(self.sessions).where(self.sessions.c.name == name))
            conn.execute(sa.insert(self.users), [row])
        return token

    def disable_user(self, name: str) -> None:
        """Refuse ``name``'s token and end their sessions at once (``users add`` enables them again)."""
        self._require(name)
        with self.engine.begin() as conn:
            conn.execute(sa.update(self.users).where(self.users.c.name == name)
                         .values(token_sha256=f"{DISABLED}{secrets.token_hex(16)}"))
            conn.execute(sa.delete(self.sessions).where(self.sessions.c.name == name))

    def remove_user(self, name: str) -> None:
        """Delete ``name`` and end their sessions (the plays they logged stay, credited to them)."""
        self._require(name)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.users).where(self.users.c.name == name))
            conn.execute(sa.delete(self.sessions).where(self.sessions.c.name == name))

    def _require(self, name: str) -> None:
        self.create_tables()
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(self.users.c.name).where(self.users.c.name == name)).first()
        if found is None:
            raise StoreError(f"users: no person named {name!r} (expansion users list shows who exists)")

    def user_by_token(self, token: str) -> dict | None:
        """The person a sign-in token belongs to, or None."""
        if not token or not token.strip():
            return None
        self.create_tables()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.users).where(self.users.c.token_sha256 == hash_token(token))).mappings().first()
        return dict(row) if row else None

    def list_users(self) -> list[dict]:
        """Everyone, with ``disabled`` True for people whose token was disabled."""
        self.create_tables()
        u = self.users
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(u.c.name, u.c.role, u.c.csm_owner, u.c.created_at, u.c.token_sha256)
                                .order_by(u.c.name)).mappings().all()
        return [{**{k: v for k, v in r.items() if k != "token_sha256"},
                 "disabled": r["token_sha256"].startswith(DISABLED)} for r in rows]

    # sessions ----------------------------------------------------------------------------------
    def open_session(self, name: str, expires_at: float) -> tuple[str, str]:
        """A new session for ``name``: (the cookie's random id, the session's CSRF token). Only the id's hash is kept."""
        self.create_tables()
        sid, csrf = new_token(), new_csrf()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.sessions).where(self.sessions.c.expires_at < expires_at - 10 * 24 * 3600))
            conn.execute(sa.insert(self.sessions), [{"id_sha256": hash_token(sid), "name": name, "csrf": csrf,
                                                     "expires_at": expires_at}])
        return sid, csrf

    def session(self, sid: str | None, now: float) -> dict | None:
        """The live session a cookie id opens (with the person's role and book), or None: unknown, ended, expired,
        or its person disabled or removed."""
        if not sid or len(sid) > 200:
            return None
        self.create_tables()
        s, u = self.sessions, self.users
        query = (sa.select(s.c.name, s.c.csrf, s.c.expires_at, u.c.role, u.c.csm_owner, u.c.token_sha256)
                 .join(u, u.c.name == s.c.name).where(s.c.id_sha256 == hash_token(sid)))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None or row["expires_at"] <= now or row["token_sha256"].startswith(DISABLED):
            return None
        return dict(row)

    def end_session(self, sid: str) -> None:
        self.create_tables()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.sessions).where(self.sessions.c.id_sha256 == hash_token(sid)))

    # play log --------------------------------------------------------------------------------
    def log_play(self, account_id: str, csm_owner: str | None, logged_by: str, play: str, outcome: str,
                 note: str | None, now: dt.datetime, **details: object) -> int:
        """Append one play; every rule broken names its field. Returns the play's id.

        ``details``: ``amount``, ``reason_code``, ``planned_for`` as :func:`play_details` allows them."""
        if not play or not play.strip() or len(play) > 200:
            raise StoreError("play: choose a play (1-200 characters)")
        _check(outcome, note)
        extra = play_details(outcome, **details)  # type: ignore[arg-type]
        self.create_tables()
        row = {"account_id": account_id, "csm_owner": csm_owner, "logged_by": logged_by, "play": play.strip(),
               "outcome": outcome, "note": (note or "").strip() or None, "logged_at": now, **extra}
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(self.plays).returning(self.plays.c.id), [row]).scalar_one())

    def update_play(self, play_id: int, account_id: str, by: str, by_leader: bool, outcome: str, note: str | None,
                    now: dt.datetime, **details: object) -> None:
        """Move a play on (planned -> contacted -> won) or correct it; only its author or a leader may.
        The old outcome and note are kept in ``play_changes``; the details follow the new outcome."""
        _check(outcome, note)
        extra = play_details(outcome, **details)  # type: ignore[arg-type]
        self.create_tables()
        p = self.plays
        # the write lock first (SQLite): a transaction that read before writing could not wait for another writer
        with self.engine.connect().execution_options(**{IMMEDIATE: True}) as conn, conn.begin():
            row = conn.execute(sa.select(p).where(p.c.id == play_id, p.c.account_id == account_id)).mappings().first()
            if row is None:
                raise StoreError(f"play: no play {play_id} on this account")
            if row["logged_by"] != by and not by_leader:
                raise StoreError(f"play: only {row['logged_by']} (who logged it) or a leader may change it")
            new_note = (note or "").strip() or None
            if row["outcome"] == outcome and row["note"] == new_note and all(row[k] == v for k, v in extra.items()):
                return
            conn.execute(sa.insert(self.changes), [{"play_id": play_id, "changed_by": by, "changed_at": now,
                                                    "old_outcome": row["outcome"], "new_outcome": outcome,
                                                    "old_note": row["note"], "new_note": new_note}])
            conn.execute(sa.update(p).where(p.c.id == play_id).values(outcome=outcome, note=new_note, **extra))

    def plays_for(self, account_id: str, limit: int = 50) -> list[dict]:
        """An account's plays, newest first, each with ``changes`` (its earlier states, oldest first)."""
        self.create_tables()
        p, c = self.plays, self.changes
        query = sa.select(p).where(p.c.account_id == account_id).order_by(p.c.logged_at.desc(), p.c.id.desc())
        with self.engine.connect() as conn:
            plays = [dict(r) for r in conn.execute(query.limit(limit)).mappings().all()]
            ids = [x["id"] for x in plays]
            changes = conn.execute(sa.select(c).where(c.c.play_id.in_(ids)).order_by(c.c.changed_at, c.c.id)
                                   ).mappings().all() if ids else []
        for x in plays:
            x["changes"] = [dict(ch) for ch in changes if ch["play_id"] == x["id"]]
        return plays

    def log_frame(self) -> pd.DataFrame:
        """Every logged play: ``account_id, play, outcome, logged_at`` and the details, oldest first."""
        self.create_tables()
        p = self.plays
        columns = ["account_id", "play", "outcome", "logged_at", *DETAILS]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*(p.c[c] for c in columns)).order_by(p.c.logged_at, p.c.id)).all()
        out = pd.DataFrame([tuple(r) for r in rows], columns=columns)
        out["logged_at"] = pd.to_datetime(out["logged_at"], utc=True)
        out["amount"] = pd.to_numeric(out["amount"]).astype("float64")
        return out

    def activity_counts(self, since: dt.datetime, logged_by: str | None = None) -> pd.DataFrame:
        """Plays planned and done (any other outcome) since ``since`` per person who logged them (the logger is
        credited, whoever owns the account), with that person's book (``csm_owner``) when they are a user."""
        self.create_tables()
        p, u = self.plays, self.users
        planned = sa.func.sum(sa.case((p.c.outcome == "planned", 1), else_=0)).label("planned")
        done = sa.func.sum(sa.case((p.c.outcome != "planned", 1), else_=0)).label("done")
        query = (sa.select(p.c.logged_by, u.c.csm_owner, planned, done).select_from(p.outerjoin(u, u.c.name == p.c.logged_by))
                 .where(p.c.logged_at >= since).group_by(p.c.logged_by, u.c.csm_owner))
        if logged_by is not None:
            query = query.where(p.c.logged_by == logged_by)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(p.c.logged_by)).all()
        return pd.DataFrame({"logged_by": pd.Series([r[0] for r in rows], dtype=object),
                             "csm_owner": pd.Series([r[1] for r in rows], dtype=object),
                             "planned": pd.Series([int(r[2]) for r in rows], dtype="int64"),
                             "done": pd.Series([int(r[3]) for r in rows], dtype="int64")})

    # owners ------------------------------------------------------------------------------------
    def assign_owner(self, account_id: str, csm_owner: str, by: str, now: dt.datetime) -> None:
        """Give an account an owner in the product's own state (an empty owner removes the assignment)."""
        owner = (csm_owner or "").strip()
        if len(owner) > 200:
            raise StoreError("owner: at most 200 characters")
        self.create_tables()
        a = self.owner_table
        with self.engine.begin() as conn:
            conn.execute(sa.delete(a).where(a.c.account_id == account_id))
            if owner:
                conn.execute(sa.insert(a), [{"account_id": account_id, "csm_owner": owner, "assigned_by": by,
                                             "assigned_at": now}])

    def assignments(self) -> dict[str, dict]:
        """Owner assignments by account id."""
        self.create_tables()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.owner_table)).mappings().all()
        return {r["account_id"]: dict(r) for r in rows}

    # scores ----------------------------------------------------------------------------------
    def score_history(self, account_id: str) -> pd.DataFrame:
        """An account's readiness and churn risk per scoring run, oldest first (empty before any batch run)."""
        h = self.history
        columns = ["as_of", "readiness_score", "churn_probability"]
        query = (sa.select(h.c.as_of, h.c.readiness_score, h.c.churn_probability)
                 .where(h.c.account_id == account_id).order_by(h.c.as_of, h.c.scored_at))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except sa.exc.DBAPIError:  # no batch run has created the history table yet
            return pd.DataFrame(columns=columns)
        # one point per snapshot date: the newest run on it
        newest = {r[0]: r for r in rows}
        return pd.DataFrame([tuple(r) for r in newest.values()], columns=columns)
