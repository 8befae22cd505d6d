"""Property: a random Stripe history (items on one or two products, quantity changes in history mode, a trial, a
percent discount for a while, monthly, yearly or graduated tiered prices, a metered item billed in arrears) imports
to subscriptions whose MRR on any day equals Stripe's own definition computed directly from the objects: 0 in the
trial, else the sum over items in force of what the price charges for the quantity / months per interval (metered:
the usage invoiced for the last period ended), less the percent off of the discount in force."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from features.importers import stripe
from features.importers.errors import Problems
from features.importers.reader import open_raw

START = dt.date(2024, 1, 1)
PRICES = {"p_m": ("core", 1500, "month"), "p_y": ("core", 120000, "year"), "p_add": ("core", 700, "month"),
          "p_x": ("extra", 2500, "month"), "p_t": ("extra", None, "month"), "p_use": ("extra", 1, "month")}
TIERS = [{"up_to": 5, "unit_amount": 1000, "flat_amount": 2000}, {"up_to": None, "unit_amount": 600, "flat_amount": None}]


@st.composite
def histories(draw: st.DrawFn) -> dict:
    items = []
    for n, price in enumerate(draw(st.lists(st.sampled_from(sorted(set(PRICES) - {"p_use"})), min_size=1, max_size=3, unique=True))):
        begin = draw(st.integers(0, 60))
        versions, day = [], begin
        for _ in range(draw(st.integers(1, 3))):
            length = draw(st.integers(1, 200))
            versions.append((day, day + length, draw(st.integers(1, 40))))
            day += length
        open_end = draw(st.booleans())
        items.append({"id": f"si_{n}", "price": price, "versions": versions, "open": open_end})
    if draw(st.booleans()):  # a metered item on "extra": usage invoiced every 30 days in arrears
        begin = draw(st.integers(0, 60))
        amounts = draw(st.lists(st.integers(0, 50_000), min_size=0, max_size=8))
        lines = [(begin + 30 * k, begin + 30 * (k + 1), amt) for k, amt in enumerate(amounts)]
        end = begin + 30 * len(amounts) + draw(st.integers(1, 40))
        items.append({"id": "si_use", "price": "p_use", "versions": [(begin, end, 0)], "open": draw(st.booleans()),
                      "lines": lines})
    trial = draw(st.one_of(st.none(), st.integers(1, 90)))
    discount = draw(st.one_of(st.none(), st.tuples(st.integers(0, 300), st.integers(1, 300), st.sampled_from([10.0, 25.0, 50.0]))))
    return {"items": items, "trial": trial, "discount": discount}


def _day(n: int) -> pd.Timestamp:
    return pd.Timestamp(START) + pd.Timedelta(days=n)


def _write(h: dict, folder: Path) -> None:
    folder.mkdir()
    pd.DataFrame([{"id": k, "product_id": p, "currency": "usd", "unit_amount": a, "recurring_interval": i, "type": "recurring",
                   "billing_scheme": "per_unit" if a else "tiered", "tiers_mode": None if a else "graduated",
                   "tiers": None if a else json.dumps(TIERS), "recurring_usage_type": "metered" if k == "p_use" else "licensed"}
                  for k, (p, a, i) in PRICES.items()]).to_csv(folder / "price.csv", index=False)
    pd.DataFrame([{"id": "sub_1", "customer_id": "cus_1", "start_date": _day(0), "status": "active",
                   "trial_end": _day(h["trial"]) if h["trial"] else None}]).to_csv(folder / "subscription.csv", index=False)
    rows = []
    for item in h["items"]:
        for k, (a, b, q) in enumerate(item["versions"]):
            last = k == len(item["versions"]) - 1
            end = "9999-12-31 23:59:59" if last and item["open"] else str(_day(b) - pd.Timedelta(milliseconds=1))
            rows.append({"id": item["id"], "subscription_id": "sub_1", "price_id": item["price"], "quantity": q or None,
                         "_fivetran_start": _day(a), "_fivetran_end": end, "_fivetran_active": last and item["open"]})
    pd.DataFrame(rows).to_csv(folder / "subscription_item.csv", index=False)
    lines = [{"id": f"il_{n}", "subscription_item_id": item["id"], "subscription_id": "sub_1", "price_id": item["price"],
              "amount": amt, "period_start": _day(a), "period_end": _day(b), "proration": "false"}
             for item in h["items"] for n, (a, b, amt) in enumerate(item.get("lines", []))]
    if lines:
        pd.DataFrame(lines).to_csv(folder / "invoice_line_item.csv", index=False)
    if h["discount"]:
        a, length, pct = h["discount"]
        pd.DataFrame([{"id": "co", "percent_off": pct, "duration": "forever"}]).to_csv(folder / "coupon.csv", index=False)
        pd.DataFrame([{"subscription_id": "sub_1", "coupon_id": "co", "start": _day(a), "end": _day(a + length)}]).to_csv(
            folder / "subscription_discount.csv", index=False)
    pd.DataFrame([{"id": "cus_1"}]).to_csv(folder / "customer.csv", index=False)


def _stripe_mrr(h: dict, day: int, product: str) -> float:
    """Stripe's definition, straight from the objects."""
    if h["trial"] and day < h["trial"]:
        return 0.0
    total = 0.0
    for item in h["items"]:
        p, amount, interval = PRICES[item["price"]]
        if p != product:
            continue
        for k, (a, b, q) in enumerate(item["versions"]):
            last = k == len(item["versions"]) - 1
            if a <= day and (day < b or (last and item["open"])):
                if "lines" in item:  # metered: the usage invoiced for the last period ended by this day
                    done = [amt for s, e, amt in item["lines"] if e <= day]
                    total += done[-1] / 100 if done else 0.0
                elif amount is None:  # graduated: the first 5 units at $10 plus a $20 flat fee, the rest at $6
                    amount_q = 20.0 + min(q, 5) * 10.0 + max(q - 5, 0) * 6.0
                    total += amount_q
                else:
                    total += q * amount / 100 / (12.0 if interval == "year" else 1.0)
    if h["discount"]:
        a, length, pct = h["discount"]
        if a <= day < a + length:
            total *= 1 - pct / 100
    return total


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: each example writes and reads files
@given(histories())
def test_imported_mrr_equals_stripes_definition_on_every_day(h: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(h, Path(tmp) / "stripe")
        problems = Problems("stripe")
        subs, _ = stripe.subscriptions(open_raw("stripe", Path(tmp)), problems)
        assert not problems.items, [str(p) for p in problems.items]
    last = max(b for item in h["items"] for _, b, _ in item["versions"]) + 30
    for product in ("core", "extra"):
        mine = subs[subs["product_id"] == product]
        for day in range(0, last, 7):
            at = _day(day)
            live = mine[(mine["valid_from"] <= at) & (mine["valid_to"].isna() | (mine["valid_to"] > at))]
            assert len(live) <= 1, "periods of one product overlap"
            got = float(live["mrr"].sum())
            assert abs(got - _stripe_mrr(h, day, product)) < 0.011 * max(1, len(h["items"])), (product, day, got)
