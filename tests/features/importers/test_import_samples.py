"""The third-party sample exports in ``../shared/samples`` (connector schemas written by others): every file
parses, types and units come out right, and each folder's documented quirks are handled.

The samples are not part of the repository: when the folder is missing these tests skip with a message saying so,
except in CI (``CI=true``), where they fail (see ``shared_samples`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.importers import events, hubspot, salesforce, stripe, stripe_discounts, stripe_prices
from features.importers.errors import ImportFailed, Problems
from features.importers.parse import booleans, timestamps
from features.importers.reader import open_raw



@pytest.fixture(scope="module")
def samples(shared_samples: Path) -> Path:
    return shared_samples


@pytest.mark.parametrize("source, tables", [
    ("stripe", 11), ("salesforce", 7), ("hubspot", 13), ("segment", 5), ("amplitude", 2), ("mixpanel", 1)])
def test_every_file_parses(samples: Path, source: str, tables: int) -> None:
    raw = open_raw(source, samples)
    assert len(raw.tables) == tables
    for name in raw.tables:
        frame = raw.read(name)
        assert len(frame) > 0 and all(c == c.lower() for c in frame.columns), name


def test_mixed_timestamp_and_boolean_spellings() -> None:
    got = timestamps(pd.Series(["2020-12-30 3:15:52", "2020-07-09 15:25:37.051", "2023-06-08 23:22:50.048000",
                                "2025-02-13T05:35:51.648", "9999-08-13 00:00:00", "", None]))
    assert got[0] == pd.Timestamp("2020-12-30 03:15:52")
    assert got[1] == pd.Timestamp("2020-07-09 15:25:37.051")
    assert got[2] == pd.Timestamp("2023-06-08 23:22:50.048")
    assert got[3] == pd.Timestamp("2025-02-13 05:35:51.648")
    assert got[4].year == 2199  # "forever" markers stay far in the future instead of overflowing
    assert got[5:].isna().all()
    assert booleans(pd.Series(["TRUE", "true", "FALSE", "false", None])).tolist() == [True, True, False, False, pd.NA]


def test_stripe_prices_in_cents_and_any_interval(samples: Path) -> None:
    raw, problems = open_raw("stripe", samples), Problems("stripe")
    prices = stripe_prices.prices(raw, problems).set_index("price_id")
    assert prices.loc["price_2", "unit_monthly"] == pytest.approx(29.99)  # 2999 cents a month
    assert prices.loc["price_3", "unit_monthly"] == pytest.approx(299.90 / 12)  # a yearly price, per month
    assert pd.isna(prices.loc["price_1", "unit_monthly"])  # one-time prices are not recurring revenue
    assert prices.loc["5gh", "unit_monthly"] == pytest.approx(1500.0 / 6)  # plan table: 150000 cents every 6 months
    assert not problems.items


def test_stripe_discounts_and_invoices(samples: Path) -> None:
    raw, problems = open_raw("stripe", samples), Problems("stripe")
    subs, subs_raw, _ = stripe._subscriptions_of(raw, problems)
    items, items_raw = stripe._item_versions(raw, problems, subs)
    problems.items.clear()  # the seed's items join no subscription: named in the test below
    discounts = stripe_discounts.collect(raw, subs, subs_raw, items, items_raw, problems)
    # the seed's three discounts name coupons its coupon table lacks: left out, and said with their coupon ids
    assert discounts.empty
    unknown = [d for d in problems.ledger.dropped if d["table"] == "discount" and d["reason"].startswith("coupon terms unknown")]
    assert unknown and unknown[0]["rows"] == 3 and "coupon_test1" in unknown[0]["first_ids"]
    pays = stripe.payments(raw, problems)
    assert sorted(pays["amount"]) == [0.0, 10.0]  # amount_due in cents
    assert set(pays["status"]) <= {"paid", "late", "failed"}
    assert not problems.items


def test_stripe_fixtures_that_do_not_join_are_named(samples: Path) -> None:
    with pytest.raises(ImportFailed) as caught:
        stripe.read(open_raw("stripe", samples), {})
    messages = [str(p) for p in caught.value.problems]
    assert any(m.startswith("stripe.subscription_item.subscription_id: no such subscription (first: ") and m.endswith(" in 13 rows")
               for m in messages)
    assert any(m.startswith("stripe.subscription_item.plan_id: no such price or plan (first: ") and m.endswith(" in 1 rows")
               for m in messages)


def test_salesforce_accounts_opportunities_and_history(samples: Path) -> None:
    got = salesforce.read(open_raw("salesforce", samples), {})
    assert got.tables["accounts"]["account_id"].tolist() == ["0015500000Xyy06AAB"]  # deleted accounts left out
    with_deleted = salesforce.read(open_raw("salesforce", samples), {"keep_deleted": True})
    opps = with_deleted.tables["opportunities"].set_index("opportunity_id")
    assert opps.loc["006q000000HddohAAB", "amount"] == 24120000.0  # currency units, not cents
    assert opps.loc["006q000000HddohAAB", "outcome"] == "won"
    assert opps.loc["006q000000HK8jdAAD", "outcome"] == "lost"
    assert (opps["closed_at"].dropna() >= opps.loc[opps["closed_at"].notna(), "created_at"]).all()
    stages = with_deleted.tables["opportunity_stages"]
    assert len(stages) == 10 and stages["entered_at"].notna().all()  # one stage per history-mode version


def test_hubspot_companies_deals_and_both_engagement_layouts(samples: Path, tmp_path: Path) -> None:
    got = hubspot.read(open_raw("hubspot", samples), {})
    accounts = got.tables["accounts"]
    assert len(accounts) == 24 and accounts["account_id"].str.fullmatch(r"\d+").all()  # big integer ids as text
    assert accounts["customer_since"].notna().all()
    assert "hubspot.deal: 44 deal(s) with no company left out" in got.notes  # the seed's deals join no company
    # link every meeting and the call to a company: both column layouts then give activities
    folder = tmp_path / "hubspot"
    shutil.copytree(samples / "hubspot", folder)
    meetings = pd.read_csv(folder / "engagement_meeting_data.csv", dtype=str)
    calls = pd.read_csv(folder / "engagement_call_data.csv", dtype=str)
    ids = pd.concat([meetings["engagement_id"], calls["engagement_id"]])
    pd.DataFrame({"company_id": accounts["account_id"].iloc[0], "engagement_id": ids}).to_csv(
        folder / "engagement_company_data.csv", index=False)
    linked = hubspot.read(open_raw("hubspot", tmp_path), {})
    acts = linked.tables["activities"]
    assert acts["kind"].value_counts().to_dict() == {"meeting": 100, "call": 1}
    assert acts.loc[acts["kind"] == "call", "occurred_at"].iloc[0] == pd.Timestamp("2014-08-27 20:50:44.778")


def test_hubspot_stage_history_labels(samples: Path) -> None:
    raw = open_raw("hubspot", samples)
    catalog = hubspot._stage_catalog(raw)
    assert catalog["closed_won"].sum() > 0 and catalog["display_order"].notna().all()
    history = hubspot._stage_history(raw, catalog, set(raw.read("deal_stage")["deal_id"]))
    assert len(history) == 14 and history["entered_at"].notna().all()


def test_segment_tracks_with_anonymous_events_stitched(samples: Path) -> None:
    usage = events.read(open_raw("segment", samples), {}).tables["usage_daily"]
    assert usage["events"].sum() == 78
    assert set(usage["account_id"]) == {"account_001", "account_002", "account_003"}
    day = usage[(usage["account_id"] == "account_001") & (usage["date"] == pd.Timestamp("2026-01-03"))]
    assert "Page Viewed" in set(day["feature_key"])  # anon_003 browsed before signing up as user_003 of account_001


def test_amplitude_empty_groups_are_events_with_no_account(samples: Path) -> None:
    with pytest.raises(ImportFailed, match=r"amplitude\.event\.groups: no account .* in 10 rows"):
        events.read(open_raw("amplitude", samples), {})
    usage = events.read(open_raw("amplitude", samples), {"account": "user_properties.Cohort"}).tables["usage_daily"]
    assert set(usage["account_id"]) == {"Test A"} and usage["events"].sum() == 10
    assert usage["feature_key"].str.len().max() == 260  # the long event type survives


def test_mixpanel_deduplicates_on_insert_id_per_day(samples: Path, tmp_path: Path) -> None:
    usage = events.read(open_raw("mixpanel", samples), {"account": "properties.title"}).tables["usage_daily"]
    assert usage["events"].sum() == 5  # the shared insert ids fall on different days: both count
    folder = tmp_path / "mixpanel"
    folder.mkdir()
    e = pd.read_csv(samples / "mixpanel" / "event.csv", dtype=str)
    pd.concat([e, e.iloc[[0]]]).to_csv(folder / "event.csv", index=False)
    again = events.read(open_raw("mixpanel", tmp_path), {"account": "properties.title"}).tables["usage_daily"]
    assert again["events"].sum() == 5  # an exact re-delivery counts once


def test_segment_redelivered_message_counts_once(samples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "segment"
    shutil.copytree(samples / "segment", folder)
    tracks = pd.read_csv(folder / "growthcues_tracks.csv", dtype=str)
    pd.concat([tracks, tracks.iloc[:5]]).to_csv(folder / "growthcues_tracks.csv", index=False)
    assert events.read(open_raw("segment", tmp_path), {}).tables["usage_daily"]["events"].sum() == 78
    assert events.read(open_raw("segment", tmp_path), {"dedupe": False}).tables["usage_daily"]["events"].sum() == 83


def test_segment_message_id_counts_once_per_group_whoever_sent_it(samples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "segment"
    shutil.copytree(samples / "segment", folder)
    tracks = pd.read_csv(folder / "growthcues_tracks.csv", dtype=str)
    first = events.read(open_raw("segment", tmp_path), {}).tables["usage_daily"]
    again = tracks.iloc[[0]].assign(user_id="someone-else")  # the same message id under another user
    pd.concat([tracks, again]).to_csv(folder / "growthcues_tracks.csv", index=False)
    second = events.read(open_raw("segment", tmp_path), {}).tables["usage_daily"]
    assert second["events"].sum() == first["events"].sum()
    assert second["active_users"].sum() == first["active_users"].sum() + 1


def test_rudderstack_reads_the_segment_layout(samples: Path, tmp_path: Path) -> None:
    shutil.copytree(samples / "segment", tmp_path / "rudderstack")
    usage = events.read(open_raw("rudderstack", tmp_path), {}).tables["usage_daily"]
    assert usage["events"].sum() == 78


def test_salesforce_account_history_mode_alone(samples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "salesforce"
    shutil.copytree(samples / "salesforce", folder)
    (folder / "sf_account_data.csv").unlink()
    got = salesforce.read(open_raw("salesforce", tmp_path), {"keep_deleted": True}).tables["accounts"]
    history = pd.read_csv(folder / "sf_account_history_data.csv", dtype=str)
    active = history[history["_fivetran_active"].str.lower() == "true"]["id"]
    assert set(got["account_id"]) == set(active)  # the current version of each account
    assert got["customer_since"].notna().all()  # from the first history version when nothing else says


def test_amplitude_account_from_a_group_type(tmp_path: Path) -> None:
    folder = tmp_path / "amplitude"
    folder.mkdir()
    pd.DataFrame({
        "event_type": ["report_run", "report_run", "export"], "user_id": ["a@x.io", "b@x.io", "a@x.io"],
        "event_time": ["2025-02-13T05:35:51.648", "2025-02-13T09:00:00.000", "2025-02-14T10:00:00.000"],
        "groups": ['{"company": ["acme"], "team": ["t1"]}', '{"company": "acme"}', '{"company": ["globex"]}'],
        "uuid": ["u1", "u2", "u3"],
    }).to_csv(folder / "amplitude_event_data.csv", index=False)
    usage = events.read(open_raw("amplitude", tmp_path), {"group": "company"}).tables["usage_daily"]
    assert usage[["account_id", "feature_key", "events", "active_users"]].values.tolist() == [
        ["acme", "report_run", 2, 2], ["globex", "export", 1, 1]]
