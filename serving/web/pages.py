"""What each page shows, as plain dictionaries for the templates (the routes stay a few lines each)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from serving.forecast_api import ForecastRequest, stored_forecast
from serving.web import book as books
from serving.web import leadership as lead
from serving.web.auth import Session
from serving.web.charts import line_chart, usage_chart
from serving.web.state import WebState
from serving.web.store import OUTCOMES, StoreError

log = logging.getLogger(__name__)
BANDS = ("outreach", "nurture", "adoption")
HEALTHS = ("red", "yellow", "green")
WHITESPACE_KINDS = {"whitespace_seats_usd": "unlicensed seats", "whitespace_products_usd": "products not owned",
                    "whitespace_tier_usd": "next plan tier"}
ACTIVITY_DAYS = 30


def _as_of(snapshot: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(snapshot.as_of)[:10]) if snapshot.as_of else None


def _safe(what: str, compute: Any, default: Any) -> Any:
    """Optional panels (raw data, pipeline) never break a page: a failure is logged and the panel says so."""
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - a panel's data source is optional; the page still renders
        log.warning("page panel %s unavailable: %s: %s", what, type(exc).__name__, exc)
        return default


def book_view(state: WebState, session: Session, params: Mapping[str, str]) -> dict[str, Any]:
    """The signed-in person's book (a leader may pick any CSM or all), filtered, ranked, one page of it."""
    snap = state.snapshot()
    as_of = _as_of(snap)
    owners = books.owners(snap)
    if session.is_leader:
        picked = params.get("csm") or ""
        csm = picked or None
    else:
        csm = session.csm_owner or session.name
        picked = csm
    query = books.BookQuery(csm=csm, band=params.get("band") or None, health=params.get("health") or None,
                            segment=params.get("segment") or None, order=params.get("order") or "value",
                            page=_int(params.get("page"), 1))
    ids, key = books.select_book(snap, query, state.model_available())
    shown, pages = books.page(ids, query.page)
    pipeline = None
    if as_of is not None and state.company.has_pipeline():
        pipeline = _safe("pipeline", lambda: state.company.open_opportunities(as_of), None)
    csv_rows = books.rows(snap, ids, True, pipeline) if params.get("format") == "csv" else None
    since = dt.datetime.combine(as_of or dt.date.today(), dt.time()) - dt.timedelta(days=ACTIVITY_DAYS)
    activity = state.store.activity_counts(since, None if session.is_leader else csm)
    wins = pd.DataFrame()
    if as_of is not None and state.company.available:
        wins = _safe("recent wins", lambda: state.company.recent_wins(as_of).head(8), pd.DataFrame())
    filters = {k: params.get(k) or "" for k in ("band", "health", "segment")}
    return {
        "as_of": snap.as_of, "snapshot_accounts": len(snap), "model_available": state.model_available(),
        "owners": owners, "picked": picked, "csm": csm, "rows": books.rows(snap, shown, True, pipeline),
        "summary": books.summary(snap, ids), "order": query.order, "ranked_by": key, "page": min(query.page, pages),
        "pages": pages, "filters": filters, "bands": BANDS, "healths": HEALTHS, "segments": books.segments(snap),
        "pipeline_present": pipeline is not None, "activity": activity.to_dict("records"),
        "activity_days": ACTIVITY_DAYS, "wins": wins.to_dict("records"), "wins_source": _wins_source(state),
        "csv": books.to_csv(csv_rows) if csv_rows is not None else None,
        "query_string": {k: v for k, v in {**filters, "csm": picked if session.is_leader else "",
                                           "order": query.order}.items() if v},
    }


