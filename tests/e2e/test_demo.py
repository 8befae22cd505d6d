"""`expansion demo` end to end on a small company, run twice: the second run must be safe."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ARGS = ["demo", "--accounts", "400", "--months", "18", "--as-of", "2026-06-30", "--top", "5"]


def _run(home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPANSION_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "serving.cli", *ARGS], env=env, capture_output=True,
                          text=True, timeout=600, check=False)


def _scores(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "crm.db") as conn:
        return conn.execute("SELECT account_id, readiness_score, churn_probability, run_id "
                            "FROM account_scores ORDER BY account_id").fetchall()


def test_demo_runs_end_to_end_and_reruns_safely(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = _run(home)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    for step in range(1, 10):
        assert f"{step}/9" in out
    assert "stored as" in out and "dry run" in out and "logged the recommended play as planned" in out
    assert "NRR %" in out and "top 5 accounts to call" in out and "expansion serve" in out
    assert "/ui/signin" in out.strip().splitlines()[-2] and "token: " in out.strip().splitlines()[-1]
    scores = _scores(home)
    assert len(scores) > 100 and all(0 <= s[1] <= 100 for s in scores)
    assert (home / "mlflow.db").is_file() and (home / "serving" / "snapshot.parquet").is_file()

    second = _run(home)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing the company" in second.stdout
    assert _scores(home) == scores  # same snapshot and champions: the CRM table does not move
