"""``expansion metrics`` end to end on a small data folder: table, JSON, CSV, plots, bad input."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli import app

D = dt.date
runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two accounts over 2025: a expands in March and contracts in May, b churns at the end of June."""
    folder = tmp_path_factory.mktemp("data")
    pd.DataFrame({
        "account_id": ["a", "b"], "name": ["A", "B"], "segment": ["smb", "enterprise"], "industry": ["software"] * 2,
        "region": ["emea"] * 2, "employees": [20, 900], "acquisition_channel": ["direct", "partner"],
        "customer_since": [D(2024, 12, 1)] * 2, "csm_owner": ["ana"] * 2, "fiscal_year_start_month": [1, 4],
    }).to_parquet(folder / "accounts.parquet", index=False)
    pd.DataFrame({
        "account_id": ["a", "a", "a", "b"], "product_id": ["core"] * 4, "plan": ["s", "s", "s", "m"],
        "seats": [10, 12, 11, 30], "mrr": [1000.0, 1200.0, 1100.0, 3000.0], "usage_limit": [1e4] * 4,
        "valid_from": [D(2024, 12, 1), D(2025, 3, 10), D(2025, 5, 1), D(2024, 12, 1)],
        "valid_to": [D(2025, 3, 10), D(2025, 5, 1), None, D(2025, 7, 1)],
        "renewal_date": [D(2025, 12, 1)] * 4,
    }).to_parquet(folder / "subscriptions.parquet", index=False)
    pd.DataFrame({"account_id": ["a"], "date": [D(2025, 1, 2)], "feature_key": ["reports"], "events": [4],
                  "active_users": [2]}).to_parquet(folder / "usage_daily.parquet", index=False)
    return folder


def run(*args: str) -> object:
    return runner.invoke(app, ["metrics", *args])


def said(text: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_json_rows_carry_the_documented_fields(data_dir: Path) -> None:
    result = run("--data", str(data_dir), "--period", "quarter", "--as-of", "2025-12-31", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["period_start"] for r in rows] == ["2025-01-01", "2025-04-01", "2025-07-01", "2025-10-01"]
    q2 = rows[1]
    assert q2["period_end"] == "2025-06-30" and q2["group"] == "all"
    # Opening 1,200 + 3,000; a ends at 1,100 (contraction 100); b ends at 0 on July 1, inside Q3, not Q2.
    assert (q2["starting_mrr"], q2["contraction_mrr"], q2["churned_mrr"]) == (4200.0, 100.0, 0.0)
    q3 = rows[2]
    assert (q3["starting_mrr"], q3["churned_mrr"], q3["logo_churn_pct"]) == (4100.0, 3000.0, 50.0)
    assert q3["nrr_pct"] == pytest.approx(1100 / 4100 * 100) and q3["nrr_band"] == "critical"
    q1 = rows[0]
    assert q1["expansion_mrr"] == 200.0 and q1["expansion_rate_pct"] == pytest.approx(5.0)
    for key in ("grr_pct", "logo_churn_pct", "expansion_rate_pct", "nrr_band"):
        assert key in q1


def test_csv_and_grouping(data_dir: Path) -> None:
    result = run("--data", str(data_dir), "--period", "quarter", "--as-of", "2025-12-31", "--format", "csv",
                 "--by", "segment")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert set(frame["group"]) == {"smb", "enterprise"}
    assert frame.loc[frame["group"] == "enterprise", "churned_mrr"].sum() == 3000.0


def test_table_and_plots(data_dir: Path, tmp_path: Path) -> None:
    result = run("--data", str(data_dir), "--as-of", "2025-12-31", "--plots", str(tmp_path / "charts"))
    assert result.exit_code == 0, result.output
    assert "NRR %" in result.stdout and "2025-07-01" in result.stdout
    for name in ("nrr_trend.png", "cohort_expansion.png"):
        assert (tmp_path / "charts" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("view", ["kinds", "frequency", "time-to-expansion", "cohort-curve", "cohort-nrr"])
def test_expansion_views(data_dir: Path, view: str) -> None:
    result = run("--data", str(data_dir), "--as-of", "2025-12-31", "--view", view, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    result = run("--data", str(tmp_path / "nowhere"), "--as-of", "2025-12-31")
    assert result.exit_code == 2
    assert "nowhere does not exist" in said(result.stderr)


def test_contract_violation_exits_2_naming_the_column(data_dir: Path, tmp_path: Path) -> None:
    for name in ("accounts", "usage_daily"):
        (tmp_path / f"{name}.parquet").write_bytes((data_dir / f"{name}.parquet").read_bytes())
    subs = pd.read_parquet(data_dir / "subscriptions.parquet")
    subs.loc[0, "mrr"] = -5.0
    subs.to_parquet(tmp_path / "subscriptions.parquet", index=False)
    result = run("--data", str(tmp_path), "--as-of", "2025-12-31")
    assert result.exit_code == 2
    assert "subscriptions.mrr: must be >= 0" in said(result.stderr)


def test_missing_required_table_exits_2(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "accounts.parquet").write_bytes((data_dir / "accounts.parquet").read_bytes())
    result = run("--data", str(tmp_path), "--as-of", "2025-12-31")
    assert result.exit_code == 2
    assert "missing required table(s) subscriptions" in said(result.stderr)
