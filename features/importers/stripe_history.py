"""Stripe's item versions into the contract's type-2 ``subscriptions``: one row per customer, product and period.

Each item version (a history-mode row, or an item from its creation to its subscription's end)
is priced (licensed: quantity through the price, per unit or tiered; metered: the invoiced
usage of the last complete period), cut at every day its subscription changes state (trial
end, pause, discount start or end, another item's change), zero in a trial or a pause,
discounted by the discounts in force, converted to the reporting currency, and finally summed
per customer and product (a base price and an add-on on one product are one subscription; the
plan and seats are the biggest item's). Consecutive pieces equal in every value and from the
same versions are merged back.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.importers.errors import Problems
from features.importers.stripe_prices import charge

OPEN = pd.Timestamp("2262-01-01")
VALUES = ["plan", "seats", "mrr", "usage_limit", "renewal_date"]


def item_overlaps(v: pd.DataFrame, problems: Problems, columns: str) -> None:
    """Versions of one subscription item must not overlap (items of one product may: they are summed)."""
    s = v.sort_values(["item_id", "valid_from"])
    prev_end = s.groupby("item_id")["valid_to"].shift()
    first = s.groupby("item_id").cumcount() == 0
    bad = (~first) & (prev_end.isna() | (prev_end > s["valid_from"]))
    problems.check("subscription_item", columns, "versions of one subscription item overlap", bad, s["item_id"])


def drop_empty(v: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Leave out versions that end on the day they begin: a subscription cancelled the day it started (listed), or a
    version replaced the same day (counted)."""
    empty = v["valid_to"].notna() & (v["valid_to"] <= v["valid_from"])
    same_day_cancel = empty & v["ended_at"].notna() & (v["ended_at"].dt.floor("D") <= v["valid_from"])
    problems.ledger.drop("subscription_item", "subscription cancelled on the day it started: no MRR",
                         sorted(set(v.loc[same_day_cancel, "subscription_id"].astype(str))))
    problems.ledger.drop("subscription_item", "version replaced on the day it began", v.loc[empty & ~same_day_cancel, "item_id"])
    return v[~empty].copy()


