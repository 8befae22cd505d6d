"""Stripe (Fivetran/Airbyte schema) into ``subscriptions``, ``payments`` and ``products``.

* Subscriptions: a type-2 history per customer and product from ``subscription_item``
  (Fivetran history mode, ``_fivetran_start``/``_fivetran_end``, gives one row per version;
  without it each item is one period from its creation to its subscription's end), with
  the subscription from ``subscription_history`` (current versions) or ``subscription``,
  and the price from ``price`` or the older ``plan`` table. MRR = quantity x unit amount in
  the currency's smallest unit / 10^exponent / months per billing interval, less the
  discount in force when the version starts; versions starting inside a trial are 0.
* Payments: one row per invoice (draft and void invoices skipped): paid on or before the
  due day -> paid, after it -> late, unpaid -> failed.
* Products: one row per product and plan; ``tier_rank``, ``usage_limit`` from price
  metadata when present, otherwise ranked by price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.importers.errors import Problems
from features.importers.parse import (
    booleans,
    is_open_end,
    json_field,
    minor_unit_divisor,
    numbers,
    require_columns,
    text,
    timestamps,
)
from features.importers.reader import RawSource
from features.importers.shapes import SourceTables

SOURCE = "stripe"
_MONTHS_PER_INTERVAL = {"day": 12 / 365.25, "week": 12 / 52, "month": 1.0, "year": 12.0}


def _prices(raw: RawSource, problems: Problems) -> pd.DataFrame:
    """Price and plan objects as one frame: id, product_id, plan, monthly unit price in units, metadata."""
    frames = []
    if raw.has("price"):
        p = raw.read("price")
        if require_columns(problems, "price", p, ("id", "product_id", "currency", "unit_amount", "recurring_interval")):
            amount = numbers(p["unit_amount_decimal"]) if "unit_amount_decimal" in p else numbers(p["unit_amount"])
            amount = amount.fillna(numbers(p["unit_amount"]))
            frames.append(pd.DataFrame({
                "table": "price", "price_id": text(p["id"]), "product_id": text(p["product_id"]),
                "currency": p["currency"], "amount": amount,
                "interval": text(p["recurring_interval"]).str.lower(),
                "interval_count": numbers(p["recurring_interval_count"]).fillna(1) if "recurring_interval_count" in p else 1.0,
                "nickname": text(p["nickname"]) if "nickname" in p else pd.NA,
                "metadata": p["metadata"] if "metadata" in p else pd.NA,
            }))
    if raw.has("plan"):
        p = raw.read("plan")
        if require_columns(problems, "plan", p, ("id", "product_id", "currency", "amount", "interval")):
            frames.append(pd.DataFrame({
                "table": "plan", "price_id": text(p["id"]), "product_id": text(p["product_id"]),
                "currency": p["currency"], "amount": numbers(p["amount"]),
                "interval": text(p["interval"]).str.lower(),
                "interval_count": numbers(p["interval_count"]).fillna(1) if "interval_count" in p else 1.0,
                "nickname": text(p["nickname"]) if "nickname" in p else pd.NA,
                "metadata": p["metadata"] if "metadata" in p else pd.NA,
            }))
    if not frames:
        problems.add("price", "*", "required table is missing (neither price nor plan exists)")
        return pd.DataFrame()
    prices = pd.concat(frames, ignore_index=True).drop_duplicates("price_id", keep="first")
    for table, part in prices.groupby("table"):
        divisor = minor_unit_divisor(problems, str(table), "currency", part["currency"])
        prices.loc[part.index, "divisor"] = divisor
    months = prices["interval"].map(_MONTHS_PER_INTERVAL).astype("Float64") * prices["interval_count"].astype("Float64")
    prices["unit_monthly"] = prices["amount"] / prices["divisor"] / months  # one-time prices: NA
    prices["plan"] = json_field(prices["metadata"], "plan").fillna(prices["nickname"]).fillna(prices["price_id"])
    prices["tier_rank"] = numbers(json_field(prices["metadata"], "tier_rank"))
    prices["usage_limit"] = numbers(json_field(prices["metadata"], "usage_limit"))
    prices["catalog"] = booleans(json_field(prices["metadata"], "catalog")).fillna(False)
    return prices


def _subscriptions_of(raw: RawSource, problems: Problems) -> pd.DataFrame:
    """Subscription id -> customer, start, end, trial end (the current version when history is kept)."""
    name = "subscription_history" if raw.has("subscription_history") else "subscription"
    if not raw.has(name):
        problems.add("subscription", "*", "required table is missing (neither subscription_history nor subscription exists)")
        return pd.DataFrame(columns=["subscription_id", "customer_id", "start_date", "ended_at", "trial_end", "renewal"])
    s = raw.read(name)
    if not require_columns(problems, name, s, ("id", "customer_id")):
        return pd.DataFrame(columns=["subscription_id", "customer_id", "start_date", "ended_at", "trial_end", "renewal"])
    if "_fivetran_active" in s:
        s = s[booleans(s["_fivetran_active"]).fillna(True)]
    def col(c: str) -> pd.Series:
        return timestamps(s[c]) if c in s else pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    ended = col("ended_at").fillna(col("canceled_at"))
    return pd.DataFrame({
        "subscription_id": text(s["id"]), "customer_id": text(s["customer_id"]),
        "start_date": col("start_date").fillna(col("created")), "ended_at": ended, "trial_end": col("trial_end"),
        "renewal": timestamps(json_field(s["metadata"], "renewal_date")) if "metadata" in s else pd.NaT,
    }).drop_duplicates("subscription_id", keep="last")


def _item_versions(raw: RawSource, problems: Problems, subs: pd.DataFrame) -> pd.DataFrame:
    if not raw.has("subscription_item"):
        problems.add("subscription_item", "*", "required table is missing")
        return pd.DataFrame()
    it = raw.read("subscription_item")
    price_col = "price_id" if "price_id" in it else "plan_id"
    if not require_columns(problems, "subscription_item", it, ("id", "subscription_id", price_col, "quantity")):
        return pd.DataFrame()
    items = pd.DataFrame({
        "item_id": text(it["id"]), "subscription_id": text(it["subscription_id"]), "price_id": text(it[price_col]),
        "quantity": numbers(it["quantity"]),
        "usage_limit": numbers(json_field(it["metadata"], "usage_limit")) if "metadata" in it else pd.NA,
        "item_renewal": timestamps(json_field(it["metadata"], "renewal_date")) if "metadata" in it else pd.NaT,
    })
    problems.check("subscription_item", "quantity", "negative", items["quantity"] < 0)
    problems.check("subscription_item", "quantity", "missing", items["quantity"].isna())
    items = items.merge(subs, on="subscription_id", how="left")
    problems.check("subscription_item", "subscription_id", "no such subscription", items["customer_id"].isna())
    if "_fivetran_start" in it:
        items["valid_from"] = timestamps(it["_fivetran_start"]).dt.floor("D")
        open_end = is_open_end(it["_fivetran_end"]) if "_fivetran_end" in it else True
        end = (timestamps(it["_fivetran_end"]) + pd.Timedelta(milliseconds=1)).dt.floor("D") if "_fivetran_end" in it else pd.NaT
        items["valid_to"] = end.where(~open_end)
    else:
        created = timestamps(it["created"]) if "created" in it else pd.Series(pd.NaT, index=it.index)
        items["valid_from"] = created.fillna(items["start_date"]).dt.floor("D")
        items["valid_to"] = items["ended_at"].dt.floor("D")
    problems.check("subscription_item", "_fivetran_start" if "_fivetran_start" in it else "created",
                   "missing start of the version", items["valid_from"].isna())
    return items


def _coupons(c: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Coupons: percent off, or an amount off in currency units (from the coupon currency's smallest unit)."""
    coupons = pd.DataFrame({
        "coupon_id": text(c["id"]),
        "percent_off": numbers(c["percent_off"]) if "percent_off" in c else pd.NA,
        "amount_off": numbers(c["amount_off"]) if "amount_off" in c else pd.NA,
    })
    if "currency" in c:
        has_amount = coupons["amount_off"].notna()
        divisor = minor_unit_divisor(problems, "coupon", "currency", c["currency"].where(has_amount))
        coupons["amount_off_units"] = coupons["amount_off"] / divisor
    else:
        coupons["amount_off_units"] = coupons["amount_off"] / 100
    return coupons


