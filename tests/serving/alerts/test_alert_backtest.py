"""The track record on a hand-built history whose figures are counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.alerts.backtest import track_record, track_sentence
from serving.alerts.rules import parse_rules

RULES = parse_rules("""
[[rule]]
name = "near_limit"
outcome = "expanded"
money = "arr"
all = [{ feature = "quota_utilization_30d_pct", op = ">=", value = 85 }]

[[rule]]
name = "failed_payment"
outcome = "churned_or_contracted"
all = [{ feature = "payment_failures_90d", op = ">=", value = 1 }]
""", "test rules")

DATES = pd.to_datetime(["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"])


def history() -> pd.DataFrame:
    """Four accounts over four month ends; April's horizon is incomplete (labels null)."""
    rows = []
    quota = {"X1": [50, 90, 95, 50], "X2": [90, 90, 50, 90], "X3": [50, 50, 90, 50], "X4": [50, 50, 50, 50]}
    failures = {"X1": [0, 0, 0, 0], "X2": [0, 0, 0, 0], "X3": [0, 0, 0, 0], "X4": [0, 0, 1, 1]}
    expanded = {"X1": [0, 1, 0], "X2": [1, 0, 0], "X3": [0, 0, 0], "X4": [0, 1, 0]}
    contracted = {"X1": [0, 0, 0], "X2": [0, 0, 0], "X3": [0, 0, 0], "X4": [0, 0, 1]}
    arr = {"X1": 1200.0, "X2": 6000.0, "X3": 2400.0, "X4": 3600.0}
    for account in quota:
        for i, date in enumerate(DATES):
            labelled = i < 3
            rows.append({
                "account_id": account, "as_of": date, "csm_owner": "kim", "arr": arr[account],
                "quota_utilization_30d_pct": float(quota[account][i]), "payment_failures_90d": float(failures[account][i]),
                "expanded": float(expanded[account][i]) if labelled else np.nan,
                "churned": 0.0 if labelled else np.nan,
                "contracted": float(contracted[account][i]) if labelled else np.nan,
                "expansion_mrr": (100.0 if (account, i) == ("X1", 1) else 0.0) if labelled else np.nan,
            })
    frame = pd.DataFrame(rows)
    frame["account_id"] = frame["account_id"].astype("string")
    return frame


def test_track_record_counts_episodes_outcomes_lift_and_money() -> None:
    record = track_record(history(), RULES, replicates=200).set_index("rule")
    near = record.loc["near_limit"]
    # episodes: X1 enters in February (expanded), X3 in March (did not); X2 was already in the condition in
    # January (no previous month, no episode) and re-enters in April, whose horizon is incomplete.
    assert (near["episodes"], near["positives"], near["accounts"]) == (2, 1, 2)
    assert near["rate"] == pytest.approx(0.5)
    # base rate: February and March rows of the four accounts: X1 and X4 expanded in February.
    assert (near["base_rows"], near["base_rate"]) == (8, pytest.approx(0.25))
    assert near["lift"] == pytest.approx(2.0)
    assert near["arr_at_fire"] == pytest.approx(1200.0 + 2400.0)
    assert near["outcome_arr"] == pytest.approx(12 * 100.0)  # expansion ARR won after the alert
    assert near["rate_low"] <= near["rate"] <= near["rate_high"]
    assert near["lift_low"] <= near["lift"] <= near["lift_high"]
    assert near["months"] == 2

    failed = record.loc["failed_payment"]
    # X4 enters in March and contracts: the risk outcome; base rate 1 of 8.
    assert (failed["episodes"], failed["positives"]) == (1, 1)
    assert failed["base_rate"] == pytest.approx(1 / 8)
    assert failed["lift"] == pytest.approx(8.0)
    assert failed["outcome_arr"] == pytest.approx(3600.0)  # ARR of the account that then contracted


def test_the_sentence_shown_in_every_delivery() -> None:
    record = track_record(history(), RULES, replicates=200).set_index("rule").loc["near_limit"].to_dict()
    text = track_sentence({**record, "outcome": "expanded"})
    assert text.startswith("this alert was followed by an expansion 50 % of the time") and "2 episodes" in text
    assert "no track record yet" in track_sentence(None)
