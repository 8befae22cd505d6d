"""What the leader's pages show: the leadership lines (each linking to the accounts behind it), the
portfolio per CSM, and the queue of accounts without an owner (with owner assignment)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from serving.api.forecast import ForecastRequest, stored_forecast
from serving.web import book as books
from serving.web import leadership as lead
from serving.web.auth import Session
from serving.web.charts import line_chart
from serving.web.formats import money
from serving.web.pages import ACTIVITY_DAYS, _as_of, _int, _num, names, owner, safe, since, table
from serving.web.state import WebState
from serving.web.store import StoreError

log = logging.getLogger(__name__)

#: What each leadership line's link lists: the movements or deals behind the figure.
LINE_ACCOUNTS = {"nrr": "every MRR movement of the trailing 12 months", "grr": "contractions and churn of the trailing 12 months",
                 "expansion_rate": "expansions of the last month", "target_pace": "expansions of the quarter to date",
                 "coverage": "open expansion deals due this quarter"}


def leadership_view(state: WebState) -> dict[str, Any]:
    """NRR and its trend, GRR, expansion rate and ARR against target, pipeline coverage, forecast, largest
    risks and opportunities, activity per CSM; each line with its status."""
    snap = state.snapshot()
    as_of = _as_of(snap)
    nm = names(state, snap)
    largest = lead.largest(snap)
    target = state.settings.expansion_target_arr_quarter
    revenue = None
    if as_of is not None and state.company.available:
        revenue = safe("revenue", lambda: state.company.revenue(as_of), None)
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
            _line("expansion_rate", rate, _pct(rate, 1), f"{month_of(last.get('period_start'))}: benchmark 2-4 % a month"),
            _line("target_pace", pace, _money(state, revenue["expansion_arr_qtd"]),
                  (f"of a {_money(state, target)} quarterly target ({revenue['months_in_quarter_done']} of 3 months "
                   f"of {revenue['quarter'][0]:%Y} Q{(revenue['quarter'][0].month - 1) // 3 + 1} gone)") if target
                  else "no target set: EXPANSION_EXPANSION_TARGET_ARR_QUARTER"),
        ]
        pipeline_present = state.company.has_pipeline()
        if pipeline_present:
            opps = safe("pipeline", lambda: state.company.open_opportunities(as_of), None)
            if opps is not None:
                q_end = revenue["quarter"][1]
                due = opps[pd.to_datetime(opps["expected_close_date"]).dt.date.fillna(q_end) <= q_end] if len(opps) else opps
                open_arr = float(due["amount"].sum()) if len(due) else 0.0
                cov = lead.coverage(open_arr, target, revenue["expansion_arr_qtd"])
                lines.append(_line("coverage", cov, "–" if cov is None else f"{cov:.1f}x",
                                   f"{_money(state, open_arr)} open expansion pipeline due this quarter, "
                                   f"{len(due)} deals" + ("" if target else "; no target set")))
    return {
        "as_of": snap.as_of, "model_available": state.model_available(), "data_available": state.company.available,
        "pipeline_present": state.company.available and state.company.has_pipeline(),
        "lines": lines, "trend_chart": trend_svg, "forecast": forecast_panel(state, as_of),
        "thresholds": lead.THRESHOLDS,
        "activity": state.store.activity_counts(since(as_of)).to_dict("records"), "activity_days": ACTIVITY_DAYS,
        "names": {a: nm.get(a, a) for a in [x["account_id"] for k in ("risks", "opportunities") for x in largest[k]]},
        "largest": largest, "unowned": int(owner(state, snap)[0].isna().sum()),
        "play_effects": play_effects_panel(state), "outcome_days": state.settings.play_outcome_days,
    }


def play_effects_panel(state: WebState) -> dict[str, Any]:
    """Each play's effect against its control group (``rows``: ``PlayEffect.as_dict`` with the ranking in force), as
    the newest ``expansion plays effect`` stored it (``measured``: its data end and time), or why there is none
    (``note``). Read, never computed here: measuring builds features and may train uplift models."""
    from serving.jobs.errors import InvalidInput
    from serving.jobs.plays import stored_report

    try:
        report = stored_report(state.settings)
    except InvalidInput as exc:
        log.warning("%s", exc)
        return {"rows": [], "note": "The stored play effects could not be read (see the log); the next run of "
                                    "expansion plays effect --data DIR writes them again."}
    if report is None:
        assignments = safe("play assignments", state.play_store.frame, None)
        if assignments is None or not len(assignments):
            return {"rows": [], "note": "No account has been assigned to a play yet: the holdout starts with the next "
                                        "scoring run (EXPANSION_PLAY_HOLDOUT_SHARE above 0)."}
        return {"rows": [], "note": "Play effects are measured by the monthly command expansion plays effect --data DIR "
                                    "(after the scoring run); it has not run in this home yet."}
    return {"rows": report["rows"], "note": None,
            "measured": {"data_end": report["data_end"], "at": f"{str(report['computed_at'])[:16]} UTC"}}


def forecast_panel(state: WebState, as_of: dt.date | None) -> dict[str, Any] | None:
    """The newest stored forecast made on or before ``as_of`` (what ``POST /forecast`` serves), or None.

    NRR with its 80 % interval, the horizon, and expansion ARR with its interval; ``expansion forecast``
    stores them in the CRM's SQL store. None (the panel says "not available") when none is stored.
    """
    if as_of is None:
        return None

    def newest() -> dict[str, Any] | None:
        found = stored_forecast(state.settings, ForecastRequest(as_of=as_of, group="all"))
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
                "expansion_arr_high": None if expansion is None else expansion.high80,
                "method": method_note(nrr, expansion)}

    return safe("forecast", newest, None)


METHOD_NAMES = {"model": "the model", "naive_last": "last period's rates", "naive_mean4": "mean of the last four periods' rates",
                "blend": "a blend of the model and both naive forecasts"}


def method_note(nrr: Any, expansion: Any) -> str:
    """Which forecast serves each headline measure and its past error (``Figure``s), e.g. for the leadership page."""
    parts = []
    for label, unit, f in (("NRR", "NRR points", nrr), ("expansion ARR", "points of starting ARR", expansion)):
        if f is None:
            continue
        record = (f"past error {f.past_error_pts:.1f} {unit} over {f.past_cutoffs} cut-offs"
                  if f.past_error_pts is not None and f.past_cutoffs else "no past cut-offs with outcomes yet")
        parts.append(f"{label} from {METHOD_NAMES.get(f.method, f.method)} ({record})")
    return "; ".join(parts)


def _line(key: str, value: float | None, shown: str, note: str) -> dict[str, Any]:
    t = lead.THRESHOLDS[key]
    return {"key": key, "label": t.line, "value": value, "shown": shown, "note": note, "status": lead.status(key, value)}


def _pct(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f} %"


def _money(state: WebState, value: float | None) -> str:
    return money(value, state.settings.currency_symbol)



def portfolio_view(state: WebState) -> dict[str, Any]:
    """Per CSM: accounts, ARR, red accounts, expected expansion value, renewals in 90 days and plays planned /
    done in the last 30 days, each linking to that CSM's book."""
    snap = state.snapshot()
    t = table(state, snap)
    own, _ = owner(state, snap)
    frame = t.assign(owner=own.fillna("(no owner)"), red=t["health"].eq("red").fillna(False),
                     renewing=((t["days_to_renewal"] >= 0) & (t["days_to_renewal"] <= 90)).fillna(False))
    grouped = frame.groupby("owner", sort=True).agg(
        accounts=("name", "size"), arr=("arr", "sum"), red=("red", "sum"), renewing=("renewing", "sum"),
        expected=("expected_expansion_usd", lambda v: float(np.nansum(v.to_numpy(dtype=float)))),
        readiness=("readiness_score", "median"))
    activity = state.store.activity_counts(since(_as_of(snap)))
    by_book = activity.dropna(subset=["csm_owner"]).groupby("csm_owner")[["planned", "done"]].sum()
    rows = [{"owner": o, **{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()},
             "planned": int(by_book["planned"].get(o, 0)), "done": int(by_book["done"].get(o, 0)),
             "unowned": o == "(no owner)"} for o, r in grouped.iterrows()]
    rows.sort(key=lambda r: (r["unowned"], -float(r["arr"] or 0)))
    return {"as_of": snap.as_of, "model_available": state.model_available(), "rows": rows,
            "activity_days": ACTIVITY_DAYS, "total_arr": float(np.nansum(t["arr"].to_numpy(dtype=float)))}


