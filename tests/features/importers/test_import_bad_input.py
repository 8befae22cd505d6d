"""Bad input per source: every problem names the source table, the column and the rule, and nothing is written."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from features.importers.errors import ImportFailed
from features.importers.run import MARKER, import_sources
from features.synth import generate
from features.synth.raw_shapes import write_raw

AS_OF = dt.date(2026, 6, 30)
ALL = ["stripe", "salesforce", "segment"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    generate(root / "company", accounts=5, months=2, seed=4, as_of=AS_OF)
    write_raw(root / "company", root / "raw")
    return root / "raw"


@pytest.fixture
def raw(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the raw exports to break."""
    shutil.copytree(pristine, tmp_path / "raw")
    return tmp_path / "raw"


def _config(raw: Path, **extra: dict) -> dict:
    config = tomllib.loads((raw / "import-map.toml").read_text())
    for section, values in extra.items():
        config.setdefault(section, {}).update(values)
    return config


def _edit(raw: Path, source: str, table: str, change) -> None:  # noqa: ANN001 - a frame -> frame function
    path = raw / source / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)


def _problems(raw: Path, out: Path, sources: list[str] = ALL, **extra: dict) -> list[str]:
    with pytest.raises(ImportFailed) as caught:
        import_sources(sources, raw, out, _config(raw, **extra), AS_OF)
    assert not out.exists(), "a failed import wrote its output"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "a temporary folder was left behind"
    return [str(p) for p in caught.value.problems]


def test_clean_exports_import(raw: Path, tmp_path: Path) -> None:
    result = import_sources(ALL, raw, tmp_path / "out", _config(raw), AS_OF)
    assert result.rows["accounts"] == 5 and result.rows["usage_daily"] > 0


@pytest.mark.parametrize("source, table, expected", [
    ("stripe", "subscription_item", "stripe.subscription_item.*: required table is missing"),
    ("stripe", "customer", "stripe.customer.*: required table is missing"),
    ("salesforce", "account", "salesforce.account.*: required table is missing"),
    ("segment", "tracks", "segment.tracks.*: required table is missing"),
])
def test_missing_tables(raw: Path, tmp_path: Path, source: str, table: str, expected: str) -> None:
    (raw / source / f"{table}.parquet").unlink()
    assert expected in _problems(raw, tmp_path / "out")


@pytest.mark.parametrize("source, table, column", [
    ("stripe", "subscription_item", "quantity"),
    ("stripe", "invoice", "amount_due"),
    ("salesforce", "account", "name"),
    ("segment", "tracks", "timestamp"),
])
def test_missing_columns(raw: Path, tmp_path: Path, source: str, table: str, column: str) -> None:
    _edit(raw, source, table, lambda f: f.drop(columns=[column]))
    expected = f"{source}.{table}.{column}: required column is missing"
    assert any(p.startswith(expected) for p in _problems(raw, tmp_path / "out"))


def test_negative_quantity(raw: Path, tmp_path: Path) -> None:
    _edit(raw, "stripe", "subscription_item", lambda f: f.assign(quantity=[-q if i < 3 else q for i, q in enumerate(f["quantity"])]))
    got = _problems(raw, tmp_path / "out")
    assert any(p.startswith("stripe.subscription_item.quantity: negative (first: si_") and p.endswith(" in 3 rows") for p in got)


def test_unknown_currency(raw: Path, tmp_path: Path) -> None:
    _edit(raw, "stripe", "price", lambda f: f.assign(currency=["xyz" if i < 2 else c for i, c in enumerate(f["currency"])]))
    _edit(raw, "stripe", "invoice", lambda f: f.assign(currency="usdollar"))
    problems = _problems(raw, tmp_path / "out")
    assert "stripe.price.currency: unknown currency (xyz) in 2 rows" in problems
    assert any(p.startswith("stripe.invoice.currency: unknown currency (usdollar)") for p in problems)


def test_opportunities_in_several_or_unknown_currencies(raw: Path, tmp_path: Path) -> None:
    account = pd.read_parquet(raw / "salesforce" / "account.parquet")["id"].iloc[0]
    pd.DataFrame({"id": ["006A", "006B"], "account_id": account, "created_date": pd.Timestamp("2026-05-01"),
                  "stage_name": "Qualify", "is_closed": False, "is_won": False, "amount": 100.0,
                  "currency_iso_code": ["USD", "ZZZ"]}).to_parquet(raw / "salesforce" / "opportunity.parquet")
    problems = _problems(raw, tmp_path / "out")
    assert "salesforce.opportunity.currency_iso_code: unknown currency in 1 rows" in problems
    assert any(p.startswith("salesforce.opportunity.currency_iso_code: several currencies (usd, zzz)") for p in problems)


def test_overlapping_subscription_versions(raw: Path, tmp_path: Path) -> None:
    def overlap(f: pd.DataFrame) -> pd.DataFrame:
        closed = f.index[~f["_fivetran_active"]][0]
        f.loc[closed, "_fivetran_end"] = f.loc[closed, "_fivetran_end"] + pd.Timedelta(days=10)
        return f

    _edit(raw, "stripe", "subscription_item", overlap)
    problems = _problems(raw, tmp_path / "out")
    assert any(p.startswith("stripe.subscription_item._fivetran_start, _fivetran_end: versions of one subscription item overlap "
                            "(first: si_") and p.endswith(" in 1 rows") for p in problems)


