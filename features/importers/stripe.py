"""Stripe (any connector's layout) into ``subscriptions``, ``payments`` and ``products``.

* Subscriptions: the type-2 history per customer and product (:mod:`features.importers.stripe_history`)
  from ``subscription_item`` versions (Fivetran history mode ``_fivetran_start``/``_fivetran_end``;
  without it each item runs from its creation to its subscription's end), the subscription
  (``subscription_history`` current versions, or ``subscription``: start, end, trial, pause,
  discounts) and the price (:mod:`features.importers.stripe_prices`). MRR = what the price charges
  per billing interval for the quantity (per unit or tiered; metered: the invoiced usage of the last
  complete period, from ``invoice_line_item``) / 10^exponent / months per interval, 0 in a trial or
  a pause, less the discounts in force (:mod:`features.importers.stripe_discounts`), in the
  reporting currency (:mod:`features.importers.money`). One-time prices are not recurring revenue.
* Payments: one row per invoice (draft and void invoices skipped): paid on or before the
  due day -> paid, after it -> late, unpaid -> failed.
* Products: one row per product and plan; ``tier_rank``, ``usage_limit`` from price
  metadata when present, otherwise ranked by price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.importers import stripe_discounts, stripe_history
from features.importers.errors import Problems
from features.importers.money import Currency, to_reporting
from features.importers.parse import (
    booleans,
    counted_numbers,
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
from features.importers.stripe_invoices import invoice_lines, versions_from_invoices
from features.importers.stripe_prices import prices as read_prices

SOURCE = "stripe"
_SUB_COLUMNS = ["subscription_id", "customer_id", "start_date", "ended_at", "trial_end", "renewal", "status"]


def _ts(frame: pd.DataFrame, name: str) -> pd.Series:
    return timestamps(frame[name]) if name in frame else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")


def _subscriptions_of(raw: RawSource, problems: Problems) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(subscription id -> customer, start, end, trial end, status; their raw rows; pause spans)."""
    name = "subscription_history" if raw.has("subscription_history") else "subscription"
    empty = pd.DataFrame(columns=_SUB_COLUMNS)
    no_pauses = pd.DataFrame(columns=["subscription_id", "start", "end"])
    if not raw.has(name):
        problems.add("subscription", "*", "required table is missing (neither subscription_history nor subscription exists)")
        return empty, pd.DataFrame(), no_pauses
    every = raw.read(name)
    problems.ledger.read(name, len(every))
    if not require_columns(problems, name, every, ("id", "customer_id")):
        return empty, pd.DataFrame(), no_pauses
    pauses = _pauses(every, name)
    s = every[booleans(every["_fivetran_active"]).fillna(True)] if "_fivetran_active" in every else every
    s = s.drop_duplicates("id", keep="last")
    problems.ledger.kept(name, len(s))
    subs = pd.DataFrame({
        "subscription_id": text(s["id"]), "customer_id": text(s["customer_id"]),
        "start_date": _ts(s, "start_date").fillna(_ts(s, "created")), "ended_at": _ts(s, "ended_at").fillna(_ts(s, "canceled_at")),
        "trial_end": _ts(s, "trial_end"),
        "renewal": timestamps(json_field(s["metadata"], "renewal_date")) if "metadata" in s else pd.NaT,
        "status": text(s["status"]).str.lower() if "status" in s else pd.NA,
    })
    return subs, s, pauses


