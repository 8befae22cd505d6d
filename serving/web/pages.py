"""What each page a CSM works in shows, as plain dictionaries for the templates (the routes stay a few lines each):
the book, an account, search, renewals, and the play log's writes. The leader's pages are in
:mod:`serving.web.leader_pages`."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from serving.web import book as books
from serving.web.auth import Session
from serving.web.charts import line_chart, usage_chart
from serving.web.formats import clean
from serving.web.search import SearchIndex
from serving.web.state import WebState
from serving.web.store import DETAIL_FOR, DETAILS, OUTCOMES, REASON_CODES, StoreError
from serving.web.timeline import account_timeline, company_events

log = logging.getLogger(__name__)
BANDS = ("outreach", "nurture", "adoption")
HEALTHS = ("red", "yellow", "green")
WHITESPACE_KINDS = {"whitespace_seats_usd": "unlicensed seats", "whitespace_products_usd": "products not owned",
                    "whitespace_tier_usd": "next plan tier"}
ACTIVITY_DAYS = 30


def _as_of(snapshot: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(snapshot.as_of)[:10]) if snapshot.as_of else None


def safe(what: str, compute: Any, default: Any) -> Any:
    """Optional panels (raw data, pipeline) never break a page: a failure is logged and the panel says so."""
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - a panel's data source is optional; the page still renders
        log.warning("page panel %s unavailable: %s: %s", what, type(exc).__name__, exc)
        return default


def names(state: WebState, snap: Any) -> dict[str, str]:
    """Account names by id (the data's ``accounts.name``), once per snapshot; empty without the data folder."""
    return state.per_snapshot(snap, "names", lambda: safe("names", state.company.names, {})
                              if state.company.available else {})


def table(state: WebState, snap: Any) -> pd.DataFrame:
    return state.per_snapshot(snap, "table", lambda: books.book_table(snap, names(state, snap)))


def owner(state: WebState, snap: Any) -> tuple[pd.Series, dict[str, dict]]:
    """Each account's owner (the data's, else the assigned one) and the assignments themselves."""
    assigned = state.store.assignments()
    return books.owners_of(table(state, snap), {a: r["csm_owner"] for a, r in assigned.items()}), assigned


def index(state: WebState, snap: Any) -> SearchIndex:
    return state.per_snapshot(snap, "search", lambda: SearchIndex.build(list(snap.scores.index.astype(str)),
                                                                         names(state, snap)))


def since(as_of: dt.date | None, days: int = ACTIVITY_DAYS) -> dt.datetime:
    return dt.datetime.combine(as_of or dt.date.today(), dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=days)


def book_view(state: WebState, session: Session, params: Mapping[str, str]) -> dict[str, Any]:
    """The signed-in person's book (a leader may pick any CSM or all): filtered, sorted, one page of it,
    what changed since the previous run, renewals due, the plays logged and recent wins."""
    snap = state.snapshot()
    as_of = _as_of(snap)
    t = table(state, snap)
    own, _ = owner(state, snap)
    if session.is_leader:
        picked = params.get("csm") or ""
        csm = picked or None
    else:
        csm = session.csm_owner or session.name
        picked = csm
    direction = params.get("dir")
    query = books.BookQuery(csm=csm, band=params.get("band") or None, health=params.get("health") or None,
                            segment=params.get("segment") or None, order=params.get("order") or "value",
                            descending=None if direction not in ("asc", "desc") else direction == "desc",
                            page=_int(params.get("page"), 1))
    ids, order = books.select_book(t, own, query, state.model_available())
    play, play_ranking = params.get("play") or None, None
    if play:  # a play's accounts: by the ranking in force for it (uplift when it earned its place, else readiness)
        ids, play_ranking = books.select_play(snap, t, own, query, play)
    shown, page_no, pages = books.page(ids, query.page)
    deals = None
    if as_of is not None and state.company.has_pipeline():
        deals = state.per_snapshot(snap, "deals", lambda: _deals(state, as_of))
    csv_rows = books.rows(snap, t, own, ids, True, deals) if params.get("format") == "csv" else None
    activity = state.store.activity_counts(since(as_of), None if session.is_leader else session.name)
    wins = pd.DataFrame()
    if as_of is not None and state.company.available:
        wins = safe("recent wins", lambda: state.company.recent_wins(as_of).head(8), pd.DataFrame())
    nm = names(state, snap)
    filters = {k: params.get(k) or "" for k in ("band", "health", "segment", "play")}
    mine = books.mask_of(t, own, books.BookQuery(csm=csm))
    moves = books.biggest_moves(t, mine)
    descending = books.ORDERS[order][1] if query.descending is None else query.descending
    if as_of is not None and state.company.available:  # after the book's own reads: the first account opens fast
        state.warm(snap, "account pages", lambda: _warm_accounts(state, as_of))
    return {
        "as_of": snap.as_of, "snapshot_accounts": len(snap), "model_available": state.model_available(),
        "owners": sorted(set(state.per_snapshot(snap, "owners", lambda: books.owners(t))) | set(own.dropna())),
        "picked": picked, "csm": csm, "rows": books.rows(snap, t, own, shown, True, deals),
        "summary": books.summary(t, books.mask_of(t, own, query)), "order": order, "descending": descending,
        "page": page_no, "pages": pages, "page_size": books.PAGE_SIZE, "filters": filters, "bands": BANDS,
        "healths": HEALTHS, "segments": state.per_snapshot(snap, "segments", lambda: books.segments(t)),
        "pipeline_present": deals is not None, "play_ranking": play_ranking, "plays": _play_names(),
        "activity": activity.to_dict("records"), "activity_days": ACTIVITY_DAYS,
        "wins": [{**w, "name": nm.get(str(w["account_id"]), w["account_id"])} for w in wins.to_dict("records")],
        "wins_source": _wins_source(state), "csv": books.to_csv(csv_rows) if csv_rows is not None else None,
        "moves": {k: _move_rows(snap, t, v) for k, v in moves.items()},
        "renewals_due": books.renewal_counts(t, mine),
        "query_string": {k: v for k, v in {**filters, "csm": picked if session.is_leader else ""}.items() if v},
    }


def _warm_accounts(state: WebState, as_of: dt.date) -> None:
    """Every account's timeline events and monthly usage, read once per snapshot (one scan of each table)."""
    safe("timeline", lambda: company_events(state.company, as_of), None)
    safe("usage", lambda: state.company.usage("", as_of), None)


def _move_rows(snap: Any, t: pd.DataFrame, ids: list[str]) -> list[dict[str, Any]]:
    records = snap.lookup(ids, False)
    return [{"account_id": a, "name": t.at[a, "name"], "readiness_change": t.at[a, "readiness_change"],
             "churn_risk_change": t.at[a, "churn_risk_change"], "readiness_score": t.at[a, "readiness_score"],
             "why": clean(r).get("change_reason")} for a, r in zip(ids, records, strict=True)]


def _wins_source(state: WebState) -> str | None:
    if not state.company.available:
        return None
    return "won expansion deals" if state.company.has_pipeline() else "expansions in the subscription history"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def search_view(state: WebState, query: str) -> dict[str, Any]:
    """Accounts matching part of a name, an id or a domain-like prefix, best first, with their owner and scores."""
    snap = state.snapshot()
    found = index(state, snap).find(query) if query.strip() else []
    t = table(state, snap)
    own, _ = owner(state, snap)
    results = [{"account_id": a, "name": n, "owner": _text(own.get(a)), "segment": _text(t.at[a, "segment"]),
                "readiness_score": t.at[a, "readiness_score"], "health": t.at[a, "health"], "arr": t.at[a, "arr"]}
               for a, n in found]
    return {"as_of": snap.as_of, "q": query, "results": results}


def renewals_view(state: WebState, session: Session, params: Mapping[str, str]) -> dict[str, Any]:
    """Accounts renewing in the next 30 / 60 / 90 days with churn risk and readiness: a CSM's book, or any
    CSM's or every book for a leader."""
    snap = state.snapshot()
    t = table(state, snap)
    own, _ = owner(state, snap)
    days = _int(params.get("days"), 90)
    days = days if days in books.RENEWAL_WINDOWS else 90
    csm = (params.get("csm") or None) if session.is_leader else (session.csm_owner or session.name)
    ids = books.renewals(t, own, csm, days)
    return {"as_of": snap.as_of, "days": days, "windows": books.RENEWAL_WINDOWS, "csm": csm,
            "owners": books.owners(t, {}), "picked": csm or "",
            "rows": books.rows(snap, t, own, ids[:500], True, None), "total": len(ids),
            "arr": float(t.loc[ids, "arr"].sum()) if ids else 0.0,
            "counts": books.renewal_counts(t, books.mask_of(t, own, books.BookQuery(csm=csm)))}


def account_view(state: WebState, account_id: str) -> dict[str, Any] | None:
    """Everything the account page shows; None for an account not in the served snapshot."""
    snap = state.snapshot()
    if account_id not in snap.scores.index:
        return None
    as_of = _as_of(snap)
    record = clean(snap.lookup([account_id], True)[0])
    feats = _fields(state, snap).get(account_id, {})
    t = table(state, snap)
    name = t.at[account_id, "name"]
    history = state.store.score_history(account_id)
    history_chart = None
    if len(history) >= 2:  # one run is a point, not a history: the page says its figures instead
        key = ("history", account_id, tuple(map(str, history["as_of"])), tuple(history["readiness_score"]))
        history_chart = state.chart(snap, key, lambda: line_chart(
            pd.to_datetime(history["as_of"]).tolist(),
            {"readiness": history["readiness_score"].astype(float).tolist(),
             "churn risk %": (history["churn_probability"].astype(float) * 100).tolist()},
            f"Score history of {name}", "points / %"))
    usage = pd.DataFrame()
    if as_of is not None and state.company.available:
        usage = safe("usage", lambda: state.company.usage(account_id, as_of), pd.DataFrame())
    usage_svg, limited = None, False
    if len(usage):
        limited = bool(usage["usage_limit"].notna().any())
        usage_svg = state.chart(snap, ("usage", account_id), lambda: usage_chart(
            pd.to_datetime(usage["month"]).tolist(), usage["events"].astype(float).tolist(),
            [None if v is None or v != v else float(v) for v in usage["usage_limit"]],
            f"Monthly events of {name} against the plan limit"))
    deals = []
    if as_of is not None and state.company.has_pipeline():
        deals = state.per_snapshot(snap, "deals", lambda: _deals(state, as_of)).get(account_id, [])
    raw = []
    if as_of is not None and state.company.available:
        raw = safe("timeline", lambda: company_events(state.company, as_of).of(account_id), [])
    plays = state.store.plays_for(account_id)
    assigned = state.store.assignments().get(account_id)
    control = state.play_store.control_groups(account_id, as_of) if as_of is not None else []
    whitespace = [(label, _num(feats.get(name))) for name, label in WHITESPACE_KINDS.items() if name in feats]
    return {
        "account_id": account_id, "name": name, "as_of": snap.as_of, "model_available": state.model_available(),
        "r": record, "owner": _text(feats.get("csm_owner")), "assigned": assigned, "control_groups": control,
        "segment": _text(feats.get("segment")), "arr": _num(feats.get("arr")),
        "renewal_date": books.renewal_date(_num(feats.get("months_to_renewal")), snap.as_of),
        "quota_pct": _num(feats.get("quota_utilization_30d_pct")),
        "history_chart": history_chart, "history_runs": len(history), "usage_chart": usage_svg,
        "usage_source": state.company.available, "usage_limited": limited, "whitespace": whitespace, "deals": deals,
        "timeline": account_timeline(raw, plays, history), "timeline_source": state.company.available,
        "plays": plays, "outcomes": OUTCOMES, "reason_codes": REASON_CODES, "play_choices": _play_choices(record),
    }


#: The features the account page shows, read once per snapshot into one dictionary per account.
ACCOUNT_FIELDS = ("csm_owner", "segment", "arr", "months_to_renewal", "quota_utilization_30d_pct", *WHITESPACE_KINDS)


def _fields(state: WebState, snap: Any) -> dict[str, dict[str, Any]]:
    columns = [c for c in ACCOUNT_FIELDS if c in snap.features.columns]
    return state.per_snapshot(snap, "fields", lambda: snap.features[columns].to_dict("index"))


def _deals(state: WebState, as_of: dt.date) -> dict[str, list[dict[str, Any]]]:
    opps = safe("pipeline", lambda: state.company.open_opportunities(as_of), None)
    if opps is None or not len(opps):
        return {}
    return {str(a): g.to_dict("records") for a, g in opps.groupby("account_id", sort=False)}


def _text(value: Any) -> str | None:
    """A data value for display: None for any missing marker (None, NaN, ``pd.NA``), else its text."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _play_names() -> list[str]:
    from features.reason_catalog import PLAYS

    return [p.name for p in PLAYS]


def _play_choices(record: dict[str, Any]) -> list[str]:
    from features.reason_catalog import PLAYS

    names_ = [p.name for p in PLAYS]
    first = record.get("recommended_play")
    return ([first] if first else []) + [n for n in names_ if n != first]


def _details(fields: Mapping[str, str]) -> dict[str, Any]:
    """The play's detail fields from a form: only the one its outcome takes (the form shows all three)."""
    outcome, text = fields.get("outcome", ""), {k: (fields.get(k) or "").strip() for k in DETAILS}
    wanted = DETAIL_FOR.get(outcome)
    if wanted is None or not text[wanted]:
        return {}
    if wanted == "amount":
        try:
            return {"amount": float(text["amount"].replace(",", ""))}
        except ValueError:
            raise StoreError(f"amount: a number (the MRR won), got {text['amount']!r}") from None
    if wanted == "planned_for":
        try:
            return {"planned_for": dt.date.fromisoformat(text["planned_for"])}
        except ValueError:
            raise StoreError(f"planned_for: a date as YYYY-MM-DD, got {text['planned_for']!r}") from None
    return {wanted: text[wanted]}


def log_play(state: WebState, session: Session, view: dict[str, Any], fields: Mapping[str, str],
             now: dt.datetime) -> str | None:
    """Write one play from the account page's form, credited to whoever logs it; the error to show, or None."""
    play = fields.get("play", "")
    if play not in view["play_choices"]:
        return f"play: choose one of the listed plays, got {play!r}"
    try:
        state.store.log_play(view["account_id"], view["owner"] or (view["assigned"] or {}).get("csm_owner"),
                             session.name, play, fields.get("outcome", ""), fields.get("note") or None, now,
                             **_details(fields))
    except StoreError as exc:
        return str(exc)
    return None


def update_play(state: WebState, session: Session, account_id: str, play_id: str, fields: Mapping[str, str],
                now: dt.datetime) -> str | None:
    """Move a logged play on or correct it (its author or a leader); the error to show, or None."""
    try:
        state.store.update_play(_int(play_id, -1), account_id, session.name, session.is_leader,
                                fields.get("outcome", ""), fields.get("note") or None, now, **_details(fields))
    except StoreError as exc:
        return str(exc)
    return None
