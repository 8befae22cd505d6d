"""Every violation class of the data contract, each on a small hand-built company."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract_docs import render
from features.io import DataError, open_data
from features.validate import validate
from serving.cli import app

AS_OF = dt.date(2026, 6, 30)
D = pd.Timestamp


def valid_tables() -> dict[str, pd.DataFrame]:
    """Two accounts with every table of the contract, all rules met."""
    accounts = pd.DataFrame({
        "account_id": ["a1", "a2"], "name": ["Acme", "Globex"], "segment": ["smb", "enterprise"],
        "industry": ["software", "retail"], "region": ["emea", "na"], "employees": [40, 5000],
        "acquisition_channel": ["direct", "partner"],
        "customer_since": [D("2024-01-15").date(), D("2023-03-01").date()],
        "csm_owner": ["ana", None], "fiscal_year_start_month": [1, None],
    })
    accounts["fiscal_year_start_month"] = accounts["fiscal_year_start_month"].astype("Int64")
    subscriptions = pd.DataFrame({
        "account_id": ["a1", "a1", "a2"], "product_id": ["core", "core", "core"],
        "plan": ["starter", "pro", "enterprise"], "seats": [5, 8, 200], "mrr": [250.0, 800.0, 30000.0],
        "usage_limit": [10000.0, 50000.0, None],
        "valid_from": [D("2024-01-15").date(), D("2025-02-01").date(), D("2023-03-01").date()],
        "valid_to": [D("2025-02-01").date(), None, None],
        "renewal_date": [D("2025-01-15").date(), D("2027-01-15").date(), D("2027-03-01").date()],
    })
    products = pd.DataFrame({
        "product_id": ["core"] * 3, "plan": ["starter", "pro", "enterprise"], "tier_rank": [1, 2, 3],
        "list_price_per_seat": [50.0, 100.0, 150.0], "usage_limit": [10000.0, 50000.0, None],
    })
    plan_features = pd.DataFrame({"product_id": ["core", "core"], "plan": ["starter", "pro"],
                                  "feature_key": ["dashboards", "api_calls"]})
    usage = pd.DataFrame({
        "account_id": ["a1", "a1", "a2"], "date": [D("2026-06-01").date(), D("2026-06-02").date(), D("2026-06-02").date()],
        "feature_key": ["dashboards", "dashboards", "api_calls"], "events": [10, 12, 400], "active_users": [3, 4, 50],
    })
    tickets = pd.DataFrame({
        "ticket_id": ["t1"], "account_id": ["a1"], "created_at": [D("2026-05-01 10:00")],
        "priority": ["high"], "category": ["bug"], "resolved_at": [D("2026-05-02 09:00")], "csat": [4.0],
    })
    surveys = pd.DataFrame({"account_id": ["a2"], "responded_at": [D("2026-04-01 12:00")], "kind": ["nps"],
                            "score": [9.0], "respondent_role": ["executive"]})
    activities = pd.DataFrame({"account_id": ["a1"], "occurred_at": [D("2026-06-10 15:00")], "kind": ["qbr"],
                               "with_executive": [True]})
    payments = pd.DataFrame({"invoice_id": ["i1"], "account_id": ["a1"], "due_date": [D("2026-06-01").date()],
                             "amount": [800.0], "paid_at": [D("2026-06-03 08:00")], "status": ["late"]})
    return {"accounts": accounts, "subscriptions": subscriptions, "products": products,
            "plan_features": plan_features, "usage_daily": usage, "support_tickets": tickets,
            "surveys": surveys, "activities": activities, "payments": payments}


def write(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def violations_after(tmp_path: Path, change: Callable[[dict[str, pd.DataFrame]], None]) -> list[tuple[str, str, str]]:
    tables = valid_tables()
    change(tables)
    report = validate(open_data(write(tables, tmp_path / "data")), AS_OF)
    return [(v.table, v.column, v.rule) for v in report.violations]


def test_valid_company_passes_and_summarises(tmp_path: Path) -> None:
    report = validate(open_data(write(valid_tables(), tmp_path)), AS_OF)
    assert report.ok, report.violations
    rows = {s.table: s.rows for s in report.summaries}
    assert rows["subscriptions"] == 3 and rows["usage_daily"] == 3
    usage = next(s for s in report.summaries if s.table == "usage_daily")
    assert (usage.first, usage.last) == (dt.date(2026, 6, 1), dt.date(2026, 6, 2))


def test_missing_optional_tables_are_reported_absent_not_failed(tmp_path: Path) -> None:
    tables = {k: v for k, v in valid_tables().items() if k in ("accounts", "subscriptions", "usage_daily")}
    report = validate(open_data(write(tables, tmp_path)), AS_OF)
    assert report.ok
    assert set(report.absent_optional) == {"products", "plan_features", "support_tickets", "surveys",
                                           "activities", "payments", "opportunities",
                                           "opportunity_stages"}


def test_missing_required_table(tmp_path: Path) -> None:
    found = violations_after(tmp_path, lambda t: t.pop("usage_daily"))
    assert ("usage_daily", "*", "required table is missing") in found


def test_missing_required_column(tmp_path: Path) -> None:
    found = violations_after(tmp_path, lambda t: t.update(accounts=t["accounts"].drop(columns="segment")))
    assert ("accounts", "segment", "required column is missing") in found


def test_wrong_type(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["subscriptions"]["seats"] = t["subscriptions"]["seats"].astype(str)

    found = violations_after(tmp_path, change)
    assert any(v[:2] == ("subscriptions", "seats") and v[2].startswith("must be of type int") for v in found)


def test_null_key(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["usage_daily"].loc[0, "account_id"] = None

    assert ("usage_daily", "account_id", "must not be null") in violations_after(tmp_path, change)


def test_duplicate_key(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["accounts"] = pd.concat([t["accounts"], t["accounts"].iloc[[0]]], ignore_index=True)

    assert ("accounts", "account_id", "key must be unique") in violations_after(tmp_path, change)


def test_value_outside_allowed_set(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["accounts"].loc[1, "segment"] = "giant"

    found = violations_after(tmp_path, change)
    assert ("accounts", "segment", "must be one of smb, mid_market, enterprise") in found


@pytest.mark.parametrize(("table", "column"), [("subscriptions", "mrr"), ("subscriptions", "seats"),
                                               ("usage_daily", "events")])
def test_negative_amounts(tmp_path: Path, table: str, column: str) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t[table].loc[0, column] = -1

    assert (table, column, "must be >= 0") in violations_after(tmp_path, change)


def test_valid_to_not_after_valid_from(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["subscriptions"].loc[0, "valid_to"] = t["subscriptions"].loc[0, "valid_from"]

    found = violations_after(tmp_path, change)
    assert ("subscriptions", "valid_from, valid_to", "valid_to must be after valid_from") in found


def test_overlapping_subscription_periods(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["subscriptions"].loc[0, "valid_to"] = D("2025-03-01").date()  # runs past the next period's start

    found = violations_after(tmp_path, change)
    assert ("subscriptions", "valid_from, valid_to", "periods of one account and product must not overlap") in found


def test_orphan_account_ids(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["support_tickets"].loc[0, "account_id"] = "ghost"

    assert ("support_tickets", "account_id", "must exist in accounts") in violations_after(tmp_path, change)


@pytest.mark.parametrize(("table", "column", "value"), [
    ("usage_daily", "date", D("2026-07-01").date()),
    ("support_tickets", "created_at", D("2026-07-01 00:00:01")),
    ("surveys", "responded_at", D("2026-08-01 10:00")),
    ("activities", "occurred_at", D("2026-07-15 10:00")),
    ("subscriptions", "valid_from", D("2026-07-01").date()),
])
def test_events_after_as_of(tmp_path: Path, table: str, column: str, value: object) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t[table].loc[0, column] = value
        if table == "subscriptions":
            t[table].loc[0, "valid_to"] = None
            t[table] = t[table].iloc[[0, 2]]

    found = violations_after(tmp_path, change)
    assert (table, column, f"must not lie after the as-of date {AS_OF}") in found


def test_future_valid_to_and_renewal_date_are_allowed(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        t["subscriptions"].loc[2, "valid_to"] = D("2027-03-01").date()

    assert violations_after(tmp_path, change) == []


def test_violation_lists_at_most_five_offending_rows(tmp_path: Path) -> None:
    tables = valid_tables()
    usage = tables["usage_daily"]
    many = pd.DataFrame({"account_id": ["a1"] * 8, "date": [D(f"2026-05-{d:02d}").date() for d in range(1, 9)],
                         "feature_key": ["x"] * 8, "events": [-5] * 8, "active_users": [1] * 8})
    tables["usage_daily"] = pd.concat([usage, many], ignore_index=True)
    report = validate(open_data(write(tables, tmp_path)), AS_OF)
    (violation,) = [v for v in report.violations if v.column == "events"]
    assert violation.rows == 8 and len(violation.examples) == 5
    assert violation.examples[0]["events"] == -5


def test_csv_folder_loads_and_validates(tmp_path: Path) -> None:
    for name, frame in valid_tables().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    source = open_data(tmp_path)
    assert set(source.present) >= {"accounts", "subscriptions", "usage_daily"}
    assert source.con.execute("SELECT count(*) FROM usage_daily").fetchone()[0] == 3


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_data(tmp_path / "nope")


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = write(valid_tables(), tmp_path / "good")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "--data", str(good), "--as-of", str(AS_OF)])
    assert ok.exit_code == 0, ok.output
    tables = valid_tables()
    tables["accounts"].loc[0, "segment"] = "giant"
    bad = write(tables, tmp_path / "bad")
    result = runner.invoke(app, ["validate", "--data", str(bad), "--as-of", str(AS_OF)])
    assert result.exit_code == 2
    assert "accounts.segment: must be one of" in result.output


def test_data_contract_doc_matches_declaration() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"
    assert doc.read_text() == render(), "regenerate: python -m features.contract_docs > docs/data-contract.md"


def _with_opportunities(t: dict[str, pd.DataFrame]) -> None:
    t["opportunities"] = pd.DataFrame({
        "opportunity_id": ["o1"], "account_id": ["a1"], "kind": ["expansion"], "amount": [1200.0],
        "created_at": [D("2026-05-01 10:00")], "expected_close_date": [D("2026-08-01").date()],
        "closed_at": [pd.NaT], "outcome": ["open"], "owner": ["ana"]})
    t["opportunity_stages"] = pd.DataFrame({
        "opportunity_id": ["o1", "ghost"], "stage": ["prospecting", "proposal"],
        "entered_at": [D("2026-05-01 10:00"), D("2026-05-02 10:00")]})


def test_stage_rows_must_name_an_opportunity(tmp_path: Path) -> None:
    found = violations_after(tmp_path, _with_opportunities)
    assert found == [("opportunity_stages", "opportunity_id", "must exist in opportunities")]


def test_opportunity_tables_pass_when_consistent(tmp_path: Path) -> None:
    def change(t: dict[str, pd.DataFrame]) -> None:
        _with_opportunities(t)
        t["opportunity_stages"] = t["opportunity_stages"].iloc[:1]

    assert violations_after(tmp_path, change) == []