def _pauses(s: pd.DataFrame, name: str) -> pd.DataFrame:
    """Spans in which a subscription's collection is paused (``pause_collection`` set, or status ``paused``): in history
    mode each version that shows it; else from the current period's start (or the trial's end) to ``resumes_at``."""
    behavior = text(s["pause_collection_behavior"]) if "pause_collection_behavior" in s else pd.Series(pd.NA, index=s.index)
    status = text(s["status"]).str.lower() if "status" in s else pd.Series(pd.NA, index=s.index)
    paused = (behavior.notna() | status.eq("paused")).fillna(False).astype(bool)
    if not paused.any():
        return pd.DataFrame(columns=["subscription_id", "start", "end"])
    if "_fivetran_start" in s:
        start = _ts(s, "_fivetran_start")
        end = (_ts(s, "_fivetran_end") + pd.Timedelta(milliseconds=1)).where(~is_open_end(s["_fivetran_end"])) if "_fivetran_end" in s \
            else pd.Series(pd.NaT, index=s.index)
    else:
        start = _ts(s, "current_period_start").fillna(_ts(s, "trial_end")).fillna(_ts(s, "start_date"))
        end = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    resumes = _ts(s, "pause_collection_resumes_at")
    end = end.where(resumes.isna() | (end.notna() & (end < resumes)), resumes)
    return pd.DataFrame({"subscription_id": text(s["id"]), "start": start.dt.floor("D"), "end": end.dt.floor("D")})[paused]