def unowned_view(state: WebState, params: Mapping[str, str]) -> dict[str, Any]:
    """Accounts the data leaves without an owner, largest ARR first, filtered by segment and band; the owner a
    leader assigned shows beside them."""
    snap = state.snapshot()
    t = table(state, snap)
    _, assigned = owner(state, snap)
    segment, band = params.get("segment") or "", params.get("band") or ""
    mask = t["csm_owner"].isna()
    if segment:
        mask &= t["segment"].eq(segment).fillna(False)
    if band:
        mask &= t["readiness_band"].eq(band).fillna(False)
    ids = t[mask.to_numpy(dtype=bool)].sort_values(["arr", "name_key"], ascending=[False, True],
                                                   na_position="last").index.astype(str).tolist()
    shown, page_no, pages = books.page(ids, _int(params.get("page"), 1))
    rows = books.rows(snap, t, t["csm_owner"], shown, False, None)
    for r in rows:
        r["assigned"] = assigned.get(r["account_id"])
    return {"as_of": snap.as_of, "rows": rows, "total": len(ids), "page": page_no, "pages": pages,
            "segments": books.segments(t), "bands": ("outreach", "nurture", "adoption"), "segment": segment,
            "band": band, "owners": books.owners(t, {}), "assigned_count": sum(a in assigned for a in ids)}


