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


SCOPED = parse_rules("""
[[rule]]
name = "exec_silence_enterprise"
outcome = "churned_or_contracted"
requires = ["activities"]
all = [{ feature = "segment", op = "==", value = "enterprise" },
       { feature = "days_since_exec_touch", op = ">=", value = 90, missing_counts = true }]
""", "test rules")


def _segments(n: int = 3000, seed: int = 4) -> pd.DataFrame:
    """smb accounts churn or contract often (30 %), enterprise rarely (8 %); silent enterprise accounts at 10 %:
    against the company-wide base rate the silence rule looks anti-predictive, against enterprise's own it is not."""
    rng = np.random.default_rng(seed)
    rows = []
    seg = np.where(np.arange(n) < n // 2, "smb", "enterprise")
    silent = rng.random((n, 8)) < 0.5
    for k, date in enumerate(pd.date_range("2025-01-31", periods=8, freq="ME")):
        p = np.where(seg == "smb", 0.30, np.where(silent[:, k], 0.10, 0.06))
        rows.append(pd.DataFrame({
            "account_id": pd.array([f"A{i}" for i in range(n)], dtype="string"), "as_of": date, "segment": seg,
            "days_since_exec_touch": np.where(silent[:, k], 120.0, 10.0), "arr": 1000.0,
            "expanded": 0.0, "churned": 0.0, "contracted": (rng.random(n) < p).astype(float)}))
    return pd.concat(rows, ignore_index=True)


def test_the_base_rate_is_that_of_the_accounts_the_rule_can_fire_on() -> None:
    frame = _segments()
    holders = {"activities": set(frame["account_id"].astype(str))}
    rec = track_record(frame, SCOPED, replicates=200, holders=holders).iloc[0]
    months = frame.loc[pd.to_datetime(frame["as_of"]) > frame["as_of"].min()]
    enterprise = months.loc[months["segment"] == "enterprise"]
    assert rec["base_rows"] == len(enterprise)
    assert rec["base_rate"] == pytest.approx(enterprise["contracted"].mean())
    assert rec["lift"] > 1 and rec["base_rate"] < months["contracted"].mean() / 2  # company-wide would read lift < 1
    assert rec["eligible"] == "enterprise accounts with activities"
    # accounts without the table the rule needs are not eligible either
    half = {"activities": set(enterprise["account_id"].astype(str).unique()[:10])}
    assert track_record(frame, SCOPED, replicates=50, holders=half).iloc[0]["base_rows"] < rec["base_rows"]
    assert "base rate 8 % of enterprise accounts with activities" in track_sentence(rec.to_dict(), SCOPED[0])


ANTI = parse_rules("""
[[rule]]
name = "quiet_is_risky"
title = "Quiet accounts"
outcome = "churned_or_contracted"
all = [{ feature = "days_since_exec_touch", op = ">=", value = 90 }]

[[rule]]
name = "quiet_forced"
outcome = "churned_or_contracted"
send = "always"
all = [{ feature = "days_since_exec_touch", op = ">=", value = 90 }]
""", "test rules")


def test_a_rule_that_anti_predicts_is_not_sent_until_a_backtest_clears_it() -> None:
    from serving.alerts.backtest import sending
    from serving.alerts.episodes import decide

    frame = _segments()
    frame["segment"] = "enterprise"  # one segment: silent accounts (10 %) against the others (6 %)
    frame["contracted"] = np.where(frame["days_since_exec_touch"] > 90, frame["contracted"] * 0,
                                   frame["contracted"])  # now silence is followed by *fewer* contractions
    records = track_record(frame, ANTI, replicates=300).set_index("rule")
    anti = records.loc["quiet_is_risky"].to_dict()
    assert anti["lift_high"] < 1
    ok, why = sending(ANTI[0], anti)
    assert not ok and "lift interval lies below 1" in why
    assert sending(ANTI[1], records.loc["quiet_forced"].to_dict()) == (True, "forced on by its send setting")
    new = pd.DataFrame({"account_id": ["A1", "A2"], "rule": ["quiet_is_risky", "quiet_forced"], "csm_owner": ["kim", "kim"],
                        "expected_value": [5.0, 1.0]})
    decided = decide(new, snoozed=set(), routed=None, sent_this_week={}, cap=1, withheld={"quiet_is_risky"})
    assert decided.set_index("rule")["status"].to_dict() == {"quiet_is_risky": "withheld", "quiet_forced": "queued"}
    # a later backtest on which the rule works clears it
    later = _segments()
    cleared = track_record(later.loc[later["segment"] == "enterprise"], ANTI, replicates=300).set_index("rule")
    assert sending(ANTI[0], cleared.loc["quiet_is_risky"].to_dict())[0]
    # an interval including 1 withholds only once there are enough episodes to have shown a useful lift
    flat = {"episodes": 40, "lift_low": 0.8, "lift_high": 1.3, "base_rate": 0.1}
    assert sending(ANTI[0], flat)[0] and not sending(ANTI[0], {**flat, "episodes": 400})[0]