def _discounts(raw: RawSource, problems: Problems) -> pd.DataFrame:
    if not (raw.has("subscription_discount") and raw.has("coupon")):
        return pd.DataFrame(columns=["subscription_id", "start", "end", "percent_off", "amount_off_units"])
    d, c = raw.read("subscription_discount"), raw.read("coupon")
    if not (require_columns(problems, "subscription_discount", d, ("subscription_id", "coupon_id", "start"))
            and require_columns(problems, "coupon", c, ("id",))):
        return pd.DataFrame(columns=["subscription_id", "start", "end", "percent_off", "amount_off_units"])
    coupons = _coupons(c, problems)
    out = pd.DataFrame({
        "subscription_id": text(d["subscription_id"]), "coupon_id": text(d["coupon_id"]),
        "start": timestamps(d["start"]).dt.floor("D"),
        "end": timestamps(d["end"]).dt.floor("D") if "end" in d else pd.NaT,
    }).merge(coupons, on="coupon_id", how="left")
    return out


def _apply_discounts(versions: pd.DataFrame, discounts: pd.DataFrame) -> pd.Series:
    """MRR after the discount in force on the day each version starts (percent, or an amount spread over the items)."""
    mrr = versions["mrr"].copy()
    if discounts.empty:
        return mrr
    on = versions[["subscription_id", "valid_from"]].reset_index().merge(discounts, on="subscription_id")
    on = on[(on["start"] <= on["valid_from"]) & (on["end"].isna() | (on["end"] > on["valid_from"]))]
    on = on.drop_duplicates("index", keep="last").set_index("index")
    pct = on["percent_off"].reindex(versions.index).fillna(0).astype(float)
    mrr = mrr * (1 - pct / 100)
    amount = on["amount_off_units"].reindex(versions.index).fillna(0).astype(float)
    share = mrr / mrr.groupby([versions["subscription_id"], versions["valid_from"]]).transform("sum").replace(0, 1)
    return (mrr - amount * share).clip(lower=0)