def assign_owner(state: WebState, session: Session, account_id: str, fields: Mapping[str, str],
                 now: dt.datetime) -> str | None:
    """A leader gives an unowned account an owner (kept in the product's store); the error to show, or None."""
    snap = state.snapshot()
    if account_id not in snap.scores.index:
        return f"account: {account_id!r} is not in the served snapshot"
    if pd.notna(table(state, snap).at[account_id, "csm_owner"]):
        return "owner: this account has an owner in the data; change it there"
    try:
        state.store.assign_owner(account_id, fields.get("owner", ""), session.name, now)
    except StoreError as exc:
        return str(exc)
    return None


def line_accounts_view(state: WebState, key: str) -> dict[str, Any] | None:
    """The accounts behind one leadership line (None for an unknown line), largest ARR effect first."""
    if key not in LINE_ACCOUNTS:
        return None
    snap = state.snapshot()
    as_of = _as_of(snap)
    nm = names(state, snap)
    rows: list[dict[str, Any]] = []
    if as_of is not None and state.company.available:
        if key == "coverage":
            opps = safe("pipeline", lambda: state.company.open_opportunities(as_of), None) \
                if state.company.has_pipeline() else None
            if opps is not None and len(opps):
                q_end = lead_quarter(as_of)[1]
                due = opps[pd.to_datetime(opps["expected_close_date"]).dt.date.fillna(q_end) <= q_end]
                rows = [{"account_id": str(o["account_id"]), "date": o["expected_close_date"],
                         "what": f"{o['kind']} at {o['stage'] or 'no stage'}", "arr": float(o["amount"])}
                        for o in due.to_dict("records")]
        else:
            months = 1 if key == "expansion_rate" else 3 if key == "target_pace" else 12
            mv = safe("movements", lambda: state.company.movements(as_of, months), pd.DataFrame())
            if len(mv):
                if key == "grr":
                    mv = mv[mv["movement"].isin(["contraction", "churn"])]
                elif key != "nrr":
                    mv = mv[mv["movement"] == "expansion"]
                if key == "target_pace":
                    mv = mv[pd.to_datetime(mv["date"]).dt.date >= lead_quarter(as_of)[0]]
                rows = [{"account_id": m["account_id"], "date": m["date"], "what": m["movement"],
                         "arr": float(m["arr_delta"])} for m in mv.to_dict("records")]
    rows.sort(key=lambda r: -abs(r["arr"]))
    known = set(snap.scores.index)
    for r in rows:
        r["name"] = nm.get(r["account_id"], r["account_id"])
        r["in_snapshot"] = r["account_id"] in known
    return {"as_of": snap.as_of, "key": key, "line": lead.THRESHOLDS[key].line, "what": LINE_ACCOUNTS[key],
            "rows": rows[:500], "total": len(rows), "arr": float(sum(r["arr"] for r in rows))}


def lead_quarter(as_of: dt.date) -> tuple[dt.date, dt.date]:
    from serving.web.company import quarter_bounds

    return quarter_bounds(as_of)


def month_of(value: Any) -> str:
    """A month as people say it: "June 2026"."""
    return "–" if value is None or value != value else f"{pd.Timestamp(value):%B %Y}"
