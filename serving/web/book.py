"""A CSM's book as the pages show it: select, filter, sort and page the served snapshot (pure).

:func:`book_table` gathers, once per snapshot, one row per account with every column the
book sorts or filters on; filtering and sorting 2,000 accounts there costs a few
milliseconds. Reasons (the costly part) are looked up only for the rows on the page shown;
the CSV export carries the first reason of every row it exports. An account the data leaves
without an owner belongs to the owner a leader assigned it (``owner_assignments``), if any.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.api.snapshot import ScoredSnapshot
from serving.web.formats import clean

DAYS_PER_MONTH = 30.4375
#: Sort keys of the book: the column sorted on and whether the first page shows its largest values.
ORDERS: dict[str, tuple[str, bool]] = {
    "value": ("expected_expansion_usd", True), "readiness": ("readiness_score", True), "churn": ("churn_risk", True),
    "arr": ("arr", True), "whitespace": ("whitespace_usd", True), "renewal": ("days_to_renewal", False),
    "change": ("readiness_change", True), "name": ("name_key", False),
}
PAGE_SIZE = 100
RENEWAL_WINDOWS = (30, 60, 90)
CSV_COLUMNS = ["rank", "account_id", "name", "csm_owner", "segment", "arr", "readiness_score", "readiness_band",
               "churn_probability", "health", "expected_expansion_usd", "whitespace_usd", "renewal_date",
               "readiness_change", "recommended_play", "play_uplift", "reason_1", "open_pipeline_arr"]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class BookQuery:
    """What the book shows: whose accounts, filters, sort order and direction, page."""

    csm: str | None  # None: every account (leaders only)
    band: str | None = None
    health: str | None = None
    segment: str | None = None
    order: str = "value"
    descending: bool | None = None  # None: the order's natural direction
    page: int = 1


def _feature(snapshot: ScoredSnapshot, name: str) -> pd.Series:
    if name in snapshot.features.columns:
        return snapshot.features[name]
    return pd.Series(np.nan, index=snapshot.features.index)


def book_table(snapshot: ScoredSnapshot, names: dict[str, str]) -> pd.DataFrame:
    """One row per account of the snapshot with every column the book filters and sorts on (once per snapshot)."""
    s = snapshot.scores
    churn = pd.to_numeric(s["churn_probability"], errors="coerce").astype(float) if len(s) else pd.Series(dtype=float)
    if len(s) and churn.isna().all():
        churn = pd.to_numeric(s["baseline_risk"], errors="coerce").astype(float) / 100.0  # no churn model: the rule
    ids = s.index.astype(str)
    name = pd.Series([names.get(a) or a for a in ids], index=s.index, dtype=object)
    table = pd.DataFrame({
        "name": name, "name_key": name.str.lower(),
        "csm_owner": _feature(snapshot, "csm_owner").astype("string"),
        "segment": _feature(snapshot, "segment").astype("string"),
        "arr": pd.to_numeric(_feature(snapshot, "arr"), errors="coerce").astype(float),
        "days_to_renewal": pd.to_numeric(_feature(snapshot, "months_to_renewal"), errors="coerce").astype(float)
        * DAYS_PER_MONTH,
        "readiness_score": pd.to_numeric(s.get("readiness_score"), errors="coerce").astype(float),
        "readiness_band": s.get("readiness_band").astype("string") if len(s) else pd.Series(dtype="string"),
        "health": s.get("health").astype("string") if len(s) else pd.Series(dtype="string"),
        "churn_risk": churn,
        "expected_expansion_usd": pd.to_numeric(s.get("expected_expansion_usd"), errors="coerce").astype(float),
        "whitespace_usd": pd.to_numeric(s.get("whitespace_usd"), errors="coerce").astype(float),
        "readiness_change": pd.to_numeric(s.get("readiness_change"), errors="coerce").astype(float),
        "churn_risk_change": pd.to_numeric(s.get("churn_risk_change"), errors="coerce").astype(float),
    }, index=s.index)
    return table


def owners_of(table: pd.DataFrame, assigned: dict[str, str]) -> pd.Series:
    """Each account's owner: the data's, else the one a leader assigned (``<NA>`` when neither)."""
    owner = table["csm_owner"]
    if assigned:
        extra = pd.Series(assigned, dtype="string").reindex(table.index)
        owner = owner.fillna(extra)
    return owner


def owners(table: pd.DataFrame, assigned: dict[str, str] | None = None) -> list[str]:
    """Every CSM owner of the book, sorted."""
    return sorted(owners_of(table, assigned or {}).dropna().astype(str).unique().tolist())


def segments(table: pd.DataFrame) -> list[str]:
    return sorted(table["segment"].dropna().astype(str).unique().tolist())


def mask_of(table: pd.DataFrame, owner: pd.Series, query: BookQuery) -> np.ndarray:
    """Which accounts the query's owner and filters keep."""
    mask = np.ones(len(table), dtype=bool)
    if query.csm is not None:
        mask &= owner.eq(query.csm).fillna(False).to_numpy(dtype=bool)
    for column, wanted in (("readiness_band", query.band), ("health", query.health), ("segment", query.segment)):
        if wanted:
            mask &= table[column].eq(wanted).fillna(False).to_numpy(dtype=bool)
    return mask