def _renewal(versions: pd.DataFrame, rule: str) -> pd.Series:
    """Contract renewal: ``renewal_date`` in the item's or the subscription's metadata when given, else (rule
    ``anniversary``) the next yearly anniversary of the subscription's start after the version starts."""
    explicit = versions["item_renewal"].fillna(versions["renewal"]).dt.floor("D")
    if rule != "anniversary":
        return explicit
    todo = explicit.isna() & versions["start_date"].notna() & versions["valid_from"].notna()
    if not todo.any():
        return explicit
    start = versions.loc[todo, "start_date"].dt.floor("D")
    valid_from = versions.loc[todo, "valid_from"].to_numpy("datetime64[D]")
    years = (versions.loc[todo, "valid_from"].dt.year - start.dt.year).to_numpy()
    out = np.full(len(start), np.datetime64("NaT"), dtype="datetime64[D]")
    for k in (0, 1, 2):
        cand = _add_years(start, years + k)
        take = np.isnat(out) & (cand > valid_from)
        out[take] = cand[take]
    return explicit.where(~todo, pd.Series(out, index=start.index).reindex(explicit.index).astype("datetime64[us]"))


def _add_years(start: pd.Series, years: np.ndarray) -> np.ndarray:
    """``start`` plus whole years, 29 February becoming 28 February in other years."""
    month = start.to_numpy("datetime64[M]") + (12 * years).astype("timedelta64[M]")
    first = month.astype("datetime64[D]")
    length = ((month + 1).astype("datetime64[D]") - first).astype(int)
    day = start.dt.day.to_numpy() - 1
    return first + np.minimum(day, length - 1).astype("timedelta64[D]")


def _overlaps(problems: Problems, subs: pd.DataFrame) -> None:
    s = subs.sort_values(["customer_id", "product_id", "valid_from"])
    prev_end = s.groupby(["customer_id", "product_id"])["valid_to"].shift().fillna(pd.Timestamp("2262-01-01"))
    first = s.groupby(["customer_id", "product_id"]).cumcount() == 0
    problems.check("subscription_item", "_fivetran_start, _fivetran_end",
                   "versions of one customer and product overlap", (~first) & (prev_end > s["valid_from"]))


