"""``expansion generate --raw`` and ``expansion import`` end to end: the imported folder validates, the report
names match rates, and a failing import exits 2 naming table, column and rule, writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "company"
    result = runner.invoke(app, ["generate", "--out", str(out), "--accounts", "5", "--months", "2", "--seed", "4",
                                 "--as-of", "2026-06-30", "--raw", "stripe,salesforce,segment"])
    assert result.exit_code == 0, result.output
    assert (out / "raw" / "import-map.toml").is_file()
    return out / "raw"


def test_import_then_validate(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "contract"
    result = runner.invoke(app, ["import", "stripe,salesforce,segment", "--from", str(raw), "--out", str(out),
                                 "--map", str(raw / "import-map.toml"), "--as-of", "2026-06-30", "--report"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert {p["pair"] for p in report["pairs"]} >= {"stripe -> salesforce", "segment -> salesforce"}
    assert all(p["match_rate"] == 1.0 for p in report["pairs"])
    checked = runner.invoke(app, ["validate", "--data", str(out), "--as-of", "2026-06-30"])
    assert checked.exit_code == 0, checked.output


def test_failed_import_names_the_problem_and_writes_nothing(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "contract"
    result = runner.invoke(app, ["import", "stripe,salesforce,segment", "--from", str(raw), "--out", str(out),
                                 "--as-of", "2026-06-30"])  # no map: Stripe customers carry no metadata.account_id
    assert result.exit_code == 2
    assert "stripe.customer.metadata.account_id: no matching salesforce account for cus_0000000000" in result.output
    assert "nothing was written" in result.output
    assert not out.exists()


def test_unknown_source_and_raw_shape(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "quickbooks", "--from", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "quickbooks.*.*: unknown source" in result.output
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "c"), "--accounts", "2", "--months", "1",
                                 "--as-of", "2026-06-30", "--raw", "zuora"])
    assert result.exit_code == 2 and "unknown source(s) zuora" in result.output
