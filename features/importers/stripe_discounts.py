"""Stripe discounts in every shape they are exported in, as one frame of intervals.

* a ``subscription_discount`` table (subscription_id, coupon_id, start, end);
* a ``discount`` table (id, coupon_id, subscription_id or subscription_item_id, start, end);
* the subscription's ``discount`` object, nested JSON or flattened by the layout
  (``discount_coupon_id``, ``discount_coupon_percent_off``, ``discount_start``...), or a plain
  ``coupon_id`` on the subscription (start: the subscription's start);
* ``discounts`` lists (of discount ids or objects) on subscriptions and on subscription items.

Coupons come from the ``coupon`` table, else from the nested object. A coupon whose
``duration`` is ``once`` discounts one invoice only and is left out of MRR (said in the notes).
"""

from __future__ import annotations

import json

import pandas as pd

from features.importers.errors import Problems
from features.importers.parse import minor_unit_divisor, numbers, text, timestamps
from features.importers.reader import RawSource

COLUMNS = ["level", "key", "coupon_id", "start", "end", "percent_off", "amount_off", "currency", "duration"]


def _frame(**cols: object) -> pd.DataFrame:
    return pd.DataFrame({c: cols.get(c, pd.NA) for c in COLUMNS})


def _ts(frame: pd.DataFrame, name: str) -> pd.Series:
    return timestamps(frame[name]) if name in frame else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")