def sort_key(table: pd.DataFrame, order: str, model_available: bool) -> str:
    """The order actually used: expected value needs an expansion model, else readiness ranks."""
    order = order if order in ORDERS else "value"
    if order == "value" and (not model_available or table["expected_expansion_usd"].isna().all()):
        return "readiness"
    return order


def select_book(table: pd.DataFrame, owner: pd.Series, query: BookQuery, model_available: bool) -> tuple[list[str], str]:
    """Ids of the accounts shown, sorted (all pages; unknown values last, ties by id), and the order used."""
    if not len(table):
        return [], "readiness"
    order = sort_key(table, query.order, model_available)
    column, natural = ORDERS[order]
    descending = natural if query.descending is None else query.descending
    shown = table.loc[mask_of(table, owner, query), [column]]
    shown = shown.assign(_id=shown.index.astype(str))
    shown = shown.sort_values([column, "_id"], ascending=[not descending, True], na_position="last", kind="stable")
    return shown.index.astype(str).tolist(), order


def play_order(records: pd.DataFrame, play: str) -> tuple[list[str], str]:
    """The accounts recommended ``play`` (``records``: ``account_id``, ``recommended_play``, ``play_uplift``,
    ``readiness_score``), in the order to work them, and the ranking in force: by expected gain from the play
    (``play_uplift``, set by the scoring run only when the play's uplift ranking is in force), else by readiness."""
    mine = records[records["recommended_play"].astype("string").eq(play).fillna(False).to_numpy(dtype=bool)]
    gain = pd.to_numeric(mine.get("play_uplift", pd.Series(np.nan, index=mine.index)), errors="coerce")
    ranking, column = ("uplift", gain) if gain.notna().any() else \
        ("readiness", pd.to_numeric(mine["readiness_score"], errors="coerce"))
    keyed = pd.DataFrame({"key": column.astype(float).to_numpy(), "_id": mine["account_id"].astype(str).to_numpy()})
    keyed = keyed.sort_values(["key", "_id"], ascending=[False, True], na_position="last", kind="stable")
    return keyed["_id"].tolist(), ranking


def select_play(snapshot: ScoredSnapshot, table: pd.DataFrame, owner: pd.Series, query: BookQuery,
                play: str) -> tuple[list[str], str]:
    """Of the accounts ``query`` keeps, those recommended ``play`` in :func:`play_order` (their reasons are
    computed now when not cached: the play comes with them), and the ranking in force."""
    kept = table.index[mask_of(table, owner, query)].astype(str).tolist()
    columns = ["account_id", "recommended_play", "play_uplift", "readiness_score"]
    records = pd.DataFrame([{c: r.get(c) for c in columns} for r in snapshot.lookup(kept, True)], columns=columns)
    return play_order(records, play)


def renewal_counts(table: pd.DataFrame, mask: np.ndarray) -> dict[int, int]:
    """How many of the accounts ``mask`` keeps renew within each of :data:`RENEWAL_WINDOWS` days."""
    due = table["days_to_renewal"].to_numpy(dtype=float)[mask]
    return {d: int(((due >= 0) & (due <= d)).sum()) for d in RENEWAL_WINDOWS}


def renewals(table: pd.DataFrame, owner: pd.Series, csm: str | None, days: int) -> list[str]:
    """Accounts renewing within ``days`` of the snapshot, soonest first (one CSM, or all when ``csm`` is None)."""
    mask = mask_of(table, owner, BookQuery(csm=csm))
    due = table["days_to_renewal"]
    mask &= ((due >= 0) & (due <= days)).fillna(False).to_numpy(dtype=bool)
    return table.loc[mask].sort_values(["days_to_renewal", "name_key"]).index.astype(str).tolist()


