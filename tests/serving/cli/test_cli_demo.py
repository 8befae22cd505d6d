"""The demo's "who to call" table reads the CRM table whatever models were promoted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from serving.cli.demo import _top_accounts

COLUMNS = ("account_id", "readiness_score", "readiness_band", "churn_probability", "health",
           "expected_expansion_usd", "recommended_play", "reason_1")


def _crm(path: Path, rows: list[tuple]) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE account_scores ({', '.join(COLUMNS)})")
        conn.executemany(f"INSERT INTO account_scores VALUES ({', '.join('?' * len(COLUMNS))})", rows)
    return path


def test_ranks_by_expected_value_when_an_expansion_model_scored(tmp_path: Path) -> None:
    db = _crm(tmp_path / "crm.db", [
        ("A", 90.0, "outreach", 0.05, "green", 1_000.0, "expansion_conversation", "r"),
        ("B", 40.0, "nurture", 0.20, "yellow", 9_000.0, None, None),
    ])
    assert _top_accounts(db, 2) == "B"


def test_ranks_by_readiness_and_prints_dashes_without_models(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    db = _crm(tmp_path / "crm.db", [
        ("A", 55.0, "nurture", None, "green", None, None, None),
        ("B", 80.0, "outreach", None, "red", None, "expansion_conversation", "Renewal in 2 months"),
    ])
    assert _top_accounts(db, 2) == "B"
    out = capsys.readouterr().out
    assert "no expansion champion" in out and "- red" in out