def _txt(frame: pd.DataFrame, *names: str) -> pd.Series:
    for name in names:
        if name in frame:
            return text(frame[name])
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def _objects(value: object) -> list[dict]:
    """A ``discounts`` cell: a JSON list of ids or of discount objects."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return []
    items = value if isinstance(value, list) else None
    if items is None:
        try:
            items = json.loads(str(value))
        except ValueError:
            return []
    if isinstance(items, dict):
        items = [items]
    return [i if isinstance(i, dict) else {"id": str(i)} for i in items or []]


def _from_lists(frame: pd.DataFrame, level: str, key: pd.Series, table: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for k, cell in zip(key, frame["discounts"]):
        for obj in _objects(cell):
            obj = {**table.get(str(obj.get("id")), {}), **{a: b for a, b in obj.items() if b is not None}}
            coupon = obj.get("coupon") if isinstance(obj.get("coupon"), dict) else {"id": obj.get("coupon") or obj.get("coupon_id")}
            rows.append({"level": level, "key": k, "coupon_id": coupon.get("id"), "start": obj.get("start"),
                         "end": obj.get("end"), "percent_off": coupon.get("percent_off"), "amount_off": coupon.get("amount_off"),
                         "currency": coupon.get("currency"), "duration": coupon.get("duration")})
    return pd.DataFrame(rows, columns=COLUMNS)


def collect(raw: RawSource, subs: pd.DataFrame, subs_raw: pd.DataFrame, items: pd.DataFrame, items_raw: pd.DataFrame,
            problems: Problems) -> pd.DataFrame:
    """Every discount interval: level (subscription or item), key (its id), coupon terms, start and end (days).

    ``subs``/``items`` are the typed subscriptions and items, ``subs_raw``/``items_raw`` their raw rows (same index)."""
    parts = []
    if raw.has("subscription_discount"):
        d = raw.read("subscription_discount")
        parts.append(_frame(level="subscription", key=_txt(d, "subscription_id"), coupon_id=_txt(d, "coupon_id"),
                            start=_ts(d, "start"), end=_ts(d, "end")))
    by_id: dict[str, dict] = {}
    if raw.has("discount"):
        d = raw.read("discount")
        item = _txt(d, "subscription_item_id", "subscription_item")
        sub = _txt(d, "subscription_id", "subscription")
        parts.append(_frame(level=pd.Series("subscription", index=d.index).where(item.isna(), "item"), key=item.fillna(sub),
                            coupon_id=_txt(d, "coupon_id", "coupon"), start=_ts(d, "start"), end=_ts(d, "end")))
        for r in pd.DataFrame({"id": _txt(d, "id"), "coupon_id": _txt(d, "coupon_id", "coupon"), "start": _txt(d, "start"),
                               "end": _txt(d, "end")}).dropna(subset=["id"]).to_dict("records"):
            by_id[str(r["id"])] = {k: (None if pd.isna(v) else v) for k, v in r.items()}
    if raw.has("subscription_item_discount"):  # dlt: an item's discounts in a child table
        d = raw.read("subscription_item_discount")
        parts.append(_frame(level="item", key=_txt(d, "parent_id"), coupon_id=_txt(d, "coupon_id", "coupon"), start=_ts(d, "start"),
                            end=_ts(d, "end"), percent_off=numbers(_txt(d, "coupon_percent_off")),
                            amount_off=numbers(_txt(d, "coupon_amount_off")), currency=_txt(d, "coupon_currency"),
                            duration=_txt(d, "coupon_duration")))
    s = subs_raw
    nested_coupon = _txt(s, "discount_coupon_id", "discount_coupon")
    plain = _txt(s, "coupon_id")
    start = _ts(s, "discount_start").fillna(subs["start_date"])
    parts.append(_frame(level="subscription", key=subs["subscription_id"], coupon_id=nested_coupon.fillna(plain),
                        start=start, end=_ts(s, "discount_end"),
                        percent_off=numbers(_txt(s, "discount_coupon_percent_off")),
                        amount_off=numbers(_txt(s, "discount_coupon_amount_off")),
                        currency=_txt(s, "discount_coupon_currency"), duration=_txt(s, "discount_coupon_duration")))
    if "discounts" in s:
        parts.append(_from_lists(s, "subscription", subs["subscription_id"], by_id))
    if "discounts" in items_raw:
        parts.append(_from_lists(items_raw, "item", items["item_id"], by_id))
    out = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else _frame()
    out = out[out["key"].notna() & out["coupon_id"].notna()].copy()
    out["start"] = timestamps(out["start"].astype("string")) if not pd.api.types.is_datetime64_any_dtype(out["start"]) else out["start"]
    out["end"] = timestamps(out["end"].astype("string")) if not pd.api.types.is_datetime64_any_dtype(out["end"]) else out["end"]
    return _with_coupons(raw, out, problems)


def _with_coupons(raw: RawSource, d: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    if raw.has("coupon"):
        c = raw.read("coupon")
        coupons = pd.DataFrame({"coupon_id": _txt(c, "id"), "c_percent": numbers(_txt(c, "percent_off")),
                                "c_amount": numbers(_txt(c, "amount_off")), "c_currency": _txt(c, "currency"),
                                "c_duration": _txt(c, "duration")}).drop_duplicates("coupon_id", keep="last")
        d = d.merge(coupons, on="coupon_id", how="left")
        d["percent_off"] = numbers(d["percent_off"]).fillna(d["c_percent"])
        d["amount_off"] = numbers(d["amount_off"]).fillna(d["c_amount"])
        d["currency"] = text(d["currency"]).fillna(d["c_currency"])
        d["duration"] = text(d["duration"]).fillna(d["c_duration"])
        d = d.drop(columns=["c_percent", "c_amount", "c_currency", "c_duration"])
    d["percent_off"] = numbers(d["percent_off"]).fillna(0)
    d["amount_off"] = numbers(d["amount_off"]).fillna(0)
    unknown = (d["percent_off"] == 0) & (d["amount_off"] == 0)
    problems.ledger.drop("discount", "coupon terms unknown (no percent_off or amount_off): no discount applied", d.loc[unknown, "coupon_id"])
    once = text(d["duration"]).str.lower().eq("once").fillna(False).astype(bool)
    problems.ledger.drop("discount", "coupon duration 'once' discounts one invoice, not MRR", d.loc[once & ~unknown, "coupon_id"])
    d = d[~unknown & ~once].copy()
    has_amount = d["amount_off"] > 0
    divisor = minor_unit_divisor(problems, "coupon", "currency", text(d["currency"]).where(has_amount))
    d["amount_off_units"] = (d["amount_off"] / divisor).astype(float)
    d["currency"] = text(d["currency"]).str.lower()
    d["start"] = d["start"].dt.floor("D")
    d["end"] = d["end"].dt.floor("D")
    return d.drop_duplicates(["level", "key", "coupon_id", "start"]).reset_index(drop=True)
