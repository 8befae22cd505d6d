"""The messy company: what real exports hold, still byte-identical per seed, still within its own contract."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from features.io import open_data
from features.synth import MessyConfig, generate
from features.synth.truth import labels, mrr_at, nrr_pct
from features.validate import validate

AS_OF = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("messy")
    generate(out, accounts=300, months=14, seed=7, as_of=AS_OF, mess=MessyConfig())
    return out


def _read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{table}.parquet")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_messy_company_meets_the_contract_on_its_own_as_of(messy: Path) -> None:
    source = open_data(messy)
    try:
        report = validate(source, AS_OF)
    finally:
        source.close()
    assert report.ok, [str(v) for v in report.violations]
    assert report.absent_optional == ["surveys"]
    assert _read(messy, "activities").empty


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", accounts=120, months=6, seed=3, as_of=AS_OF, mess=MessyConfig())
    generate(tmp_path / "b", accounts=120, months=6, seed=3, as_of=AS_OF, mess=MessyConfig())
    generate(tmp_path / "c", accounts=120, months=6, seed=4, as_of=AS_OF, mess=MessyConfig())
    a, b, c = (_digests(tmp_path / x) for x in "abc")
    assert a == b
    assert a["usage_daily.parquet"] != c["usage_daily.parquet"]


def test_accounts_look_like_real_exports(messy: Path) -> None:
    a, s = _read(messy, "accounts"), _read(messy, "subscriptions")
    assert a["account_id"].is_unique
    assert 0.25 < a["csm_owner"].isna().mean() < 0.45
    ids = a["account_id"]
    assert (ids.str.len().eq(18) & ids.str.startswith("001")).sum() > 30  # Salesforce
    assert ids.str.fullmatch(r"\d+").sum() > 30  # HubSpot
    assert ids.str.startswith("cus_").sum() > 30  # Stripe
    for needle in ('"', "<", "&", "/", "\\", "Ω"):
        assert ids.str.contains(needle, regex=False).any(), needle
        assert a["name"].str.contains(needle if needle != "Ω" else "ø", regex=False).any(), needle
    assert ids.str.len().max() == 200
    assert a["name"].duplicated().any()
    since = pd.to_datetime(a["customer_since"])
    assert (since > pd.Timestamp(AS_OF) - pd.Timedelta(days=45)).sum() >= 3  # days or weeks old
    assert len(set(a["account_id"]) - set(s["account_id"])) >= 1  # usage without any subscription


def test_revenue_holds_trials_pauses_cancellations_and_midmonth_changes(messy: Path) -> None:
    s = _read(messy, "subscriptions")
    s["valid_from"], s["valid_to"] = pd.to_datetime(s["valid_from"]), pd.to_datetime(s["valid_to"])
    zero = s[s["mrr"] == 0]
    assert len(zero) >= 10  # trials and pauses
    assert ((s["valid_to"] - s["valid_from"]).dt.days == 1).any()  # signed up and cancelled
    assert s["account_id"].map(s.groupby("account_id")["product_id"].nunique()).gt(1).any()
    changes = s.sort_values("valid_from").groupby(["account_id", "product_id"])["valid_from"].apply(
        lambda v: v.dt.day.nunique() > 1)
    assert changes.sum() >= 20  # changes off the anniversary day
    assert s["valid_from"].max() <= pd.Timestamp(AS_OF)


def test_usage_holds_an_outage_spikes_silence_and_a_partly_loaded_last_day(messy: Path) -> None:
    u, s = _read(messy, "usage_daily"), _read(messy, "subscriptions")
    per_day = u.groupby("date")["events"].sum()
    days = pd.date_range(per_day.index.min(), AS_OF).date
    missing = [d for d in days if d not in per_day.index]
    assert len(missing) == MessyConfig().outage_days
    before = per_day.loc[[d for d in per_day.index if AS_OF - dt.timedelta(days=28) <= d < AS_OF]]
    assert per_day.loc[AS_OF] < 0.4 * before.median()
    paying = set(s.loc[s["valid_to"].isna() & (s["mrr"] > 0), "account_id"])
    assert paying - set(u["account_id"])  # paying, never used
    top = u.groupby("account_id")["events"].max() / u.groupby("account_id")["events"].median()
    assert top.max() > 100  # a bot-like spike


def test_orphan_deals_are_refused_naming_the_table_column_and_ids(tmp_path: Path) -> None:
    generate(tmp_path, accounts=40, months=4, seed=1, as_of=AS_OF, mess=dataclasses.replace(MessyConfig(), orphan_deals=2))
    source = open_data(tmp_path)
    try:
        report = validate(source, AS_OF)
    finally:
        source.close()
    [v] = report.violations
    assert (v.table, v.column, v.rule, v.rows) == ("opportunities", "account_id", "must exist in accounts", 2)
    assert v.examples[0]["account_id"].startswith("deleted-account-")


@pytest.mark.parametrize("as_of", [dt.date(2026, 12, 7), dt.date(2026, 11, 15), dt.date(2026, 2, 28)])
def test_nothing_after_the_as_of_date_on_any_day(tmp_path: Path, as_of: dt.date) -> None:
    """The generator keeps its own contract whatever the as-of day, messy or not."""
    for mess in (None, MessyConfig()):
        out = tmp_path / str(mess is None)
        generate(out, accounts=60, months=3, seed=2, as_of=as_of, mess=mess)
        source = open_data(out)
        try:
            report = validate(source, as_of)
        finally:
            source.close()
        assert report.ok, [str(v) for v in report.violations]


def test_truth_reads_mrr_nrr_and_labels_from_the_rows() -> None:
    d = dt.date
    s = pd.DataFrame({
        "account_id": ["a", "a", "b", "c", "c"],
        "mrr": [100.0, 150.0, 50.0, 0.0, 80.0],
        "valid_from": [d(2026, 1, 1), d(2026, 2, 10), d(2026, 1, 1), d(2026, 1, 20), d(2026, 2, 3)],
        "valid_to": [d(2026, 2, 10), None, d(2026, 2, 20), d(2026, 2, 3), None],
    })
    jan = mrr_at(s, [d(2026, 1, 31)]).set_index("account_id")["mrr"]
    assert jan.to_dict() == {"a": 100.0, "b": 50.0, "c": 0.0}
    assert nrr_pct(s, d(2026, 2, 1), d(2026, 2, 28)) == pytest.approx(150 / 150 * 100)
    lab = labels(s, d(2026, 1, 31), 90).set_index("account_id")
    assert lab.loc["a", "expanded"] and not lab.loc["a", "churned"]
    assert lab.loc["b", "churned"] and "c" not in lab.index  # c was trialling at MRR 0: not a paying account


def test_raw_stripe_holds_currencies_tiers_metering_discounts_and_trials(messy: Path, tmp_path: Path) -> None:
    """The raw billing export prices every contract period so that a faithful reading gives its MRR back."""
    import json

    from features.synth.raw_messy import RATES, mess_raw
    from features.synth.raw_shapes import write_raw

    write_raw(messy, tmp_path, ("stripe", "salesforce"))
    mess_raw(messy, tmp_path, seed=7)
    stripe = tmp_path / "stripe"
    price, item = _read(stripe, "price"), _read(stripe, "subscription_item")
    subs, lines = _read(stripe, "subscription_history"), _read(stripe, "invoice_line_item")
    assert set(_read(stripe, "customer")["currency"]) == {"usd", *RATES}
    assert (tmp_path / "rates.csv").exists()
    contract = _read(messy, "subscriptions")
    v = item.merge(price, left_on="price_id", right_on="id", suffixes=("", "_price"))
    rate = v["currency"].map({**RATES, "usd": 1.0})
    months = v["recurring_interval"].map({"month": 1, "year": 12})
    per_unit = v["billing_scheme"].eq("per_unit") & v["recurring_usage_type"].eq("licensed")
    mrr = v["unit_amount_decimal"].astype(float) * v["quantity"].astype(float) / 100 / months * rate
    disc = v["subscription_id"].map(subs.set_index("id")["discount"]).notna()
    mrr = mrr.where(~disc, mrr * 0.8)
    trial = v["subscription_id"].map(subs.set_index("id")["trial_end"]).notna() & \
        (pd.to_datetime(v["_fivetran_start"]) < pd.to_datetime(v["subscription_id"].map(subs.set_index("id")["trial_end"])))
    truth = contract["mrr"].to_numpy()
    check = per_unit & ~trial
    assert (abs(mrr[check] - truth[check.to_numpy()]) < 0.02 + 1e-4 * truth[check.to_numpy()]).all()
    tiered = v[v["billing_scheme"] == "tiered"]
    assert len(tiered) and all(len(json.loads(t)) == 2 for t in tiered["tiers"])
    assert len(lines) and (v["recurring_usage_type"] == "metered").sum() > 0
    assert subs["discount"].notna().any() and json.loads(subs["discount"].dropna().iloc[0])["coupon"]["percent_off"] == 20.0
    assert subs["trial_end"].notna().sum() >= 5
    assert _read(tmp_path / "salesforce", "account")["website"].duplicated().any()
