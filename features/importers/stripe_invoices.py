"""Stripe invoice line items: the usage metered prices are billed for, and, without history mode, the quantity and
price an item was invoiced at period by period (its versions)."""

from __future__ import annotations

import pandas as pd

from features.importers.errors import Problems
from features.importers.parse import booleans, numbers, text, timestamps
from features.importers.reader import RawSource


def _ts(frame: pd.DataFrame, name: str) -> pd.Series:
    return timestamps(frame[name]) if name in frame else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")


def invoice_lines(raw: RawSource, items: pd.DataFrame) -> pd.DataFrame:
    """Invoice line items of subscription items: item id, period end (day) and amount (smallest unit)."""
    cols = ["item_id", "period_end", "amount", "period_start", "quantity", "price_id"]
    name = next((n for n in ("invoice_line_item", "invoice_line") if raw.has(n)), None)
    if name is None:
        return pd.DataFrame(columns=cols)
    li = raw.read(name)
    if "amount" not in li or "period_end" not in li:
        return pd.DataFrame(columns=cols)
    item = text(li["subscription_item_id"]) if "subscription_item_id" in li else pd.Series(pd.NA, index=li.index, dtype="string")
    price_col = next((c for c in ("price_id", "plan_id") if c in li), None)
    if price_col and "subscription_id" in li:
        by_pair = items.drop_duplicates(["subscription_id", "price_id"]).set_index(["subscription_id", "price_id"])["item_id"]
        pair = pd.MultiIndex.from_arrays([text(li["subscription_id"]), text(li[price_col])])
        item = item.fillna(pd.Series(by_pair.reindex(pair).to_numpy(), index=li.index, dtype="string"))
    proration = booleans(li["proration"]).fillna(False) if "proration" in li else False
    out = pd.DataFrame({"item_id": item, "period_end": timestamps(li["period_end"]).dt.floor("D"), "amount": numbers(li["amount"]),
                        "period_start": _ts(li, "period_start").dt.floor("D"),
                        "quantity": numbers(li["quantity"]) if "quantity" in li else pd.NA,
                        "price_id": text(li[price_col]) if price_col else pd.NA})
    out = out[~proration & out["item_id"].notna() & out["period_end"].notna()]
    return out.groupby(["item_id", "period_end"], as_index=False).agg(
        amount=("amount", "sum"), period_start=("period_start", "min"), quantity=("quantity", "last"), price_id=("price_id", "last"))


def versions_from_invoices(items: pd.DataFrame, lines: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Without history mode: each item's versions rebuilt from its invoice lines, a new version where the invoiced
    quantity or price changes (from that period's start); items with no lines keep one period at their current
    quantity, counted."""
    lines = lines[lines["item_id"].isin(set(items["item_id"])) & lines["period_start"].notna() & lines["quantity"].notna()]
    lines = lines.sort_values(["item_id", "period_start"])
    if lines.empty:
        if len(items):
            problems.ledger.say(f"no history mode and no invoice lines: {items['item_id'].nunique()} item(s) kept as one period "
                                "at their current quantity and price (changes before the export cannot be seen)")
        return items
    same_item = lines["item_id"].eq(lines["item_id"].shift())
    changed = ~same_item | lines["quantity"].ne(lines["quantity"].shift()) | lines["price_id"].ne(lines["price_id"].shift())
    starts = lines[changed.fillna(True).astype(bool)].copy()
    first = ~starts["item_id"].eq(starts["item_id"].shift())
    starts["next"] = starts.groupby("item_id")["period_start"].shift(-1)
    base = items.drop_duplicates("item_id").set_index("item_id")
    multi = starts.groupby("item_id")["period_start"].transform("size") > 1
    rebuilt = starts[multi].join(base.drop(columns=["quantity", "price_id"]), on="item_id")
    rebuilt["valid_from"] = rebuilt["period_start"].where(~first[multi], rebuilt["valid_from"])
    rebuilt["valid_to"] = rebuilt["next"].where(rebuilt["next"].notna(), rebuilt["valid_to"])
    rebuilt["price_id"] = rebuilt["price_id"].fillna(rebuilt["item_id"].map(base["price_id"]))
    rebuilt = rebuilt[items.columns.intersection(rebuilt.columns)]
    rebuilt["version"] = rebuilt["item_id"] + "@" + rebuilt["valid_from"].astype(str)
    kept = items[~items["item_id"].isin(set(rebuilt["item_id"]))]
    without = kept[~kept["item_id"].isin(set(lines["item_id"]))]
    if len(rebuilt):
        problems.ledger.say(f"no history mode: {rebuilt['item_id'].nunique()} item(s) given {len(rebuilt)} versions from the quantity "
                            "and price on their invoice lines")
    if len(without):
        problems.ledger.say(f"no history mode and no invoice lines: {without['item_id'].nunique()} item(s) kept as one period at "
                            "their current quantity and price")
    return pd.concat([kept, rebuilt], ignore_index=True)
