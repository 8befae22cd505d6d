"""HubSpot, Amplitude, Mixpanel and Segment/RudderStack in each connector layout (``landing_apps.py``: Fivetran, Airbyte,
Stitch, dlt, each from the connector's published schema) import, validate, and give the hand-computed accounts, deals
and events per account and day (the Stripe and Salesforce layouts are in ``test_import_layouts.py``)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from landing import FIXTURES, LAYOUTS, land
from landing_apps import land_amplitude, land_hubspot, land_mixpanel, land_segment

from features.importers import money
from features.importers.reconcile import mrr_by_month
from features.importers.run import ImportResult, import_sources

AS_OF = dt.date(2025, 6, 30)
# the fixtures by hand: amplitude has 1 event on May 3rd and 2 on May 4th per company (a re-delivered uuid counted
# once); mixpanel 1 and 1; segment 2 a month per account (the 3rd and the 17th), 2 events without a group left out.
AMPLITUDE = {(a, d): n for a in ("9001", "9002", "9003") for d, n in (("2025-05-03", 1), ("2025-05-04", 2))}
MIXPANEL = {(a, d): 1 for a in ("9001", "9002", "9003") for d in ("2025-05-03", "2025-05-04")}
SEGMENT = {(f"001A{n}", f"2025-{m:02d}-{d:02d}"): 1 for n in range(1, 8) for m in range(1, 7) for d in (3, 17)}


def _per_day(out: Path) -> dict[tuple[str, str], int]:
    usage = pd.read_parquet(out / "usage_daily.parquet")
    days = usage.groupby(["account_id", pd.to_datetime(usage["date"]).dt.strftime("%Y-%m-%d")])["events"].sum()
    return {k: int(v) for k, v in days.items()}


@pytest.fixture(scope="module", params=LAYOUTS)
def hubspot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, ImportResult], Path]:
    """Stripe with HubSpot and Amplitude, and with HubSpot and Mixpanel, all landed in one layout (Stripe's customers
    matched to HubSpot's companies by name, the others left out); imported once per layout."""
    layout, root = request.param, tmp_path_factory.mktemp(f"apps-{request.param}")
    land(layout, root / "raw")
    land_hubspot(layout, root / "raw" / "hubspot")
    land_amplitude(layout, root / "raw" / "amplitude")
    land_mixpanel(layout, root / "raw" / "mixpanel")
    config = {"stripe": {"match": "name", "to": "property_name"}, "identity": {"unmatched": "drop"}}
    rates = money.load("usd", FIXTURES / "rates.csv")
    results = {events: import_sources(["stripe", "hubspot", events], root / "raw", root / events, config, AS_OF, money=rates)
               for events in ("amplitude", "mixpanel")}
    return layout, results, root


def test_hubspot_accounts_segment_owner_employees_in_every_layout(hubspot) -> None:  # noqa: ANN001
    layout, results, root = hubspot
    accounts = pd.read_parquet(root / "amplitude" / "accounts.parquet").set_index("account_id").sort_index()
    assert accounts.index.tolist() == ["9001", "9002", "9003"], layout
    assert accounts["employees"].tolist() == [50, 250, 1200]
    assert accounts["segment"].tolist() == ["smb", "mid_market", "enterprise"]  # < 100, < 1,000, else
    assert accounts["region"].tolist() == ["United States", "Germany", "France"]
    assert set(accounts["csm_owner"]) == {"Kim Lee"}  # the owner's first and last name
    assert accounts["customer_since"].astype(str).tolist() == ["2024-11-01"] * 3
    for result in results.values():
        assert result.report["reconciliation"]["sources"]["hubspot"]["layout"] == layout


def test_hubspot_deals_linked_to_their_company_in_every_layout(hubspot) -> None:  # noqa: ANN001
    layout, results, root = hubspot
    opps = pd.read_parquet(root / "amplitude" / "opportunities.parquet")
    got = opps[["opportunity_id", "account_id", "outcome", "amount"]].values.tolist()
    assert got == [["5001", "9001", "won", 1200.0]], layout  # the deal with no company is left out, said
    assert pd.to_datetime(opps["closed_at"]).dt.strftime("%Y-%m-%d").tolist() == ["2025-02-01"]
    assert any("1 deal(s) with no company left out" in n for n in results["amplitude"].notes)


def test_billing_lands_on_hubspot_companies_in_every_layout(hubspot) -> None:  # noqa: ANN001
    layout, _, root = hubspot
    expected = pd.read_csv(FIXTURES / "expected_mrr.csv", dtype={"account_id": str}).set_index("account_id").drop(columns="why")
    expected = expected.loc[["001A1", "001A2", "001A3"]].set_axis(["9001", "9002", "9003"])  # Acme, Beta, Gamma
    subs = pd.read_parquet(root / "amplitude" / "subscriptions.parquet")
    ends = pd.date_range("2025-01-31", "2025-06-30", freq="ME")
    got = pd.DataFrame({a: mrr_by_month(part, ends) for a, part in subs.groupby("account_id")}).T.reindex(expected.index)
    pd.testing.assert_frame_equal(got.astype(float), expected.astype(float), check_names=False, obj=f"MRR ({layout})")


@pytest.mark.parametrize("events, expected", [("amplitude", AMPLITUDE), ("mixpanel", MIXPANEL)])
def test_product_analytics_events_per_account_and_day_in_every_layout(hubspot, events: str, expected: dict) -> None:  # noqa: ANN001
    layout, results, root = hubspot
    assert _per_day(root / events) == expected, layout
    assert results[events].report["reconciliation"]["sources"][events]["layout"] == layout


@pytest.fixture(scope="module")
def billing_and_crm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stripe and Salesforce as Fivetran lands them (their other layouts are tested in ``test_import_layouts.py``)."""
    raw = land("fivetran", tmp_path_factory.mktemp("billing") / "raw")
    shutil.rmtree(raw / "segment")
    return raw


# RudderStack's warehouse schema is Segment's and it is read by the same code: two layouts suffice for it
@pytest.mark.parametrize("layout, source", [(layout, "segment") for layout in LAYOUTS]
                         + [("fivetran", "rudderstack"), ("dlt", "rudderstack")])
def test_segment_and_rudderstack_tracks_per_account_and_day_in_every_layout(billing_and_crm: Path, layout: str, source: str,
                                                                            tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(billing_and_crm, raw)
    land_segment(layout, raw / source)
    config = {"stripe": {"match": "metadata.account_id"}, source: {"unattributed": "drop"}}
    result = import_sources(["stripe", "salesforce", source], raw, tmp_path / "out", config, AS_OF,
                            money=money.load("usd", FIXTURES / "rates.csv"))
    assert _per_day(tmp_path / "out") == SEGMENT
    sources = result.report["reconciliation"]["sources"]
    assert sources[source]["layout"] == layout
    assert [d["rows"] for d in sources[source]["dropped"] if d["reason"].startswith("no account")] == [2]
