"""Where the data ends: a partly loaded newest day is not trusted, a quiet weekend day is."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest

from features.data_end import PARTIAL_DAY_SHARE, complete_data_end
from features.metrics import last_complete_period, no_complete_period

NEWEST = dt.date(2026, 12, 1)  # a Tuesday


def _usage(days: int, last_share: float, weekend: float = 0.3) -> ibis.Table:
    rows = []
    for k in range(days):
        day = NEWEST - dt.timedelta(days=k)
        events = 1000 * (weekend if day.weekday() >= 5 else 1.0)
        rows.append({"account_id": "a", "date": day, "feature_key": "f",
                     "events": int(events * (last_share if k == 0 else 1.0)), "active_users": 1})
    return ibis.memtable(pd.DataFrame(rows))


def test_a_partly_loaded_newest_day_falls_back_to_the_day_before() -> None:
    end = complete_data_end(_usage(40, 0.1), NEWEST)
    assert (end.day, end.newest, end.partial) == (NEWEST - dt.timedelta(days=1), NEWEST, True)
    assert end.newest_share == pytest.approx(0.1, abs=0.01)
    assert "partly loaded" in end.describe() and str(NEWEST) in end.describe()


def test_a_full_newest_day_and_a_quiet_sunday_stand() -> None:
    assert complete_data_end(_usage(40, 1.0), NEWEST).day == NEWEST
    sunday = dt.date(2026, 11, 29)
    usage = _usage(40, 1.0).filter(ibis._.date <= sunday)
    end = complete_data_end(usage, sunday)
    assert end.day == sunday and not end.partial


def test_share_at_the_threshold_is_complete_and_too_little_history_is_not_judged() -> None:
    assert complete_data_end(_usage(40, PARTIAL_DAY_SHARE), NEWEST).day == NEWEST
    assert complete_data_end(_usage(8, 0.01), NEWEST).day == NEWEST  # one reference week only


def test_a_report_with_no_complete_period_names_the_last_complete_one() -> None:
    assert last_complete_period("year", dt.date(2026, 12, 29)) == (dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    said = no_complete_period("year", dt.date(2025, 11, 1), dt.date(2026, 12, 29))
    assert "no complete year" in said and "2025-01-01 .. 2025-12-31" in said
    assert "2026-07-01 .. 2026-09-30 (--period quarter)" in said and "2026-11-01 .. 2026-11-30 (--period month)" in said