def test_events_with_no_account(raw: Path, tmp_path: Path) -> None:
    _edit(raw, "segment", "tracks", lambda f: f.assign(context_group_id=f["context_group_id"].where(f.index % 7 != 0)))
    (raw / "segment" / "groups.parquet").unlink()  # nothing else can tell whose events they are
    n = len(pd.read_parquet(raw / "segment" / "tracks.parquet", columns=["id"]).iloc[::7])
    problems = _problems(raw, tmp_path / "out")
    assert any(p.startswith("segment.tracks.context_group_id: no account") and p.endswith(f"in {n} rows") for p in problems)
    result = import_sources(ALL, raw, tmp_path / "out", _config(raw, segment={"unattributed": "drop"}), AS_OF)
    assert result.rows["usage_daily"] > 0


@pytest.mark.parametrize("source, table, column, expected", [
    ("amplitude", "event", "event_time", "amplitude.event.event_time: required column is missing"),
    ("mixpanel", "event", "distinct_id", "mixpanel.event.distinct_id: required column is missing"),
    ("hubspot", "company", "property_name", "hubspot.company.property_name: required column is missing"),
])
def test_other_sources_name_missing_columns(tmp_path: Path, source: str, table: str, column: str, expected: str) -> None:
    folder = tmp_path / "raw" / source
    folder.mkdir(parents=True)
    frame = {"amplitude": pd.DataFrame({"event_type": ["a"], "event_time": ["2026-01-01 10:00:00"], "user_id": ["u"]}),
             "mixpanel": pd.DataFrame({"name": ["a"], "time": ["2026-01-01 10:00:00"], "distinct_id": ["u"]}),
             "hubspot": pd.DataFrame({"id": ["1"], "property_name": ["Acme"]})}[source]
    frame.drop(columns=[column]).to_csv(folder / f"{table}.csv", index=False)
    sources = [source] if source == "hubspot" else ["hubspot", source]
    if source != "hubspot":
        (tmp_path / "raw" / "hubspot").mkdir()
        pd.DataFrame({"id": ["1"], "property_name": ["Acme"]}).to_csv(tmp_path / "raw" / "hubspot" / "company.csv", index=False)
    with pytest.raises(ImportFailed) as caught:
        import_sources(sources, tmp_path / "raw", tmp_path / "out", {}, AS_OF)
    assert expected in [str(p) for p in caught.value.problems]


def test_unmatched_customers_are_named_or_left_out(raw: Path, tmp_path: Path) -> None:
    _edit(raw, "stripe", "customer", lambda f: f.assign(
        metadata=[json.dumps({"salesforce_id": "001NOSUCHACCOUNT"}) if i == 0 else m for i, m in enumerate(f["metadata"])]))
    problem = next(p for p in _problems(raw, tmp_path / "out") if p.startswith("stripe.customer.metadata.salesforce_id"))
    assert "no matching salesforce account for cus_0000000000" in problem
    result = import_sources(ALL, raw, tmp_path / "out", _config(raw, identity={"unmatched": "drop"}), AS_OF)
    assert any("1 account(s) with no salesforce match left out" in n for n in result.notes)
    assert result.report["pairs"][0]["unmatched"] == ["cus_0000000000"]


def test_a_crm_is_needed_for_accounts(raw: Path, tmp_path: Path) -> None:
    problems = _problems(raw, tmp_path / "out", ["stripe", "segment"])
    assert problems[0].startswith("import.accounts.*: exactly one CRM source (salesforce or hubspot) must be imported")


def test_contract_violations_stop_the_import_and_keep_the_old_output(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "accounts.parquet").write_text("the previous import")
    (out / MARKER).write_text("")  # a previous import's folder: replaceable, and kept when this one fails
    _edit(raw, "segment", "tracks", lambda f: f.assign(timestamp=f["timestamp"] + pd.Timedelta(days=40)))
    with pytest.raises(ImportFailed) as caught:
        import_sources(ALL, raw, out, _config(raw), AS_OF)
    assert any(str(p).startswith("contract.usage_daily.date: must not lie after the as-of date") for p in caught.value.problems)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "accounts.parquet"]
    assert (out / "accounts.parquet").read_text() == "the previous import"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_report_compares_billing_arr_with_crm_amounts(raw: Path, tmp_path: Path) -> None:
    first = pd.read_parquet(raw / "salesforce" / "account.parquet").iloc[0]
    clean = import_sources(ALL, raw, tmp_path / "clean", _config(raw), AS_OF)
    subs = pd.read_parquet(tmp_path / "clean" / "subscriptions.parquet")
    current = subs[subs["valid_to"].isna() & (subs["account_id"] == first["account_number"])]
    billing_arr = round(current["mrr"].sum() * 12, 2)
    assert billing_arr > 0 and clean.report["revenue"] == []  # no CRM amounts yet
    pd.DataFrame({"id": ["006A", "006B"], "account_id": first["id"], "created_date": pd.Timestamp("2026-01-05"),
                  "close_date": pd.Timestamp("2026-02-01"), "stage_name": "Closed Won", "is_closed": True,
                  "is_won": [True, False], "amount": [round(billing_arr * 1.04, 2), 999.0], "type": "Renewal"}
                 ).to_parquet(raw / "salesforce" / "opportunity.parquet")
    history = raw / "salesforce" / "opportunity_history.parquet"
    if history.exists():  # the generated company's stage history belongs to the deals just replaced
        pd.read_parquet(history).iloc[0:0].to_parquet(history)
    result = import_sources(ALL, raw, tmp_path / "out", _config(raw), AS_OF)
    [row] = result.report["revenue"]
    assert row["account_id"] == first["account_number"] and row["billing_arr"] == billing_arr
    assert row["crm_amount"] == round(billing_arr * 1.04, 2)  # the lost deal does not count
    assert row["difference_pct"] == pytest.approx(-100 * 0.04 / 1.04, abs=0.01)
    opps = pd.read_parquet(tmp_path / "out" / "opportunities.parquet")
    assert set(opps["outcome"]) == {"won", "lost"} and set(opps["kind"]) == {"renewal"}
