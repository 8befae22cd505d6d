"""Stripe's money rules on a hand-built export: intervals, discounts, trials, current-state items, renewals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.importers import stripe
from features.importers.errors import Problems
from features.importers.money import Currency
from features.importers.reader import open_raw


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """Three customers on the current-state ``subscription`` and ``subscription_item`` tables (no history mode)."""
    folder = tmp_path / "stripe"
    folder.mkdir()
    pd.DataFrame({
        "id": ["p_month", "p_year", "p_jpy", "p_week"], "product_id": ["core", "core", "addon", "addon"],
        "currency": ["usd", "USD", "jpy", "usd"], "unit_amount": ["1000", "120000", "500", "700"],
        "recurring_interval": ["month", "year", "month", "week"], "recurring_interval_count": ["1", "1", "3", "2"],
        "nickname": ["basic", "basic", "extra", "extra"], "metadata": ["{}"] * 4,
    }).to_csv(folder / "price.csv", index=False)
    pd.DataFrame({
        "id": ["sub_a", "sub_b", "sub_c"], "customer_id": ["cus_a", "cus_b", "cus_c"],
        "start_date": ["2025-01-15 10:00:00", "2025-03-01 00:00:00", "2024-02-29 08:00:00"],
        "ended_at": ["", "2025-09-01 00:00:00", ""], "trial_end": ["", "", "2024-03-14 00:00:00"],
        "status": ["active", "canceled", "active"], "metadata": ["{}", "{}", "{}"],
    }).to_csv(folder / "subscription.csv", index=False)
    pd.DataFrame({
        "id": ["si_1", "si_2", "si_3", "si_4", "si_5"], "subscription_id": ["sub_a", "sub_a", "sub_b", "sub_c", "sub_c"],
        "plan_id": ["p_month", "p_jpy", "p_year", "p_month", "p_week"], "quantity": ["10", "3", "4", "2", "1"],
        "created": ["2025-01-15 10:00:00", "2025-01-15 10:00:00", "2025-03-01 00:00:00", "2024-02-29 08:00:00",
                    "2024-02-29 08:00:00"],
    }).to_csv(folder / "subscription_item.csv", index=False)
    pd.DataFrame({"id": ["c_pct", "c_amt"], "percent_off": ["25", ""], "amount_off": ["", "1500"],
                  "currency": ["", "usd"]}).to_csv(folder / "coupon.csv", index=False)
    pd.DataFrame({"subscription_id": ["sub_a", "sub_b"], "coupon_id": ["c_pct", "c_amt"],
                  "start": ["2025-01-01 00:00:00", "2025-03-01 00:00:00"], "end": ["", ""]}).to_csv(
        folder / "subscription_discount.csv", index=False)
    return tmp_path


def test_two_currencies_are_refused_naming_the_accounts(export: Path) -> None:
    problems = Problems("stripe")
    stripe.subscriptions(open_raw("stripe", export), problems)
    assert [str(p) for p in problems.items] == [
        "stripe.price.currency: several currencies (jpy, usd); accounts not in usd: jpy: cus_a (give --currency and --rates to "
        "convert; currencies are never summed) in 1 rows"]


def test_mrr_from_intervals_discounts_and_trials(export: Path) -> None:
    problems = Problems("stripe")
    yen = Currency("usd", pd.DataFrame({"date": [pd.Timestamp("2020-01-01")], "currency": ["jpy"], "rate": [0.01]}))
    subs, products = stripe.subscriptions(open_raw("stripe", export), problems, money=yen)
    assert not problems.items
    got = subs.groupby(["account_id", "product_id"])["mrr"].apply(list).to_dict()
    # 10 seats x $10 a month, 25 % off; 3 x 500 yen every 3 months = 500 yen a month, 25 % off, at 0.01 USD a yen
    assert got[("cus_a", "core")] == [75.0]
    assert got[("cus_a", "addon")] == [3.75]
    # 4 x $1,200 a year = $400 a month, less $15 off each (yearly) invoice = $1.25 a month
    assert got[("cus_b", "core")] == [398.75]
    # started inside a trial: 0 until the trial ends, then the price (no history mode needed)
    assert got[("cus_c", "core")] == [0.0, 20.0]
    assert got[("cus_c", "addon")] == [0.0, round(700 / 100 / (12 / 52 * 2), 2)]
    after = subs[(subs["account_id"] == "cus_c") & (subs["mrr"] > 0)]
    assert set(after["valid_from"]) == {pd.Timestamp("2024-03-14")}
    assert set(products["plan"]) == {"basic", "extra"}


def test_periods_and_renewals_without_history_mode(export: Path) -> None:
    subs, _ = stripe.subscriptions(open_raw("stripe", export), Problems("stripe"))
    row = subs.drop_duplicates(["account_id", "product_id"]).set_index(["account_id", "product_id"])
    assert row.loc[("cus_b", "core"), "valid_from"] == pd.Timestamp("2025-03-01")
    assert row.loc[("cus_b", "core"), "valid_to"] == pd.Timestamp("2025-09-01")  # the subscription's end
    assert pd.isna(row.loc[("cus_a", "core"), "valid_to"])
    assert row.loc[("cus_a", "core"), "renewal_date"] == pd.Timestamp("2026-01-15")  # next yearly anniversary
    assert row.loc[("cus_c", "core"), "renewal_date"] == pd.Timestamp("2025-02-28")  # a 29 February start
    none, _ = stripe.subscriptions(open_raw("stripe", export), Problems("stripe"), renewal_rule="none")
    assert none["renewal_date"].isna().all()


def test_quantity_changes_without_history_mode_come_from_invoice_lines(export: Path) -> None:
    folder = export / "stripe"
    pd.DataFrame({
        "id": ["il_1", "il_2", "il_3"], "invoice_id": ["in_1", "in_2", "in_3"], "subscription_item_id": ["si_1"] * 3,
        "subscription_id": ["sub_a"] * 3, "price_id": ["p_month"] * 3, "quantity": ["10", "10", "14"],
        "amount": ["10000", "10000", "14000"], "period_start": ["2025-01-15", "2025-02-15", "2025-03-15"],
        "period_end": ["2025-02-15", "2025-03-15", "2025-04-15"], "proration": ["false"] * 3,
    }).to_csv(folder / "invoice_line_item.csv", index=False)
    problems = Problems("stripe")
    yen = Currency("usd", pd.DataFrame({"date": [pd.Timestamp("2020-01-01")], "currency": ["jpy"], "rate": [0.01]}))
    subs, _ = stripe.subscriptions(open_raw("stripe", export), problems, money=yen)
    core = subs[(subs["account_id"] == "cus_a") & (subs["product_id"] == "core")]
    assert core[["valid_from", "seats", "mrr"]].values.tolist() == [
        [pd.Timestamp("2025-01-15"), 10, 75.0], [pd.Timestamp("2025-03-15"), 14, 105.0]]
    assert core["valid_to"].tolist()[0] == pd.Timestamp("2025-03-15") and pd.isna(core["valid_to"].tolist()[1])
    assert any("given 2 versions from the quantity and price on their invoice lines" in s for s in problems.ledger.said)


def test_pauses_in_history_mode_are_zero_while_collection_is_paused(tmp_path: Path) -> None:
    folder = tmp_path / "stripe"
    folder.mkdir()
    pd.DataFrame({"id": ["p"], "product_id": ["core"], "currency": ["usd"], "unit_amount": ["3000"],
                  "recurring_interval": ["month"]}).to_csv(folder / "price.csv", index=False)
    pd.DataFrame({"id": ["cus_p"]}).to_csv(folder / "customer.csv", index=False)
    pd.DataFrame({
        "id": ["sub_p"] * 3, "customer_id": ["cus_p"] * 3, "start_date": ["2025-01-01"] * 3, "status": ["active", "active", "active"],
        "pause_collection_behavior": ["", "void", ""],
        "_fivetran_start": ["2025-01-01", "2025-03-01", "2025-04-15"],
        "_fivetran_end": ["2025-02-28 23:59:59.999", "2025-04-14 23:59:59.999", "9999-12-31 23:59:59"],
        "_fivetran_active": ["false", "false", "true"],
    }).to_csv(folder / "subscription_history.csv", index=False)
    pd.DataFrame({"id": ["si_p"], "subscription_id": ["sub_p"], "price_id": ["p"], "quantity": ["1"],
                  "_fivetran_start": ["2025-01-01"], "_fivetran_end": ["9999-12-31 23:59:59"], "_fivetran_active": ["true"]}).to_csv(
        folder / "subscription_item.csv", index=False)
    problems = Problems("stripe")
    subs, _ = stripe.subscriptions(open_raw("stripe", tmp_path), problems)
    assert not problems.items
    assert subs[["valid_from", "mrr"]].values.tolist() == [
        [pd.Timestamp("2025-01-01"), 30.0], [pd.Timestamp("2025-03-01"), 0.0], [pd.Timestamp("2025-04-15"), 30.0]]
