"""Product events (Segment or RudderStack ``tracks``, Amplitude and Mixpanel exports) into ``usage_daily``.

Each event gets an account, a user, a day (UTC) and a feature key; ``usage_daily`` is then
the count of events and of distinct users per account, day and feature key.

* segment / rudderstack: account from a ``tracks`` column (default ``context_group_id``;
  ``account = "..."`` in the map names another), else from the user's group (``users.context_group_id``,
  or the latest ``groups`` call of the user); anonymous events reach their user through
  ``identifies``. Feature key from ``event`` (the slug; ``feature = "event_text"`` for the display name).
  Duplicates (same ``id``, the message id) count once.
* amplitude: ``event`` rows; account from the ``groups`` JSON (``group = "company"``, default the first
  group type present) or a property (``account = "user_properties.company_id"``); user = ``user_id`` or
  ``amplitude_id``; duplicates share ``uuid`` / ``_insert_id``.
* mixpanel: ``event`` rows; account from a property of the ``properties`` JSON (``account = "company_id"``,
  default ``$group_id``/``company_id``/``account_id``); user = ``properties.user_id`` or ``distinct_id``;
  duplicates share ``insert_id``, ``distinct_id``, ``name`` and the day, as Mixpanel de-duplicates them.

Events with no account are an error naming the count, unless the map says ``unattributed = "drop"``.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.importers.errors import Problems
from features.importers.parse import json_field, require_columns, text, timestamps
from features.importers.reader import RawSource
from features.importers.shapes import SourceTables


def _daily(events: pd.DataFrame) -> pd.DataFrame:
    """(account, day, feature) -> events, distinct users."""
    grouped = events.groupby(["account_id", "date", "feature_key"], observed=True)
    out = grouped.agg(events=("user", "size"), active_users=("user", "nunique")).reset_index()
    out["events"] = out["events"].astype("int64")
    out["active_users"] = out["active_users"].astype("int64")
    return out.sort_values(["account_id", "date", "feature_key"]).reset_index(drop=True)


def _finish(problems: Problems, table: str, column: str, events: pd.DataFrame, settings: dict) -> pd.DataFrame:
    no_account = events["account_id"].isna()
    if no_account.any() and settings.get("unattributed", "error") != "drop":
        problems.add(table, column, "no account (set unattributed = \"drop\" in the map to leave such events out)",
                     int(no_account.sum()))
    else:
        problems.ledger.drop(table, f"no account in {column} (unattributed = \"drop\")", events.loc[no_account, "user"].dropna()[:5],
                             int(no_account.sum()))
    no_time = events["date"].isna()
    problems.ledger.drop(table, "not a timestamp", events.loc[no_time, "user"].dropna()[:5], int(no_time.sum()))
    no_feature = events["feature_key"].isna() & ~no_time
    problems.ledger.drop(table, "no event name", events.loc[no_feature, "user"].dropna()[:5], int(no_feature.sum()))
    problems.ledger.read(table, len(events))
    events = events[~no_account & events["date"].notna() & events["feature_key"].notna()]
    problems.ledger.kept(table, len(events))
    return events


def segment(raw: RawSource, problems: Problems, settings: dict) -> pd.DataFrame:
    """Segment/RudderStack ``tracks`` to daily usage, keyed by group id (aggregated inside DuckDB: tracks are big)."""
    if not raw.has("tracks"):
        problems.add("tracks", "*", "required table is missing")
        return pd.DataFrame()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        types = raw.relation("tracks", con)
        feature_col = settings.get("feature", "event")
        if not require_columns(problems, "tracks", pd.DataFrame(columns=list(types)), ("timestamp", feature_col)):
            return pd.DataFrame()
        column = settings.get("account", "context_group_id")
        con.register("identified", _identified(raw))
        con.register("user_groups", _user_groups(raw).rename_axis("user_id").reset_index(name="group_id"))
        user = _text_sql("t.user_id", types.get("user_id"))
        anon = _text_sql("t.anonymous_id", types.get("anonymous_id"))
        account = _text_sql(f"t.{_q(column)}", types.get(column))
        dedupe = "id" in types and settings.get("dedupe", True)
        repeated = dedupe and _repeated_hashes(con) > 0
        grouped = con.execute(_aggregate_sql(user, anon, account, _ts_sql("t.timestamp", types["timestamp"]),
                                             _text_sql(f"t.{_q(feature_col)}", types.get(feature_col)),
                                             dedupe, repeated)).fetchdf()
        no_account = int(grouped.loc[grouped["account_id"].isna(), "events"].sum())
        total = int(grouped["events"].sum())
        if total == 0:
            problems.add("tracks", "*", "no events (an empty table: usage_daily would be empty)")
        if no_account and settings.get("unattributed", "error") != "drop":
            problems.add("tracks", column, "no account (set unattributed = \"drop\" in the map to leave such events out)",
                         no_account)
        problems.ledger.read("tracks", total)
        problems.ledger.drop("tracks", f"no account in {column} (unattributed = \"drop\")", [], no_account)
        bad_time = int(grouped.loc[grouped["date"].isna(), "events"].sum())
        if bad_time:
            problems.add("tracks", "timestamp", "not a timestamp", bad_time)
        problems.ledger.kept("tracks", int(grouped.loc[grouped["account_id"].notna() & grouped["date"].notna()
                                                       & grouped["feature_key"].notna(), "events"].sum()))
        usage = grouped[grouped["account_id"].notna() & grouped["date"].notna() & grouped["feature_key"].notna()]
        usage = usage.reset_index(drop=True)
    finally:
        con.close()
    usage["account_id"] = usage["account_id"].astype("string")
    usage["feature_key"] = usage["feature_key"].astype("string")
    usage["date"] = usage["date"].astype("datetime64[us]")
    return usage


def _repeated_hashes(con: duckdb.DuckDBPyConnection) -> int:
    """Store in ``dup`` the 64-bit hashes of message ids that occur more than once; return how many.

    Found by sorting the hashes and comparing neighbours: a sort (spilling to disk when it must) is
    several times faster than a hash table holding one group per message.
    """
    con.execute("""CREATE TEMP TABLE dup AS SELECT DISTINCT h FROM (
                       SELECT h, lead(h) OVER (ORDER BY h) AS next_h FROM (SELECT hash(id) AS h FROM tracks))
                   WHERE h = next_h""")
    return con.execute("SELECT count(*) FROM dup").fetchone()[0]


def _aggregate_sql(user: str, anon: str, account: str, ts: str, feature: str, dedupe: bool, repeated: bool) -> str:
    """(account, day, feature) -> events, distinct users, from ``tracks``.

    Users are counted by grouping on (account, day, feature, user) first and counting the groups.
    With ``dedupe``, a re-delivered message keeps its id and counts once per (account, day, feature),
    exactly: an id whose hash occurs once is unique (equal ids hash alike) and counts one; only rows whose
    hash repeats (``repeated``: duplicates, or a hash collision) are read again and counted by distinct id.
    A row without an id counts as no event when de-duplicating, as ``count(DISTINCT id)`` would.
    """

    def rows(where: str) -> str:
        flag = "hash(t.id) IN (SELECT h FROM dup)" if repeated else "false"
        return f"""
            SELECT coalesce(t1.account_id, g.group_id) AS account_id, CAST(CAST(ts AS DATE) AS TIMESTAMP) AS date,
                   feature_key, coalesce(t1.user_id, t1.anonymous_id) AS user_key, message_id, repeated
            FROM (SELECT message_id, repeated, coalesce(t0.user_id, i.user_id) AS user_id, t0.anonymous_id,
                         t0.account_id, ts, feature_key
                  FROM (SELECT {"t.id" if dedupe else "NULL"} AS message_id, {flag} AS repeated, {user} AS user_id,
                               {anon} AS anonymous_id, {account} AS account_id, {ts} AS ts, {feature} AS feature_key
                        FROM tracks t) t0
                  LEFT JOIN identified i ON t0.user_id IS NULL AND i.anonymous_id = t0.anonymous_id) t1
            LEFT JOIN user_groups g ON t1.account_id IS NULL AND g.user_id = t1.user_id
            WHERE {where}"""

    count = "count(message_id) FILTER (WHERE NOT repeated)" if dedupe else "count(*)"
    parts = f"SELECT account_id, date, feature_key, user_key, {count} AS n FROM ({rows('true')}) GROUP BY ALL"
    if dedupe and repeated:
        parts += (" UNION ALL SELECT account_id, date, feature_key, NULL AS user_key, count(DISTINCT message_id) AS n"
                  f" FROM ({rows('repeated')}) GROUP BY ALL")
    return f"""
        SELECT account_id, date, feature_key, CAST(sum(n) AS BIGINT) AS events, count(user_key) AS active_users
        FROM ({parts}) GROUP BY account_id, date, feature_key ORDER BY ALL
    """


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_sql(expr: str, duck_type: str | None) -> str:
    """Text with empty values as NULL (a missing column is NULL)."""
    if duck_type is None:
        return "NULL::VARCHAR"
    if duck_type.upper() == "VARCHAR":
        return f"nullif({expr}, '')"
    return f"nullif(CAST({expr} AS VARCHAR), '')"


def _ts_sql(expr: str, duck_type: str) -> str:
    """A DuckDB expression typing ``expr`` as a UTC timestamp, whether it is stored typed or as text."""
    if duck_type.upper().startswith("TIMESTAMP") or duck_type.upper() == "DATE":
        return f"CAST({expr} AS TIMESTAMP)"
    text_expr = f"trim(CAST({expr} AS VARCHAR))"
    return (f"coalesce(TRY_CAST({text_expr} AS TIMESTAMP), "
            f"CAST(TRY_CAST({text_expr} AS TIMESTAMPTZ) AS TIMESTAMP), try_strptime({text_expr}, '%Y-%m-%d %-H:%M:%S'))")


def _identified(raw: RawSource) -> pd.DataFrame:
    """anonymous id -> user id from ``identifies`` (the latest call wins)."""
    if raw.has("identifies"):
        ids = raw.read("identifies")
        if {"anonymous_id", "user_id"} <= set(ids.columns):
            out = pd.DataFrame({"anonymous_id": text(ids["anonymous_id"]), "user_id": text(ids["user_id"])}).dropna()
            return out.drop_duplicates("anonymous_id", keep="last").astype(object)
    return pd.DataFrame({"anonymous_id": pd.Series(dtype=object), "user_id": pd.Series(dtype=object)})


def _user_groups(raw: RawSource) -> pd.Series:
    """user id -> group id: the ``users`` table's group column, else the user's latest ``groups`` call."""
    if raw.has("users"):
        u = raw.read("users")
        if "context_group_id" in u:
            uid = text(u["user_id"]) if "user_id" in u else text(u["id"])
            out = pd.Series(text(u["context_group_id"]).to_numpy(dtype=object), index=uid.to_numpy(dtype=object)).dropna()
            return out[~out.index.duplicated(keep="last")].astype(object)
    if raw.has("groups"):
        g = raw.read("groups")
        if {"user_id", "group_id"} <= set(g.columns):
            order = timestamps(g["timestamp"]) if "timestamp" in g else pd.Series(range(len(g)), index=g.index)
            g = g.assign(_order=order).sort_values("_order")
            out = pd.Series(text(g["group_id"]).to_numpy(dtype=object), index=text(g["user_id"]).to_numpy(dtype=object)).dropna()
            return out[~out.index.duplicated(keep="last")].astype(object)
    return pd.Series(dtype=object)


def _first_group(groups: pd.Series, group_type: str | None) -> pd.Series:
    import json

    def one(value: object) -> object:
        try:
            obj = json.loads(str(value)) if not isinstance(value, dict) else value
        except ValueError:
            return pd.NA
        if not isinstance(obj, dict) or not obj:
            return pd.NA
        found = obj.get(group_type) if group_type else next(iter(obj.values()))
        if isinstance(found, list):
            found = found[0] if found else None
        return pd.NA if found in (None, "") else str(found)

    return pd.Series([one(v) for v in groups], index=groups.index, dtype="string")


def _property(frame: pd.DataFrame, spec: str) -> pd.Series:
    column, key = spec.split(".", 1) if "." in spec else ("properties", spec)
    if column not in frame:  # properties landed as columns of their own (connectors flatten them)
        flat = next((c for c in (key, key.lstrip("$"), f"{column}_{key.lstrip('$')}") if c in frame), None)
        return text(frame[flat]) if flat else pd.Series(pd.NA, index=frame.index, dtype="string")
    return json_field(frame[column], key)


def amplitude(raw: RawSource, problems: Problems, settings: dict) -> pd.DataFrame:
    """Amplitude ``event`` rows to daily usage, keyed by group (account) id."""
    e = raw.required("event", problems, ("event_type", "event_time"))
    if e is None:
        return pd.DataFrame()
    for key in ("uuid", "_insert_id"):
        if key in e and text(e[key]).notna().all():
            e = e.drop_duplicates(key)
            break
    if "account" in settings:
        account, column = _property(e, settings["account"]), settings["account"]
    else:
        column = "groups"
        account = _first_group(e["groups"], settings.get("group")) if "groups" in e else pd.Series(pd.NA, index=e.index, dtype="string")
    user = text(e["user_id"]) if "user_id" in e else pd.Series(pd.NA, index=e.index, dtype="string")
    if "amplitude_id" in e:
        user = user.fillna(text(e["amplitude_id"]))
    events = pd.DataFrame({"account_id": account, "user": user,
                           "date": timestamps(e["event_time"]).dt.floor("D"),
                           "feature_key": text(e[settings.get("feature", "event_type")])})
    return _daily(_finish(problems, "event", column, events, settings))


def mixpanel(raw: RawSource, problems: Problems, settings: dict) -> pd.DataFrame:
    """Mixpanel ``event`` rows to daily usage, keyed by the account property."""
    e = raw.required("event", problems)
    if e is None:
        return pd.DataFrame()
    if "name" not in e and "event" in e:  # Mixpanel's export API and its connectors call the name ``event``
        e = e.rename(columns={"event": "name"})
    if not require_columns(problems, "event", e, ("name", "time", "distinct_id")):
        return pd.DataFrame()
    date = timestamps(e["time"]).dt.floor("D")
    if "insert_id" in e:
        key = pd.DataFrame({"i": text(e["insert_id"]), "d": text(e["distinct_id"]), "n": text(e["name"]), "t": date})
        e, date = e[~key.duplicated() | key["i"].isna()], date[~key.duplicated() | key["i"].isna()]
    spec = settings.get("account")
    if spec:
        account = _property(e, spec)
    else:
        spec = "properties.$group_id"
        account = pd.Series(pd.NA, index=e.index, dtype="string")
        for key in ("$group_id", "company_id", "account_id"):
            account = account.fillna(_property(e, f"properties.{key}"))
    user = _property(e, "properties.user_id").fillna(text(e["distinct_id"]))
    events = pd.DataFrame({"account_id": account, "user": user, "date": date,
                           "feature_key": text(e[settings.get("feature", "name")])})
    return _daily(_finish(problems, "event", spec, events, settings))


_READERS = {"segment": segment, "rudderstack": segment, "amplitude": amplitude, "mixpanel": mixpanel}


def read(raw: RawSource, settings: dict) -> SourceTables:
    """Daily usage from one product-analytics source, keyed by its own account (group) id."""
    problems = Problems(raw.source)
    problems.ledger = raw.ledger or problems.ledger
    try:
        usage = _READERS[raw.source](raw, problems, settings)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        problems.add("tracks" if raw.source in ("segment", "rudderstack") else "event", "*", f"cannot read: {first}")
        usage = pd.DataFrame()
    if not problems.items and usage.empty:
        problems.add("tracks" if raw.source in ("segment", "rudderstack") else "event", "*",
                     "no usable events (every event was left out; see the notes)")
    problems.raise_if_any()
    keys = pd.DataFrame({"id": pd.Series(usage["account_id"].unique() if not usage.empty else [], dtype="string")})
    if raw.source in ("segment", "rudderstack") and raw.has("groups"):
        g = raw.read("groups")
        if "group_id" in g:
            g = g.assign(id=text(g["group_id"])).drop_duplicates("id", keep="last")
            keys = keys.merge(g.drop(columns=["group_id"]), on="id", how="left")
    return SourceTables(raw.source, {"usage_daily": usage}, keys, "tracks" if raw.source in ("segment", "rudderstack") else "event",
                        ledger=problems.ledger)
