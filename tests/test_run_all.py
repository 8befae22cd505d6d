"""The benchmark runner: every script listed, figures read from a real run, verdicts judged by the measured spread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from run_all import unlisted  # noqa: E402 - the runner lives beside the scripts it runs
from run_all_compare import compare, verdict  # noqa: E402
from run_all_entries import ENTRIES  # noqa: E402


def test_every_benchmark_script_has_an_entry() -> None:
    assert unlisted() == []
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert all((BENCHMARKS / e.script).exists() for e in ENTRIES)


def test_verdict_by_the_spread_measured_on_one_tree() -> None:
    assert verdict([1.0, 1.0], [1.0]) == ("same", 0.0)
    assert verdict([3.0, 3.0], [4.0])[0] == "differs (the same in every before pass)"
    assert verdict([1.10, 1.30], [1.35]) == ("within noise", pytest.approx(0.2))  # median gap 0.15 <= range 0.2
    assert verdict([1.10, 1.30], [1.60])[0] == "higher beyond spread"
    assert verdict([1.10, 1.30], [0.80, 0.85])[0] == "lower beyond spread"
    assert verdict([1.2], [1.3])[0].startswith("not judged")  # one pass per side: no spread to judge by
    assert verdict([], [1.0])[0] == "missing before"


def test_passes_read_figures_and_compare(tmp_path: Path) -> None:
    out = tmp_path / "before.json"
    run = [sys.executable, str(BENCHMARKS / "run_all.py"), "--out", str(out), "--only", "alert_delivery"]
    subprocess.run([*run, "--work", str(tmp_path)], check=True, capture_output=True)
    subprocess.run([*run, "--append"], check=True, capture_output=True)  # a second pass into the same file
    doc = json.loads(out.read_text())
    assert len(doc["runs"]) == 2 and "alert_delivery" in out.with_suffix(".md").read_text()
    result = doc["runs"][0]["entries"]["alert_delivery"]
    assert result["returncode"] == 0 and result["parse_error"] is None
    assert result["command"] == "python benchmarks/check_alert_delivery.py --messages 60 --poisoned 5"
    figures = {k: f["value"] for k, f in result["figures"].items()}
    # 60 messages, the first 5 refused by the relay: parked on the first run, nothing due afterwards
    assert figures["run 1 sent"] == 55 and figures["run 1 parked"] == 5 and figures["relay received"] == 55
    assert figures["run 2 due"] == 0
    table = tmp_path / "compare.md"
    subprocess.run([sys.executable, str(BENCHMARKS / "run_all.py"), "--compare", str(out), str(out), "--md", str(table)],
                   check=True, capture_output=True)
    rows = compare(doc, doc)
    assert {r["verdict"] for r in rows} == {"same"} and len(rows) == len(figures)
    assert f"same {len(figures)} (of {len(figures)} figures)" in table.read_text()
