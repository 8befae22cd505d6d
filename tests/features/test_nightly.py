"""The nightly score cannot roll yesterday's snapshot forward by one day, and says why: shown on generated data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from features.build import build_features
from features.config import Settings
from features.io import open_data
from features.nightly import WHOLE_WINDOW, nightly_note, rolling_blockers
from features.registry import feature_names

DAYS = [dt.date(2026, 6, 1) + dt.timedelta(days=i) for i in range(15)]  # 14 nights, each rolled from the one before


def _frames(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The features at every day, and each account's events and largest per-feature user count per raw day."""
    source = open_data(folder)
    try:
        frame = build_features(source, DAYS, Settings(_env_file=None), labels=False)
        raw = source.con.execute(
            "SELECT account_id, date, sum(events) AS events, max(active_users) AS users FROM usage_daily "
            "WHERE date BETWEEN ? AND ? GROUP BY account_id, date", [DAYS[0] - dt.timedelta(days=30), DAYS[-1]],
        ).df()
    finally:
        source.close()
    raw["date"] = pd.to_datetime(raw["date"])
    return frame, raw


def test_a_window_maximum_leaves_with_its_day_while_a_sum_rolls_with_the_day_leaving(generated_company: Path) -> None:
    frame, raw = _frames(generated_company)
    day = raw.set_index(["account_id", "date"])
    checked, overstated = 0, 0
    for yesterday, today in zip(DAYS, DAYS[1:]):
        t, y = (frame[frame["as_of"] == pd.Timestamp(d)].set_index("account_id") for d in (today, yesterday))
        both = t.index.intersection(y.index)
        t, y = t.loc[both], y.loc[both]
        new = day.reindex([(a, pd.Timestamp(today)) for a in both]).fillna(0).set_axis(both)
        old = day.reindex([(a, pd.Timestamp(today - dt.timedelta(days=30))) for a in both]).fillna(0).set_axis(both)
        # a sum rolls forward with the day entering and the day leaving the window: exactly, for every account
        known = t["events_30d"].notna() & y["events_30d"].notna()
        rolled = y["events_30d"] + new["events"] - old["events"]
        pd.testing.assert_series_equal(rolled[known], t["events_30d"][known], check_names=False, check_dtype=False)
        # a window maximum does not: max(yesterday's, today's) never understates it, and overstates it where it left
        known = t["active_users_30d"].notna() & y["active_users_30d"].notna()
        guess = y["active_users_30d"].combine(new["users"].astype("float64"), max)[known]
        assert (guess >= t["active_users_30d"][known]).all()
        checked += int(known.sum())
        overstated += int((guess > t["active_users_30d"][known]).sum())
    assert checked > 1000
    assert overstated > 0, "no night where the window's largest daily count left with its day"


def test_the_note_names_what_blocks_the_roll_forward() -> None:
    blockers = rolling_blockers()
    assert set(WHOLE_WINDOW) <= set(blockers) <= set(feature_names())
    assert "mrr" not in blockers and "segment" not in blockers  # facts at the day, not windows
    note = nightly_note(DAYS[-1])
    assert note.startswith(f"features: built afresh for {DAYS[-1]}, not from yesterday's snapshot plus one day")
    assert f"{len(blockers)} of {len(feature_names())} features" in note and "active_users_30d" in note
