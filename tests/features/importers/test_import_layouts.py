"""Every connector layout of the same Stripe, Salesforce and Segment records (``tests/fixtures/importers``, written from
the vendors' API references) imports to the same contract, and MRR per account per month equals the hand-computed table
``expected_mrr.csv`` (trials, metered usage, tiers, nested and item discounts, a pause, EUR converted, a same-day cancel)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from landing import FIXTURES, LAYOUTS, land

from features.importers import money
from features.importers.errors import ImportFailed
from features.importers.reconcile import mrr_by_month
from features.importers.run import ImportResult, import_sources, read_sources

AS_OF = dt.date(2025, 6, 30)
SOURCES = ["stripe", "salesforce", "segment"]
CONFIG = {"stripe": {"match": "metadata.account_id"}, "segment": {"unattributed": "drop"}}


def _import(layout: str, root: Path, **kwargs) -> ImportResult:  # noqa: ANN003 - import_sources' options
    return import_sources(SOURCES, land(layout, root / "raw"), root / "out", CONFIG, AS_OF, **kwargs)


@pytest.fixture(scope="module", params=LAYOUTS)
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ImportResult, Path]:
    root = tmp_path_factory.mktemp(request.param)
    result = _import(request.param, root, money=money.load("usd", FIXTURES / "rates.csv"))
    return request.param, result, root / "out"


def _monthly(subs: pd.DataFrame) -> pd.DataFrame:
    ends = pd.date_range("2025-01-31", "2025-06-30", freq="ME")
    return pd.DataFrame({a: mrr_by_month(part, ends) for a, part in subs.groupby("account_id")}).T


def test_mrr_per_account_and_month_matches_the_hand_computed_table(imported) -> None:  # noqa: ANN001
    layout, _, out = imported
    expected = pd.read_csv(FIXTURES / "expected_mrr.csv", dtype={"account_id": str}).set_index("account_id").drop(columns="why")
    got = _monthly(pd.read_parquet(out / "subscriptions.parquet")).reindex(expected.index)
    pd.testing.assert_frame_equal(got.astype(float), expected.astype(float), check_names=False, obj=f"MRR in the {layout} layout")


def test_the_layout_is_detected_and_said(imported) -> None:  # noqa: ANN001
    layout, result, _ = imported
    sources = result.report["reconciliation"]["sources"]
    assert sources["stripe"]["layout"] == layout and sources["salesforce"]["layout"] == layout


def test_every_drop_and_coercion_is_in_the_report(imported) -> None:  # noqa: ANN001
    layout, result, _ = imported
    sources = result.report["reconciliation"]["sources"]

    def dropped(source: str, start: str) -> dict:
        hits = [d for d in sources[source]["dropped"] if d["reason"].startswith(start)]
        assert hits, f"{source}: nothing dropped for {start!r} in {sources[source]['dropped']}"
        return hits[0]

    assert dropped("stripe", "subscription cancelled on the day it started")["first_ids"] == ["sub_eps_x"]
    assert dropped("stripe", "one-time price")["first_ids"] == ["si_delta_setup"]
    assert dropped("stripe", "coupon duration 'once'")["first_ids"] == ["co_once"]
    assert any("metered item(s): MRR from the invoiced usage of the last complete period" in s for s in sources["stripe"]["said"])
    assert dropped("salesforce", "its account is not among")["first_ids"] == ["006O2"]
    assert dropped("salesforce", "stage rows of a deal")["first_ids"] == ["006O2"]
    assert dropped("segment", "no account")["rows"] == 2
    coerced = {(c["table"], c["column"]): c for s in sources.values() for c in s["coerced"]}
    assert coerced[("account", "number_of_employees")]["first_ids"] == ["001A3"]  # "unknown": read as missing, said
    assert "001A2" in coerced[("account", "id")]["first_ids"]  # two differing rows of one account: the latest kept
    if layout == "fivetran":
        assert coerced[("price", "unit_amount_decimal")]["first_ids"] == ["price_eur"]  # 1200,00


def test_crm_fields_by_api_name_or_snake_case(imported) -> None:  # noqa: ANN001
    _, _, out = imported
    accounts = pd.read_parquet(out / "accounts.parquet").set_index("account_id")
    assert accounts.loc["001A2", "employees"] == 250 and accounts.loc["001A2", "segment"] == "mid_market"  # the latest row
    assert accounts.loc["001A7", "segment"] == "enterprise" and accounts.loc["001A4", "region"] == "DE"
    assert accounts.loc["001A3", "employees"] == 0
    assert set(accounts["csm_owner"]) == {"Kim Lee"}
    opps = pd.read_parquet(out / "opportunities.parquet")
    assert opps["opportunity_id"].tolist() == ["006O1"]
    stages = pd.read_parquet(out / "opportunity_stages.parquet")
    assert stages.sort_values("entered_at")["stage"].tolist() == ["Prospecting", "Closed Won"]


def test_payments_in_the_reporting_currency(imported) -> None:  # noqa: ANN001
    _, _, out = imported
    pays = pd.read_parquet(out / "payments.parquet").set_index("invoice_id")
    assert pays.loc["in_delta_1", "amount"] == pytest.approx(560 * 1.10)  # EUR 60 + EUR 500 setup at 1.10
    assert "in_eps_void" not in pays.index
    assert pays.loc["in_acme_1", "status"] == "late"  # paid four days after it was due


@pytest.mark.parametrize("layout", ["fivetran", "stitch"])  # a flat price table, and plans nested in items
def test_two_currencies_without_rates_are_refused_naming_the_accounts(layout: str, tmp_path: Path) -> None:
    with pytest.raises(ImportFailed) as caught:
        _import(layout, tmp_path)
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith("stripe.price.currency: several currencies (eur, usd); accounts not in usd: eur: cus_delta")
               for m in messages), messages
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("events", ["amplitude", "mixpanel"])
def test_hubspot_with_product_analytics_as_airbyte_lands_them(events: str, tmp_path: Path) -> None:
    from landing import land_airbyte_apps

    read = read_sources(["hubspot", events], land_airbyte_apps(tmp_path / "raw"), {})
    crm = read["hubspot"]
    accounts = crm.tables["accounts"].set_index("account_id")
    assert sorted(accounts.index) == ["9001", "9002", "9003"]
    assert accounts.loc["9003", "segment"] == "enterprise" and accounts.loc["9002", "region"] == "Germany"
    assert set(accounts["csm_owner"]) == {"Kim Lee"}
    opps = crm.tables["opportunities"]
    assert opps[["opportunity_id", "account_id", "outcome"]].values.tolist() == [["5001", "9001", "won"]]
    assert "hubspot.deal: 1 deal(s) with no company left out" in crm.notes
    usage = read[events].tables["usage_daily"]
    # amplitude: 1 event on the 3rd and 2 on the 4th per account (a re-delivered uuid counted once); mixpanel: 1 and 1
    per_account = usage.groupby("account_id")["events"].sum().to_dict()
    assert per_account == ({"9001": 3, "9002": 3, "9003": 3} if events == "amplitude" else {"9001": 2, "9002": 2, "9003": 2})
    assert crm.layout == "airbyte" and read[events].layout == "airbyte"


def test_airbyte_raw_tables_keep_the_record_in_airbyte_data(tmp_path: Path) -> None:
    import json

    from landing import load

    from features.importers.reader import open_raw

    folder = tmp_path / "stripe"
    folder.mkdir()
    pd.DataFrame({"_airbyte_ab_id": ["a1", "a2"], "_airbyte_emitted_at": ["2025-07-01", "2025-07-01"],
                  "_airbyte_data": [json.dumps(c) for c in load("stripe", "customers")[:2]]}).to_csv(
        folder / "_airbyte_raw_customers.csv", index=False)
    raw = open_raw("stripe", tmp_path)
    assert raw.layout == "airbyte" and list(raw.tables) == ["customer"]
    customers = raw.read("customer")
    assert customers["id"].tolist() == ["cus_acme", "cus_beta"]
    assert customers["metadata"].map(lambda m: json.loads(m)["account_id"]).tolist() == ["001A1", "001A2"]
    assert not [c for c in customers.columns if c.startswith("_airbyte")]


def test_layout_detection_and_override(tmp_path: Path) -> None:
    from features.importers.layout import detect
    from features.importers.reader import open_raw

    assert detect(["id", "_fivetran_synced"], ["customer"]) == "fivetran"
    assert detect(["id", "_sdc_batched_at"], ["customers"]) == "stitch"
    assert detect(["id", "_airbyte_extracted_at"], ["customers"]) == "airbyte"
    assert detect(["id", "_dlt_id", "recurring__interval"], ["price"]) == "dlt"
    assert detect(["Id", "NumberOfEmployees"], ["Account"]) == "airbyte"  # API names, no metadata columns
    assert detect(["id", "number_of_employees"], ["account"]) == "fivetran"
    folder = tmp_path / "Some Folder" / "salesforce"  # upper case in the path says nothing about the layout
    folder.mkdir(parents=True)
    pd.DataFrame({"id": ["001"], "name": ["A"]}).to_csv(folder / "account.csv", index=False)
    assert open_raw("salesforce", folder.parent).layout == "fivetran"
    assert open_raw("salesforce", folder.parent, layout="stitch").layout == "stitch"
    with pytest.raises(ImportFailed, match="unknown layout"):
        open_raw("salesforce", folder.parent, layout="meltano")
