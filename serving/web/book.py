"""A CSM's book as the page shows it: select, filter, rank and page the served snapshot (pure).

The snapshot's scores are one pandas frame; filtering and ranking 2,000 accounts there
costs a millisecond. Reasons (the costly part) are looked up only for the rows on the
page shown; the CSV export carries the first reason of every row it exports.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.snapshot import ScoredSnapshot

DAYS_PER_MONTH = 30.4375
ORDERS = {"readiness": "readiness_score", "value": "expected_expansion_usd"}
PAGE_SIZE = 100
CSV_COLUMNS = ["rank", "account_id", "csm_owner", "segment", "readiness_score", "readiness_band", "churn_probability",
               "health", "expected_expansion_usd", "whitespace_usd", "renewal_month", "readiness_change",
               "recommended_play", "reason_1", "open_pipeline_arr"]


@dataclass(frozen=True)
class BookQuery:
    """What the book shows: whose accounts, filters, order, page."""

    csm: str | None  # None: every account (leaders only)
    band: str | None = None
    health: str | None = None
    segment: str | None = None
    order: str = "value"
    page: int = 1


def owners(snapshot: ScoredSnapshot) -> list[str]:
    """Every CSM owner in the snapshot, sorted."""
    if "csm_owner" not in snapshot.features.columns:
        return []
    return sorted(snapshot.features["csm_owner"].dropna().astype(str).unique().tolist())


def segments(snapshot: ScoredSnapshot) -> list[str]:
    if "segment" not in snapshot.features.columns:
        return []
    return sorted(snapshot.features["segment"].dropna().astype(str).unique().tolist())


def _column(snapshot: ScoredSnapshot, name: str) -> pd.Series:
    if name in snapshot.features.columns:
        return snapshot.features[name]
    return pd.Series(np.nan, index=snapshot.features.index)


def select_book(snapshot: ScoredSnapshot, query: BookQuery, model_available: bool) -> tuple[list[str], str]:
    """Ids of the accounts shown, ranked (all pages), and the score column that ranks them."""
    scores = snapshot.scores
    if not len(scores):
        return [], "readiness_score"
    mask = pd.Series(True, index=scores.index)
    if query.csm is not None:
        mask &= _column(snapshot, "csm_owner").astype("string").eq(query.csm).fillna(False).to_numpy()
    if query.band:
        mask &= scores["readiness_band"].astype("string").eq(query.band).fillna(False)
    if query.health:
        mask &= scores["health"].astype("string").eq(query.health).fillna(False)
    if query.segment:
        mask &= _column(snapshot, "segment").astype("string").eq(query.segment).fillna(False).to_numpy()
    key = ORDERS.get(query.order, "expected_expansion_usd")
    if key == "expected_expansion_usd" and (not model_available or scores[key].isna().all()):
        key = "readiness_score"  # without an expansion model there is no expected value: readiness ranks
    ids = scores.index[mask.to_numpy()].tolist()
    return snapshot.ranked(ids, key), key


def renewal_month(months_to_renewal: Any, as_of: str | None) -> str | None:
    """The month of the next renewal (``YYYY-MM``), from the feature ``months_to_renewal``."""
    if as_of is None or months_to_renewal is None or months_to_renewal != months_to_renewal:
        return None
    day = dt.date.fromisoformat(str(as_of)[:10]) + dt.timedelta(days=float(months_to_renewal) * DAYS_PER_MONTH)
    return f"{day:%Y-%m}"


def rows(snapshot: ScoredSnapshot, ids: list[str], with_reasons: bool, pipeline: pd.DataFrame | None) -> list[dict]:
    """One display row per account id: the score record, context features, renewal month and open deals."""
    if not ids:
        return []
    records = snapshot.lookup(ids, with_reasons)
    context = [c for c in ("csm_owner", "segment", "arr", "months_to_renewal") if c in snapshot.features.columns]
    feats = snapshot.features.loc[ids, context].to_dict("records")
    deals = _deals_by_account(pipeline, ids)
    out = []
    for rank, (rec, f) in enumerate(zip(records, feats, strict=True), start=1):
        details = rec.get("reason_details") or []
        out.append({
            **rec, "rank": rank,
            "csm_owner": f.get("csm_owner"), "segment": f.get("segment"), "arr": f.get("arr"),
            "renewal_month": renewal_month(f.get("months_to_renewal"), snapshot.as_of),
            "top_reasons": [d["text"] if isinstance(d, dict) else str(d) for d in details[:2]],
            "deals": deals.get(rec["account_id"], []),
        })
    return out


def _deals_by_account(pipeline: pd.DataFrame | None, ids: list[str]) -> dict[str, list[dict]]:
    if pipeline is None or not len(pipeline):
        return {}
    shown = pipeline[pipeline["account_id"].isin(ids)]
    return {a: g.to_dict("records") for a, g in shown.groupby("account_id")}


def page(ids: list[str], number: int, size: int = PAGE_SIZE) -> tuple[list[str], int]:
    """The ids of page ``number`` (1-based, clamped) and the page count."""
    pages = max(1, -(-len(ids) // size))
    number = min(max(1, number), pages)
    return ids[(number - 1) * size: number * size], pages


def summary(snapshot: ScoredSnapshot, ids: list[str]) -> dict[str, Any]:
    """Counts and money over every account shown (all pages)."""
    if not ids:
        return {"accounts": 0, "outreach": 0, "red": 0, "expected_value": 0.0, "whitespace": 0.0}
    s = snapshot.scores.loc[ids]
    return {"accounts": len(ids), "outreach": int((s["readiness_band"] == "outreach").sum()),
            "red": int((s["health"] == "red").sum()),
            "expected_value": float(np.nansum(s["expected_expansion_usd"].to_numpy(dtype=float))),
            "whitespace": float(np.nansum(s["whitespace_usd"].to_numpy(dtype=float)))}


def to_csv(display_rows: list[dict]) -> str:
    """What the book shows, as CSV (one row per account, columns of :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in display_rows:
        reasons = r.get("top_reasons") or r.get("reasons") or []
        pipeline = sum(float(d.get("amount") or 0) for d in r.get("deals", []))
        writer.writerow({**{k: _plain(r.get(k)) for k in CSV_COLUMNS}, "reason_1": reasons[0] if reasons else "",
                         "open_pipeline_arr": pipeline if r.get("deals") else ""})
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value