def metered(v: pd.DataFrame, lines: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Metered item versions as pieces whose MRR is the usage invoiced for the last complete period before them: each
    invoice line of the version's item and price (prorations left out) sets the MRR from the day its period ends; a
    version starts with the usage of a period that ended within one period before it (a continuing item), else 0."""
    m = v[v["usage_type"].eq("metered")]
    if m.empty:
        return m
    rows = []
    by_item = {k: g.sort_values("period_end") for k, g in lines.groupby("item_id")} if not lines.empty else {}
    without = []
    for _, version in m.iterrows():
        start = version["valid_from"]
        end = version["valid_to"] if pd.notna(version["valid_to"]) else OPEN
        got = by_item.get(version["item_id"])
        if got is not None and "price_id" in got:
            got = got[got["price_id"].isna() | got["price_id"].eq(version["price_id"])]
        if got is None or got.empty:
            without.append(version["item_id"])
            rows.append((version["version"], start, version["valid_to"], 0.0))
            continue
        inside = got[(got["period_end"] > start) & (got["period_end"] < end)]
        length = (got["period_end"] - got["period_start"]).fillna(pd.Timedelta(days=31))
        before = got[(got["period_end"] <= start) & (got["period_end"] > start - length)]
        cuts = [start] + list(inside["period_end"])
        amounts = [float(before["amount"].iloc[-1]) if not before.empty else 0.0] + [float(a) for a in inside["amount"]]
        for i, (cut, amount) in enumerate(zip(cuts, amounts)):
            rows.append((version["version"], cut, cuts[i + 1] if i + 1 < len(cuts) else version["valid_to"], amount))
    problems.ledger.drop("subscription_item", "metered item with no invoiced usage: MRR 0", sorted(set(without)))
    pieces = pd.DataFrame(rows, columns=["version", "valid_from", "valid_to", "usage_amount"])
    out = pieces.merge(m.drop(columns=["valid_from", "valid_to"]), on="version")
    out["charge"] = out["usage_amount"].astype(float)
    out["quantity"] = 0.0
    items = m["item_id"].nunique()
    problems.ledger.say(f"{items} metered item(s): MRR from the invoiced usage of the last complete period "
                        f"({items - len(set(without))} with invoices)")
    return out.drop(columns="usage_amount")


def split(v: pd.DataFrame, cuts: pd.DataFrame) -> pd.DataFrame:
    """Cut every piece at each day of ``cuts`` (subscription_id, at) strictly inside it."""
    if cuts.empty:
        return v
    v = v.reset_index(drop=True)
    v["piece"] = np.arange(len(v))
    cuts = cuts.assign(at=pd.to_datetime(cuts["at"]).astype("datetime64[us]")).drop_duplicates()
    c = v[["piece", "subscription_id", "valid_from", "valid_to"]].merge(cuts, on="subscription_id")
    c = c[(c["at"] > c["valid_from"]) & (c["valid_to"].isna() | (c["at"] < c["valid_to"]))]
    if c.empty:
        return v.drop(columns="piece")
    starts = pd.concat([v[["piece", "valid_from"]].rename(columns={"valid_from": "at"}), c[["piece", "at"]]])
    starts = starts.drop_duplicates().sort_values(["piece", "at"])
    starts["end"] = starts.groupby("piece")["at"].shift(-1)
    out = starts.merge(v, on="piece")
    out["valid_to"] = pd.to_datetime(out["end"].where(out["end"].notna(), out["valid_to"])).astype("datetime64[us]")
    out["valid_from"] = pd.to_datetime(out["at"]).astype("datetime64[us]")
    return out.drop(columns=["piece", "at", "end"]).reset_index(drop=True)


def in_spans(v: pd.DataFrame, spans: pd.DataFrame) -> pd.Series:
    """True where a piece starts inside one of its subscription's ``spans`` (subscription_id, start, end; end NaT = open)."""
    if spans.empty:
        return pd.Series(False, index=v.index)
    on = v[["subscription_id", "valid_from"]].reset_index().merge(spans, on="subscription_id")
    hit = on[(on["start"] <= on["valid_from"]) & (on["end"].isna() | (on["valid_from"] < on["end"]))]
    return pd.Series(v.index.isin(hit["index"]), index=v.index)


def discount(v: pd.DataFrame, discounts: pd.DataFrame) -> pd.Series:
    """MRR after the item's and then the subscription's discounts in force when each piece starts (percent, then an
    amount per billing interval spread over the subscription's items by their MRR; never below 0)."""
    mrr = v["mrr"].astype(float).copy()
    for level, key in (("item", "item_id"), ("subscription", "subscription_id")):
        d = discounts[discounts["level"] == level].rename(columns={"key": key})
        if d.empty:
            continue
        on = v[[key, "valid_from"]].reset_index().merge(d, on=key)
        on = on[(on["start"] <= on["valid_from"]) & (on["end"].isna() | (on["end"] > on["valid_from"]))]
        pct = on.groupby("index")["percent_off"].apply(lambda s: 1 - np.prod(1 - s.astype(float) / 100))
        mrr = mrr * (1 - pct.reindex(v.index).fillna(0))
        amount = on.groupby("index")["amount_off_units"].sum().reindex(v.index).fillna(0) / v["months"].astype(float)
        if level == "subscription":
            total = mrr.groupby([v["subscription_id"], v["valid_from"]]).transform("sum")
            amount = amount * (mrr / total.replace(0, np.nan)).fillna(0)
        mrr = (mrr - amount).clip(lower=0)
    return mrr


def combine(v: pd.DataFrame) -> pd.DataFrame:
    """One row per customer, product and period: MRR summed over the items in force, plan and seats of the biggest."""
    v = v.sort_values(["customer_id", "product_id", "valid_from", "valid_to"]).reset_index(drop=True)
    end = v["valid_to"].fillna(OPEN)
    prev_end = end.groupby([v["customer_id"], v["product_id"]]).cummax().groupby([v["customer_id"], v["product_id"]]).shift()
    clash = (prev_end > v["valid_from"]).fillna(False)
    groups = v.groupby(["customer_id", "product_id"])
    overlapping = clash.groupby([v["customer_id"], v["product_id"]]).transform("any")
    plain = v[~overlapping].copy()
    plain["versions"] = plain["version"].astype(str)
    pieces = [plain]
    for _, g in v[overlapping].groupby(["customer_id", "product_id"]):
        pieces.append(_sum_overlaps(g))
    del groups
    out = pd.concat(pieces, ignore_index=True).sort_values(["customer_id", "product_id", "valid_from"]).reset_index(drop=True)
    return _merge_equal(out)


def _sum_overlaps(g: pd.DataFrame) -> pd.DataFrame:
    bounds = sorted(set(g["valid_from"]) | set(g["valid_to"].dropna()))
    open_end = g["valid_to"].isna().any()
    rows = []
    for i, start in enumerate(bounds):
        stop = bounds[i + 1] if i + 1 < len(bounds) else pd.NaT
        if pd.isna(stop) and not open_end:
            break
        live = g[(g["valid_from"] <= start) & (g["valid_to"].isna() | (g["valid_to"] > start))]
        if live.empty:
            continue
        top = live.sort_values(["mrr", "seats", "item_id"], ascending=[False, False, True]).iloc[0]
        row = top.copy()
        row["mrr"] = float(live["mrr"].sum())
        row["valid_from"], row["valid_to"] = start, stop
        row["versions"] = "+".join(sorted(live["version"].astype(str)))
        rows.append(row)
    return pd.DataFrame(rows)


def _merge_equal(v: pd.DataFrame) -> pd.DataFrame:
    """Merge consecutive pieces of one customer and product equal in every value and built from the same versions."""
    key = [v["customer_id"], v["product_id"]]
    def eq(col: str, other: str | None = None) -> pd.Series:
        return pd.Series(v[col].eq(v[other or col].shift()).fillna(False).to_numpy(dtype=bool), index=v.index)

    same = eq("customer_id") & eq("product_id") & eq("valid_from", "valid_to") & eq("versions")
    for col in VALUES:
        a = v[col].astype(str).fillna("<missing>")
        same &= pd.Series(a.eq(a.shift()).fillna(False).to_numpy(dtype=bool), index=v.index)
    same = pd.Series(same.fillna(False).to_numpy(dtype=bool), index=v.index)
    run = (~same).astype(int).cumsum()
    is_end = run.ne(run.shift(-1))
    last = run.map(pd.Series(v.loc[is_end, "valid_to"].to_numpy(), index=run[is_end].to_numpy()))  # NaT (open) kept
    out = v[~same].copy()
    out["valid_to"] = last[~same]
    del key
    return out.reset_index(drop=True)


def price_versions(v: pd.DataFrame, problems: Problems, has_quantity: bool = True) -> pd.DataFrame:
    """Licensed versions' charge per billing interval (smallest currency unit) from quantity and price."""
    licensed = v[~v["usage_type"].eq("metered")].copy()
    if not has_quantity and not licensed.empty:
        problems.add("subscription_item", "quantity", "required column is missing (licensed prices are charged per quantity)")
        return licensed.assign(charge=0.0)
    problems.check("subscription_item", "quantity", "missing on a licensed price", licensed["quantity"].isna(), licensed["item_id"])
    licensed["charge"] = charge(licensed, licensed["quantity"].astype("Float64"))
    return licensed