def biggest_moves(table: pd.DataFrame, mask: np.ndarray, n: int = 5) -> dict[str, list[str]]:
    """Of the accounts ``mask`` keeps, those whose readiness rose / fell most, and whose churn risk rose most,
    since the previous run."""
    t = table[mask]
    up = t[t["readiness_change"] > 0].nlargest(n, "readiness_change")
    down = t[t["readiness_change"] < 0].nsmallest(n, "readiness_change")
    risk = t[t["churn_risk_change"] > 0].nlargest(n, "churn_risk_change")
    return {"readiness_up": up.index.astype(str).tolist(), "readiness_down": down.index.astype(str).tolist(),
            "churn_up": risk.index.astype(str).tolist()}


def renewal_date(months_to_renewal: Any, as_of: str | None) -> dt.date | None:
    """The date of the next renewal, from the feature ``months_to_renewal``."""
    if as_of is None or months_to_renewal is None or months_to_renewal != months_to_renewal:
        return None
    return dt.date.fromisoformat(str(as_of)[:10]) + dt.timedelta(days=round(float(months_to_renewal) * DAYS_PER_MONTH))


def rows(snapshot: ScoredSnapshot, table: pd.DataFrame, owner: pd.Series, ids: list[str], with_reasons: bool,
         deals: dict[str, list[dict]] | None) -> list[dict]:
    """One display row per account id: the score record, name, owner, ARR, renewal date and open deals
    (``deals``: open deals by account id)."""
    if not ids:
        return []
    records = snapshot.lookup(ids, with_reasons)
    t = table.loc[ids]
    deals = deals or {}
    months = _feature(snapshot, "months_to_renewal").loc[ids].tolist()
    out = []
    for rank, (rec, name, own, seg, arr, m) in enumerate(zip(records, t["name"], owner.loc[ids], t["segment"], t["arr"],
                                                               months, strict=True), start=1):
        details = rec.get("reason_details") or []
        out.append({
            **clean(rec), "rank": rank, "name": name, "csm_owner": None if own is pd.NA else own,
            "segment": None if seg is pd.NA else seg, "arr": None if arr != arr else arr,
            "renewal_date": renewal_date(m, snapshot.as_of),
            "top_reasons": [d["text"] if isinstance(d, dict) else str(d) for d in details[:2]],
            "deals": deals.get(rec["account_id"], []),
        })
    return out


def deals_by_account(pipeline: pd.DataFrame | None) -> dict[str, list[dict]]:
    """Open deals grouped by account id (once per snapshot)."""
    if pipeline is None or not len(pipeline):
        return {}
    return {str(a): g.to_dict("records") for a, g in pipeline.groupby("account_id", sort=False)}


def page(ids: list[str], number: int, size: int = PAGE_SIZE) -> tuple[list[str], int, int]:
    """The ids of page ``number`` (1-based, clamped to the pages there are), the page shown and the page count."""
    pages = max(1, -(-len(ids) // size))
    number = min(max(1, number), pages)
    return ids[(number - 1) * size: number * size], number, pages


def summary(table: pd.DataFrame, mask: np.ndarray) -> dict[str, Any]:
    """Counts and money over every account ``mask`` keeps (all pages)."""
    s = table[mask]
    return {"accounts": len(s), "outreach": int(s["readiness_band"].eq("outreach").sum()),
            "red": int(s["health"].eq("red").sum()),
            "expected_value": float(np.nansum(s["expected_expansion_usd"].to_numpy(dtype=float))),
            "whitespace": float(np.nansum(s["whitespace_usd"].to_numpy(dtype=float))),
            "arr": float(np.nansum(s["arr"].to_numpy(dtype=float)))}


def to_csv(display_rows: list[dict]) -> str:
    """What the book shows, as CSV (one row per account, columns of :data:`CSV_COLUMNS`); a text cell that a
    spreadsheet would run as a formula (starting ``= + - @``) is prefixed with ``'``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in display_rows:
        reasons = r.get("top_reasons") or r.get("reasons") or []
        pipeline = sum(float(d.get("amount") or 0) for d in r.get("deals", []))
        writer.writerow({**{k: cell(r.get(k)) for k in CSV_COLUMNS}, "reason_1": cell(reasons[0] if reasons else ""),
                         "open_pipeline_arr": cell(pipeline) if r.get("deals") else ""})
    return buffer.getvalue()


def cell(value: Any) -> Any:
    """One CSV cell: blanks for missing values, floats to at most 4 decimals, text never a live formula."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4f}".rstrip("0").rstrip(".") or "0"
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (dt.date, pd.Timestamp)):
        return f"{value:%Y-%m-%d}"
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA) else text