def _item_versions(raw: RawSource, problems: Problems, subs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    it = raw.required("subscription_item", problems)
    if it is None:
        return pd.DataFrame(), pd.DataFrame()
    problems.ledger.read("subscription_item", len(it))
    price_col = "price_id" if "price_id" in it else "plan_id"
    if not require_columns(problems, "subscription_item", it, ("id", "subscription_id", price_col)):
        return pd.DataFrame(), pd.DataFrame()
    ids = text(it["id"])
    quantity = (counted_numbers(problems, "subscription_item", "quantity", it["quantity"], ids) if "quantity" in it
                else pd.Series(pd.NA, index=it.index, dtype="Float64"))
    items = pd.DataFrame({
        "item_id": ids, "subscription_id": text(it["subscription_id"]), "price_id": text(it[price_col]),
        "quantity": quantity,
        "usage_limit": numbers(json_field(it["metadata"], "usage_limit")) if "metadata" in it else pd.NA,
        "item_renewal": timestamps(json_field(it["metadata"], "renewal_date")) if "metadata" in it else pd.NaT,
    })
    problems.check("subscription_item", "quantity", "negative", items["quantity"] < 0, ids)
    items = items.merge(subs, on="subscription_id", how="left").set_axis(it.index)
    problems.check("subscription_item", "subscription_id", "no such subscription", items["customer_id"].isna(), ids)
    if "_fivetran_start" in it:
        items["valid_from"] = timestamps(it["_fivetran_start"]).dt.floor("D")
        if "_fivetran_end" in it:
            end = (timestamps(it["_fivetran_end"]) + pd.Timedelta(milliseconds=1)).dt.floor("D")
            items["valid_to"] = end.where(~is_open_end(it["_fivetran_end"]))
        else:
            items["valid_to"] = pd.NaT
        items["valid_to"] = items["valid_to"].where(items["valid_to"].notna(), items["ended_at"].dt.floor("D"))
    else:
        items["valid_from"] = _ts(it, "created").fillna(items["start_date"]).dt.floor("D")
        items["valid_to"] = items["ended_at"].dt.floor("D")
    problems.check("subscription_item", "_fivetran_start" if "_fivetran_start" in it else "created",
                   "missing start of the version", items["valid_from"].isna(), ids)
    items["version"] = np.arange(len(items)).astype(str)
    return items, it


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


def subscriptions(raw: RawSource, problems: Problems, renewal_rule: str = "anniversary",
                  money: Currency | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(subscriptions keyed by Stripe customer id, products) — the type-2 history and the catalog."""
    money = money or Currency()
    prices = read_prices(raw, problems)
    subs, subs_raw, pauses = _subscriptions_of(raw, problems)
    items, items_raw = _item_versions(raw, problems, subs)
    if items.empty or prices.empty:
        return pd.DataFrame(), pd.DataFrame()
    v = items.merge(prices.drop(columns=["usage_limit", "metadata", "table"]).rename(columns={"currency": "currency"}),
                    on="price_id", how="left", suffixes=("", "_price")).set_axis(items.index)
    v["price_usage_limit"] = v["price_id"].map(prices.set_index("price_id")["usage_limit"])
    price_col = "price_id" if "price_id" in items_raw else "plan_id"
    problems.check("subscription_item", price_col, "no such price or plan", v["product_id"].isna(), v["item_id"])
    v = v[v["product_id"].notna() & v["customer_id"].notna()]
    one_time = v["type"].ne("recurring")
    problems.ledger.drop("subscription_item", "one-time price: not recurring revenue", v.loc[one_time, "item_id"])
    v = stripe_history.drop_empty(v[~one_time], problems)
    if "_fivetran_start" in items_raw:
        stripe_history.item_overlaps(v, problems, "_fivetran_start, _fivetran_end")
    if v.empty:
        return pd.DataFrame(), _catalog(prices)
    lines = invoice_lines(raw, items)
    if "_fivetran_start" not in items_raw:
        licensed = v["usage_type"].ne("metered")
        rebuilt = versions_from_invoices(v.loc[licensed, items.columns.intersection(v.columns)], lines, problems)
        rebuilt = rebuilt.drop(columns=[c for c in prices.columns if c in rebuilt.columns and c != "price_id"], errors="ignore")
        priced = rebuilt.merge(prices.drop(columns=["usage_limit", "metadata", "table"]), on="price_id", how="left")
        priced["price_usage_limit"] = priced["price_id"].map(prices.set_index("price_id")["usage_limit"])
        v = pd.concat([priced, v[~licensed]], ignore_index=True)
        v = v[v["valid_to"].isna() | (v["valid_to"] > v["valid_from"])]
    v = pd.concat([f for f in (stripe_history.price_versions(v, problems, "quantity" in items_raw), stripe_history.metered(v, lines, problems))
                   if not f.empty] or [v], ignore_index=True)
    for c in ("valid_from", "valid_to", "trial_end", "ended_at", "start_date", "renewal", "item_renewal"):
        v[c] = pd.to_datetime(v[c]).astype("datetime64[us]")
    v["renewal_date"] = _renewal(v, renewal_rule)  # per version, before it is cut into pieces
    discounts = stripe_discounts.collect(raw, subs, subs_raw, items, items_raw, problems)
    cuts = pd.concat([
        subs[["subscription_id"]].assign(at=subs["trial_end"].dt.floor("D")),
        pauses[["subscription_id"]].assign(at=pauses["start"]), pauses[["subscription_id"]].assign(at=pauses["end"]),
        v[["subscription_id"]].assign(at=v["valid_from"]), v[["subscription_id"]].assign(at=v["valid_to"]),
        _discount_cuts(discounts, items)]).dropna()
    v = stripe_history.split(v, cuts)
    v["mrr"] = (v["charge"].astype(float) / v["divisor"].astype(float) / v["months"].astype(float)).fillna(0.0)
    v["mrr"] = stripe_history.discount(v, discounts)
    in_trial = v["trial_end"].notna() & (v["valid_from"] < v["trial_end"].dt.floor("D"))
    paused = stripe_history.in_spans(v, pauses)
    v.loc[in_trial | paused, "mrr"] = 0.0
    problems.ledger.say(f"{int(in_trial.sum())} period(s) in a trial and {int(paused.sum())} paused: MRR 0") if (in_trial | paused).any() else None
    v["mrr"] = to_reporting(problems, "price", v["mrr"], v["currency"], v["valid_from"], v["customer_id"], money)
    v["seats"] = v["quantity"].fillna(0).round().astype("Int64")
    v["usage_limit"] = v["usage_limit"].fillna(v["price_usage_limit"])
    v["mrr"] = v["mrr"].round(2)
    v = stripe_history.combine(v)
    out = pd.DataFrame({
        "account_id": v["customer_id"], "product_id": v["product_id"], "plan": v["plan"], "seats": v["seats"], "mrr": v["mrr"].round(2),
        "usage_limit": v["usage_limit"], "valid_from": v["valid_from"], "valid_to": v["valid_to"], "renewal_date": v["renewal_date"],
    })
    problems.ledger.kept("subscription_item", int(v["versions"].str.split("+").explode().nunique()) if len(v) else 0)
    return out.sort_values(["account_id", "product_id", "valid_from"]).reset_index(drop=True), _catalog(prices)


def _discount_cuts(discounts: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    d = discounts.copy()
    sub = d["key"].where(d["level"] == "subscription", d["key"].map(items.drop_duplicates("item_id").set_index("item_id")["subscription_id"]))
    return pd.concat([pd.DataFrame({"subscription_id": sub, "at": d["start"]}), pd.DataFrame({"subscription_id": sub, "at": d["end"]})])


def _catalog(prices: pd.DataFrame) -> pd.DataFrame:
    """One row per product and plan: catalog-flagged prices when any, else every recurring licensed price."""
    p = prices[prices["unit_monthly"].notna() & prices["type"].eq("recurring") & prices["usage_type"].eq("licensed")]
    if p["catalog"].any():
        p = p[p["catalog"]]
    p = p.sort_values("unit_monthly").drop_duplicates(["product_id", "plan"], keep="first").copy()
    ranked = p.groupby("product_id")["unit_monthly"].rank(method="dense").astype("Int64")
    return pd.DataFrame({
        "product_id": p["product_id"], "plan": p["plan"],
        "tier_rank": p["tier_rank"].round().astype("Int64").fillna(ranked),
        "list_price_per_seat": p["unit_monthly"].astype(float).round(6), "usage_limit": p["usage_limit"],
    }).sort_values(["product_id", "tier_rank"]).reset_index(drop=True)


def payments(raw: RawSource, problems: Problems, money: Currency | None = None) -> pd.DataFrame:
    """One row per invoice keyed by Stripe customer id, in the reporting currency."""
    if not raw.has("invoice"):
        return pd.DataFrame()
    inv = raw.read("invoice")
    problems.ledger.read("invoice", len(inv))
    if not require_columns(problems, "invoice", inv, ("id", "customer_id", "amount_due", "currency", "status")):
        return pd.DataFrame()
    status = text(inv["status"]).str.lower()
    skipped = status.isin(["draft", "void", "deleted"]).fillna(False).astype(bool)
    problems.ledger.drop("invoice", "draft, void or deleted invoice", text(inv["id"])[skipped])
    inv = inv[~skipped]
    status = status[inv.index]
    due = timestamps(inv["due_date"]) if "due_date" in inv else pd.Series(pd.NaT, index=inv.index)
    for fallback in ("created", "period_end"):
        if fallback in inv:
            due = due.fillna(timestamps(inv[fallback]))
    ids = text(inv["id"])
    problems.check("invoice", "due_date", "missing (and no created or period_end)", due.isna(), ids)
    paid_at = timestamps(inv["status_transitions_paid_at"]) if "status_transitions_paid_at" in inv else pd.Series(pd.NaT, index=inv.index, dtype="datetime64[us]")
    paid = (status == "paid") | (booleans(inv["paid"]).fillna(False) if "paid" in inv else False)
    paid_at = paid_at.where(paid).fillna(due.where(paid))
    amount = (counted_numbers(problems, "invoice", "amount_due", inv["amount_due"], ids, error=True)
              / minor_unit_divisor(problems, "invoice", "currency", inv["currency"]))
    problems.check("invoice", "amount_due", "negative", amount < 0, ids)
    problems.check("invoice", "amount_due", "missing", amount.isna(), ids)
    amount = to_reporting(problems, "invoice", amount, inv["currency"], due, text(inv["customer_id"]), money or Currency())
    problems.ledger.kept("invoice", len(inv))
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
    if "id" in c and c["id"].duplicated().any():
        from features.importers.crm import unique_rows

        c = unique_rows(problems, "customer", c)
    return c


def read(raw: RawSource, settings: dict, money: Currency | None = None) -> SourceTables:
    """Every table Stripe gives, keyed by Stripe customer id; raises ImportFailed listing all problems."""
    problems = Problems(SOURCE)
    problems.ledger = raw.ledger or problems.ledger
    subs, products = subscriptions(raw, problems, settings.get("renewal", "anniversary"), money)
    pays = payments(raw, problems, money)
    keys = customers(raw, problems)
    problems.raise_if_any()
    return SourceTables(SOURCE, {"subscriptions": subs, "products": products, "payments": pays}, keys, "customer",
                        ledger=problems.ledger)