def subscriptions(raw: RawSource, problems: Problems, renewal_rule: str = "anniversary") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(subscriptions keyed by Stripe customer id, products) — the type-2 history and the catalog."""
    prices = _prices(raw, problems)
    subs = _subscriptions_of(raw, problems)
    items = _item_versions(raw, problems, subs)
    if items.empty or prices.empty:
        return pd.DataFrame(), pd.DataFrame()
    v = items.merge(prices[["price_id", "product_id", "plan", "unit_monthly", "usage_limit"]].rename(
        columns={"usage_limit": "price_usage_limit"}), on="price_id", how="left")
    problems.check("subscription_item", "plan_id" if "plan_id" in raw.read("subscription_item").columns else "price_id",
                   "no such price or plan", v["product_id"].isna())
    v = v[v["product_id"].notna() & v["customer_id"].notna()].copy()
    currencies = sorted(set(prices.set_index("price_id").loc[v["price_id"].unique(), "currency"].astype(str).str.lower()))
    if len(currencies) > 1:
        problems.add("price", "currency", f"several currencies ({', '.join(currencies)}); money must be in one currency per dataset")
    v["mrr"] = (v["quantity"].astype(float) * v["unit_monthly"].astype(float)).fillna(0.0)
    v["mrr"] = _apply_discounts(v, _discounts(raw, problems))
    in_trial = v["trial_end"].notna() & (v["valid_from"] < v["trial_end"].dt.floor("D"))
    v.loc[in_trial, "mrr"] = 0.0
    v["renewal_date"] = _renewal(v, renewal_rule)
    _overlaps(problems, v)
    out = pd.DataFrame({
        "account_id": v["customer_id"], "product_id": v["product_id"], "plan": v["plan"],
        "seats": v["quantity"].round().astype("Int64"), "mrr": v["mrr"].round(2),
        "usage_limit": v["usage_limit"].fillna(v["price_usage_limit"]),
        "valid_from": v["valid_from"], "valid_to": v["valid_to"], "renewal_date": v["renewal_date"],
    })
    return out.sort_values(["account_id", "product_id", "valid_from"]).reset_index(drop=True), _catalog(prices)


def _catalog(prices: pd.DataFrame) -> pd.DataFrame:
    """One row per product and plan: catalog-flagged prices when any, else every recurring price."""
    p = prices[prices["unit_monthly"].notna()]
    if p["catalog"].any():
        p = p[p["catalog"]]
    p = p.sort_values("unit_monthly").drop_duplicates(["product_id", "plan"], keep="first").copy()
    ranked = p.groupby("product_id")["unit_monthly"].rank(method="dense").astype("Int64")
    return pd.DataFrame({
        "product_id": p["product_id"], "plan": p["plan"],
        "tier_rank": p["tier_rank"].round().astype("Int64").fillna(ranked),
        "list_price_per_seat": p["unit_monthly"].astype(float).round(6), "usage_limit": p["usage_limit"],
    }).sort_values(["product_id", "tier_rank"]).reset_index(drop=True)


def payments(raw: RawSource, problems: Problems) -> pd.DataFrame:
    """One row per invoice keyed by Stripe customer id."""
    if not raw.has("invoice"):
        return pd.DataFrame()
    inv = raw.read("invoice")
    if not require_columns(problems, "invoice", inv, ("id", "customer_id", "amount_due", "currency", "status")):
        return pd.DataFrame()
    status = text(inv["status"]).str.lower()
    inv = inv[~status.isin(["draft", "void", "deleted"])]
    status = status[inv.index]
    due = timestamps(inv["due_date"]) if "due_date" in inv else pd.Series(pd.NaT, index=inv.index)
    for fallback in ("created", "period_end"):
        if fallback in inv:
            due = due.fillna(timestamps(inv[fallback]))
    problems.check("invoice", "due_date", "missing (and no created or period_end)", due.isna())
    paid_at = timestamps(inv["status_transitions_paid_at"]) if "status_transitions_paid_at" in inv else pd.Series(pd.NaT, index=inv.index, dtype="datetime64[us]")
    paid = (status == "paid") | (booleans(inv["paid"]).fillna(False) if "paid" in inv else False)
    paid_at = paid_at.where(paid).fillna(due.where(paid))
    amount = numbers(inv["amount_due"]) / minor_unit_divisor(problems, "invoice", "currency", inv["currency"])
    problems.check("invoice", "amount_due", "negative", amount < 0)
    late = paid & (paid_at.dt.floor("D") > due.dt.floor("D"))
    return pd.DataFrame({
        "invoice_id": text(inv["id"]), "account_id": text(inv["customer_id"]), "due_date": due.dt.floor("D"),
        "amount": amount.astype(float).round(2), "paid_at": paid_at.where(paid),
        "status": pd.Series(["failed"] * len(inv), index=inv.index).where(~paid, "paid").where(~late, "late"),
    }).reset_index(drop=True)


def customers(raw: RawSource, problems: Problems) -> pd.DataFrame:
    """Stripe customers with every column, for the identity map (id, email, name, metadata)."""
    if not raw.has("customer"):
        problems.add("customer", "*", "required table is missing")
        return pd.DataFrame(columns=["id"])
    c = raw.read("customer")
    require_columns(problems, "customer", c, ("id",))
    if "is_deleted" in c:
        c = c[~booleans(c["is_deleted"]).fillna(False)]
    return c


def read(raw: RawSource, settings: dict) -> SourceTables:
    """Every table Stripe gives, keyed by Stripe customer id; raises ImportFailed listing all problems."""
    problems = Problems(SOURCE)
    subs, products = subscriptions(raw, problems, settings.get("renewal", "anniversary"))
    pays = payments(raw, problems)
    keys = customers(raw, problems)
    problems.raise_if_any()
    return SourceTables(SOURCE, {"subscriptions": subs, "products": products, "payments": pays}, keys, "customer")