def _wins_source(state: WebState) -> str | None:
    if not state.company.available:
        return None
    return "won expansion deals" if state.company.has_pipeline() else "expansions in the subscription history"


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def account_view(state: WebState, account_id: str) -> dict[str, Any] | None:
    """Everything the account page shows; None for an account not in the served snapshot."""
    snap = state.snapshot()
    if account_id not in snap.scores.index:
        return None
    as_of = _as_of(snap)
    record = snap.lookup([account_id], True)[0]
    feats = snap.features.loc[account_id]
    history = state.store.score_history(account_id)
    history_chart = None
    if len(history) >= 2:  # one run is a point, not a history: the page says its figures instead
        history_chart = line_chart(pd.to_datetime(history["as_of"]).tolist(),
                                   {"readiness (0-100)": history["readiness_score"].tolist(),
                                    "churn risk (%)": (history["churn_probability"].astype(float) * 100).tolist()},
                                   f"Score history of {account_id}", "points / %")
    usage = pd.DataFrame()
    if as_of is not None and state.company.available:
        usage = _safe("usage", lambda: state.company.usage(account_id, as_of), pd.DataFrame())
    usage_svg, limited = None, False
    if len(usage):
        limited = bool(usage["usage_limit"].notna().any())
        limits = [None if v is None or v != v else float(v) for v in usage["usage_limit"]]
        usage_svg = usage_chart(pd.to_datetime(usage["month"]).tolist(), usage["events"].astype(float).tolist(), limits,
                                f"Monthly events of {account_id} against the plan limit")
    deals = []
    if as_of is not None and state.company.has_pipeline():
        opps = _safe("pipeline", lambda: state.company.open_opportunities(as_of), None)
        deals = [] if opps is None else opps[opps["account_id"] == account_id].to_dict("records")
    whitespace = [(label, _num(feats.get(name))) for name, label in WHITESPACE_KINDS.items() if name in feats.index]
    return {
        "account_id": account_id, "as_of": snap.as_of, "model_available": state.model_available(), "r": record,
        "owner": feats.get("csm_owner"), "segment": feats.get("segment"), "arr": _num(feats.get("arr")),
        "renewal_month": books.renewal_month(feats.get("months_to_renewal"), snap.as_of),
        "quota_pct": _num(feats.get("quota_utilization_30d_pct")),
        "history_chart": history_chart, "history_runs": len(history), "usage_chart": usage_svg,
        "usage_source": state.company.available, "usage_limited": limited, "whitespace": whitespace, "deals": deals,
        "plays": state.store.plays_for(account_id), "outcomes": OUTCOMES, "play_choices": _play_choices(record),
    }


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _play_choices(record: dict[str, Any]) -> list[str]:
    from features.reason_catalog import PLAYS

    names = [p.name for p in PLAYS]
    first = record.get("recommended_play")
    return ([first] if first else []) + [n for n in names if n != first]


def log_play(state: WebState, session: Session, view: dict[str, Any], fields: Mapping[str, str],
             now: dt.datetime) -> str | None:
    """Write one play from the account page's form; the error to show, or None when saved."""
    play = fields.get("play", "")
    if play not in view["play_choices"]:
        return f"play: choose one of the listed plays, got {play!r}"
    try:
        state.store.log_play(view["account_id"], view["owner"], session.name, play, fields.get("outcome", ""),
                             fields.get("note") or None, now)
    except StoreError as exc:
        return str(exc)
    return None


