"""Status colours: thresholds declared once, documented in docs/web.md, applied at their edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.web.leadership import THRESHOLDS, coverage, status, target_pace

DOC = Path(__file__).parents[3] / "docs" / "web.md"


@pytest.mark.parametrize(("key", "value", "colour"), [
    ("nrr", 100.0, "green"), ("nrr", 99.9, "yellow"), ("nrr", 89.9, "red"), ("nrr", None, "grey"),
    ("grr", 90.0, "green"), ("grr", 80.0, "yellow"), ("grr", 79.0, "red"),
    ("expansion_rate", 3.0, "green"), ("expansion_rate", 5.5, "yellow"), ("expansion_rate", 1.5, "yellow"),
    ("expansion_rate", 0.5, "red"), ("coverage", 3.0, "green"), ("coverage", 2.6, "yellow"), ("coverage", 2.4, "red"),
    ("target_pace", float("nan"), "grey"),
])
def test_status_at_the_edges(key: str, value: float | None, colour: str) -> None:
    assert status(key, value) == colour


def test_pace_and_coverage() -> None:
    assert target_pace(100_000, 300_000, 1) == pytest.approx(100.0)  # a third of the target in a third of the quarter
    assert target_pace(100_000, None, 1) is None and target_pace(1, 300_000, 0) is None
    assert coverage(500_000, 300_000, 100_000) == pytest.approx(2.5)
    assert coverage(1, 300_000, 300_000) is None and coverage(1, None, 0) is None


def test_every_threshold_is_documented() -> None:
    text = DOC.read_text()
    for t in THRESHOLDS.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| {t.line} |")), None)
        assert row is not None, f"docs/web.md lacks the status row of {t.line!r}"
        assert f"{t.green:g}" in row and f"{t.yellow:g}" in row, row
