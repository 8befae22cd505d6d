"""Stripe prices (and the older plans) as one frame, and the amount a price charges for a quantity.

A price is recurring (``type``/``recurring_interval`` set) or one-time; licensed (charged per
quantity) or metered (``recurring_usage_type = metered``: charged for the usage of a period,
known only from invoices); per unit (``unit_amount_decimal``, else ``unit_amount``) or tiered
(``billing_scheme = tiered``: ``tiers`` JSON, or a ``price_tier``/``plan_tier`` table, in
``volume`` or ``graduated`` mode). Amounts are in the currency's smallest unit.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from features.importers.errors import Problems
from features.importers.parse import booleans, counted_numbers, json_field, minor_unit_divisor, numbers, text
from features.importers.reader import RawSource

MONTHS_PER_INTERVAL = {"day": 12 / 365.25, "week": 12 / 52, "month": 1.0, "year": 12.0}
_SPELLINGS = {  # price column -> the older plan column of the same meaning
    "unit_amount": "amount", "recurring_interval": "interval", "recurring_interval_count": "interval_count",
    "recurring_usage_type": "usage_type", "unit_amount_decimal": "amount_decimal",
}


def _col(p: pd.DataFrame, name: str, table: str) -> pd.Series | None:
    for candidate in (name, _SPELLINGS.get(name) if table == "plan" else None):
        if candidate and candidate in p:
            return p[candidate]
    return None


def _one_table(raw: RawSource, table: str, problems: Problems) -> pd.DataFrame | None:
    p = raw.read(table)
    problems.ledger.read(table, len(p))
    problems.ledger.kept(table, len(p))  # every price is kept: items look theirs up
    missing = [c for c in ("id", "product_id", "currency") if c not in p]
    for c in missing:
        problems.add(table, c, "required column is missing")
    if missing:
        return None
    ids = text(p["id"])

    def num(name: str) -> pd.Series:
        col = _col(p, name, table)
        return counted_numbers(problems, table, name, col, ids) if col is not None else pd.Series(pd.NA, index=p.index, dtype="Float64")

    def txt(name: str) -> pd.Series:
        col = _col(p, name, table)
        return text(col).str.lower() if col is not None else pd.Series(pd.NA, index=p.index, dtype="string")

    amount = num("unit_amount_decimal").fillna(num("unit_amount"))
    interval = txt("recurring_interval")
    kind = txt("type").fillna(pd.Series("recurring", index=p.index).where(interval.notna(), "one_time"))
    return pd.DataFrame({
        "table": table, "price_id": ids, "product_id": text(p["product_id"]), "currency": text(p["currency"]).str.lower(),
        "amount": amount, "interval": interval, "interval_count": num("recurring_interval_count").fillna(1),
        "type": kind, "usage_type": txt("recurring_usage_type").fillna("licensed"),
        "billing_scheme": txt("billing_scheme").fillna("per_unit"), "tiers_mode": txt("tiers_mode"),
        "tiers": p["tiers"] if "tiers" in p else pd.NA,
        "nickname": text(p["nickname"]) if "nickname" in p else pd.NA,
        "metadata": p["metadata"] if "metadata" in p else pd.NA,
    })


def _tier_tables(raw: RawSource) -> dict[str, list[dict]]:
    """price id -> tiers from a ``price_tier`` / ``plan_tier`` table (one row per tier)."""
    out: dict[str, list[dict]] = {}
    for table, key in (("price_tier", "price_id"), ("plan_tier", "plan_id")):
        if not raw.has(table):
            continue
        t = raw.read(table)
        if key not in t and "parent_id" in t:  # dlt's child table of the price
            t = t.rename(columns={"parent_id": key})
        if key not in t:
            continue
        for pid, part in t.groupby(text(t[key])):
            out[str(pid)] = [{c: (None if pd.isna(r.get(c)) else r.get(c)) for c in
                              ("up_to", "unit_amount", "unit_amount_decimal", "flat_amount", "flat_amount_decimal")}
                             for r in part.to_dict("records")]
    return out


def _parse_tiers(value: object) -> list[dict] | None:
    if isinstance(value, list):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    try:
        got = json.loads(str(value))
    except ValueError:
        return None
    return got if isinstance(got, list) else None


def prices(raw: RawSource, problems: Problems) -> pd.DataFrame:
    """Every price and plan: ids, currency, divisor, months per interval, kind, per-unit amount or tiers, plan name."""
    frames = [f for t in ("price", "plan") if raw.has(t) and (f := _one_table(raw, t, problems)) is not None]
    if not frames:
        if not (raw.has("price") or raw.has("plan")):
            problems.add("price", "*", "required table is missing (neither price nor plan exists)")
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True).drop_duplicates("price_id", keep="first").reset_index(drop=True)
    out["divisor"] = 100.0
    for table, part in out.groupby("table"):
        out.loc[part.index, "divisor"] = minor_unit_divisor(problems, str(table), "currency", part["currency"])
    out["months"] = out["interval"].map(MONTHS_PER_INTERVAL).astype("Float64") * out["interval_count"].astype("Float64")
    problems.check("price", "recurring_interval", "unknown billing interval (known: day, week, month, year)",
                   out["interval"].notna() & out["months"].isna(), out["price_id"])
    tables = _tier_tables(raw)
    out["tiers"] = [t if t is not None else tables.get(pid) for t, pid in
                    zip((_parse_tiers(v) for v in out["tiers"]), out["price_id"])]
    tiered = out["billing_scheme"].eq("tiered")
    problems.check("price", "tiers", "tiered price without tiers", tiered & out["tiers"].isna(), out["price_id"])
    licensed = out["type"].eq("recurring") & out["usage_type"].eq("licensed") & ~tiered
    problems.check("price", "unit_amount", "missing on a licensed per-unit price", licensed & out["amount"].isna(), out["price_id"])
    out["plan"] = json_field(out["metadata"], "plan").fillna(out["nickname"]).fillna(out["price_id"])
    out["tier_rank"] = numbers(json_field(out["metadata"], "tier_rank"))
    out["usage_limit"] = numbers(json_field(out["metadata"], "usage_limit"))
    out["catalog"] = booleans(json_field(out["metadata"], "catalog")).fillna(False)
    one = pd.Series(1.0, index=out.index)
    out["unit_monthly"] = charge(out, one) / out["divisor"] / out["months"]  # the price of one unit a month, for the catalog
    return out


def _tier_value(tier: dict, key: str) -> float:
    for k in (f"{key}_decimal", key):
        v = tier.get(k)
        if v not in (None, ""):
            try:
                return float(str(v).replace(",", "."))
            except ValueError:
                return 0.0
    return 0.0


def tiered_amount(tiers: list[dict], mode: str | None, quantity: float) -> float:
    """What ``quantity`` units cost under ``tiers`` (smallest currency unit): ``volume`` prices every unit at the
    tier the quantity falls in; ``graduated`` (the default) prices each unit at its own tier; flat amounts added."""
    ordered = sorted(tiers, key=lambda t: float("inf") if t.get("up_to") in (None, "", "inf") else float(t["up_to"]))
    if str(mode) == "volume":
        for tier in ordered:
            up = tier.get("up_to")
            if up in (None, "", "inf") or quantity <= float(up):
                return quantity * _tier_value(tier, "unit_amount") + (_tier_value(tier, "flat_amount") if quantity > 0 else 0.0)
        return 0.0
    total, below = 0.0, 0.0
    for tier in ordered:
        if quantity <= below:
            break
        up = tier.get("up_to")
        top = float("inf") if up in (None, "", "inf") else float(up)
        units = min(quantity, top) - below
        total += units * _tier_value(tier, "unit_amount") + _tier_value(tier, "flat_amount")
        below = top
    return total


def charge(prices_of_rows: pd.DataFrame, quantity: pd.Series) -> pd.Series:
    """What each row's price charges per billing interval for ``quantity`` (smallest currency unit; NA when unknown)."""
    per_unit = quantity.astype("Float64") * prices_of_rows["amount"].astype("Float64")
    tiered = prices_of_rows["billing_scheme"].eq("tiered") & prices_of_rows["tiers"].notna()
    if tiered.any():
        values = [tiered_amount(t, m, float(q)) if pd.notna(q) else np.nan for t, m, q in
                  zip(prices_of_rows.loc[tiered, "tiers"], prices_of_rows.loc[tiered, "tiers_mode"], quantity[tiered])]
        per_unit = per_unit.astype("Float64")
        per_unit[tiered] = pd.array(values, dtype="Float64")
    return per_unit
