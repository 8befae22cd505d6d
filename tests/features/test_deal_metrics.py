"""The pipeline report against a hand-built table whose every figure is worked out in the comments."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from features.config import Settings
from features.deal_metrics import PipelineTables, pipeline_report, quarter_bounds, wilson

AS_OF = dt.date(2026, 6, 30)  # next quarter: 2026-07-01 .. 2026-09-30
ORDER = Settings(_env_file=None).opportunity_stages


def _tables() -> PipelineTables:
    ts, d = pd.Timestamp, dt.date
    opps = pd.DataFrame([
        # open at as_of, in qualification since 06-20 (10 days), due next quarter
        ("O1", "X1", "expansion", 1000.0, ts("2026-05-01"), d(2026, 7, 15), None, "open", "kim"),
        # open, in proposal since 04-01 (90 days: a zombie), due next quarter
        ("O2", "X2", "upsell", 5000.0, ts("2026-03-01"), d(2026, 8, 1), None, "open", "lee"),
        # open, in negotiation since 06-01 (29 days: not yet a zombie), due after next quarter
        ("O3", "X2", "cross_sell", 2000.0, ts("2026-06-01"), d(2026, 12, 1), None, "open", "lee"),
        # a renewal: never expansion pipeline
        ("O4", "X3", "renewal", 9000.0, ts("2026-06-01"), d(2026, 7, 10), None, "open", "kim"),
        # won 02-10 after 31 days in proposal (a zombie that won)
        ("O5", "X1", "expansion", 800.0, ts("2026-01-01"), d(2026, 2, 1), ts("2026-02-10"), "won", "kim"),
        # lost 03-05, never more than 23 days in a stage
        ("O6", "X3", "expansion", 400.0, ts("2026-02-01"), d(2026, 3, 1), ts("2026-03-05"), "lost", "kim"),
        # won 04-20, fast
        ("O7", "X2", "upsell", 3000.0, ts("2026-04-01"), d(2026, 4, 30), ts("2026-04-20"), "won", "lee"),
        # won 07-10, after as_of: open then, in negotiation since 06-15 (15 days), expected 06-25 (overdue, not due next quarter)
        ("O8", "X1", "expansion", 700.0, ts("2026-06-01"), d(2026, 6, 25), ts("2026-07-10"), "won", "kim"),
    ], columns=["opportunity_id", "account_id", "kind", "amount", "created_at", "expected_close_date", "closed_at",
                "outcome", "owner"])
    stages = pd.DataFrame([
        ("O1", "prospecting", ts("2026-05-01")), ("O1", "qualification", ts("2026-06-20")),
        ("O2", "prospecting", ts("2026-03-01")), ("O2", "proposal", ts("2026-04-01")),
        ("O3", "negotiation", ts("2026-06-01")),
        ("O4", "prospecting", ts("2026-06-01")),
        ("O5", "prospecting", ts("2026-01-01")), ("O5", "proposal", ts("2026-01-10")), ("O5", "closed_won", ts("2026-02-10")),
        ("O6", "prospecting", ts("2026-02-01")), ("O6", "qualification", ts("2026-02-10")),
        ("O6", "closed_lost", ts("2026-03-05")),
        ("O7", "prospecting", ts("2026-04-01")), ("O7", "qualification", ts("2026-04-05")),
        ("O7", "proposal", ts("2026-04-10")), ("O7", "closed_won", ts("2026-04-20")),
        ("O8", "prospecting", ts("2026-06-01")), ("O8", "negotiation", ts("2026-06-15")), ("O8", "closed_won", ts("2026-07-10")),
    ], columns=["opportunity_id", "stage", "entered_at"])
    accounts = pd.DataFrame({"account_id": ["X1", "X2", "X3"], "segment": ["smb", "enterprise", "enterprise"]})
    moves = pd.DataFrame({  # realised expansions: Q3 2025 is last year's same quarter (12,000 smb + 3,000 enterprise)
        "account_id": ["X1", "X2", "X2"], "date": [d(2025, 8, 1), d(2025, 7, 1), d(2025, 10, 1)],
        "expansion_arr": [12000.0, 3000.0, 50000.0]})
    return PipelineTables(opps, stages, accounts, moves)


def test_open_pipeline_by_stage():
    by_stage = pipeline_report(_tables(), AS_OF, ORDER)["by_stage"].set_index("stage")
    assert list(by_stage.index) == ["qualification", "proposal", "negotiation"]
    assert by_stage.loc["qualification", ["open_deals", "open_value"]].tolist() == [1, 1000.0]
    assert by_stage.loc["proposal", ["open_deals", "open_value", "zombies", "zombie_value"]].tolist() == [1, 5000.0, 1, 5000.0]
    # O3 (29 days) and O8 (15 days, won only after as_of): whole days from the day a stage was entered
    # (features.deals, as the deal features and alerts count them)
    assert by_stage.loc["negotiation", ["open_deals", "open_value", "zombies"]].tolist() == [2, 2700.0, 0]
    assert by_stage.loc["negotiation", "median_days_in_stage"] == pytest.approx(22.0)


def test_coverage_against_last_year_and_a_target():
    cov = pipeline_report(_tables(), AS_OF, ORDER)["coverage"].iloc[0]
    assert (cov.quarter_start, cov.pipeline_due, cov.deals_due, cov.target) == (dt.date(2026, 7, 1), 6000.0, 2, 15000.0)
    assert cov.coverage_pct == pytest.approx(40.0) and cov.target_source == "last_year"
    set_target = pipeline_report(_tables(), AS_OF, ORDER, target=2000.0)["coverage"].iloc[0]
    assert set_target.coverage_pct == pytest.approx(300.0) and set_target.target_source == "setting"
    seg = pipeline_report(_tables(), AS_OF, ORDER, by="segment")["coverage"].set_index("group")
    assert seg.loc["smb", "coverage_pct"] == pytest.approx(100 * 1000 / 12000)
    assert seg.loc["enterprise", "coverage_pct"] == pytest.approx(100 * 5000 / 3000)


def test_stage_conversion():
    conv = pipeline_report(_tables(), AS_OF, ORDER)["conversion"].set_index("stage")
    # closed by as_of: O5 (won), O6 (lost), O7 (won); O8 closed after as_of and is not counted
    assert conv.loc["prospecting", ["entered", "advanced", "won"]].tolist() == [3, 3, 2]
    assert conv.loc["qualification", ["entered", "advanced", "won"]].tolist() == [2, 1, 1]
    assert conv.loc["proposal", ["entered", "advanced", "won"]].tolist() == [2, 2, 2]
    assert conv.loc["prospecting", "win_pct"] == pytest.approx(200 / 3)
    assert conv.loc["qualification", "to_next_pct"] == pytest.approx(50.0)


def test_zombies_convert_against_faster_deals():
    z = pipeline_report(_tables(), AS_OF, ORDER)["zombies"].set_index("deals")
    assert z.loc["zombie (>30d in a stage)", ["closed", "won"]].tolist() == [1, 1]
    assert z.loc["faster", ["closed", "won", "win_pct"]].tolist() == [2, 1, 50.0]
    lo, hi = wilson(1, 2)
    assert (z.loc["faster", "win_low_pct"], z.loc["faster", "win_high_pct"]) == (lo, hi)


def test_win_rate_by_quarter_and_owner():
    w = pipeline_report(_tables(), AS_OF, ORDER)["win_rate"].set_index("quarter")
    assert w.loc["2026Q1", ["closed", "won"]].tolist() == [2, 1]
    assert w.loc["2026Q2", ["closed", "won"]].tolist() == [1, 1]
    by_owner = pipeline_report(_tables(), AS_OF, ORDER, by="owner")["by_stage"]
    assert by_owner.groupby("group")["open_value"].sum().to_dict() == {"kim": 1700.0, "lee": 7000.0}


def test_an_earlier_as_of_sees_the_pipeline_as_it_was():
    by_stage = pipeline_report(_tables(), dt.date(2026, 1, 31), ORDER)["by_stage"]
    assert by_stage[["stage", "open_deals", "open_value"]].values.tolist() == [["proposal", 1, 800.0]]


def test_unknown_grouping_is_refused():
    with pytest.raises(ValueError, match="by must be one of segment, owner"):
        pipeline_report(_tables(), AS_OF, ORDER, by="industry")


def test_quarter_bounds():
    assert quarter_bounds(dt.date(2026, 12, 31), 1) == (dt.date(2027, 1, 1), dt.date(2027, 4, 1))
