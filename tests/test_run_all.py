"""The benchmark runner: every script listed, figures read from a real run, verdicts judged by the measured spread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from run_all import run_pass, unlisted  # noqa: E402 - the runner lives beside the scripts it runs
from run_all_compare import compare, compare_markdown, runs_markdown, verdict  # noqa: E402
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


def test_a_pass_reads_figures_and_compares(tmp_path: Path) -> None:
    entries = [e for e in ENTRIES if e.name == "alert_delivery"]
    first, second = ({"runs": [run_pass(entries, tmp_path)]} for _ in range(2))
    result = first["runs"][0]["entries"]["alert_delivery"]
    assert result["returncode"] == 0 and result["parse_error"] is None
    figures = {k: f["value"] for k, f in result["figures"].items()}
    # 60 messages, the first 5 refused by the relay: parked on the first run, nothing due afterwards
    assert figures["run 1 sent"] == 55 and figures["run 1 parked"] == 5 and figures["relay received"] == 55
    assert figures["run 2 due"] == 0
    rows = compare(first, second)
    assert {r["verdict"] for r in rows} == {"same"} and len(rows) == len(figures)
    assert "same 19" in compare_markdown(rows, first, second)
    assert "check_alert_delivery.py --messages 60 --poisoned 5" in runs_markdown(first)