def leadership_view(state: WebState) -> dict[str, Any]:
    """NRR and its trend, GRR, expansion rate and ARR against target, pipeline coverage, forecast, largest
    risks and opportunities, activity per CSM; each line with its status."""
    snap = state.snapshot()
    as_of = _as_of(snap)
    target = state.settings.expansion_target_arr_quarter
    revenue = None
    if as_of is not None and state.company.available:
        revenue = _safe("revenue", lambda: state.company.revenue(as_of), None)
    lines, trend_svg = [], None
    if revenue is not None and len(revenue["ttm"]):
        ttm = revenue["ttm"]
        nrr, grr = float(ttm["nrr_pct"].iloc[-1]), float(ttm["grr_pct"].iloc[-1])
        first = float(ttm["nrr_pct"].iloc[0])
        # drawing costs ~0.3 s; the figures change only with the data, so the drawing is kept beside them
        trend_svg = state.company.cached("nrr_trend_svg", as_of, lambda: line_chart(
            pd.to_datetime(ttm["period_end"]).tolist(),
            {"NRR (%)": ttm["nrr_pct"].tolist(), "GRR (%)": ttm["grr_pct"].tolist()},
            "NRR and GRR over the trailing 12 months, at each month end", "%", reference=(100.0, "100 %")))
        last = revenue["last_month"] or {}
        rate = _num(last.get("expansion_rate_pct"))
        pace = lead.target_pace(revenue["expansion_arr_qtd"], target, revenue["months_in_quarter_done"])
        lines += [
            _line("nrr", nrr, _pct(nrr), f"{_pct(first)} twelve months ago ({len(ttm)} month ends)"),
            _line("grr", grr, _pct(grr), "gross of expansion: product quality and fit"),
            _line("expansion_rate", rate, _pct(rate, 1), f"{last.get('period_start')}: benchmark 2-4 % a month"),
            _line("target_pace", pace, _money(state, revenue["expansion_arr_qtd"]),
                  (f"of a {_money(state, target)} quarterly target ({revenue['months_in_quarter_done']} of 3 months "
                   f"of {revenue['quarter'][0]:%Y} Q{(revenue['quarter'][0].month - 1) // 3 + 1} gone)") if target
                  else "no target set: EXPANSION_EXPANSION_TARGET_ARR_QUARTER"),
        ]
        pipeline_present = state.company.has_pipeline()
        if pipeline_present:
            opps = _safe("pipeline", lambda: state.company.open_opportunities(as_of), None)
            if opps is not None:
                q_end = revenue["quarter"][1]
                due = opps[pd.to_datetime(opps["expected_close_date"]).dt.date.fillna(q_end) <= q_end] if len(opps) else opps
                open_arr = float(due["amount"].sum()) if len(due) else 0.0
                cov = lead.coverage(open_arr, target, revenue["expansion_arr_qtd"])
                lines.append(_line("coverage", cov, "–" if cov is None else f"{cov:.1f}x",
                                   f"{_money(state, open_arr)} open expansion pipeline due this quarter, "
                                   f"{len(due)} deals" + ("" if target else "; no target set")))
    since = dt.datetime.combine(as_of or dt.date.today(), dt.time()) - dt.timedelta(days=ACTIVITY_DAYS)
    return {
        "as_of": snap.as_of, "model_available": state.model_available(), "data_available": state.company.available,
        "pipeline_present": state.company.available and state.company.has_pipeline(),
        "lines": lines, "trend_chart": trend_svg, "forecast": forecast_panel(state, as_of),
        "largest": lead.largest(snap), "thresholds": lead.THRESHOLDS,
        "activity": state.store.activity_counts(since).to_dict("records"), "activity_days": ACTIVITY_DAYS,
    }


def forecast_panel(state: WebState, as_of: dt.date | None) -> dict[str, Any] | None:
    """The newest stored forecast made on or before ``as_of`` (what ``POST /forecast`` serves), or None.

    NRR with its 80 % interval, the horizon, and expansion ARR with its interval; ``expansion forecast``
    stores them in the CRM's SQL store. None (the panel says "not available") when none is stored.
    """
    if as_of is None:
        return None

    def newest() -> dict[str, Any] | None:
        found = stored_forecast(state.settings.crm_uri, ForecastRequest(as_of=as_of, group="all"))
        if not found.found:
            return None
        by = {f.measure: f for f in found.figures}
        nrr, expansion = by.get("nrr_pct"), by.get("expansion_arr")
        if nrr is None:
            return None
        return {"quarter": f"next {found.horizon_days} days from {found.as_of}", "nrr_pct": nrr.forecast,
                "nrr_pct_low": nrr.low80, "nrr_pct_high": nrr.high80,
                "expansion_arr": None if expansion is None else expansion.forecast,
                "expansion_arr_low": None if expansion is None else expansion.low80,
                "expansion_arr_high": None if expansion is None else expansion.high80}

    return _safe("forecast", newest, None)


def _line(key: str, value: float | None, shown: str, note: str) -> dict[str, Any]:
    t = lead.THRESHOLDS[key]
    return {"key": key, "label": t.line, "value": value, "shown": shown, "note": note, "status": lead.status(key, value)}


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f} %"


def _money(state: WebState, value: float | None) -> str:
    return money(value, state.settings.currency_symbol)


def money(value: Any, symbol: str = "$") -> str:
    """Money as people scan it: $1.2M, $35.0k, $900."""
    if value is None or value != value:
        return "–"
    value = float(value)
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{symbol}{value / size:,.1f}{suffix}"
    return f"{symbol}{value:,.0f}"
